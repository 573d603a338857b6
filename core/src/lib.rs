//! brainmvp-core: the BrainMVP method (multi-modal MRI self-supervised pre-training) as a library.
//!
//! Everything here is shared by the native trainer and the browser viewer:
//! NIfTI I/O ([`nifti`]), cohort discovery ([`cohort`]), preprocessing ([`preprocess`]),
//! the synthetic multi-modal tumour cohort ([`synth`]), and, with the `fs` feature, the
//! memory-mapped training cache ([`cache`]) and the prefetching crop loader ([`loader`]).

pub mod bmvp;
pub mod classification;
pub mod cohort;
pub mod crops;
pub mod error;
pub mod finetune;
pub mod inference;
pub mod kernels;
pub mod losses;
pub mod metrics;
pub mod modality;
pub mod model;
pub mod nifti;
pub mod official;
pub mod postprocess;
pub mod preprocess;
pub mod pretext;
pub mod pretrain;
pub mod rng;
pub mod synth;
pub mod volume;

#[cfg(feature = "fs")]
pub mod cache;
#[cfg(feature = "fs")]
pub mod fs;
#[cfg(feature = "fs")]
pub mod loader;

/// The version of brainmvp-core (shown by the CLI and the web page).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub use error::{Error, Result};
pub use modality::Modality;
pub use volume::{Affine, Volume};

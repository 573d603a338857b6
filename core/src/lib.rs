//! brainmvp-core: the BrainMVP method (multi-modal MRI self-supervised pre-training) as a library.
//!
//! Everything here is shared by the native trainer and the browser viewer (a code map:
//! `docs/architecture.md`):
//!
//! - data: [`nifti`] (read/write), [`volume`] (grids and affines), [`modality`], [`cohort`]
//!   (discovery and file names), [`preprocess`], [`synth`] (the synthetic multi-modal tumour
//!   cohort), [`crops`], [`rng`]; with the `fs` feature [`fs`] (atomic writes), [`cache`] (the
//!   memory-mapped training cache) and [`loader`] (the prefetching crop loader);
//! - models: [`model`] (UniFormer, UNet3D, UniUnet, classifier, decoders, memory footprint),
//!   [`kernels`] (fused CPU kernels), [`official`] (the official checkpoints' names and layouts);
//! - pre-training: [`pretext`] (masking, views, templates, contrastive loss), [`pretrain`] (the
//!   network and its losses);
//! - fine-tuning and use: [`labels`] (label schemes: targets, losses, decoding),
//!   [`template_bank`] (the exported modality templates), [`finetune`] (encoder transfer,
//!   cut-mix, splits, few-shot),
//!   [`correction`] (hand corrections of a label map and the weights of teaching from them),
//!   [`losses`], [`metrics`], [`classification`], [`inference`] (sliding window and case
//!   segmentation), [`postprocess`], [`bmvp`] (the one-file model);
//! - [`error`]: the one error type; [`config`]: the [`config!`] macro (settings structs with
//!   their defaults next to the fields).

pub mod bmvp;
pub mod classification;
pub mod cohort;
pub mod config;
pub mod correction;
pub mod crops;
pub mod error;
pub mod finetune;
pub mod inference;
pub mod kernels;
pub mod labels;
pub mod losses;
pub mod metrics;
pub mod modality;
pub mod model;
pub mod nifti;
pub mod official;
pub mod optim;
pub mod postprocess;
pub mod preprocess;
pub mod pretext;
pub mod pretrain;
pub mod rng;
pub mod synth;
pub mod template_bank;
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
/// The `with_<field>` builders of [`config!`] name their methods with it.
#[doc(hidden)]
pub use pastey as __pastey;
pub use volume::{Affine, Volume};

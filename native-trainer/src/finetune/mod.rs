//! `brainmvp finetune`: fine-tuning on labelled subjects; the model folder it writes is
//! [`crate::model_folder`].
//!
//! - [`config`]: the job file of both tasks;
//! - [`common`]: what both tasks settle the same way (split, modalities, encoder);
//! - [`segmentation`]: UniUnet on label maps (setup, inputs, the run);
//! - [`classify`]: one class per subject.

pub mod classify;
pub mod common;
pub mod config;
pub mod segmentation;

pub use config::{FinetuneConfig, Task};
pub use segmentation::{run_finetune, FinetuneSummary};

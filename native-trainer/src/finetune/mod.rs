//! `brainmvp finetune`: fine-tuning on labelled subjects (config, setup, loop); the model folder it writes is [`crate::model_folder`].

pub mod classify;
pub mod config;
pub mod data;
pub mod segmentation;
pub mod setup;

pub use config::{FinetuneConfig, Task};
pub use segmentation::{run_finetune, FinetuneSummary};

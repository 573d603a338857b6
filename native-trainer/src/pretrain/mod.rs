//! `brainmvp pretrain`: the BrainMVP pre-training job (config, loop, checkpoints, export).

pub mod bench;
pub mod checkpoint;
pub mod config;
pub mod export;
pub mod run;
pub mod template_watch;

pub use config::PretrainConfig;
pub use run::{run_pretrain, RunSummary};

//! `brainmvp pretrain`: the BrainMVP pre-training job (config, loop, the pre-trained folder it hands on).

pub mod config;
pub mod pretrained;
pub mod run;
pub mod template_watch;

pub use config::PretrainConfig;
pub use run::{run_pretrain, run_pretrain_launched, RunSummary};

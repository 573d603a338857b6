//! One file per verb: argument struct (clap) and a `run` that calls into `brainmvp-core`.

pub mod bench;
pub mod demo;
pub mod info;
pub mod orchestrator;
pub mod prepare;
pub mod pretrain;
pub mod summary;
pub mod synth;

//! One file per verb: argument struct (clap) and a `run` that calls into `brainmvp-core`.

pub mod bench;
pub mod demo;
pub mod evaluate;
pub mod experiment;
pub mod export;
pub mod finetune;
pub mod import;
pub mod info;
pub mod prepare;
pub mod pretrain;
pub mod segment;
pub mod serve;
pub mod summary;
pub mod synth;

//! brainmvp-trainer: the library behind the `brainmvp` command line. Every verb's work lives
//! here (and in `brainmvp-core`); `main.rs` only parses and dispatches.
//!
//! - [`commands`]: one module per verb (arguments + `run`);
//! - [`pretrain`]: the BrainMVP pre-training job (config, loop, checkpoints, export);
//! - [`distributed`]: data-parallel peers on burn-collective;
//! - [`backend`]: `--device` parsing and backend dispatch;
//! - [`report`]: metrics log, PNG plots, progress bar.

pub mod backend;
pub mod commands;
pub mod distributed;
pub mod pretrain;
pub mod report;

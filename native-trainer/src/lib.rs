//! brainmvp-trainer: the library behind the `brainmvp` command line. Every verb's work lives
//! here (and in `brainmvp-core`); `main.rs` only parses and dispatches.
//!
//! - [`commands`]: one module per verb (arguments + `run`);
//! - [`pretrain`]: the BrainMVP pre-training job (config, loop, checkpoints, export);
//! - [`distributed`]: data-parallel ranks (threads, MPI, NCCL), launcher variables, faults;
//! - [`demo`]: the main job on embedded data;
//! - [`finetune`]: fine-tuning (segmentation and classification), the model folder;
//! - [`experiment`]: the label-efficiency experiment (config, runs, its tables and plot);
//! - [`paired`]: paired differences with 95 % intervals (the experiment's comparisons);
//! - [`evaluate`]: Dice and HD95 of predicted label maps against the ground truth;
//! - [`backend`]: `--device` parsing and backend dispatch;
//! - [`job`]: job files (read, check, print, save); [`section`]: a job-file section that is
//!   another config (the loader's `[data]`);
//! - [`report`]: metrics log, PNG plots, progress bar;
//! - [`torch`]: official PyTorch checkpoints in (`import`) and PyTorch-loadable weights out.

#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
pub mod allocator;
pub mod backend;
pub mod bench;
pub mod bmvp;
pub mod checkpoint;
pub mod cohort;
pub mod commands;
pub mod demo;
pub mod distributed;
pub mod evaluate;
pub mod experiment;
pub mod finetune;
pub mod job;
pub mod model_folder;
pub mod paired;
pub mod pretrain;
pub mod report;
pub mod section;
pub mod segment;
pub mod serve;
#[cfg(test)]
mod test_dir;
pub mod torch;
pub mod training;
#[cfg(feature = "wgpu-lib")]
pub mod wgpu_adapters;

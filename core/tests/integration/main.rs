//! The integration tests of `brainmvp-core`, one binary with a module per concept (each test
//! binary links burn, so one binary links it once). Two files stay binaries of their own:
//! `footprint.rs` installs a counting global allocator, and `uniunet_learns.rs` needs burn's
//! global RNG to itself between seeding and the model's first parameter read.

mod support;

mod bmvp;
mod cache;
mod classification;
mod classifier;
mod cohort;
mod contrastive;
mod cutmix;
mod decoder;
mod downstream;
mod few_shot;
mod finetune_transfer;
mod inference;
mod input_check;
mod labels;
mod loader_foreground;
mod losses;
mod masking;
mod metrics;
mod nifti;
mod nifti2;
mod preprocess;
mod pretrain_model;
mod split;
mod synth;
mod synth_realistic;
mod templates;
mod unet3d;
mod uniformer;
mod uniunet;
mod views;

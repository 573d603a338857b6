//! The integration tests of the `brainmvp` CLI crate, one binary with a module per verb or
//! concept (each test binary links burn, so one binary links it once). Most run the real
//! `brainmvp` binary on synthetic cohorts or the shared MRI; `support` holds what they share.

mod support;

mod classify;
mod cli;
mod distributed;
mod evaluate;
mod export;
mod finetune;
#[cfg(feature = "mpi")]
mod mpirun;
mod official_golden;
mod official_golden_unet;
mod official_pipeline;
mod pretrain;
mod real_cases;
mod serve;
#[cfg(feature = "wgpu-lib")]
mod wgpu_lavapipe;

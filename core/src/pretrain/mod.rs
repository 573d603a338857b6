//! BrainMVP pre-training pieces shared by every front end: the pre-training network (encoder,
//! reconstruction decoder, learnable templates) with its three losses ([`model`]). The
//! learning-rate schedule, which fine-tuning shares, is [`crate::optim::LrSchedule`].
//!
//! The training loop itself (loader, optimiser, checkpoints, logs) lives in the `brainmvp`
//! trainer; everything it computes per step comes from here.

pub mod model;

pub use model::{BrainMvp, BrainMvpConfig, LossWeights, StepLosses};

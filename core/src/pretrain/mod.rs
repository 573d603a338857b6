//! BrainMVP pre-training pieces shared by every front end: the pre-training network (encoder,
//! reconstruction decoder, learnable templates) with its three losses ([`model`]), the
//! learning-rate schedule ([`schedule`]).
//!
//! The training loop itself (loader, optimiser, checkpoints, logs) lives in the `brainmvp`
//! trainer; everything it computes per step comes from here.

pub mod model;
pub mod schedule;

pub use model::{Architecture, BrainMvp, BrainMvpConfig, LossWeights, StepLosses};
pub use schedule::LrSchedule;

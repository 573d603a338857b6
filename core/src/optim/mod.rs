//! Optimisers of the training loops: [`FusedAdamW`], burn's AdamW in one kernel launch per
//! parameter tensor on the GPU backends, and [`LrSchedule`], the learning rate of every step
//! (pre-training and fine-tuning).

pub mod adamw;
pub mod schedule;

pub use adamw::{AdamWSettings, FusedAdamW};
pub use schedule::LrSchedule;

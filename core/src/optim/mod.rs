//! Optimisers of the training loops: [`FusedAdamW`], burn's AdamW in one kernel launch per
//! parameter tensor on the GPU backends.

pub mod adamw;

pub use adamw::{AdamWSettings, FusedAdamW};

//! Kernels for burn's GPU backends (burn-wgpu and burn-cuda, both burn-cubecl underneath),
//! written once in CubeCL and reached from the generic model code as the CPU kernels are: the
//! backend type is compared at run time with the GPU backends this build has (features `wgpu`,
//! `cuda`), with and without `Autodiff`, and anything else is declined to burn's operation.
//!
//! | case | kernel |
//! |---|---|
//! | stride 1, depthwise (UniFormer's `3³` position embeddings and `5³` mixing) | [`depthwise`]: forward, input gradient, weight + bias gradient, one launch each |
//! | training-mode batch normalisation | [`batch_norm`]: two launches forward, two backward |
//! | LayerNorm over the channels of `[N, C, D, H, W]` or the last axis of `[N, L, C]` | [`layer_norm`]: one launch forward, two backward |
//! | exact GELU | [`activation`]: one launch each way |
//! | an AdamW step of one parameter tensor | [`adamw`]: one launch ([`crate::optim::FusedAdamW`]) |

pub mod activation;
pub mod adamw;
pub mod batch_norm;
pub mod depthwise;
mod dispatch;
mod grid;
pub mod layer_norm;
mod ops;
mod reduce;

pub use dispatch::serves;
pub use ops::{adamw_step, batch_norm_training, conv, gelu, layer_norm, DeclinedStep};

#[cfg(all(test, feature = "wgpu"))]
mod tests;

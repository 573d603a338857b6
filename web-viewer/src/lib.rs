//! brainmvp in the browser (`wasm32-unknown-unknown`, built into `www/` by trunk).
//!
//! For now the page proves the stack end to end: it prints the workspace version, round-trips a
//! NIfTI file through `brainmvp-core` in memory, finds the WebGPU adapter, initialises burn's
//! WebGPU backend with the adapter's own buffer limits, and checks a matmul read back from the GPU.
//! Without WebGPU it says why and runs the same check on burn's CPU backend (flex).
//!
//! The backend-generic parts ([`compute_check`], [`core_link`]) also build and are tested on the
//! host; the browser glue is compiled for wasm32 only.

pub mod compute_check;
pub mod core_link;
pub mod render;

#[cfg(target_arch = "wasm32")]
pub mod gpu_probe;
#[cfg(target_arch = "wasm32")]
pub mod page;
#[cfg(target_arch = "wasm32")]
mod start;
#[cfg(target_arch = "wasm32")]
pub mod viewer_api;

//! brainmvp in the browser (`wasm32-unknown-unknown`, built into `www/` by trunk).
//!
//! The page (`www/`) views NIfTI volumes ([`render`], `viewer_api`), and its Web Worker
//! (`www/worker.js`, `worker_api`) segments a case and fine-tunes a model on WebGPU, or on the
//! CPU backend (flex) without it ([`jobs`]); on the CPU with several cores its windows are spread
//! over a pool of further workers (`window_pool`, `www/window-worker.js`). At start the page also proves the stack: version,
//! a NIfTI round trip through `brainmvp-core`, the WebGPU adapter and its limits, and a checked
//! matmul ([`compute_check`], [`core_link`]).
//!
//! The backend-generic parts also build and are tested on the host; the browser glue is compiled
//! for wasm32 only.

pub mod compute_check;
pub mod core_link;
pub mod jobs;
pub mod render;

#[cfg(target_arch = "wasm32")]
pub mod edit_api;
#[cfg(target_arch = "wasm32")]
pub mod gpu_probe;
#[cfg(target_arch = "wasm32")]
pub mod page;
#[cfg(target_arch = "wasm32")]
mod start;
#[cfg(target_arch = "wasm32")]
pub mod viewer_api;
#[cfg(target_arch = "wasm32")]
pub mod window_pool;
#[cfg(target_arch = "wasm32")]
pub mod worker_api;

//! Inference: from images to a label map.
//!
//! - [`sliding_window`]: MONAI's sliding-window inference over whole volumes (window placement,
//!   padding, blending, batching); its items are re-exported here;
//! - [`segment`]: a segmentation model's manifest and the whole pipeline of one case (stack the
//!   modalities, fill missing ones with templates, preprocess, sliding window, decode, optional
//!   mirroring and post-processing, back onto the input's grid), and the labels' volumes;
//! - [`window_jobs`]: one case's prediction as model calls (mirrorings × window batches) that
//!   any caller runs — this thread, a GPU queue, a pool of Web Workers — and hands back in order;
//! - [`label_convention`]: the enhancing tumour's value in the written map (3 for BraTS 2023
//!   file names, 4 for BraTS 2021 ones, or as asked);
//! - [`input_check`]: whether a case's raw images look BraTS-preprocessed (thin slices, one grid,
//!   skull-stripped), as one-line findings for the user.

pub mod input_check;
pub mod label_convention;
pub mod segment;
pub mod sliding_window;
pub mod window_jobs;

pub use sliding_window::*;

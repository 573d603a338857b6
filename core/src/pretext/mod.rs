//! The BrainMVP proxy tasks: block masking, learnable modality templates, the two views, the
//! modality-aware contrastive loss.

pub mod contrastive;
pub mod masking;
pub mod template_init;
pub mod templates;
pub mod views;

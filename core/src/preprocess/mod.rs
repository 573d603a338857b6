//! Preprocessing as the official BrainMVP pipeline: RAS, resampling to 1 mm, a foreground crop
//! symmetric about the volume centre, per-modality percentile scaling.
//!
//! (Types and signatures fixed by the lead; bodies being written.)

pub mod record;
pub mod resample;

pub use record::{CropBox, GridRecord, PreprocessedSubject};
pub use resample::{
    resample_linear, resample_linear_onto, resample_nearest, resample_nearest_onto, resampled_grid,
};

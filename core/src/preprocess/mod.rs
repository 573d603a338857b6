//! Preprocessing as the official BrainMVP pipeline: RAS, resampling to 1 mm, a foreground crop
//! symmetric about the volume centre, per-modality percentile scaling (see [`pipeline`] for the
//! steps and how they match the official MONAI transforms), and the way back to the original grid
//! ([`GridRecord::restore`]).

pub mod config;
pub mod crop;
pub mod downstream;
pub mod intensity;
pub mod pipeline;
pub mod record;
pub mod regrid;
pub mod resample;
mod restore;
#[cfg(feature = "fs")]
pub mod subject;

pub use config::{Pipeline, PreprocessConfig};
pub use crop::{centred_foreground_box, foreground_box, symmetric_box};
pub use intensity::{percentile, scale_percentiles, scale_percentiles_clipped, scale_range};
pub use pipeline::preprocess_images;
pub use record::{CropBox, GridRecord, PreprocessedSubject};
pub use resample::{
    resample_linear, resample_linear_onto, resample_nearest, resample_nearest_onto, resampled_grid,
};
#[cfg(feature = "fs")]
pub use subject::preprocess_subject;

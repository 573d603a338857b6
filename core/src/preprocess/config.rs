//! Preprocessing settings.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// The largest `foreground_margin` accepted (voxels); more would only pad zeros.
const MAX_FOREGROUND_MARGIN: usize = 256;

/// Which sequence of transforms a model's images go through (see [`super::pipeline`] and
/// [`super::downstream`] for the steps of each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pipeline {
    /// The official BrainMVP *pre-training* transforms (`utils/data_utils.py`): RAS, 1 mm, a
    /// foreground crop symmetric about the volume centre, percentiles of the cropped volume,
    /// clipped, cropped again. brainmvp's own models are trained this way.
    #[default]
    Pretraining,
    /// The official *downstream* (fine-tuning and test) transforms
    /// (`Downstream/dataset/transforms.py`): percentiles of the whole raw volume, unclipped,
    /// then RAS, MONAI `Spacing`, `CropForeground(margin=1)`. An imported official UniUnet uses
    /// it, so that our label map is the official test pipeline's.
    OfficialDownstream,
}

impl Pipeline {
    /// The name used in configs and manifests.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pretraining => "pretraining",
            Self::OfficialDownstream => "official-downstream",
        }
    }
}

crate::config! {
    /// Settings of [`super::preprocess_images`]; the defaults are the official BrainMVP pre-training
    /// pipeline's.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct PreprocessConfig {
        /// The sequence of transforms (`"pretraining"` or `"official-downstream"`).
        pub pipeline: Pipeline = Pipeline::Pretraining,
        /// Isotropic voxel size (mm) to resample to (MONAI `Spacingd(pixdim=1.0)`).
        pub target_spacing_mm: f64 = 1.0,
        /// Intensity percentile mapped to 0 (`ScaleIntensityRangePercentilesd(lower=5)`).
        pub lower_percentile: f64 = 5.0,
        /// Intensity percentile mapped to 1 (`upper=95`).
        pub upper_percentile: f64 = 95.0,
        /// A voxel is foreground when its value is above this in any modality (MONAI `is_positive`):
        /// the raw value in the pre-training pipeline, the scaled one in the official downstream.
        pub foreground_threshold: f32 = 0.0,
        /// Clip the scaled intensities to [0, 1] (the official pre-training transform does; the
        /// official downstream transform does not, and clipping saturates a lesion brighter than the
        /// upper percentile together with the brightest 5 % of normal tissue).
        pub clip: bool = true,
        /// Crop to the foreground a second time after scaling, as the official pipeline does
        /// (there, foreground is "above the lower percentile" in any modality). The pre-training
        /// pipeline's step: the official downstream pipeline crops once.
        pub recrop_after_scaling: bool = true,
        /// Voxels kept around the foreground box by the official downstream pipeline's
        /// `CropForeground(margin=1)` (the widened box stops at the grid's edge, as in MONAI 1.4,
        /// which the official code pins). The pre-training pipeline's crop has no margin.
        pub foreground_margin: usize = 1,
        /// Refuse a subject whose resampled grid would have more voxels than this (before allocating).
        pub max_voxels: usize = 1 << 27,
    }
}

impl PreprocessConfig {
    /// The official downstream transforms (`Downstream/dataset/transforms.py`, MONAI):
    /// percentiles 5–95 of the raw volume, unclipped, RAS, 1 mm, `CropForeground(margin=1)`.
    pub fn official_downstream() -> Self {
        Self {
            pipeline: Pipeline::OfficialDownstream,
            clip: false,
            ..Self::default()
        }
    }

    /// Check the settings make sense; the error names the offending setting.
    pub fn validate(&self) -> Result<()> {
        let fail = |cause: String| Err(Error::new("preprocessing settings", cause));
        if !(self.target_spacing_mm.is_finite() && self.target_spacing_mm > 0.0) {
            return fail(format!(
                "target_spacing_mm must be a positive number, got {}",
                self.target_spacing_mm
            ));
        }
        let (lower, upper) = (self.lower_percentile, self.upper_percentile);
        if !(0.0..=100.0).contains(&lower) || !(0.0..=100.0).contains(&upper) || lower >= upper {
            return fail(format!(
                "percentiles must satisfy 0 <= lower < upper <= 100, got lower {lower}, upper {upper}"
            ));
        }
        if self.foreground_margin > MAX_FOREGROUND_MARGIN {
            return fail(format!(
                "foreground_margin must be at most {MAX_FOREGROUND_MARGIN} voxels, got {}",
                self.foreground_margin
            ));
        }
        if !self.foreground_threshold.is_finite() {
            return fail("foreground_threshold must be a finite number".to_string());
        }
        Ok(())
    }
}

//! Preprocessing settings.

use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Settings of [`super::preprocess_images`]; the defaults are the official BrainMVP pipeline's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PreprocessConfig {
    /// Isotropic voxel size (mm) to resample to (MONAI `Spacingd(pixdim=1.0)`).
    pub target_spacing_mm: f64,
    /// Intensity percentile mapped to 0 (`ScaleIntensityRangePercentilesd(lower=5)`).
    pub lower_percentile: f64,
    /// Intensity percentile mapped to 1 (`upper=95`).
    pub upper_percentile: f64,
    /// A voxel is foreground when its value is above this in any modality (MONAI `is_positive`).
    pub foreground_threshold: f32,
    /// Clip the scaled intensities to [0, 1] (the official pre-training transform does; the
    /// official downstream transform does not, and clipping saturates a lesion brighter than the
    /// upper percentile together with the brightest 5 % of normal tissue).
    pub clip: bool,
    /// Crop to the foreground a second time after scaling, as the official pipeline does
    /// (there, foreground is "above the lower percentile" in any modality).
    pub recrop_after_scaling: bool,
    /// Refuse a subject whose resampled grid would have more voxels than this (before allocating).
    pub max_voxels: usize,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self {
            target_spacing_mm: 1.0,
            lower_percentile: 5.0,
            upper_percentile: 95.0,
            foreground_threshold: 0.0,
            clip: true,
            recrop_after_scaling: true,
            max_voxels: 1 << 27,
        }
    }
}

impl PreprocessConfig {
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
        if !self.foreground_threshold.is_finite() {
            return fail("foreground_threshold must be a finite number".to_string());
        }
        Ok(())
    }
}

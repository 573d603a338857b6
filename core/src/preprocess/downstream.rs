//! The official BrainMVP *downstream* transforms (`Downstream/dataset/transforms.py`, validation
//! and test), step for step as MONAI runs them:
//!
//! 1. `ScaleIntensityRangePercentilesd(lower=5, upper=95, b_min=0, b_max=1, channel_wise=True)`:
//!    per modality, percentiles over **every voxel of the raw volume** as loaded (background and
//!    all, before reorientation or any crop), unclipped (`clip=False`): values beyond the
//!    percentiles keep going below 0 and above 1;
//! 2. `Orientationd(axcodes="RAS")`: [`crate::nifti::to_ras`];
//! 3. `Spacingd(pixdim=1.0, mode="bilinear")`: [`super::resample`] (MONAI's output grid);
//! 4. `CropForegroundd(source_key="image", margin=1)`: the bounding box of the voxels above 0 in
//!    any channel of the *scaled* images (MONAI's `is_positive`, i.e. raw intensity above the
//!    lower percentile), widened by the margin on both sides and stopped at the grid's edge:
//!    MONAI 1.4's `allow_smaller=True`, the default of the version the official
//!    `requirements.txt` pins (MONAI ≥ 1.5 defaults to `False` and zero-pads a box that reaches
//!    past the edge; the two differ only where the foreground touches the edge).
//!
//! Compared with the pre-training pipeline ([`super::pipeline`]), only the intensity domain and
//! the crop differ; the reorientation, resampling and the label map's handling are shared.

use super::config::PreprocessConfig;
use super::crop::{crop, foreground_box};
use super::intensity::scale_percentiles_clipped;
use super::pipeline::{reorient_all, resample_all, NamedVolume};
use super::record::{CropBox, GridRecord, PreprocessedSubject};
use crate::{Error, Modality, Result, Volume};

/// The official downstream pipeline on checked inputs (see the module documentation);
/// `context` names the subject in subject-level errors.
pub(crate) fn run_official_downstream(
    id: &str,
    context: &str,
    images: Vec<(Modality, NamedVolume)>,
    label: Option<NamedVolume>,
    config: &PreprocessConfig,
) -> Result<PreprocessedSubject> {
    if config.clip {
        log::warn!(
            "{context}: official-downstream preprocessing with clip = true; the official \
             transform does not clip"
        );
    }
    let (modalities, named): (Vec<Modality>, Vec<NamedVolume>) = images.into_iter().unzip();
    let scaled = named
        .into_iter()
        .map(|named| NamedVolume {
            volume: scale_raw(&named.volume, config),
            name: named.name,
        })
        .collect();
    let (ras_images, ras_label, reorientation) = reorient_all(scaled, label)?;
    let (resampled_images, resampled_label) = resample_all(context, ras_images, ras_label, config)?;
    let resampled_dims = resampled_images[0].dims;
    let resampled_affine = resampled_images[0].affine;
    let crop_box = margin_box(context, &resampled_images, config)?;
    let images: Vec<Volume<f32>> = resampled_images
        .iter()
        .map(|volume| crop(volume, &crop_box))
        .collect();
    let label = resampled_label
        .as_ref()
        .map(|volume| crop(volume, &crop_box));
    let record = GridRecord {
        reorientation,
        resampled_dims,
        resampled_affine,
        crop: crop_box,
    };
    Ok(PreprocessedSubject::assemble(
        id, modalities, images, label, record,
    ))
}

/// Step 1: the raw volume scaled by its own percentiles (unclipped unless `config.clip`).
fn scale_raw(volume: &Volume<f32>, config: &PreprocessConfig) -> Volume<f32> {
    let (lower, upper) = (config.lower_percentile, config.upper_percentile);
    scale_percentiles_clipped(volume, lower, upper, config.clip).0
}

/// Step 4's box: the foreground bounding box of `images` widened by the margin within the grid.
fn margin_box(context: &str, images: &[Volume<f32>], config: &PreprocessConfig) -> Result<CropBox> {
    let views: Vec<&Volume<f32>> = images.iter().collect();
    let dims = images[0].dims;
    let Some(foreground) = foreground_box(&views, config.foreground_threshold) else {
        // MONAI's box is then empty, and so would be the crop: nothing to segment.
        let cause = format!(
            "no voxel above the {} % intensity percentile in any modality: the images are \
             empty or constant",
            config.lower_percentile
        );
        return Err(Error::new(context, cause));
    };
    let margin = config.foreground_margin;
    let end = foreground.end();
    let start: [usize; 3] = foreground.start.map(|start| start.saturating_sub(margin));
    Ok(CropBox {
        start,
        size: std::array::from_fn(|axis| (end[axis] + margin).min(dims[axis]) - start[axis]),
    })
}

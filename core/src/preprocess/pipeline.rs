//! The preprocessing pipeline of one subject, as the official BrainMVP pre-training transforms
//! (`utils/data_utils.py` of github.com/shaohao011/BrainMVP):
//!
//! 1. `Orientationd(axcodes="RAS")`: [`crate::nifti::to_ras`] (exact permutation and flips);
//! 2. `Spacingd(pixdim=1.0, mode="bilinear")`: [`resample_linear`] to `target_spacing_mm`, only
//!    when some axis differs from it by more than [`SPACING_TOLERANCE_MM`] (MONAI resamples
//!    always; at equal spacing that is the identity, so the result is the same); the label map
//!    with [`resample_nearest`];
//! 3. `CenterCropForegroundd`: the foreground crop symmetric about the volume centre over all
//!    modalities ([`super::crop`]);
//! 4. `ScaleIntensityRangePercentilesd(lower=5, upper=95, b_min=0, b_max=1, clip=True,
//!    channel_wise=True)`: per modality, percentiles over all voxels of the cropped volume
//!    ([`super::intensity`]);
//! 5. `CenterCropForegroundd` again, now on the scaled images (foreground = above 0, i.e. above
//!    the lower percentile in some modality), when `recrop_after_scaling` (default, as official).
//!
//! The official *downstream* (fine-tuning) transforms (`Downstream/dataset/transforms.py`)
//! differ: they scale by percentiles first, over the whole uncropped volume and without `clip`,
//! then reorient, resample and take an ordinary (not centred) `CropForegroundd(margin=1)`. They
//! are [`super::downstream`], chosen by [`PreprocessConfig::pipeline`]: an imported official
//! UniUnet records it, so that it sees the intensities it was trained on. brainmvp's own models
//! use the pre-training pipeline by default, so pre-training and fine-tuning see the same
//! intensities.
//!
//! The label map (not part of the official pre-training, which has none) follows the images
//! through the same reorientation, nearest resampling and crops. Every other modality and the
//! label map are put on the first image's grid once in RAS (same dims, affine within
//! [`AFFINE_TOLERANCE`]); one on another grid (a 3 mm FLAIR beside a 1 mm T1) is resampled onto
//! it through world space ([`super::regrid`]: trilinear, nearest for the label map) with a
//! warning, and one that shares no world space with it is refused.

use super::config::{Pipeline, PreprocessConfig};
use super::crop::{centred_foreground_box, crop, foreground_box, symmetric_box};
use super::downstream::run_official_downstream;
use super::intensity::scale_percentiles_clipped;
use super::record::{CropBox, GridRecord, PreprocessedSubject};
use super::regrid::{onto_reference, Regridded};
use super::resample::{resample_linear, resample_nearest, resampled_grid};
use crate::nifti::{to_ras, Reorientation};
use crate::{Error, Modality, Result, Volume};

/// Spacings (mm) closer than this to the target are not resampled.
pub const SPACING_TOLERANCE_MM: f64 = 1e-3;
/// Largest difference (mm) between affine entries of volumes considered on the same grid.
pub const AFFINE_TOLERANCE: f64 = super::regrid::SAME_GRID_TOLERANCE_MM;

/// An input volume with the name its errors carry (a file path, or `"<id> <modality>"`).
pub(crate) struct NamedVolume {
    pub name: String,
    pub volume: Volume<f32>,
}

/// Preprocess one subject's images (and label map) held in memory; no file system needed, so the
/// browser uses it too. Errors name `"<id> <modality>"` (or `"<id> label"`).
pub fn preprocess_images(
    id: &str,
    images: Vec<(Modality, Volume<f32>)>,
    label: Option<Volume<f32>>,
    config: &PreprocessConfig,
) -> Result<PreprocessedSubject> {
    let images = images
        .into_iter()
        .map(|(modality, volume)| {
            let name = format!("{id} {modality}");
            (modality, NamedVolume { name, volume })
        })
        .collect();
    let label = label.map(|volume| NamedVolume {
        name: format!("{id} label"),
        volume,
    });
    run_pipeline(id, id, images, label, config)
}

/// The pipeline proper; `context` names the subject in subject-level errors.
pub(crate) fn run_pipeline(
    id: &str,
    context: &str,
    images: Vec<(Modality, NamedVolume)>,
    label: Option<NamedVolume>,
    config: &PreprocessConfig,
) -> Result<PreprocessedSubject> {
    config.validate()?;
    check_inputs(context, &images, label.as_ref())?;
    if config.pipeline == Pipeline::OfficialDownstream {
        return run_official_downstream(id, context, images, label, config);
    }
    let (modalities, named): (Vec<Modality>, Vec<NamedVolume>) = images.into_iter().unzip();
    let (ras_images, ras_label, reorientation) = reorient_all(named, label)?;
    let (resampled_images, resampled_label) = resample_all(context, ras_images, ras_label, config)?;
    let resampled_dims = resampled_images[0].dims;
    let resampled_affine = resampled_images[0].affine;
    let (images, label, crop_box) =
        crop_and_scale(context, resampled_images, resampled_label, config);
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

/// Refuse empty or duplicate modalities, malformed volumes, non-finite voxels and label maps whose
/// values are not integers in 0..=255.
fn check_inputs(
    context: &str,
    images: &[(Modality, NamedVolume)],
    label: Option<&NamedVolume>,
) -> Result<()> {
    if images.is_empty() {
        return Err(Error::new(context, "no image to preprocess"));
    }
    for (index, (modality, _)) in images.iter().enumerate() {
        if images[..index].iter().any(|(other, _)| other == modality) {
            return Err(Error::new(
                context,
                format!("modality {modality} given twice"),
            ));
        }
    }
    for named in images.iter().map(|(_, named)| named).chain(label) {
        let volume = &named.volume;
        let voxels = volume
            .dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d));
        if voxels != Some(volume.data.len()) || volume.data.is_empty() {
            let cause = format!(
                "{} voxels do not fill a non-empty {:?} grid",
                volume.data.len(),
                volume.dims
            );
            return Err(Error::new(&named.name, cause));
        }
        if let Some(bad) = volume.data.iter().find(|v| !v.is_finite()) {
            return Err(Error::new(
                &named.name,
                format!("voxel value {bad} is not finite"),
            ));
        }
    }
    if let Some(label) = label {
        let not_label = |v: &&f32| **v < 0.0 || **v > 255.0 || (**v - v.round()).abs() > 1e-3;
        if let Some(bad) = label.volume.data.iter().find(not_label) {
            let cause = format!("label map has value {bad}, expected integers 0..=255");
            return Err(Error::new(&label.name, cause));
        }
    }
    Ok(())
}

pub(super) type Reoriented = (Vec<Volume<f32>>, Option<Volume<f32>>, Reorientation);

/// Bring every volume to RAS and onto the first image's grid.
pub(super) fn reorient_all(
    images: Vec<NamedVolume>,
    label: Option<NamedVolume>,
) -> Result<Reoriented> {
    let mut reorientation = None;
    let mut reference: Option<(String, Volume<f32>)> = None;
    let mut ras_images = Vec::with_capacity(images.len());
    let mut ras_label = None;
    let is_label = label.is_some();
    let count = images.len();
    for (index, named) in images.into_iter().chain(label).enumerate() {
        let (ras, this_reorientation) = to_ras(&named.volume);
        let is_the_label = is_label && index == count;
        let ras = match &reference {
            None => {
                reorientation = Some(this_reorientation);
                reference = Some((named.name.clone(), ras.clone()));
                ras
            }
            Some((reference_name, reference_volume)) => {
                let grid = (reference_volume.dims, &reference_volume.affine);
                let (ras, how) =
                    onto_reference(&named.name, ras, reference_name, grid, is_the_label)?;
                if let Regridded::Resampled { coverage } = how {
                    log::warn!(
                        "{}: on another grid than {reference_name}; resampled onto it ({:.0} % of it covered)",
                        named.name,
                        100.0 * coverage
                    );
                }
                ras
            }
        };
        if is_the_label {
            ras_label = Some(ras);
        } else {
            ras_images.push(ras);
        }
    }
    let reorientation = reorientation.ok_or_else(|| Error::new("", "no image to reorient"))?;
    Ok((ras_images, ras_label, reorientation))
}

/// Image volumes and the optional label map, on one grid.
pub(super) type ImagesAndLabel = (Vec<Volume<f32>>, Option<Volume<f32>>);

/// Resample images (trilinear) and label (nearest) to the target spacing when it differs.
pub(super) fn resample_all(
    context: &str,
    images: Vec<Volume<f32>>,
    label: Option<Volume<f32>>,
    config: &PreprocessConfig,
) -> Result<ImagesAndLabel> {
    let reference = &images[0];
    let spacing = reference.spacing();
    if spacing.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        let cause = format!("voxel size {spacing:?} mm is not usable (zero or not finite)");
        return Err(Error::new(context, cause));
    }
    let target = [config.target_spacing_mm; 3];
    let differs = (0..3).any(|axis| (spacing[axis] - target[axis]).abs() > SPACING_TOLERANCE_MM);
    if !differs {
        return Ok((images, label));
    }
    let (dims, _) = resampled_grid(reference.dims, &reference.affine, target);
    let voxels = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if voxels.is_none_or(|voxels| voxels > config.max_voxels) {
        let cause = format!(
            "resampling {:?} voxels of {spacing:?} mm to {} mm gives a {dims:?} grid, over the \
             bound of {} voxels",
            reference.dims, config.target_spacing_mm, config.max_voxels
        );
        return Err(Error::new(context, cause));
    }
    let images = images
        .iter()
        .map(|volume| resample_linear(volume, target))
        .collect();
    let label = label.map(|volume| resample_nearest(&volume, target));
    Ok((images, label))
}

type Cropped = (Vec<Volume<f32>>, Option<Volume<f32>>, CropBox);

/// Symmetric foreground crop, percentile scaling, and (optionally) the second crop.
fn crop_and_scale(
    context: &str,
    images: Vec<Volume<f32>>,
    label: Option<Volume<f32>>,
    config: &PreprocessConfig,
) -> Cropped {
    let views: Vec<&Volume<f32>> = images.iter().collect();
    let foreground = foreground_box(&views, config.foreground_threshold);
    if foreground.is_none() {
        log::warn!(
            "{context}: no voxel above {} in any modality; the whole volume is kept",
            config.foreground_threshold
        );
    }
    let first_box = symmetric_box(images[0].dims, foreground);
    let scaled: Vec<Volume<f32>> = images
        .iter()
        .map(|volume| {
            let cropped = crop(volume, &first_box);
            scale_percentiles_clipped(
                &cropped,
                config.lower_percentile,
                config.upper_percentile,
                config.clip,
            )
            .0
        })
        .collect();
    let label = label.map(|volume| crop(&volume, &first_box));
    if !config.recrop_after_scaling {
        return (scaled, label, first_box);
    }
    let second_box = {
        let views: Vec<&Volume<f32>> = scaled.iter().collect();
        centred_foreground_box(&views, 0.0)
    };
    let images = scaled
        .iter()
        .map(|volume| crop(volume, &second_box))
        .collect();
    let label = label.map(|volume| crop(&volume, &second_box));
    (images, label, second_box.within(&first_box))
}

//! Does a case look like what the model was trained on? BraTS preprocessing gives skull-stripped,
//! co-registered images on one ~1 mm grid; a raw clinical scan (skull on, 5 mm axial slices, each
//! sequence on its own grid) goes through the same pipeline without error but its label map is
//! not worth much (on one such scan a 30 ml tumour was labelled 384 ml). [`check_input`] looks
//! at the raw input volumes, before any preprocessing, and returns one-line findings for the user:
//!
//! - **thick slices**: a voxel side over [`THICK_SLICE_MM`];
//! - **not co-registered**: a modality on another grid than the first one (dims, or an affine entry
//!   more than
//!   [`SAME_GRID_TOLERANCE_MM`](crate::preprocess::regrid::SAME_GRID_TOLERANCE_MM) apart);
//! - **not skull-stripped**: too little exact background, or too much tissue (see
//!   [`BackgroundStatistics`] and [`looks_skull_stripped`]).
//!
//! Pure: no file system, no model; runs in the browser as well as in the CLI.

use crate::preprocess::regrid::same_grid;
use crate::volume::voxel_to_world;
use crate::{Modality, Volume};

/// Largest voxel side (mm) still treated as thin. BraTS images are 1 mm; the official pipeline
/// resamples to 1 mm, and slices thicker than 3 mm (clinical axial 5–6 mm) lose the detail the
/// model learnt from.
pub const THICK_SLICE_MM: f64 = 3.0;

/// Smallest fraction of the grid a skull-stripped image leaves as exact background. Measured
/// (`core/tests/integration/input_check.rs`): 0.816 (BraTS-GLI-00001-000), 0.860 (TCGA-DU-7294),
/// 0.823–0.835 (BraTS-MET-00110-000), 0.756 (Colin27 brain-masked), 0.730 (the page's sample, 2 mm);
/// a brain cropped to its box (an ellipsoid fills about half of it) still leaves about 0.45. A raw
/// head has noise all around it: ICBM152 T1/T2/PD 0.000–0.001. Colin27 with skull (air exactly
/// zero in uint8) has 0.416 and is caught by [`MAX_BRAIN_ML`] instead.
pub const MIN_BACKGROUND_FRACTION: f64 = 0.25;

/// Largest non-background volume (ml) of a skull-stripped image: a brain with its CSF. Measured:
/// 1246–1639 ml on the three real patients, 1737 ml Colin27 brain-masked, 1951 ml the page's
/// sample (synthetic, 2 mm). A head with scalp, skull, face and neck is far more: Colin27 with
/// skull 4152 ml although its air is exactly zero; ICBM152 7216–7221 ml (its whole field of view,
/// noise included). 2800 ml is about the geometric mean of 1951 and 4152: a margin of 1.4× on
/// either side.
pub const MAX_BRAIN_ML: f64 = 2800.0;

/// The sentence that ends every non-empty list of findings.
pub const SUMMARY: &str = "The model expects skull-stripped, co-registered images of about 1 mm \
    (BraTS preprocessing); on this input its label map is not reliable: read it as a rough sketch, \
    not as tumour volumes.";

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    ThickSlices,
    NotCoRegistered,
    NotSkullStripped,
    /// The closing sentence ([`SUMMARY`]), present whenever any other finding is.
    Summary,
}

/// One line to show the user.
#[derive(Debug, Clone, PartialEq)]
pub struct InputFinding {
    pub kind: FindingKind,
    pub message: String,
}

/// How much of an image is background, the signature of skull stripping.
///
/// The background value is the volume's minimum (skull-stripped BraTS images: 0, or a constant
/// below the brain's values); when 0 is more frequent than the minimum (brain extraction leaving
/// a few slightly negative voxels, as in TCGA-DU-7294) the background is 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackgroundStatistics {
    /// The value taken as background.
    pub background_value: f32,
    /// Fraction of the grid's voxels exactly equal to it.
    pub background_fraction: f64,
    /// Volume (ml) of the other voxels: the brain after skull stripping, the head (or the whole
    /// field of view, noise included) before.
    pub foreground_ml: f64,
}

/// The background statistics of one image.
pub fn background_statistics(volume: &Volume<f32>) -> BackgroundStatistics {
    let minimum = volume.data.iter().copied().fold(f32::INFINITY, f32::min);
    let at_minimum = volume.data.iter().filter(|&&v| v == minimum).count();
    let at_zero = volume.data.iter().filter(|&&v| v == 0.0).count();
    let (background_value, background) = match at_zero > at_minimum {
        true => (0.0, at_zero),
        false => (minimum, at_minimum),
    };
    let voxels = volume.voxel_count().max(1);
    let voxel_ml = volume.spacing().iter().product::<f64>() / 1000.0;
    BackgroundStatistics {
        background_value,
        background_fraction: background as f64 / voxels as f64,
        foreground_ml: (voxels - background) as f64 * voxel_ml,
    }
}

/// Whether the statistics are those of a skull-stripped image: at least
/// [`MIN_BACKGROUND_FRACTION`] of the grid is background and at most [`MAX_BRAIN_ML`] is not.
pub fn looks_skull_stripped(statistics: &BackgroundStatistics) -> bool {
    statistics.background_fraction >= MIN_BACKGROUND_FRACTION
        && statistics.foreground_ml <= MAX_BRAIN_ML
}

/// The findings on a case's raw images (as read, each on its own grid), ending with [`SUMMARY`];
/// empty when the case looks BraTS-preprocessed.
pub fn check_input(images: &[(Modality, Volume<f32>)]) -> Vec<InputFinding> {
    let mut findings: Vec<InputFinding> = [
        thick_slices(images).map(|message| (FindingKind::ThickSlices, message)),
        not_co_registered(images).map(|message| (FindingKind::NotCoRegistered, message)),
        not_skull_stripped(images).map(|message| (FindingKind::NotSkullStripped, message)),
    ]
    .into_iter()
    .flatten()
    .map(|(kind, message)| InputFinding { kind, message })
    .collect();
    if !findings.is_empty() {
        findings.push(InputFinding {
            kind: FindingKind::Summary,
            message: SUMMARY.to_string(),
        });
    }
    findings
}

/// `1.0×1.0×5.5 mm`.
fn format_spacing(spacing: [f64; 3]) -> String {
    let sides: Vec<String> = spacing.iter().map(|side| format!("{side:.1}")).collect();
    format!("{} mm", sides.join("×"))
}

fn thick_slices(images: &[(Modality, Volume<f32>)]) -> Option<String> {
    let thick: Vec<String> = images
        .iter()
        .filter(|(_, volume)| volume.spacing().iter().any(|&side| side > THICK_SLICE_MM))
        .map(|(modality, volume)| format!("{modality} {}", format_spacing(volume.spacing())))
        .collect();
    (!thick.is_empty()).then(|| {
        format!(
            "thick slices: voxels over {THICK_SLICE_MM} mm ({}); the model was trained on 1 mm images",
            thick.join(", ")
        )
    })
}

/// `240×240×155`.
fn format_dims(dims: [usize; 3]) -> String {
    dims.map(|size| size.to_string()).join("×")
}

/// Largest distance (mm) between the world positions of the two grids' first and last voxels.
fn corner_distance_mm(a: &Volume<f32>, b: &Volume<f32>) -> f64 {
    let last = |volume: &Volume<f32>| volume.dims.map(|size| size.saturating_sub(1) as f64);
    [([0.0; 3], [0.0; 3]), (last(a), last(b))]
        .into_iter()
        .map(|(voxel_a, voxel_b)| {
            let (world_a, world_b) = (
                voxel_to_world(&a.affine, voxel_a),
                voxel_to_world(&b.affine, voxel_b),
            );
            (0..3)
                .map(|axis| (world_a[axis] - world_b[axis]).powi(2))
                .sum::<f64>()
                .sqrt()
        })
        .fold(0.0, f64::max)
}

fn not_co_registered(images: &[(Modality, Volume<f32>)]) -> Option<String> {
    let (reference_modality, reference) = images.first()?;
    let differing: Vec<String> = images[1..]
        .iter()
        .filter(|(_, volume)| {
            !same_grid(
                volume.dims,
                &volume.affine,
                (reference.dims, &reference.affine),
            )
        })
        .map(|(modality, volume)| {
            format!(
                "{modality} ({}, corners {:.1} mm apart)",
                format_dims(volume.dims),
                corner_distance_mm(reference, volume)
            )
        })
        .collect();
    (!differing.is_empty()).then(|| {
        format!(
            "not co-registered: {} on another grid than {reference_modality} ({}); they are \
             resampled through their affines, which does not register them",
            differing.join(", "),
            format_dims(reference.dims)
        )
    })
}

fn not_skull_stripped(images: &[(Modality, Volume<f32>)]) -> Option<String> {
    let heads: Vec<String> = images
        .iter()
        .filter_map(|(modality, volume)| {
            let statistics = background_statistics(volume);
            (!looks_skull_stripped(&statistics)).then(|| {
                format!(
                    "{modality} ({:.0} % background, {:.0} ml of tissue)",
                    100.0 * statistics.background_fraction,
                    statistics.foreground_ml
                )
            })
        })
        .collect();
    (!heads.is_empty()).then(|| {
        format!(
            "not skull-stripped: {} {} whole heads, not brains (a skull-stripped image is at \
             least {:.0} % exact background with at most {MAX_BRAIN_ML:.0} ml of brain)",
            heads.join(", "),
            match heads.len() {
                1 => "looks like",
                _ => "look like",
            },
            100.0 * MIN_BACKGROUND_FRACTION
        )
    })
}

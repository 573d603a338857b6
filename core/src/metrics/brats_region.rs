//! The BraTS challenge metrics of one region of one case ([`BratsRegionReport`]), with the
//! official package's definitions and edge cases (brats-evaluation 0.0.10, panoptica 2.1).
//!
//! - **Lesions**: the 26-connected components of the region's mask in the prediction and in the
//!   reference, matched one to one by maximal bipartite matching on Dice (any overlap is enough:
//!   threshold 1e-6). TP = matched pairs, FP = predicted lesions left unmatched, FN = reference
//!   lesions left unmatched; precision TP/(TP+FP) and recall TP/(TP+FN) are NaN when their
//!   denominator is 0; F1 (panoptica's "recognition quality") is TP/(TP + FP/2 + FN/2), 0 when
//!   TP = 0 and NaN when there is no lesion on either side.
//! - **Lesion-wise** Dice, NSD and HD95: mean and population standard deviation over the matched
//!   pairs. The NSD tolerance is the smallest voxel spacing (1 mm on BraTS data). Without a match
//!   the means are 0, 0 and +inf (NaN when there is no lesion on either side) and the standard
//!   deviations NaN. Unmatched lesions do not enter these means (they only count as FP/FN).
//! - **Global** Dice, NSD and HD95 of the region's binary masks. panoptica computes them without
//!   the voxel spacing: distances in voxels and the NSD tolerance its default 0.5 (so only surface
//!   voxels lying on the other surface count). When the masks share no voxel: Dice 0, NSD 0,
//!   HD95 +inf, whatever their distance (NaN for all three when both are empty). The package's
//!   parser writes an infinite global HD95 as 373 mm ([`MISSING_HD95_MM`]).
//! - **Spacing of the lesion-wise distances**: SimpleITK gives the package the spacing as
//!   (x, y, z) and the array as [z][y][x], and panoptica applies the spacing in array order: the
//!   lesion-wise HD95 and NSD use the x spacing along z and the z spacing along x. This is kept
//!   (it is what the challenge ranks with); it matters on anisotropic grids only, never on the
//!   1 mm BraTS grid.

use super::bounding_box::VoxelBox;
use super::brats::ChallengeRegion;
use super::components::{connected_components, Components};
use super::matching::{match_lesions, overlap_table, LesionMatch};
use super::surface::surface_distances;
use crate::{Error, Result};

/// The context named in this module's errors.
const CONTEXT: &str = "BraTS challenge metrics";

/// HD95 (mm) the package's parser writes for an infinite global HD95 and for a missing case:
/// "the diameter of the cube in SRI space".
pub const MISSING_HD95_MM: f64 = 373.0;
/// Tolerance of the global NSD, in voxels (panoptica's default without a voxel spacing).
pub const GLOBAL_NSD_TOLERANCE: f64 = 0.5;

/// Dice, NSD and HD95 (mm) of one matched pair of lesions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LesionScores {
    /// Dice of the two lesions.
    pub dice: f64,
    /// Normalised surface Dice at the smallest voxel spacing.
    pub nsd: f64,
    /// 95th percentile of the pooled surface distances (mm).
    pub hd95: f64,
}

/// One of the three lesion-wise metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LesionMetric {
    Dice,
    Nsd,
    Hd95,
}

/// The BraTS challenge metrics of one region of one case. Values are the package's: NaN where it
/// gives NaN (or leaves a value out), +inf where it gives infinity.
#[derive(Debug, Clone, PartialEq)]
pub struct BratsRegionReport {
    /// The region.
    pub region: ChallengeRegion,
    /// Connected components of the region in the reference.
    pub reference_lesions: usize,
    /// Connected components of the region in the prediction.
    pub predicted_lesions: usize,
    /// Scores of each matched pair (one per true positive), in reference-lesion order.
    pub matched: Vec<LesionScores>,
    /// Dice of the region's binary masks.
    pub global_dice: f64,
    /// NSD of the region's binary masks (voxel units, tolerance [`GLOBAL_NSD_TOLERANCE`]).
    pub global_nsd: f64,
    /// HD95 of the region's binary masks, in voxels (+inf when they share no voxel).
    pub global_hd95: f64,
}

impl BratsRegionReport {
    /// Matched lesion pairs.
    pub fn true_positives(&self) -> usize {
        self.matched.len()
    }

    /// Predicted lesions without a match.
    pub fn false_positives(&self) -> usize {
        self.predicted_lesions - self.true_positives()
    }

    /// Reference lesions without a match.
    pub fn false_negatives(&self) -> usize {
        self.reference_lesions - self.true_positives()
    }

    /// TP / (TP + FP); NaN without a predicted lesion.
    pub fn precision(&self) -> f64 {
        ratio(self.true_positives(), self.predicted_lesions)
    }

    /// TP / (TP + FN); NaN without a reference lesion.
    pub fn recall(&self) -> f64 {
        ratio(self.true_positives(), self.reference_lesions)
    }

    /// TP / (TP + FP/2 + FN/2); 0 without a match, NaN without a lesion on either side.
    pub fn f1(&self) -> f64 {
        let tp = self.true_positives() as f64;
        if self.true_positives() == 0 {
            return match self.predicted_lesions + self.reference_lesions {
                0 => f64::NAN,
                _ => 0.0,
            };
        }
        tp / (tp + 0.5 * self.false_positives() as f64 + 0.5 * self.false_negatives() as f64)
    }

    /// Mean of `metric` over the matched lesions, with the package's values without a match.
    pub fn lesion_wise_mean(&self, metric: LesionMetric) -> f64 {
        if self.matched.is_empty() {
            return match (self.predicted_lesions + self.reference_lesions, metric) {
                (0, _) => f64::NAN,
                (_, LesionMetric::Hd95) => f64::INFINITY,
                _ => 0.0,
            };
        }
        let values = self.lesion_values(metric);
        values.iter().sum::<f64>() / values.len() as f64
    }

    /// Population standard deviation of `metric` over the matched lesions (NaN without one).
    pub fn lesion_wise_std(&self, metric: LesionMetric) -> f64 {
        if self.matched.is_empty() {
            return f64::NAN;
        }
        let values = self.lesion_values(metric);
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let variance =
            values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / values.len() as f64;
        variance.sqrt()
    }

    /// The global HD95 as the package's parser writes it: +inf becomes [`MISSING_HD95_MM`].
    pub fn global_hd95_reported(&self) -> f64 {
        match self.global_hd95.is_infinite() {
            true => MISSING_HD95_MM,
            false => self.global_hd95,
        }
    }

    fn lesion_values(&self, metric: LesionMetric) -> Vec<f64> {
        self.matched
            .iter()
            .map(|lesion| match metric {
                LesionMetric::Dice => lesion.dice,
                LesionMetric::Nsd => lesion.nsd,
                LesionMetric::Hd95 => lesion.hd95,
            })
            .collect()
    }
}

fn ratio(numerator: usize, denominator: usize) -> f64 {
    match denominator {
        0 => f64::NAN,
        _ => numerator as f64 / denominator as f64,
    }
}

/// The report of `region` for BraTS 2023 label maps on a grid of `dims` (x fastest) with voxel
/// size `spacing_mm` (x, y, z).
pub fn score_region(
    prediction: &[u8],
    reference: &[u8],
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    region: ChallengeRegion,
) -> Result<BratsRegionReport> {
    let predicted_mask: Vec<bool> = prediction.iter().map(|&v| region.contains(v)).collect();
    let reference_mask: Vec<bool> = reference.iter().map(|&v| region.contains(v)).collect();
    let predicted = connected_components(&predicted_mask, dims)?;
    let referenced = connected_components(&reference_mask, dims)?;
    let (global_dice, global_nsd, global_hd95) =
        global_scores(&predicted_mask, &reference_mask, dims)?;
    let matched = match predicted.count() == 0 || referenced.count() == 0 {
        true => Vec::new(),
        false => {
            let table = overlap_table(&referenced.labels, &predicted.labels);
            let matches = match_lesions(&table, &referenced, &predicted);
            lesion_scores(&matches, &referenced, &predicted, dims, spacing_mm)?
        }
    };
    Ok(BratsRegionReport {
        region,
        reference_lesions: referenced.count(),
        predicted_lesions: predicted.count(),
        matched,
        global_dice,
        global_nsd,
        global_hd95,
    })
}

/// Global Dice, NSD and HD95 of two binary masks, as panoptica: unit spacing, edge cases when
/// they share no voxel.
fn global_scores(
    prediction: &[bool],
    reference: &[bool],
    dims: [usize; 3],
) -> Result<(f64, f64, f64)> {
    let count = |mask: &[bool]| mask.iter().filter(|&&v| v).count();
    let (predicted_voxels, reference_voxels) = (count(prediction), count(reference));
    let shared_voxels = prediction
        .iter()
        .zip(reference)
        .filter(|(&p, &r)| p && r)
        .count();
    if shared_voxels == 0 {
        return Ok(match predicted_voxels + reference_voxels {
            0 => (f64::NAN, f64::NAN, f64::NAN),
            _ => (0.0, 0.0, f64::INFINITY),
        });
    }
    let dice = 2.0 * shared_voxels as f64 / (predicted_voxels + reference_voxels) as f64;
    let distances = surface_distances(prediction, reference, dims, [1.0; 3])?
        .ok_or_else(|| Error::new(CONTEXT, "overlapping masks without a surface"))?;
    Ok((dice, distances.nsd(GLOBAL_NSD_TOLERANCE), distances.hd95()))
}

/// Dice, NSD and HD95 of every matched pair, each within the box of its two lesions.
fn lesion_scores(
    matches: &[LesionMatch],
    reference: &Components,
    prediction: &Components,
    dims: [usize; 3],
    spacing_mm: [f64; 3],
) -> Result<Vec<LesionScores>> {
    // The package's spacing in array order [z][y][x] applied to our x, y, z (see the module doc).
    let lesion_spacing = [spacing_mm[2], spacing_mm[1], spacing_mm[0]];
    let tolerance = lesion_spacing.iter().copied().fold(f64::INFINITY, f64::min);
    matches
        .iter()
        .map(|lesion| {
            let reference_box = reference.boxes[lesion.reference as usize - 1];
            let predicted_box = prediction.boxes[lesion.prediction as usize - 1];
            let pair_box: VoxelBox = reference_box.union(predicted_box);
            let reference_mask =
                pair_box.extract(&reference.labels, dims, |l| l == lesion.reference);
            let predicted_mask =
                pair_box.extract(&prediction.labels, dims, |l| l == lesion.prediction);
            let distances = surface_distances(
                &predicted_mask,
                &reference_mask,
                pair_box.dims(),
                lesion_spacing,
            )?
            .ok_or_else(|| Error::new(CONTEXT, "a matched lesion without a surface"))?;
            Ok(LesionScores {
                dice: lesion.dice,
                nsd: distances.nsd(tolerance),
                hd95: distances.hd95(),
            })
        })
        .collect()
}

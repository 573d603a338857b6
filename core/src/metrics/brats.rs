//! The BraTS challenge metrics (the ranking metrics since BraTS 2023) of one case: the label
//! groups they are reported on, the label conventions, and the per-case entry point
//! [`score_brats_challenge`].
//!
//! Defined as the official `brats-evaluation` package (0.0.10, `gli` config, which runs
//! panoptica 2.1): per region, the lesions are the 26-connected components
//! ([`super::components`]), matched one to one by maximal bipartite matching on Dice
//! ([`super::matching`]); reported are the global Dice, NSD and HD95 of the region's binary
//! masks, the lesion-wise mean and standard deviation of Dice, NSD and HD95 over the matched
//! lesions, and the lesion detection counts (see [`super::brats_region`] for every definition and
//! edge case, [`super::brats_table`] for the parser's table and its summary rows). The package is
//! AGPL-3 and only run as an outside reference (`tests/reference/brats_metrics.py`); none of it
//! is copied here.

use super::bounding_box::{bounding_box, VoxelBox};
use super::brats_region::{score_region, BratsRegionReport};
use super::{check_grid, check_lengths};
use crate::{Error, Result};

/// The context named in this module's errors.
const CONTEXT: &str = "BraTS challenge metrics";

/// A label group of the BraTS 2023+ challenges (labels of BraTS 2023: 1 NETC, 2 SNFH, 3 ET,
/// 4 RC), in the package's `gli` config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChallengeRegion {
    /// Non-enhancing tumour core (label 1).
    Netc,
    /// Surrounding non-enhancing FLAIR hyperintensity, the oedema (label 2).
    Snfh,
    /// Enhancing tumour (label 3).
    Et,
    /// Resection cavity (label 4, post-operative BraTS 2024 cases).
    Rc,
    /// Tumour core: labels 1 and 3.
    Tc,
    /// Whole tumour: labels 1, 2 and 3 (not the resection cavity).
    Wt,
}

impl ChallengeRegion {
    /// Every group, in label order.
    pub const ALL: [ChallengeRegion; 6] = [
        Self::Netc,
        Self::Snfh,
        Self::Et,
        Self::Rc,
        Self::Tc,
        Self::Wt,
    ];

    /// The short name used in tables: `NETC`, `SNFH`, `ET`, `RC`, `TC`, `WT`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Netc => "NETC",
            Self::Snfh => "SNFH",
            Self::Et => "ET",
            Self::Rc => "RC",
            Self::Tc => "TC",
            Self::Wt => "WT",
        }
    }

    /// The group's key in the package's output and column names (`netc`, `snfh`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Self::Netc => "netc",
            Self::Snfh => "snfh",
            Self::Et => "et",
            Self::Rc => "rc",
            Self::Tc => "tc",
            Self::Wt => "wt",
        }
    }

    /// The BraTS 2023 labels of the group.
    pub fn labels(self) -> &'static [u8] {
        match self {
            Self::Netc => &[1],
            Self::Snfh => &[2],
            Self::Et => &[3],
            Self::Rc => &[4],
            Self::Tc => &[1, 3],
            Self::Wt => &[1, 2, 3],
        }
    }

    /// Whether a voxel of BraTS 2023 label `label` belongs to the group.
    pub fn contains(self, label: u8) -> bool {
        self.labels().contains(&label)
    }
}

/// The label convention of a BraTS label map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelConvention {
    /// BraTS 2021 and earlier: 1 necrotic core, 2 oedema, 4 enhancing tumour.
    Brats2021,
    /// BraTS 2023 and later: 1 NETC, 2 SNFH, 3 ET, 4 resection cavity.
    Brats2023,
}

impl LabelConvention {
    /// BraTS 2021 when the map holds a 4 and no 3, else BraTS 2023 (a map without 3 and 4 reads
    /// the same in both).
    pub fn detect(labels: &[u8]) -> Self {
        let mut present = [false; 256];
        labels.iter().for_each(|&v| present[v as usize] = true);
        match present[4] && !present[3] {
            true => Self::Brats2021,
            false => Self::Brats2023,
        }
    }

    /// `BraTS 2021` or `BraTS 2023`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Brats2021 => "BraTS 2021",
            Self::Brats2023 => "BraTS 2023",
        }
    }
}

/// The map in BraTS 2023 labels, the ones the package reads (its `gli` config takes 3 as
/// enhancing tumour and 4 as resection cavity): BraTS 2021's 4 becomes 3.
///
/// Errors name the first offending voxel `[x, y, z]` of the grid `dims`: a value above 4, or a 3
/// in a BraTS 2021 map.
pub fn to_brats2023_labels(
    labels: &[u8],
    dims: [usize; 3],
    convention: LabelConvention,
) -> Result<Vec<u8>> {
    let [nx, ny, _] = dims;
    let voxel = |index: usize| [index % nx, (index / nx) % ny, index / (nx * ny)];
    let bad = labels.iter().position(|&v| match convention {
        LabelConvention::Brats2021 => v > 4 || v == 3,
        LabelConvention::Brats2023 => v > 4,
    });
    if let Some(index) = bad {
        return Err(Error::new(
            CONTEXT,
            format!(
                "voxel {:?} holds {}, not a {} label (0, 1, 2, {})",
                voxel(index),
                labels[index],
                convention.name(),
                match convention {
                    LabelConvention::Brats2021 => "4",
                    LabelConvention::Brats2023 => "3, 4",
                }
            ),
        ));
    }
    Ok(match convention {
        LabelConvention::Brats2021 => labels.iter().map(|&v| if v == 4 { 3 } else { v }).collect(),
        LabelConvention::Brats2023 => labels.to_vec(),
    })
}

/// The BraTS challenge metrics of a predicted label map against the reference, for each of
/// `regions`, in that order.
///
/// Both maps hold BraTS 2023 labels (see [`to_brats2023_labels`]; a value above 4 is an error)
/// on one grid of `dims` (x fastest) with voxel size `spacing_mm` along x, y, z.
pub fn score_brats_challenge(
    prediction: &[u8],
    reference: &[u8],
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    regions: &[ChallengeRegion],
) -> Result<Vec<BratsRegionReport>> {
    check_lengths(prediction.len(), reference.len())?;
    check_grid(prediction.len(), dims, spacing_mm)?;
    if let Some(&label) = prediction.iter().chain(reference).find(|&&v| v > 4) {
        return Err(Error::new(
            CONTEXT,
            format!("label {label} is not a BraTS 2023 label (0-4)"),
        ));
    }
    // Every region lies in the box of the non-zero voxels of either map: the work is done there.
    let tumour_box = union_of_boxes(
        bounding_box(prediction, dims, |v| v != 0),
        bounding_box(reference, dims, |v| v != 0),
    );
    let Some(tumour_box) = tumour_box else {
        return regions
            .iter()
            .map(|&region| score_region(&[], &[], [0; 3], spacing_mm, region))
            .collect();
    };
    let prediction = tumour_box.extract(prediction, dims, |v| v);
    let reference = tumour_box.extract(reference, dims, |v| v);
    regions
        .iter()
        .map(|&region| {
            score_region(
                &prediction,
                &reference,
                tumour_box.dims(),
                spacing_mm,
                region,
            )
        })
        .collect()
}

fn union_of_boxes(a: Option<VoxelBox>, b: Option<VoxelBox>) -> Option<VoxelBox> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.union(b)),
        (a, b) => a.or(b),
    }
}

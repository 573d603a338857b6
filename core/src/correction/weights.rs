//! What a "Teach" run trains on: weight classes per voxel, from the corrections.
//!
//! Two ways to learn from a corrected map, both measured in `docs/browser.md`:
//! - [`TeachingFocus::CorrectedSlices`]: the loss runs over the slices the user painted on, and
//!   only those (the whole slice: a corrected slice is a reviewed slice); elsewhere the map is the
//!   model's own output, unreviewed, and is not trained on;
//! - [`TeachingFocus::UpWeighted`]: the loss runs over the whole corrected map, the model's
//!   output included, with the corrected voxels counting [`UP_WEIGHT`] times.
//!
//! On the sample's synthetic cohort the up-weighted whole map lifted the Dice of the slices nobody
//! painted in six cases of six; the corrected slices alone lowered it in four (the model grows
//! the tumour where it has no target): `docs/browser.md`. Each step takes [`TEACHING_BATCH`]
//! crops, one around a corrected voxel and one around any voxel trained on, on average.

use serde::{Deserialize, Serialize};

use super::editor::Corrections;

/// How much a corrected voxel counts in [`TeachingFocus::UpWeighted`].
pub const UP_WEIGHT: f32 = 10.0;

/// Crops per teaching step: one around a correction and one anywhere trained on, on average.
/// Batches of 1 moved the taught case's unpainted slices both ways; 2 lifted all six cases of
/// the sweep in `docs/browser.md`.
pub const TEACHING_BATCH: usize = 2;

/// The page's default learning rate for teaching (Adam): 1e-3 made the model over-segment the
/// slices nobody painted on in half the sweep's cases.
pub const TEACHING_LEARNING_RATE: f64 = 5e-4;

/// The weight class of a voxel in a teaching run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum WeightClass {
    /// Not trained on.
    Ignored = 0,
    /// Trained on with weight 1.
    Reviewed = 1,
    /// A corrected voxel: half the crops are placed around one.
    Corrected = 2,
}

impl WeightClass {
    /// The class of a stored value (`0`, `1`, `2`); `None` for others.
    pub fn from_value(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::Ignored),
            1 => Some(Self::Reviewed),
            2 => Some(Self::Corrected),
            _ => None,
        }
    }
}

/// Which voxels a teaching run trains on (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TeachingFocus {
    /// The painted slices only.
    CorrectedSlices,
    /// The whole map, corrections up-weighted (the default: the one that works, see the module
    /// doc).
    #[default]
    UpWeighted,
}

impl TeachingFocus {
    /// The spelling of the page and the docs: `corrected-slices` or `up-weighted`.
    pub fn name(self) -> &'static str {
        match self {
            Self::CorrectedSlices => "corrected-slices",
            Self::UpWeighted => "up-weighted",
        }
    }

    /// The focus named `name` ([`Self::name`]); `None` for another name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::CorrectedSlices, Self::UpWeighted]
            .into_iter()
            .find(|focus| focus.name() == name)
    }

    /// The loss weight of each [`WeightClass`] (indexed by its value).
    pub fn class_weights(self) -> [f32; 3] {
        match self {
            Self::CorrectedSlices => [0.0, 1.0, 1.0],
            Self::UpWeighted => [0.0, 1.0, UP_WEIGHT],
        }
    }

    /// The [`WeightClass`] value of every voxel of the corrected map (x fastest).
    pub fn weight_classes(self, corrections: &Corrections, dims: [usize; 3]) -> Vec<u8> {
        let marks = corrections.marks();
        let mut classes = match self {
            Self::UpWeighted => vec![WeightClass::Reviewed as u8; marks.len()],
            Self::CorrectedSlices => {
                let mut classes = vec![WeightClass::Ignored as u8; marks.len()];
                for plane in corrections.painted_slices() {
                    for index in plane_voxels(dims, plane.normal_axis, plane.index) {
                        classes[index] = WeightClass::Reviewed as u8;
                    }
                }
                classes
            }
        };
        for (class, &mark) in classes.iter_mut().zip(marks) {
            if mark != 0 {
                *class = WeightClass::Corrected as u8;
            }
        }
        classes
    }
}

/// The indices (x fastest) of the voxels whose coordinate along `normal_axis` is `at`.
fn plane_voxels(dims: [usize; 3], normal_axis: usize, at: usize) -> impl Iterator<Item = usize> {
    let [nx, ny, nz] = dims;
    (0..nx * ny * nz).filter(move |&index| {
        let voxel = [index % nx, (index / nx) % ny, index / (nx * ny)];
        voxel[normal_axis] == at
    })
}

//! What preprocessing produces for one subject, and the record of how it got there, so that outputs
//! (segmentations) can be put back in the subject's original grid.

use crate::nifti::Reorientation;
use crate::{Affine, Modality, Volume};
use serde::{Deserialize, Serialize};

/// A box on a voxel grid: `start` (inclusive) and `size` voxels along each axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CropBox {
    pub start: [usize; 3],
    pub size: [usize; 3],
}

/// Where a preprocessed volume sits relative to the subject's original files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridRecord {
    /// Source grid → RAS grid (permutation and flips).
    pub reorientation: Reorientation,
    /// RAS grid after resampling to the target spacing (before the crop).
    pub resampled_dims: [usize; 3],
    pub resampled_affine: Affine,
    /// The foreground crop, in the resampled RAS grid.
    pub crop: CropBox,
}

/// One subject after preprocessing: every present modality on the same cropped 1 mm RAS grid,
/// scaled to [0, 1], plus the label map (nearest-neighbour resampled) when there is one.
#[derive(Debug, Clone)]
pub struct PreprocessedSubject {
    pub id: String,
    pub images: Vec<(Modality, Volume<f32>)>,
    pub label: Option<Volume<u8>>,
    pub record: GridRecord,
}

impl PreprocessedSubject {
    /// The result of a pipeline: `images` in the order of `modalities`, the label map's values
    /// (carried as f32 through the geometry) rounded back to labels.
    pub(crate) fn assemble(
        id: &str,
        modalities: Vec<Modality>,
        images: Vec<Volume<f32>>,
        label: Option<Volume<f32>>,
        record: GridRecord,
    ) -> Self {
        Self {
            id: id.to_string(),
            images: modalities.into_iter().zip(images).collect(),
            label: label.map(|volume| volume.map(|value| value.round() as u8)),
            record,
        }
    }
}

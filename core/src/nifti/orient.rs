//! Orientation codes and reorientation to RAS by axis permutation and flips.
//!
//! (Types and signatures fixed by the lead; bodies being written.)

use crate::{Affine, Result, Volume};
use serde::{Deserialize, Serialize};

/// How a volume was taken from its source grid to the RAS grid, so that results can be put back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reorientation {
    /// Grid size of the source volume.
    pub source_dims: [usize; 3],
    /// Affine of the source volume.
    pub source_affine: Affine,
    /// For each RAS output axis (R, A, S), the source axis it comes from.
    pub source_axis: [usize; 3],
    /// For each RAS output axis, whether the source axis runs the other way (L, P or I).
    pub flipped: [bool; 3],
}

/// The axis codes of `affine` (nibabel's `aff2axcodes`): for each voxel axis the world direction it
/// points to, e.g. `['L', 'A', 'S']`.
pub fn axcodes(affine: &Affine) -> [char; 3] {
    let _ = affine;
    unimplemented!("orient::axcodes is being written")
}

/// `axcodes` as a string, e.g. `"LAS"`.
pub fn orientation_code(affine: &Affine) -> String {
    axcodes(affine).iter().collect()
}

/// Permute and flip `volume` so its voxel axes point R, A, S; the affine is updated so every voxel
/// keeps its world position.
pub fn to_ras<T: Copy>(volume: &Volume<T>) -> (Volume<T>, Reorientation) {
    let _ = volume;
    unimplemented!("orient::to_ras is being written")
}

impl Reorientation {
    /// Put a volume on the RAS grid back onto the source grid (dims and affine of the source).
    pub fn undo<T: Copy>(&self, ras: &Volume<T>) -> Result<Volume<T>> {
        let _ = ras;
        unimplemented!("Reorientation::undo is being written")
    }
}

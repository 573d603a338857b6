//! Resampling to a new voxel spacing (trilinear for images, nearest for labels).
//!
//! (Signatures fixed by the lead; bodies being written.)

use crate::Volume;

/// Resample `volume` to voxels of `spacing_mm` by trilinear interpolation, covering the same field
/// of view; the affine is updated accordingly.
pub fn resample_linear(volume: &Volume<f32>, spacing_mm: [f64; 3]) -> Volume<f32> {
    let _ = (volume, spacing_mm);
    unimplemented!("resample_linear is being written")
}

/// Resample `volume` to voxels of `spacing_mm` by nearest neighbour (for label maps).
pub fn resample_nearest<T: Copy + Default>(volume: &Volume<T>, spacing_mm: [f64; 3]) -> Volume<T> {
    let _ = (volume, spacing_mm);
    unimplemented!("resample_nearest is being written")
}

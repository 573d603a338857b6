//! Putting a volume on the preprocessed (cropped, resampled, RAS) grid back into the subject's
//! original grid: the inverse of the geometric part of the pipeline, for segmentations.

use super::crop::uncrop;
use super::record::GridRecord;
use super::resample::resample_nearest_onto;
use crate::{Error, Result, Volume};

impl GridRecord {
    /// Put `volume`, on the cropped grid of this record, back onto the subject's original grid
    /// (the source files' dims and affine): pad the crop with `T::default()`, resample by nearest
    /// neighbour back to the source spacing (when preprocessing resampled), then undo the
    /// reorientation. Exact when the source spacing is the target spacing (only the crop is
    /// lost), and when the source spacing is an integer multiple of it.
    pub fn restore<T: Copy + Default>(&self, volume: &Volume<T>) -> Result<Volume<T>> {
        if volume.dims != self.crop.size || volume.data.len() != volume.voxel_count() {
            let cause = format!(
                "volume has dims {:?} ({} voxels), the preprocessed grid has {:?}",
                volume.dims,
                volume.data.len(),
                self.crop.size
            );
            return Err(Error::new("restore to the original grid", cause));
        }
        if !self.crop.fits(self.resampled_dims) {
            let cause = format!(
                "crop {:?} does not fit the resampled grid {:?}",
                self.crop, self.resampled_dims
            );
            return Err(Error::new("restore to the original grid", cause));
        }
        let resampled = uncrop(
            volume,
            &self.crop,
            self.resampled_dims,
            self.resampled_affine,
        );
        let ras_dims = self.reorientation.ras_dims();
        let ras_affine = self.reorientation.ras_affine();
        let ras = if ras_dims == self.resampled_dims && ras_affine == self.resampled_affine {
            resampled
        } else {
            let mut back = resample_nearest_onto(&resampled, ras_dims, ras_affine);
            back.affine = ras_affine;
            back
        };
        self.reorientation.undo(&ras)
    }
}

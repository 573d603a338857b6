//! The foreground crop, symmetric about the volume centre (the official `CenterCropForegroundd`).
//!
//! The foreground bounding box (voxels above a threshold in any modality) is widened so that the
//! same number of voxels is cut from both ends of each axis: the smaller of the two margins. The
//! volume centre stays the centre of the crop. This is exactly what the official
//! `CenterCropForeground.compute_bounding_box` computes (`centre ± max distance to the box ends`,
//! truncated to integers, which always lands on `min(start, dims - end)`). Without foreground the
//! whole volume is kept, as there.

use super::record::CropBox;
use crate::volume::voxel_to_world;
use crate::{Affine, Volume};

impl CropBox {
    /// The box covering a whole `dims` grid.
    pub fn full(dims: [usize; 3]) -> Self {
        Self {
            start: [0; 3],
            size: dims,
        }
    }

    /// One past the last voxel along each axis.
    pub fn end(&self) -> [usize; 3] {
        std::array::from_fn(|axis| self.start[axis] + self.size[axis])
    }

    /// Whether the box lies inside a `dims` grid.
    pub fn fits(&self, dims: [usize; 3]) -> bool {
        (0..3).all(|axis| {
            self.start[axis]
                .checked_add(self.size[axis])
                .is_some_and(|end| end <= dims[axis])
        })
    }

    /// Whether the box cuts as many voxels from both ends of every axis of a `dims` grid.
    pub fn is_centred_in(&self, dims: [usize; 3]) -> bool {
        self.fits(dims) && (0..3).all(|axis| dims[axis] - self.end()[axis] == self.start[axis])
    }

    /// This box, given in the grid of the crop `outer`, expressed in `outer`'s own grid.
    pub fn within(&self, outer: &CropBox) -> CropBox {
        CropBox {
            start: std::array::from_fn(|axis| outer.start[axis] + self.start[axis]),
            size: self.size,
        }
    }
}

/// The bounding box of the voxels above `threshold` in any of `volumes` (all on one grid), or
/// `None` when there are none.
pub fn foreground_box(volumes: &[&Volume<f32>], threshold: f32) -> Option<CropBox> {
    let dims = volumes.first()?.dims;
    let mut low = dims;
    let mut high = [0usize; 3];
    let mut found = false;
    for z in 0..dims[2] {
        for y in 0..dims[1] {
            let row_start = dims[0] * (y + dims[1] * z);
            let row = row_start..row_start + dims[0];
            let above = |x: &usize| volumes.iter().any(|v| v.data[row.start + x] > threshold);
            let Some(first) = (0..dims[0]).find(above) else {
                continue;
            };
            let last = (first..dims[0]).rev().find(above).unwrap_or(first);
            found = true;
            for (axis, (lo, hi)) in [(first, last), (y, y), (z, z)].into_iter().enumerate() {
                low[axis] = low[axis].min(lo);
                high[axis] = high[axis].max(hi);
            }
        }
    }
    found.then(|| CropBox {
        start: low,
        size: std::array::from_fn(|axis| high[axis] + 1 - low[axis]),
    })
}

/// Widen `foreground` (inside a `dims` grid) to the box symmetric about the grid centre; the whole
/// grid when there is no foreground.
pub fn symmetric_box(dims: [usize; 3], foreground: Option<CropBox>) -> CropBox {
    let Some(foreground) = foreground else {
        return CropBox::full(dims);
    };
    let end = foreground.end();
    let margin: [usize; 3] = std::array::from_fn(|axis| {
        foreground.start[axis].min(dims[axis].saturating_sub(end[axis]))
    });
    CropBox {
        start: margin,
        size: std::array::from_fn(|axis| dims[axis] - 2 * margin[axis]),
    }
}

/// The symmetric foreground crop box of `volumes` (see the module documentation).
pub fn centred_foreground_box(volumes: &[&Volume<f32>], threshold: f32) -> CropBox {
    let dims = volumes.first().map(|v| v.dims).unwrap_or([0; 3]);
    symmetric_box(dims, foreground_box(volumes, threshold))
}

/// The part of `volume` inside `crop` (which must fit the grid); the affine moves with it.
pub fn crop<T: Copy>(volume: &Volume<T>, crop: &CropBox) -> Volume<T> {
    debug_assert!(crop.fits(volume.dims));
    let [sx, sy, sz] = crop.start;
    let [cx, cy, cz] = crop.size;
    let mut data = Vec::with_capacity(cx * cy * cz);
    for z in sz..sz + cz {
        for y in sy..sy + cy {
            let row = volume.index(sx, y, z);
            data.extend_from_slice(&volume.data[row..row + cx]);
        }
    }
    Volume {
        dims: crop.size,
        affine: shifted_affine(&volume.affine, crop.start.map(|s| s as f64)),
        data,
    }
}

/// Put `volume` (the content of `crop`) back into a `dims` grid with `affine`, `T::default()`
/// elsewhere. `volume.dims` must equal `crop.size` and `crop` must fit `dims`.
pub fn uncrop<T: Copy + Default>(
    volume: &Volume<T>,
    crop: &CropBox,
    dims: [usize; 3],
    affine: Affine,
) -> Volume<T> {
    debug_assert!(crop.fits(dims) && volume.dims == crop.size);
    let mut full = Volume::filled(dims, affine, T::default());
    let [sx, sy, sz] = crop.start;
    let [cx, cy, cz] = crop.size;
    for z in 0..cz {
        for y in 0..cy {
            let from = volume.index(0, y, z);
            let to = full.index(sx, sy + y, sz + z);
            full.data[to..to + cx].copy_from_slice(&volume.data[from..from + cx]);
        }
    }
    full
}

/// `affine` with its origin moved to voxel `offset`.
fn shifted_affine(affine: &Affine, offset: [f64; 3]) -> Affine {
    let origin = voxel_to_world(affine, offset);
    let mut shifted = *affine;
    for (row, value) in origin.into_iter().enumerate() {
        shifted[row][3] = value;
    }
    shifted
}

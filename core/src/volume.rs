//! A 3D image on a voxel grid with its voxel-to-world affine.
//!
//! Memory order is NIfTI's: `x` varies fastest, then `y`, then `z`
//! (`index = x + dims[0] * (y + dims[1] * z)`). World coordinates are NIfTI's RAS+ millimetres.

use serde::{Deserialize, Serialize};

/// Row-major 4×4 voxel → world (mm, RAS+) matrix, as NIfTI's sform rows `srow_x/y/z` plus `[0,0,0,1]`.
pub type Affine = [[f64; 4]; 4];

/// The identity affine (1 mm voxels, origin at voxel 0).
pub const IDENTITY: Affine = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
];

/// A 3D volume: voxel values in x-fastest order, its grid size and its affine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume<T = f32> {
    pub dims: [usize; 3],
    pub affine: Affine,
    pub data: Vec<T>,
}

impl<T: Copy> Volume<T> {
    /// A volume filled with `value`.
    pub fn filled(dims: [usize; 3], affine: Affine, value: T) -> Self {
        Self {
            dims,
            affine,
            data: vec![value; dims[0] * dims[1] * dims[2]],
        }
    }

    /// Wrap `data` (x fastest). Panics only on a programming error (length mismatch).
    pub fn from_vec(dims: [usize; 3], affine: Affine, data: Vec<T>) -> Self {
        assert_eq!(
            data.len(),
            dims[0] * dims[1] * dims[2],
            "volume data length does not match dims {dims:?}"
        );
        Self { dims, affine, data }
    }

    pub fn voxel_count(&self) -> usize {
        self.dims[0] * self.dims[1] * self.dims[2]
    }

    /// Linear index of voxel `(x, y, z)`.
    #[inline]
    pub fn index(&self, x: usize, y: usize, z: usize) -> usize {
        x + self.dims[0] * (y + self.dims[1] * z)
    }

    #[inline]
    pub fn get(&self, x: usize, y: usize, z: usize) -> T {
        self.data[self.index(x, y, z)]
    }

    #[inline]
    pub fn set(&mut self, x: usize, y: usize, z: usize, value: T) {
        let i = self.index(x, y, z);
        self.data[i] = value;
    }

    /// Voxel size in mm along each grid axis (the lengths of the affine's first three columns).
    pub fn spacing(&self) -> [f64; 3] {
        spacing_of(&self.affine)
    }

    /// Same grid and affine, values mapped by `f`.
    pub fn map<U: Copy>(&self, f: impl Fn(T) -> U) -> Volume<U> {
        Volume {
            dims: self.dims,
            affine: self.affine,
            data: self.data.iter().map(|&v| f(v)).collect(),
        }
    }
}

/// Voxel size in mm along each grid axis of `affine`.
pub fn spacing_of(affine: &Affine) -> [f64; 3] {
    let mut spacing = [0.0; 3];
    for (axis, size) in spacing.iter_mut().enumerate() {
        *size = (0..3)
            .map(|row| affine[row][axis] * affine[row][axis])
            .sum::<f64>()
            .sqrt();
    }
    spacing
}

/// `a · b` for 4×4 affines.
pub fn mat_mul(a: &Affine, b: &Affine) -> Affine {
    let mut out = [[0.0; 4]; 4];
    for (row, out_row) in out.iter_mut().enumerate() {
        for (col, cell) in out_row.iter_mut().enumerate() {
            *cell = (0..4).map(|k| a[row][k] * b[k][col]).sum();
        }
    }
    out
}

/// World coordinate (mm) of voxel `(i, j, k)` (fractional voxels allowed).
pub fn voxel_to_world(affine: &Affine, voxel: [f64; 3]) -> [f64; 3] {
    let mut world = [0.0; 3];
    for (row, w) in world.iter_mut().enumerate() {
        *w = affine[row][0] * voxel[0]
            + affine[row][1] * voxel[1]
            + affine[row][2] * voxel[2]
            + affine[row][3];
    }
    world
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_x_fastest() {
        let mut v = Volume::filled([2, 3, 4], IDENTITY, 0u8);
        v.set(1, 2, 3, 7);
        assert_eq!(v.data[1 + 2 * (2 + 3 * 3)], 7);
        assert_eq!(v.get(1, 2, 3), 7);
    }

    #[test]
    fn spacing_from_scaled_rotated_affine() {
        let affine = [
            [0.0, -2.0, 0.0, 10.0],
            [1.5, 0.0, 0.0, -5.0],
            [0.0, 0.0, 3.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        assert_eq!(spacing_of(&affine), [1.5, 2.0, 3.0]);
        assert_eq!(voxel_to_world(&affine, [1.0, 1.0, 1.0]), [8.0, -3.5, 3.0]);
    }
}

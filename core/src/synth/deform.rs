//! A random smooth deformation: displacements drawn on a coarse control grid and interpolated
//! by cubic B-splines (C² smooth, and invertible while control values stay below ~0.4 of the
//! control spacing, which [`Deformation::random`] guarantees).

use crate::rng::Rng;

/// Distance (mm) between control points.
pub const CONTROL_SPACING_MM: f64 = 24.0;

/// Per-axis lookup of the 4 B-spline taps of every output coordinate.
#[derive(Debug, Clone)]
struct AxisTaps {
    first: Vec<usize>,
    weights: Vec<[f32; 4]>,
}

impl AxisTaps {
    fn new(len: usize, step_voxels: f64) -> Self {
        let mut first = Vec::with_capacity(len);
        let mut weights = Vec::with_capacity(len);
        for i in 0..len {
            let t = i as f64 / step_voxels;
            let cell = t.floor();
            first.push(cell as usize);
            weights.push(bspline_weights((t - cell) as f32));
        }
        Self { first, weights }
    }
}

/// Cubic B-spline weights of the 4 control points around fraction `f` of a cell.
fn bspline_weights(f: f32) -> [f32; 4] {
    let f2 = f * f;
    let f3 = f2 * f;
    [
        (1.0 - f) * (1.0 - f) * (1.0 - f) / 6.0,
        (3.0 * f3 - 6.0 * f2 + 4.0) / 6.0,
        (-3.0 * f3 + 3.0 * f2 + 3.0 * f + 1.0) / 6.0,
        f3 / 6.0,
    ]
}

/// A smooth displacement field (in output voxels) over a grid of `dims`.
#[derive(Debug, Clone)]
pub struct Deformation {
    control_dims: [usize; 3],
    /// Control displacements (voxels), x fastest.
    control: Vec<[f32; 3]>,
    taps: [AxisTaps; 3],
}

impl Deformation {
    /// Random displacements of at most `amplitude_mm` on each axis, over a grid of `dims` voxels of
    /// `spacing_mm`.
    pub fn random(
        rng: &mut Rng,
        dims: [usize; 3],
        spacing_mm: [f64; 3],
        amplitude_mm: f64,
    ) -> Self {
        let steps: [f64; 3] = std::array::from_fn(|a| CONTROL_SPACING_MM / spacing_mm[a].max(1e-6));
        // Cells cover [0, len - 1]; one extra control point on each side for the cubic support.
        let control_dims: [usize; 3] = std::array::from_fn(|a| {
            (dims[a].saturating_sub(1) as f64 / steps[a]).floor() as usize + 4
        });
        let count = control_dims.iter().product();
        let control = (0..count)
            .map(|_| {
                std::array::from_fn(|axis| {
                    let mm = (0.5 * amplitude_mm * rng.normal()).clamp(-amplitude_mm, amplitude_mm);
                    (mm / spacing_mm[axis]) as f32
                })
            })
            .collect();
        let taps = std::array::from_fn(|a| AxisTaps::new(dims[a], steps[a]));
        Self {
            control_dims,
            control,
            taps,
        }
    }

    /// Displacement of every voxel of row `(y, z)`, written to `out` (one entry per x).
    pub fn row(&self, y: usize, z: usize, out: &mut [[f32; 3]]) {
        let [cx, cy, _] = self.control_dims;
        let (y0, wy) = (self.taps[1].first[y], self.taps[1].weights[y]);
        let (z0, wz) = (self.taps[2].first[z], self.taps[2].weights[z]);
        // Collapse y and z: one displacement per control column along x.
        let mut column = vec![[0f32; 3]; cx];
        for (b, &weight_z) in wz.iter().enumerate() {
            for (a, &weight_y) in wy.iter().enumerate() {
                let w = weight_z * weight_y;
                let base = cx * ((y0 + a) + cy * (z0 + b));
                for (col, ctrl) in column.iter_mut().zip(&self.control[base..base + cx]) {
                    for axis in 0..3 {
                        col[axis] += w * ctrl[axis];
                    }
                }
            }
        }
        for (x, disp) in out.iter_mut().enumerate() {
            let (x0, wx) = (self.taps[0].first[x], self.taps[0].weights[x]);
            let mut sum = [0f32; 3];
            for (k, &w) in wx.iter().enumerate() {
                for axis in 0..3 {
                    sum[axis] += w * column[x0 + k][axis];
                }
            }
            *disp = sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bspline_weights_partition_unity() {
        for f in [0.0, 0.25, 0.5, 0.9] {
            let w = bspline_weights(f);
            assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn uniform_control_gives_uniform_displacement_and_amplitude_bound() {
        let dims = [40, 30, 20];
        let mut field = Deformation::random(&mut Rng::new(3), dims, [1.0; 3], 4.0);
        for c in field.control.iter_mut() {
            *c = [1.5, -2.0, 0.5];
        }
        let mut row = vec![[0f32; 3]; dims[0]];
        field.row(29, 19, &mut row);
        for d in &row {
            assert!(
                (d[0] - 1.5).abs() < 1e-5 && (d[1] + 2.0).abs() < 1e-5 && (d[2] - 0.5).abs() < 1e-5
            );
        }
        let field = Deformation::random(&mut Rng::new(4), dims, [1.0; 3], 4.0);
        for z in 0..dims[2] {
            for y in 0..dims[1] {
                field.row(y, z, &mut row);
                assert!(row.iter().flatten().all(|v| v.abs() <= 4.0 + 1e-4));
            }
        }
    }
}

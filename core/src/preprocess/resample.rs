//! Resampling to a new voxel spacing (trilinear for images, nearest for labels).
//!
//! # Grid convention (MONAI `Spacing`, as used by the official BrainMVP pipeline)
//!
//! The output grid keeps the input's axis directions and the world position of the centre of
//! voxel `(0, 0, 0)`; only the voxel size changes. Along each axis the first and last voxel
//! *centres* of the input span `(n - 1) · old_spacing` mm, and the output gets
//! `round((n - 1) · old_spacing / new_spacing + 1)` voxels (at least 1; numpy's rounding, half
//! to even, so an extent of 94.5 voxels gives 96), exactly MONAI's
//! `compute_shape_offset` with its default `scale_extent=False`. Output voxel `i` therefore sits at
//! input voxel coordinate `i · new_spacing / old_spacing`. Example: the 2 mm MNI grid
//! (91 × 109 × 91) becomes the 1 mm MNI grid (181 × 217 × 181) with the same origin.
//!
//! Output voxels whose centre falls (by less than a voxel, from rounding) past the last input
//! centre take the border value, like MONAI's default `padding_mode="border"`.
//!
//! Both resamplers are separable: per-axis index/weight tables are computed once, and the work is
//! split over output z-slices (trilinear: in parallel with rayon under the `fs` feature, serially
//! otherwise; nearest: serially, as it is a memory-bound gather).

use crate::{Affine, Volume};

/// The grid (dims and affine) that resampling a `dims`/`affine` volume to `spacing_mm` produces.
///
/// An axis whose requested spacing is not finite and positive, or whose current spacing is zero
/// or not finite, keeps its size and spacing.
pub fn resampled_grid(
    dims: [usize; 3],
    affine: &Affine,
    spacing_mm: [f64; 3],
) -> ([usize; 3], Affine) {
    let old_spacing = crate::volume::spacing_of(affine);
    let mut new_dims = dims;
    let mut new_affine = *affine;
    for axis in 0..3 {
        let Some(ratio) = spacing_ratio(old_spacing[axis], spacing_mm[axis]) else {
            continue;
        };
        if dims[axis] == 0 {
            continue;
        }
        let extent_voxels = dims[axis].saturating_sub(1) as f64 * ratio;
        // MONAI: `np.round(extent + 1)`, so 94.5 + 1 rounds to 96, not to 94 + 1.
        new_dims[axis] = ((extent_voxels + 1.0).round_ties_even() as usize).max(1);
        for row in new_affine.iter_mut().take(3) {
            row[axis] /= ratio;
        }
    }
    (new_dims, new_affine)
}

/// Resample `volume` to voxels of `spacing_mm` by trilinear interpolation, covering the same field
/// of view; the affine is updated accordingly (see the module documentation for the convention).
pub fn resample_linear(volume: &Volume<f32>, spacing_mm: [f64; 3]) -> Volume<f32> {
    let (dims, affine) = resampled_grid(volume.dims, &volume.affine, spacing_mm);
    resample_linear_onto(volume, dims, affine)
}

/// Resample `volume` to voxels of `spacing_mm` by nearest neighbour (for label maps).
pub fn resample_nearest<T: Copy + Default>(volume: &Volume<T>, spacing_mm: [f64; 3]) -> Volume<T> {
    let (dims, affine) = resampled_grid(volume.dims, &volume.affine, spacing_mm);
    resample_nearest_onto(volume, dims, affine)
}

/// Trilinear resampling onto an explicit grid that shares `volume`'s origin and axis directions
/// (only the voxel size, given by the columns of `affine`, and the number of voxels differ).
pub fn resample_linear_onto(volume: &Volume<f32>, dims: [usize; 3], affine: Affine) -> Volume<f32> {
    if volume.data.is_empty() {
        return Volume::filled(dims, affine, 0.0);
    }
    let tables = axis_tables(volume, dims, &affine, linear_axis);
    let [tx, ty, tz] = &tables;
    let [nx, ny, _] = volume.dims;
    let slice_len = dims[0] * dims[1];
    let mut data = vec![0.0f32; slice_len * dims[2]];
    for_each_slice(&mut data, slice_len, |z, out_slice| {
        let (z0, z1, wz) = tz[z];
        let plane0 = &volume.data[z0 * nx * ny..(z0 + 1) * nx * ny];
        let plane1 = &volume.data[z1 * nx * ny..(z1 + 1) * nx * ny];
        let plane: Vec<f32> = plane0
            .iter()
            .zip(plane1)
            .map(|(&a, &b)| lerp(a, b, wz))
            .collect();
        let mut row = vec![0.0f32; nx];
        for (y, out_row) in out_slice.chunks_mut(dims[0]).enumerate() {
            let (y0, y1, wy) = ty[y];
            let row0 = &plane[y0 * nx..(y0 + 1) * nx];
            let row1 = &plane[y1 * nx..(y1 + 1) * nx];
            for ((r, &a), &b) in row.iter_mut().zip(row0).zip(row1) {
                *r = lerp(a, b, wy);
            }
            for (out, &(x0, x1, wx)) in out_row.iter_mut().zip(tx) {
                *out = lerp(row[x0], row[x1], wx);
            }
        }
    });
    Volume { dims, affine, data }
}

/// Nearest-neighbour resampling onto an explicit grid that shares `volume`'s origin and axis
/// directions (see [`resample_linear_onto`]). Ties round to even, like `torch.grid_sample`.
pub fn resample_nearest_onto<T: Copy + Default>(
    volume: &Volume<T>,
    dims: [usize; 3],
    affine: Affine,
) -> Volume<T> {
    if volume.data.is_empty() {
        return Volume::filled(dims, affine, T::default());
    }
    let [tx, ty, tz] = axis_tables(volume, dims, &affine, nearest_axis);
    let [nx, ny, _] = volume.dims;
    let slice_len = dims[0] * dims[1];
    let mut data = vec![T::default(); slice_len * dims[2]];
    // Serial: a gather is memory-bound, and `T` need not be `Send`/`Sync`.
    for (z, out_slice) in data.chunks_mut(slice_len.max(1)).enumerate() {
        let plane = &volume.data[tz[z] * nx * ny..(tz[z] + 1) * nx * ny];
        for (y, out_row) in out_slice.chunks_mut(dims[0]).enumerate() {
            let row = &plane[ty[y] * nx..(ty[y] + 1) * nx];
            for (out, &x) in out_row.iter_mut().zip(&tx) {
                *out = row[x];
            }
        }
    }
    Volume { dims, affine, data }
}

/// `numerator / denominator` of two spacings when both are usable (finite, positive), else
/// `None` (axis unchanged).
fn spacing_ratio(numerator: f64, denominator: f64) -> Option<f64> {
    let usable = |s: f64| s.is_finite() && s > 0.0;
    (usable(numerator) && usable(denominator)).then(|| numerator / denominator)
}

/// Per-axis lookup tables: entry `i` says where output voxel `i` reads along that axis.
fn axis_tables<T, E>(
    volume: &Volume<T>,
    dims: [usize; 3],
    affine: &Affine,
    table: impl Fn(usize, usize, f64) -> Vec<E>,
) -> [Vec<E>; 3] {
    let old_spacing = crate::volume::spacing_of(&volume.affine);
    let new_spacing = crate::volume::spacing_of(affine);
    std::array::from_fn(|axis| {
        // Source coordinate step per output voxel: new_spacing / old_spacing (MONAI's
        // `solve(src_affine, dst_affine)` on a diagonal: one division).
        let step = spacing_ratio(new_spacing[axis], old_spacing[axis]).unwrap_or(1.0);
        table(volume.dims[axis], dims[axis], step)
    })
}

/// For each of `out_len` output voxels: the two source neighbours and the weight of the second.
fn linear_axis(src_len: usize, out_len: usize, step: f64) -> Vec<(usize, usize, f32)> {
    let last = src_len.saturating_sub(1);
    (0..out_len)
        .map(|i| {
            let position = (i as f64 * step).clamp(0.0, last as f64);
            let lower = (position.floor() as usize).min(last);
            let upper = (lower + 1).min(last);
            (lower, upper, (position - lower as f64) as f32)
        })
        .collect()
}

/// For each of `out_len` output voxels: the nearest source voxel, the one MONAI's nearest
/// resampling picks (clamped to the grid, as its `border` padding).
///
/// Where an output voxel falls exactly half-way between two source voxels (1.5 mm slices onto
/// 1 mm, and back), the choice is decided by the rounding of MONAI's coordinate arithmetic
/// (`to_norm_affine`, `affine_grid`, `grid_sample`), so that arithmetic is replayed here step for
/// step in f64: ties to even on the exact coordinate would pick the other voxel on about half of
/// those slices.
fn nearest_axis(src_len: usize, out_len: usize, step: f64) -> Vec<usize> {
    let last = src_len.saturating_sub(1);
    let (n_in, n_out) = (src_len as f64, out_len as f64);
    // to_norm_affine: normalise(src) @ [step, 0; 0, 1] @ inv(normalise(dst)), with
    // normalise(n) = [2/n, 1/n − 1; 0, 1] and LAPACK's inverse [1/(2/n), −(1/(2/n))·(1/n − 1)].
    let (src_scale, src_shift) = (2.0 / n_in, 1.0 / n_in - 1.0);
    let dst_inverse_scale = 1.0 / (2.0 / n_out);
    let dst_inverse_shift = -(dst_inverse_scale * (1.0 / n_out - 1.0));
    let scaled = src_scale * step;
    let theta_scale = scaled * dst_inverse_scale;
    let theta_shift = scaled * dst_inverse_shift + src_shift;
    torch_linspace(out_len)
        .into_iter()
        .map(|position| {
            // affine_grid (align_corners=False), then grid_sample's unnormalisation and
            // nearbyint.
            let base = position * (n_out - 1.0) / n_out;
            let normalised = base * theta_scale + theta_shift;
            let source = ((normalised + 1.0) * n_in - 1.0) / 2.0;
            (source.round_ties_even().max(0.0) as usize).min(last)
        })
        .collect()
}

/// Doubles per vector in torch's CPU kernels on AVX2 (`Vectorized<double>::size()`).
const TORCH_F64_LANES: usize = 4;

/// `torch.linspace(-1, 1, steps)` in f64 as its CPU kernel computes it: from the start below the
/// half-way index and from the end above it, and in vector blocks (two vectors per loop turn
/// while at least that many are left) as `base + step·lane`, the rest one by one.
fn torch_linspace(steps: usize) -> Vec<f64> {
    if steps <= 1 {
        return vec![0.0; steps];
    }
    let step = 2.0 / (steps - 1) as f64;
    let halfway = steps / 2;
    let at = |index: usize| match index < halfway {
        true => -1.0 + step * index as f64,
        false => 1.0 - step * (steps - index - 1) as f64,
    };
    let mut values = Vec::with_capacity(steps);
    while values.len() + 2 * TORCH_F64_LANES <= steps {
        for _ in 0..2 {
            let base = at(values.len());
            values.extend((0..TORCH_F64_LANES).map(|lane| base + step * lane as f64));
        }
    }
    while values.len() < steps {
        values.push(at(values.len()));
    }
    values
}

#[inline]
fn lerp(a: f32, b: f32, weight: f32) -> f32 {
    if weight == 0.0 {
        a
    } else {
        a + (b - a) * weight
    }
}

/// Run `fill(z, slice)` for every output z-slice of `data` (rayon under `fs`, serial otherwise).
fn for_each_slice(data: &mut [f32], slice_len: usize, fill: impl Fn(usize, &mut [f32]) + Sync) {
    if slice_len == 0 {
        return;
    }
    #[cfg(feature = "fs")]
    {
        use rayon::prelude::*;
        data.par_chunks_mut(slice_len)
            .enumerate()
            .for_each(|(z, slice)| fill(z, slice));
    }
    #[cfg(not(feature = "fs"))]
    {
        for (z, slice) in data.chunks_mut(slice_len).enumerate() {
            fill(z, slice);
        }
    }
}

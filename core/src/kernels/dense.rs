//! Dense 3-D convolution, stride 1 (groups 1, dilation 1, any padding up to `k − 1`): the
//! `3³` convolutions of the UniUnet decoder and of the UNet3D.
//!
//! No im2col matrix is built. The input planes a slab of output planes needs are copied once
//! with their zero padding ([`PaddedPlanes`]); in that layout tap `(a, b, c)` of output position
//! `q` reads input position `q + offset(a, b, c)` for every channel, so each tap is one matrix
//! product `out[C_out × n] += W_tap[C_out × C_in] · X[C_in × n]` over a run of `n` positions,
//! with `X` a strided view straight into the copy. Runs are whole padded rows; the `Wp − W`
//! columns past the row end are computed and thrown away. The input gradient is the same
//! forward pass with the kernel flipped and transposed; the weight gradient is, per tap,
//! `dW_tap += G[C_out × n] · X[C_in × n]ᵀ`.

use super::gemm::{gemm, MatMut, MatRef};
use super::parallel::{self, SharedOut};
use super::shape::{flipped_transposed, ConvShape, PaddedPlanes};

/// Output positions per matrix product (rounded down to whole padded rows).
const RUN_POSITIONS: usize = 1024;

/// Most output planes one task computes (the copy holds `planes + kD − 1` input planes).
const MAX_SLAB_PLANES: usize = 8;

/// The output planes each task computes: enough tasks for every thread, few enough that the
/// padded copy is not repeated much (`kD − 1` halo planes per slab).
fn slab_planes(shape: &ConvShape, depth_out: usize) -> usize {
    let wanted_tasks = 4 * parallel::threads();
    let planes = (shape.batch * depth_out).div_ceil(wanted_tasks.max(1));
    planes.clamp(1, MAX_SLAB_PLANES)
}

/// Tasks `(sample, first output plane, planes)` covering every output plane.
fn slabs(shape: &ConvShape, depth_out: usize) -> Vec<(usize, usize, usize)> {
    let per_slab = slab_planes(shape, depth_out);
    (0..shape.batch)
        .flat_map(|sample| {
            (0..depth_out)
                .step_by(per_slab)
                .map(move |first| (sample, first, per_slab.min(depth_out - first)))
        })
        .collect()
}

/// The weight `[C_out, C_in, taps]` regrouped tap-major, `[taps][C_out][C_in]`.
fn tap_major(weight: &[f32], shape: &ConvShape) -> Vec<f32> {
    let (cout, cin, taps) = (shape.out_channels, shape.in_channels, shape.taps());
    let mut regrouped = vec![0.0; weight.len()];
    for o in 0..cout {
        for i in 0..cin {
            for t in 0..taps {
                regrouped[(t * cout + o) * cin + i] = weight[(o * cin + i) * taps + t];
            }
        }
    }
    regrouped
}

/// Rows of output positions per matrix product.
fn rows_per_run(padded_width: usize, rows: usize) -> usize {
    (RUN_POSITIONS / padded_width).clamp(1, rows.max(1))
}

/// One matrix product's worth of output positions: `rows` whole padded rows (`len` positions)
/// from output row `row` of slab plane `plane`, starting at `start` in the padded copy.
struct Run {
    plane: usize,
    row: usize,
    rows: usize,
    len: usize,
    start: usize,
}

/// The runs covering `planes` output planes of a slab whose padded copy is `copy`.
fn runs(shape: &ConvShape, copy: &PaddedPlanes, planes: usize) -> impl Iterator<Item = Run> {
    let [_, rows_out, _] = shape.stride_one_output();
    let [hp, wp] = copy.plane;
    let run_rows = rows_per_run(wp, rows_out);
    (0..planes).flat_map(move |plane| {
        (0..rows_out).step_by(run_rows).map(move |row| {
            let rows = run_rows.min(rows_out - row);
            let start = plane * hp * wp + row * wp;
            Run {
                plane,
                row,
                rows,
                len: rows * wp,
                start,
            }
        })
    })
}

/// `[N, C_out, D', H', W']` from `x` `[N, C_in, D, H, W]`, `weight` `[C_out, C_in, k…]` and
/// an optional bias `[C_out]`.
pub fn forward(shape: &ConvShape, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let output = shape.stride_one_output();
    let out_voxels: usize = output.iter().product();
    let mut out = vec![0.0f32; shape.batch * shape.out_channels * out_voxels];
    let taps = tap_major(weight, shape);
    let target = SharedOut::new(&mut out);
    let item_len = shape.in_channels * shape.input_voxels();
    parallel::for_each(slabs(shape, output[0]), |(sample, first, planes)| {
        let item = &x[sample * item_len..][..item_len];
        let copy = PaddedPlanes::copy(
            shape,
            item,
            shape.in_channels,
            first,
            planes + shape.kernel[0] - 1,
        );
        forward_slab(shape, &copy, &taps, bias, (sample, first, planes), &target);
    });
    out
}

/// One task of [`forward`]: output planes `[first, first + planes)` of one sample.
fn forward_slab(
    shape: &ConvShape,
    copy: &PaddedPlanes,
    taps: &[f32],
    bias: Option<&[f32]>,
    (sample, first, planes): (usize, usize, usize),
    target: &SharedOut,
) {
    let [_, rows_out, cols_out] = shape.stride_one_output();
    let out_voxels = shape.stride_one_output().iter().product::<usize>();
    let (cout, cin) = (shape.out_channels, shape.in_channels);
    let wp = copy.plane[1];
    let offsets = copy.tap_offsets(shape.kernel);
    let mut acc = vec![0.0f32; cout * rows_per_run(wp, rows_out) * wp];
    for Run {
        plane,
        row,
        rows,
        len,
        start,
    } in runs(shape, copy, planes)
    {
        for (tap, &offset) in offsets.iter().enumerate() {
            gemm(
                MatMut::new(&mut acc, 0, [cout, len], [len, 1]),
                MatRef::new(taps, tap * cout * cin, [cout, cin], [cin, 1]),
                MatRef::new(
                    &copy.values,
                    start + offset,
                    [cin, len],
                    [copy.channel_stride(), 1],
                ),
                tap > 0,
                false,
            );
        }
        for channel in 0..cout {
            let shift = bias.map_or(0.0, |b| b[channel]);
            let plane_start = ((sample * cout + channel) * out_voxels)
                + (first + plane) * rows_out * cols_out
                + row * cols_out;
            // SAFETY: each task owns planes [first, first + planes) of its sample, and within
            // the task these rows are written once.
            let dst = unsafe { target.part(plane_start, rows * cols_out) };
            for r in 0..rows {
                let src = &acc[channel * len + r * wp..][..cols_out];
                let out_row = &mut dst[r * cols_out..][..cols_out];
                out_row
                    .iter_mut()
                    .zip(src)
                    .for_each(|(o, s)| *o = s + shift);
            }
        }
    }
}

/// The gradient of `x` from the output gradient `grad`.
pub fn backward_input(shape: &ConvShape, weight: &[f32], grad: &[f32]) -> Vec<f32> {
    let flipped = flipped_transposed(weight, shape.out_channels, shape.in_channels, shape.taps());
    forward(&shape.input_gradient_shape(), grad, &flipped, None)
}

/// The gradient of the weight (`[C_out, C_in, k…]`) from the input and the output gradient.
pub fn backward_weight(shape: &ConvShape, x: &[f32], grad: &[f32]) -> Vec<f32> {
    let output = shape.stride_one_output();
    let (cout, cin, taps) = (shape.out_channels, shape.in_channels, shape.taps());
    let item_len = cin * shape.input_voxels();
    let sums = parallel::sum(
        slabs(shape, output[0]),
        taps * cout * cin,
        |(sample, first, planes), sums| {
            let item = &x[sample * item_len..][..item_len];
            let copy = PaddedPlanes::copy(shape, item, cin, first, planes + shape.kernel[0] - 1);
            weight_gradient_slab(shape, &copy, grad, (sample, first, planes), sums);
        },
    );
    // [taps][C_out][C_in] → [C_out][C_in][taps]
    let mut weight_grad = vec![0.0f32; sums.len()];
    for t in 0..taps {
        for o in 0..cout {
            for i in 0..cin {
                weight_grad[(o * cin + i) * taps + t] = sums[(t * cout + o) * cin + i];
            }
        }
    }
    weight_grad
}

/// One task of [`backward_weight`]: adds the planes `[first, first + planes)` of one sample
/// into `sums` (`[taps][C_out][C_in]`).
fn weight_gradient_slab(
    shape: &ConvShape,
    copy: &PaddedPlanes,
    grad: &[f32],
    (sample, first, planes): (usize, usize, usize),
    sums: &mut [f32],
) {
    let [_, rows_out, cols_out] = shape.stride_one_output();
    let out_voxels = shape.stride_one_output().iter().product::<usize>();
    let (cout, cin) = (shape.out_channels, shape.in_channels);
    let wp = copy.plane[1];
    let offsets = copy.tap_offsets(shape.kernel);
    // The output gradient of a run, in the padded row layout (zeros past each row's end).
    let mut run_grad = vec![0.0f32; cout * rows_per_run(wp, rows_out) * wp];
    for Run {
        plane,
        row,
        rows,
        len,
        start,
    } in runs(shape, copy, planes)
    {
        for channel in 0..cout {
            let grad_start = (sample * cout + channel) * out_voxels
                + (first + plane) * rows_out * cols_out
                + row * cols_out;
            for r in 0..rows {
                let src = &grad[grad_start + r * cols_out..][..cols_out];
                let dst = &mut run_grad[channel * len + r * wp..][..wp];
                dst[..cols_out].copy_from_slice(src);
                dst[cols_out..].fill(0.0);
            }
        }
        for (tap, &offset) in offsets.iter().enumerate() {
            gemm(
                MatMut::new(sums, tap * cout * cin, [cout, cin], [cin, 1]),
                MatRef::new(&run_grad, 0, [cout, len], [len, 1]),
                MatRef::new(
                    &copy.values,
                    start + offset,
                    [len, cin],
                    [1, copy.channel_stride()],
                ),
                true,
                false,
            );
        }
    }
}

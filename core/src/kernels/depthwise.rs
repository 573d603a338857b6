//! Depthwise 3-D convolution, stride 1 (one kernel per channel, `groups == C_in == C_out`):
//! the `3³` position embeddings and the `5³` token mixing of every UniFormer block.
//!
//! burn-flex 0.21 runs these as `C` separate im2col + matrix–vector products (its depthwise
//! path covers 1-D and 2-D only), and burn's default weight gradient as one convolution per
//! channel. Here each (sample, channel) is one task over its own zero-padded volume: every
//! output row is `kD·kH` passes of a `kW`-tap row filter (vectorised, fused multiply-adds
//! where the CPU has them). The input gradient is the same pass with the kernel flipped; the
//! weight gradient sums, per tap, dot products of output-gradient rows with shifted input rows.

use super::parallel::{self, SharedOut};
use super::shape::{flipped_transposed, ConvShape, PaddedPlanes};
use super::simd::{correlate_gradient_plane, correlate_plane, PlaneTaps};

fn plane_taps(shape: &ConvShape, copy: &PaddedPlanes) -> PlaneTaps {
    let [_, rows, cols] = shape.stride_one_output();
    PlaneTaps {
        output: [rows, cols],
        padded: copy.plane,
        kernel: shape.kernel,
    }
}

/// `[N, C, D', H', W']` from `x` `[N, C, D, H, W]`, `weight` `[C, 1, k…]` and an optional bias.
pub fn forward(shape: &ConvShape, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let channels = shape.in_channels;
    let output = shape.stride_one_output();
    let out_voxels: usize = output.iter().product();
    let in_voxels = shape.input_voxels();
    let taps = shape.taps();
    let mut out = vec![0.0f32; shape.batch * channels * out_voxels];
    let target = SharedOut::new(&mut out);
    let tasks: Vec<usize> = (0..shape.batch * channels).collect();
    parallel::for_each(tasks, |item| {
        let channel = item % channels;
        let voxels = &x[item * in_voxels..][..in_voxels];
        let copy = PaddedPlanes::copy(shape, voxels, 1, 0, shape.padded()[0]);
        let geometry = plane_taps(shape, &copy);
        let kernel = &weight[channel * taps..][..taps];
        // SAFETY: each task writes the output volume of its own (sample, channel).
        let dst = unsafe { target.part(item * out_voxels, out_voxels) };
        dst.fill(bias.map_or(0.0, |b| b[channel]));
        let plane_len = output[1] * output[2];
        let padded_plane = copy.plane[0] * copy.plane[1];
        for (z, out_plane) in dst.chunks_exact_mut(plane_len).enumerate() {
            correlate_plane(
                out_plane,
                &copy.values[z * padded_plane..],
                kernel,
                geometry,
            );
        }
    });
    out
}

/// The gradient of `x` from the output gradient `grad`.
pub fn backward_input(shape: &ConvShape, weight: &[f32], grad: &[f32]) -> Vec<f32> {
    let flipped = flipped_transposed(weight, shape.out_channels, 1, shape.taps());
    forward(&shape.input_gradient_shape(), grad, &flipped, None)
}

/// The gradient of the weight (`[C, 1, k…]`) from the input and the output gradient.
pub fn backward_weight(shape: &ConvShape, x: &[f32], grad: &[f32]) -> Vec<f32> {
    let channels = shape.in_channels;
    let taps = shape.taps();
    let output = shape.stride_one_output();
    let (out_voxels, in_voxels) = (output.iter().product::<usize>(), shape.input_voxels());
    let plane_len = output[1] * output[2];
    let mut weight_grad = vec![0.0f32; channels * taps];
    let target = SharedOut::new(&mut weight_grad);
    parallel::for_each((0..channels).collect(), |channel| {
        // SAFETY: each task writes the kernel gradient of its own channel.
        let sums = unsafe { target.part(channel * taps, taps) };
        for sample in 0..shape.batch {
            let item = sample * channels + channel;
            let copy = PaddedPlanes::copy(
                shape,
                &x[item * in_voxels..][..in_voxels],
                1,
                0,
                shape.padded()[0],
            );
            let geometry = plane_taps(shape, &copy);
            let padded_plane = copy.plane[0] * copy.plane[1];
            let grad_voxels = &grad[item * out_voxels..][..out_voxels];
            for (z, grad_plane) in grad_voxels.chunks_exact(plane_len).enumerate() {
                correlate_gradient_plane(
                    sums,
                    grad_plane,
                    &copy.values[z * padded_plane..],
                    geometry,
                );
            }
        }
    });
    weight_grad
}

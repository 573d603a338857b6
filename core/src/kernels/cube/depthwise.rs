//! Depthwise 3-D convolution on burn's GPU backends (burn-cuda, burn-wgpu), stride 1, any
//! padding, `NCDHW`: forward, input gradient and weight gradient (with the bias gradient) in one
//! kernel launch each.
//!
//! burn-cubecl 0.21 runs a depthwise forward as its generic direct convolution between two
//! `NCDHW ↔ NDHWC` copies, and its weight gradient as one convolution per channel with a slice
//! and a slice-assign around each (`kernel/conv/backward_weight/fallback.rs`): 3 × 5,504
//! launches per UniFormer-S step. Here:
//!
//! - forward: one thread per output value, summing its `k³` taps;
//! - input gradient: one thread per input value, summing the output gradient over the taps that
//!   read it (the flipped kernel, without flipping it in memory);
//! - weight gradient: one cube per (tap, channel), its threads striding over every output
//!   position of every sample and reducing in shared memory; the cubes of one extra tap row sum
//!   the output gradient alone, which is the bias gradient.
//!
//! Values are read in the tensors' storage type (f32, f16 or bf16) and summed in f32.

use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;
use cubecl::CubeDim;

use super::grid::{empty_like, one_thread_each};
use super::reduce::{cube_sum, reduce_threads};
use crate::kernels::shape::ConvShape;

/// The value at `[plane, z, y, x]` of a contiguous `[planes, depth, rows, cols]` tensor, as f32,
/// or 0 outside the volume (`z`, `y`, `x` may be negative).
#[cube]
fn read_padded<F: Float>(
    values: &Tensor<F>,
    plane: usize,
    z: i32,
    y: i32,
    x: i32,
    depth: usize,
    rows: usize,
    cols: usize,
) -> f32 {
    let mut value = f32::new(0.0);
    if z >= 0
        && y >= 0
        && x >= 0
        && (z as usize) < depth
        && (y as usize) < rows
        && (x as usize) < cols
    {
        let index = ((plane * depth + z as usize) * rows + y as usize) * cols + x as usize;
        value = f32::cast_from(values[index]);
    }
    value
}

/// `output[n, c, z, y, x] = bias[c] + Σ_k input[n, c, z + kz − pz, …] · weight[c, 0, kz, ky, kx]`.
#[cube(launch)]
fn forward_kernel<F: Float>(
    input: &Tensor<F>,
    weight: &Tensor<F>,
    bias: &Tensor<F>,
    output: &mut Tensor<F>,
    pad_d: i32,
    pad_h: i32,
    pad_w: i32,
    #[comptime] has_bias: bool,
    #[define(F)] _dtype: StorageType,
) {
    if ABSOLUTE_POS >= output.len() {
        terminate!();
    }
    let out_d = output.shape(2);
    let out_h = output.shape(3);
    let out_w = output.shape(4);
    let in_d = input.shape(2);
    let in_h = input.shape(3);
    let in_w = input.shape(4);
    let k_d = weight.shape(2);
    let k_h = weight.shape(3);
    let k_w = weight.shape(4);
    let x = ABSOLUTE_POS % out_w;
    let y = (ABSOLUTE_POS / out_w) % out_h;
    let z = (ABSOLUTE_POS / (out_w * out_h)) % out_d;
    let plane = ABSOLUTE_POS / (out_w * out_h * out_d);
    let channel = plane % output.shape(1);
    let mut sum = f32::new(0.0);
    if has_bias {
        sum = f32::cast_from(bias[channel]);
    }
    let mut tap = channel * k_d * k_h * k_w;
    for kz in 0..k_d {
        let in_z = (z + kz) as i32 - pad_d;
        for ky in 0..k_h {
            let in_y = (y + ky) as i32 - pad_h;
            for kx in 0..k_w {
                let in_x = (x + kx) as i32 - pad_w;
                let value = read_padded::<F>(input, plane, in_z, in_y, in_x, in_d, in_h, in_w);
                sum += value * f32::cast_from(weight[tap]);
                tap += 1;
            }
        }
    }
    output[ABSOLUTE_POS] = F::cast_from(sum);
}

/// `grad_input[n, c, i] = Σ_k grad[n, c, i + p − k] · weight[c, 0, k]`.
#[cube(launch)]
fn input_gradient_kernel<F: Float>(
    grad: &Tensor<F>,
    weight: &Tensor<F>,
    grad_input: &mut Tensor<F>,
    pad_d: i32,
    pad_h: i32,
    pad_w: i32,
    #[define(F)] _dtype: StorageType,
) {
    if ABSOLUTE_POS >= grad_input.len() {
        terminate!();
    }
    let in_d = grad_input.shape(2);
    let in_h = grad_input.shape(3);
    let in_w = grad_input.shape(4);
    let out_d = grad.shape(2);
    let out_h = grad.shape(3);
    let out_w = grad.shape(4);
    let k_d = weight.shape(2);
    let k_h = weight.shape(3);
    let k_w = weight.shape(4);
    let x = ABSOLUTE_POS % in_w;
    let y = (ABSOLUTE_POS / in_w) % in_h;
    let z = (ABSOLUTE_POS / (in_w * in_h)) % in_d;
    let plane = ABSOLUTE_POS / (in_w * in_h * in_d);
    let channel = plane % grad_input.shape(1);
    let mut sum = f32::new(0.0);
    let mut tap = channel * k_d * k_h * k_w;
    for kz in 0..k_d {
        let out_z = (z as i32 + pad_d) - kz as i32;
        for ky in 0..k_h {
            let out_y = (y as i32 + pad_h) - ky as i32;
            for kx in 0..k_w {
                let out_x = (x as i32 + pad_w) - kx as i32;
                let value = read_padded::<F>(grad, plane, out_z, out_y, out_x, out_d, out_h, out_w);
                sum += value * f32::cast_from(weight[tap]);
                tap += 1;
            }
        }
    }
    grad_input[ABSOLUTE_POS] = F::cast_from(sum);
}

/// Cube `(tap, channel)`: `grad_weight[c, 0, k] = Σ_{n, o} grad[n, c, o] · input[n, c, o + k − p]`;
/// the cubes of tap `k³` (present when `has_bias`) write `grad_bias[c] = Σ_{n, o} grad[n, c, o]`.
#[cube(launch)]
fn weight_gradient_kernel<F: Float>(
    input: &Tensor<F>,
    grad: &Tensor<F>,
    grad_weight: &mut Tensor<F>,
    grad_bias: &mut Tensor<F>,
    pad_d: i32,
    pad_h: i32,
    pad_w: i32,
    #[comptime] threads: usize,
    #[define(F)] _dtype: StorageType,
) {
    let k_d = grad_weight.shape(2);
    let k_h = grad_weight.shape(3);
    let k_w = grad_weight.shape(4);
    let taps = k_d * k_h * k_w;
    let tap = CUBE_POS_X as usize;
    let channel = CUBE_POS_Y as usize;
    let channels = grad.shape(1);
    let in_d = input.shape(2);
    let in_h = input.shape(3);
    let in_w = input.shape(4);
    let out_d = grad.shape(2);
    let out_h = grad.shape(3);
    let out_w = grad.shape(4);
    let voxels = out_d * out_h * out_w;
    let kz = (tap / (k_h * k_w)) as i32 - pad_d;
    let ky = ((tap / k_w) % k_h) as i32 - pad_h;
    let kx = (tap % k_w) as i32 - pad_w;
    let is_bias = tap == taps;
    let mut sum = f32::new(0.0);
    let mut position = UNIT_POS_X as usize;
    while position < grad.shape(0) * voxels {
        let plane = (position / voxels) * channels + channel;
        let offset = position % voxels;
        let g = f32::cast_from(grad[plane * voxels + offset]);
        if is_bias {
            sum += g;
        } else {
            let x = (offset % out_w) as i32 + kx;
            let y = ((offset / out_w) % out_h) as i32 + ky;
            let z = (offset / (out_w * out_h)) as i32 + kz;
            sum += g * read_padded::<F>(input, plane, z, y, x, in_d, in_h, in_w);
        }
        position += CUBE_DIM_X as usize;
    }
    let mut partial = SharedMemory::<f32>::new(threads);
    let total = cube_sum(&mut partial, sum);
    if UNIT_POS_X == 0 {
        if is_bias {
            grad_bias[channel] = F::cast_from(total);
        } else {
            grad_weight[channel * taps + tap] = F::cast_from(total);
        }
    }
}

/// The padding of `shape` as the kernels' `pad_d`, `pad_h`, `pad_w`.
fn padding_args(shape: &ConvShape) -> [i32; 3] {
    shape.padding.map(|pad| pad as i32)
}

/// `[N, C, D', H', W']` from `x` `[N, C, D, H, W]`, `weight` `[C, 1, k…]` and an optional bias.
pub fn forward<R: CubeRuntime>(
    shape: &ConvShape,
    output_dims: [usize; 5],
    x: CubeTensor<R>,
    weight: CubeTensor<R>,
    bias: Option<CubeTensor<R>>,
) -> CubeTensor<R> {
    let x = into_contiguous(x);
    let weight = into_contiguous(weight);
    let output = empty_like(&x, &output_dims);
    let has_bias = bias.is_some();
    // Never read without a bias: a one-value stand-in keeps the kernel's bindings fixed.
    let bias = bias.map_or_else(|| empty_like(&x, &[1]), into_contiguous);
    let (cube_count, cube_dim) = one_thread_each(&output, output.meta.num_elements());
    let [pad_d, pad_h, pad_w] = padding_args(shape);
    let dtype = x.dtype;
    forward_kernel::launch::<R>(
        &output.client,
        cube_count,
        cube_dim,
        x.into_tensor_arg(),
        weight.into_tensor_arg(),
        bias.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        pad_d,
        pad_h,
        pad_w,
        has_bias,
        dtype.into(),
    );
    output
}

/// The gradient of `x` (`input_dims`) from the output gradient `grad`.
pub fn backward_input<R: CubeRuntime>(
    shape: &ConvShape,
    input_dims: [usize; 5],
    weight: CubeTensor<R>,
    grad: CubeTensor<R>,
) -> CubeTensor<R> {
    let grad = into_contiguous(grad);
    let weight = into_contiguous(weight);
    let grad_input = empty_like(&grad, &input_dims);
    let (cube_count, cube_dim) = one_thread_each(&grad_input, grad_input.meta.num_elements());
    let [pad_d, pad_h, pad_w] = padding_args(shape);
    let dtype = grad.dtype;
    input_gradient_kernel::launch::<R>(
        &grad_input.client,
        cube_count,
        cube_dim,
        grad.into_tensor_arg(),
        weight.into_tensor_arg(),
        grad_input.clone().into_tensor_arg(),
        pad_d,
        pad_h,
        pad_w,
        dtype.into(),
    );
    grad_input
}

/// The gradients of the weight (`weight_dims`) and, with `with_bias`, of the bias, from the
/// input and the output gradient: one launch for both.
pub fn backward_weight<R: CubeRuntime>(
    shape: &ConvShape,
    weight_dims: [usize; 5],
    x: CubeTensor<R>,
    grad: CubeTensor<R>,
    with_bias: bool,
) -> (CubeTensor<R>, Option<CubeTensor<R>>) {
    let x = into_contiguous(x);
    let grad = into_contiguous(grad);
    let grad_weight = empty_like(&grad, &weight_dims);
    let grad_bias = empty_like(&grad, &[if with_bias { shape.out_channels } else { 1 }]);
    let threads = reduce_threads(&grad.client);
    let tap_rows = shape.taps() + usize::from(with_bias);
    let cube_count = CubeCount::Static(tap_rows as u32, shape.out_channels as u32, 1);
    let [pad_d, pad_h, pad_w] = padding_args(shape);
    let dtype = grad.dtype;
    let client = grad.client.clone();
    weight_gradient_kernel::launch::<R>(
        &client,
        cube_count,
        CubeDim::new_1d(threads),
        x.into_tensor_arg(),
        grad.into_tensor_arg(),
        grad_weight.clone().into_tensor_arg(),
        grad_bias.clone().into_tensor_arg(),
        pad_d,
        pad_h,
        pad_w,
        threads as usize,
        dtype.into(),
    );
    (grad_weight, with_bias.then_some(grad_bias))
}

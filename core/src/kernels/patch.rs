//! Convolutions whose kernel equals their stride (no padding): the `k2 s2` patch embeddings of
//! the UniFormer, and the transposed `2³ s2` convolutions of both decoders.
//!
//! Patches do not overlap, so the convolution is one matrix product over the rearranged input:
//! `patches(x)` is `[C·k³, L]` (`L` = patches), a convolution is `W[C_out × C_in·k³] ·
//! patches(x)`, and a transposed convolution is `unpatch(Wᵀ · x)`. Each backward pass is the
//! other operation's forward pass with the weight transposed.

use std::borrow::Cow;

use super::gemm::{gemm, MatMut, MatRef};
use super::parallel::{self, SharedOut};
use super::shape::ConvShape;

/// `[D/kD, H/kH, W/kW]`: patches per axis of `input`.
fn patch_grid(input: [usize; 3], kernel: [usize; 3]) -> [usize; 3] {
    [0, 1, 2].map(|axis| input[axis] / kernel[axis])
}

/// Calls `visit(col_start, voxel_start)` for every row of one channel's patch matrix: the
/// `gw` values at `col_start..` of `cols[(a, b, e)][(z, y, ·)]` pair with the voxels
/// `voxel_start + x·kW` of `volume[z·kD + a][y·kH + b]` (sides multiples of the kernel).
fn for_each_patch_row(dims: [usize; 3], kernel: [usize; 3], mut visit: impl FnMut(usize, usize)) {
    let [_, height, width] = dims;
    let [kd, kh, kw] = kernel;
    let [gd, gh, gw] = patch_grid(dims, kernel);
    let patches = gd * gh * gw;
    for tap in 0..kd * kh * kw {
        let (a, b, e) = (tap / (kh * kw), (tap / kw) % kh, tap % kw);
        for z in 0..gd {
            for y in 0..gh {
                let voxel_start = ((z * kd + a) * height + y * kh + b) * width + e;
                visit(tap * patches + (z * gh + y) * gw, voxel_start);
            }
        }
    }
}

/// `[C·k³, L]` patches of one sample `[C, D, H, W]` (the sample itself for a `1×1×1` kernel).
fn patches(item: &[f32], channels: usize, dims: [usize; 3], kernel: [usize; 3]) -> Cow<'_, [f32]> {
    if kernel == [1, 1, 1] {
        return Cow::Borrowed(item);
    }
    let mut cols = vec![0.0f32; item.len()];
    let channel_len = item.len() / channels.max(1);
    let (gw, kw) = (dims[2] / kernel[2], kernel[2]);
    let target = SharedOut::new(&mut cols);
    parallel::for_each((0..channels).collect(), |channel| {
        let voxels = &item[channel * channel_len..][..channel_len];
        // SAFETY: each task writes its own channel's rows of the patch matrix.
        let channel_cols = unsafe { target.part(channel * channel_len, channel_len) };
        for_each_patch_row(dims, kernel, |col_start, voxel_start| {
            let row = &mut channel_cols[col_start..][..gw];
            row.iter_mut()
                .enumerate()
                .for_each(|(x, value)| *value = voxels[voxel_start + x * kw]);
        });
    });
    Cow::Owned(cols)
}

/// The `[C, D, H, W]` volume whose [`patches`] are `cols`.
fn unpatch(cols: &[f32], channels: usize, dims: [usize; 3], kernel: [usize; 3]) -> Vec<f32> {
    if kernel == [1, 1, 1] {
        return cols.to_vec();
    }
    let mut voxels = vec![0.0f32; cols.len()];
    let channel_len = cols.len() / channels.max(1);
    let (gw, kw) = (dims[2] / kernel[2], kernel[2]);
    let target = SharedOut::new(&mut voxels);
    parallel::for_each((0..channels).collect(), |channel| {
        let channel_cols = &cols[channel * channel_len..][..channel_len];
        // SAFETY: each task writes its own channel of the volume.
        let channel_voxels = unsafe { target.part(channel * channel_len, channel_len) };
        for_each_patch_row(dims, kernel, |col_start, voxel_start| {
            let row = &channel_cols[col_start..][..gw];
            row.iter()
                .enumerate()
                .for_each(|(x, value)| channel_voxels[voxel_start + x * kw] = *value);
        });
    });
    voxels
}

fn add_bias(values: &mut [f32], bias: Option<&[f32]>, voxels: usize) {
    let Some(bias) = bias else { return };
    for (channel_values, shift) in values.chunks_exact_mut(voxels).zip(bias.iter().cycle()) {
        channel_values.iter_mut().for_each(|v| *v += shift);
    }
}

/// Convolution with kernel = stride: `[N, C_out, D/k, H/k, W/k]`.
pub fn forward(shape: &ConvShape, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (cin, cout, taps) = (shape.in_channels, shape.out_channels, shape.taps());
    let patches_count: usize = patch_grid(shape.input, shape.kernel).iter().product();
    let item_len = cin * shape.input_voxels();
    let mut out = vec![0.0f32; shape.batch * cout * patches_count];
    for (sample, out_item) in out.chunks_exact_mut(cout * patches_count).enumerate() {
        let cols = patches(
            &x[sample * item_len..][..item_len],
            cin,
            shape.input,
            shape.kernel,
        );
        gemm(
            MatMut::rows(out_item, cout, patches_count),
            MatRef::rows(weight, cout, cin * taps),
            MatRef::rows(&cols, cin * taps, patches_count),
            false,
            true,
        );
    }
    add_bias(&mut out, bias, patches_count);
    out
}

/// Input gradient of [`forward`].
pub fn backward_input(shape: &ConvShape, weight: &[f32], grad: &[f32]) -> Vec<f32> {
    let (cin, cout, taps) = (shape.in_channels, shape.out_channels, shape.taps());
    let patches_count: usize = patch_grid(shape.input, shape.kernel).iter().product();
    let mut input_grad = Vec::with_capacity(shape.batch * cin * shape.input_voxels());
    let mut cols = vec![0.0f32; cin * taps * patches_count];
    for grad_item in grad.chunks_exact(cout * patches_count) {
        gemm(
            MatMut::rows(&mut cols, cin * taps, patches_count),
            MatRef::rows(weight, cout, cin * taps).t(),
            MatRef::rows(grad_item, cout, patches_count),
            false,
            true,
        );
        input_grad.extend(unpatch(&cols, cin, shape.input, shape.kernel));
    }
    input_grad
}

/// Weight gradient of [`forward`] (`[C_out, C_in, k…]`).
pub fn backward_weight(shape: &ConvShape, x: &[f32], grad: &[f32]) -> Vec<f32> {
    let (cin, cout, taps) = (shape.in_channels, shape.out_channels, shape.taps());
    let patches_count: usize = patch_grid(shape.input, shape.kernel).iter().product();
    let item_len = cin * shape.input_voxels();
    let mut weight_grad = vec![0.0f32; cout * cin * taps];
    for (sample, grad_item) in grad.chunks_exact(cout * patches_count).enumerate() {
        let cols = patches(
            &x[sample * item_len..][..item_len],
            cin,
            shape.input,
            shape.kernel,
        );
        gemm(
            MatMut::rows(&mut weight_grad, cout, cin * taps),
            MatRef::rows(grad_item, cout, patches_count),
            MatRef::rows(&cols, cin * taps, patches_count).t(),
            sample > 0,
            true,
        );
    }
    weight_grad
}

/// Transposed convolution with kernel = stride: `[N, C_out, D·k, H·k, W·k]` from `x`
/// `[N, C_in, D, H, W]` and `weight` `[C_in, C_out, k…]`.
pub fn transpose_forward(
    shape: &ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let (cin, cout, taps) = (shape.in_channels, shape.out_channels, shape.taps());
    let positions = shape.input_voxels();
    let out_dims = [0, 1, 2].map(|axis| shape.input[axis] * shape.kernel[axis]);
    let mut out = Vec::with_capacity(shape.batch * cout * taps * positions);
    let mut cols = vec![0.0f32; cout * taps * positions];
    for x_item in x.chunks_exact(cin * positions) {
        gemm(
            MatMut::rows(&mut cols, cout * taps, positions),
            MatRef::rows(weight, cin, cout * taps).t(),
            MatRef::rows(x_item, cin, positions),
            false,
            true,
        );
        out.extend(unpatch(&cols, cout, out_dims, shape.kernel));
    }
    add_bias(&mut out, bias, taps * positions);
    out
}

/// Input gradient of [`transpose_forward`].
pub fn transpose_backward_input(shape: &ConvShape, weight: &[f32], grad: &[f32]) -> Vec<f32> {
    let (cin, cout, taps) = (shape.in_channels, shape.out_channels, shape.taps());
    let positions = shape.input_voxels();
    let out_dims = [0, 1, 2].map(|axis| shape.input[axis] * shape.kernel[axis]);
    let mut input_grad = vec![0.0f32; shape.batch * cin * positions];
    for (grad_item, dst) in grad
        .chunks_exact(cout * taps * positions)
        .zip(input_grad.chunks_exact_mut(cin * positions))
    {
        let cols = patches(grad_item, cout, out_dims, shape.kernel);
        gemm(
            MatMut::rows(dst, cin, positions),
            MatRef::rows(weight, cin, cout * taps),
            MatRef::rows(&cols, cout * taps, positions),
            false,
            true,
        );
    }
    input_grad
}

/// Weight gradient of [`transpose_forward`] (`[C_in, C_out, k…]`).
pub fn transpose_backward_weight(shape: &ConvShape, x: &[f32], grad: &[f32]) -> Vec<f32> {
    let (cin, cout, taps) = (shape.in_channels, shape.out_channels, shape.taps());
    let positions = shape.input_voxels();
    let out_dims = [0, 1, 2].map(|axis| shape.input[axis] * shape.kernel[axis]);
    let mut weight_grad = vec![0.0f32; cin * cout * taps];
    let chunks = grad
        .chunks_exact(cout * taps * positions)
        .zip(x.chunks_exact(cin * positions));
    for (sample, (grad_item, x_item)) in chunks.enumerate() {
        let cols = patches(grad_item, cout, out_dims, shape.kernel);
        gemm(
            MatMut::rows(&mut weight_grad, cin, cout * taps),
            MatRef::rows(x_item, cin, positions),
            MatRef::rows(&cols, cout * taps, positions).t(),
            sample > 0,
            true,
        );
    }
    weight_grad
}

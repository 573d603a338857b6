//! LayerNorm over the channel axis of `[N, C, V]` (`V` the voxels) on burn's GPU backends,
//! without moving channels last: one launch forward (which keeps the per-voxel mean and
//! 1/σ), two backward (the input gradient per voxel, the γ and β gradients per channel with
//! [`super::reduce::affine_gradients`]). burn's
//! version permutes to channels-last and back around a chain of about ten launches.

use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

use super::grid::{empty_like, one_thread_each};
use super::reduce::affine_gradients;

/// One thread per `(n, v)`: mean and 1/σ over the `C` channels, and the normalised, scaled and
/// shifted values.
#[cube(launch)]
fn forward_kernel<F: Float>(
    x: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    output: &mut Tensor<F>,
    mean: &mut Tensor<F>,
    rstd: &mut Tensor<F>,
    channels: u32,
    voxels: u32,
    eps: f32,
    #[comptime] has_beta: bool,
    #[define(F)] _dtype: StorageType,
) {
    if ABSOLUTE_POS >= mean.len() {
        terminate!();
    }
    let channels = channels as usize;
    let voxels = voxels as usize;
    let base = (ABSOLUTE_POS / voxels) * channels * voxels + ABSOLUTE_POS % voxels;
    let mut sum = f32::new(0.0);
    for c in 0..channels {
        sum += f32::cast_from(x[base + c * voxels]);
    }
    let voxel_mean = sum / f32::cast_from(channels);
    let mut squares = f32::new(0.0);
    for c in 0..channels {
        let deviation = f32::cast_from(x[base + c * voxels]) - voxel_mean;
        squares += deviation * deviation;
    }
    let voxel_rstd = f32::new(1.0) / f32::sqrt(squares / f32::cast_from(channels) + eps);
    for c in 0..channels {
        let normalised = (f32::cast_from(x[base + c * voxels]) - voxel_mean) * voxel_rstd;
        let mut value = normalised * f32::cast_from(gamma[c]);
        if has_beta {
            value += f32::cast_from(beta[c]);
        }
        output[base + c * voxels] = F::cast_from(value);
    }
    mean[ABSOLUTE_POS] = F::cast_from(voxel_mean);
    rstd[ABSOLUTE_POS] = F::cast_from(voxel_rstd);
}

/// One thread per `(n, v)`: `grad_x = rstd·(ĝ − mean_c(ĝ) − x̂·mean_c(ĝ·x̂))`, `ĝ = grad·γ`.
#[cube(launch)]
fn input_gradient_kernel<F: Float>(
    x: &Tensor<F>,
    grad: &Tensor<F>,
    gamma: &Tensor<F>,
    mean: &Tensor<F>,
    rstd: &Tensor<F>,
    grad_x: &mut Tensor<F>,
    channels: u32,
    voxels: u32,
    #[define(F)] _dtype: StorageType,
) {
    if ABSOLUTE_POS >= mean.len() {
        terminate!();
    }
    let channels = channels as usize;
    let voxels = voxels as usize;
    let base = (ABSOLUTE_POS / voxels) * channels * voxels + ABSOLUTE_POS % voxels;
    let voxel_mean = f32::cast_from(mean[ABSOLUTE_POS]);
    let voxel_rstd = f32::cast_from(rstd[ABSOLUTE_POS]);
    let mut grad_sum = f32::new(0.0);
    let mut grad_dot = f32::new(0.0);
    for c in 0..channels {
        let scaled = f32::cast_from(grad[base + c * voxels]) * f32::cast_from(gamma[c]);
        let normalised = (f32::cast_from(x[base + c * voxels]) - voxel_mean) * voxel_rstd;
        grad_sum += scaled;
        grad_dot += scaled * normalised;
    }
    let grad_mean = grad_sum / f32::cast_from(channels);
    let dot_mean = grad_dot / f32::cast_from(channels);
    for c in 0..channels {
        let scaled = f32::cast_from(grad[base + c * voxels]) * f32::cast_from(gamma[c]);
        let normalised = (f32::cast_from(x[base + c * voxels]) - voxel_mean) * voxel_rstd;
        let value = voxel_rstd * (scaled - grad_mean - normalised * dot_mean);
        grad_x[base + c * voxels] = F::cast_from(value);
    }
}

/// The per-voxel statistics of a channel LayerNorm, kept for its backward pass.
#[derive(Clone)]
pub struct VoxelStatistics<R: CubeRuntime> {
    /// Mean over the channels, `[N, V]`.
    pub mean: CubeTensor<R>,
    /// 1/σ over the channels, `[N, V]`.
    pub rstd: CubeTensor<R>,
}

/// The normalised `x` (`dims` = `[N, C, V]`) and its per-voxel statistics.
pub fn forward<R: CubeRuntime>(
    x: CubeTensor<R>,
    gamma: CubeTensor<R>,
    beta: Option<CubeTensor<R>>,
    [batch, channels, voxels]: [usize; 3],
    eps: f64,
) -> (CubeTensor<R>, VoxelStatistics<R>) {
    let (x, gamma) = (into_contiguous(x), into_contiguous(gamma));
    let has_beta = beta.is_some();
    let beta = beta.map_or_else(|| empty_like(&x, &[1]), into_contiguous);
    let output = empty_like(&x, x.meta.shape());
    let statistics = VoxelStatistics {
        mean: empty_like(&x, &[batch, voxels]),
        rstd: empty_like(&x, &[batch, voxels]),
    };
    let client = x.client.clone();
    let (cube_count, cube_dim) = one_thread_each(&x, batch * voxels);
    let dtype = x.dtype;
    forward_kernel::launch::<R>(
        &client,
        cube_count,
        cube_dim,
        x.into_tensor_arg(),
        gamma.into_tensor_arg(),
        beta.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        statistics.mean.clone().into_tensor_arg(),
        statistics.rstd.clone().into_tensor_arg(),
        channels as u32,
        voxels as u32,
        eps as f32,
        has_beta,
        dtype.into(),
    );
    (output, statistics)
}

/// The gradients `[x, γ, β]` from the output gradient (`x` only when `want_input`).
pub fn backward<R: CubeRuntime>(
    x: CubeTensor<R>,
    gamma: CubeTensor<R>,
    grad: CubeTensor<R>,
    statistics: &VoxelStatistics<R>,
    dims: [usize; 3],
    want_input: bool,
) -> [Option<CubeTensor<R>>; 3] {
    let [batch, channels, voxels] = dims;
    let (x, grad, gamma) = (
        into_contiguous(x),
        into_contiguous(grad),
        into_contiguous(gamma),
    );
    let client = x.client.clone();
    let grad_x = want_input.then(|| {
        let grad_x = empty_like(&x, x.meta.shape());
        let (cube_count, cube_dim) = one_thread_each(&x, batch * voxels);
        input_gradient_kernel::launch::<R>(
            &client,
            cube_count,
            cube_dim,
            x.clone().into_tensor_arg(),
            grad.clone().into_tensor_arg(),
            gamma.into_tensor_arg(),
            statistics.mean.clone().into_tensor_arg(),
            statistics.rstd.clone().into_tensor_arg(),
            grad_x.clone().into_tensor_arg(),
            channels as u32,
            voxels as u32,
            x.dtype.into(),
        );
        grad_x
    });
    let statistics = [&statistics.mean, &statistics.rstd];
    let [grad_gamma, grad_beta] = affine_gradients(&x, &grad, statistics, dims, true);
    [grad_x, Some(grad_gamma), Some(grad_beta)]
}

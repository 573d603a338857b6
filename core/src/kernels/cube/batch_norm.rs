//! Training-mode batch normalisation on burn's GPU backends: statistics and normalisation in
//! two launches forward, two backward (γ and β with [`super::reduce::affine_gradients`], then the
//! input) (burn's generic version: a transposing copy, two
//! reductions and a chain of element-wise launches each way).
//!
//! `x` is `[N, C, V]` (contiguous, `V` the voxels of one channel); the statistics are per
//! channel over `N × V` values, the variance biased (divided by `N·V`), summed in f32 in two
//! passes (mean, then squared deviations).

use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;
use cubecl::CubeDim;

use super::grid::{empty_like, one_thread_each};
use super::reduce::{affine_gradients, cube_sum, reduce_threads};

/// Cube `c`: the mean, biased variance and `1/√(var + eps)` of channel `c` of `x`
/// `[batch, channels, volume]`.
#[cube(launch)]
fn statistics_kernel<F: Float>(
    x: &Tensor<F>,
    mean: &mut Tensor<F>,
    var: &mut Tensor<F>,
    rstd: &mut Tensor<F>,
    batch: u32,
    voxels: u32,
    eps: f32,
    #[comptime] threads: usize,
    #[define(F)] _dtype: StorageType,
) {
    let channel = CUBE_POS_X as usize;
    let channels = CUBE_COUNT_X as usize;
    let voxels = voxels as usize;
    let count = batch as usize * voxels;
    let mut partial = SharedMemory::<f32>::new(threads);
    let mut sum = f32::new(0.0);
    let mut position = UNIT_POS_X as usize;
    while position < count {
        let index = ((position / voxels) * channels + channel) * voxels + position % voxels;
        sum += f32::cast_from(x[index]);
        position += CUBE_DIM_X as usize;
    }
    let channel_mean = cube_sum(&mut partial, sum) / f32::cast_from(count);
    let mut squares = f32::new(0.0);
    position = UNIT_POS_X as usize;
    while position < count {
        let index = ((position / voxels) * channels + channel) * voxels + position % voxels;
        let deviation = f32::cast_from(x[index]) - channel_mean;
        squares += deviation * deviation;
        position += CUBE_DIM_X as usize;
    }
    let channel_var = cube_sum(&mut partial, squares) / f32::cast_from(count);
    if UNIT_POS_X == 0 {
        mean[channel] = F::cast_from(channel_mean);
        var[channel] = F::cast_from(channel_var);
        rstd[channel] = F::cast_from(f32::new(1.0) / f32::sqrt(channel_var + eps));
    }
}

/// `output = (x − mean[c]) / √(var[c] + eps) · γ[c] + β[c]`, one thread per value.
#[cube(launch)]
fn normalise_kernel<F: Float>(
    x: &Tensor<F>,
    mean: &Tensor<F>,
    rstd: &Tensor<F>,
    gamma: &Tensor<F>,
    beta: &Tensor<F>,
    output: &mut Tensor<F>,
    channels: u32,
    voxels: u32,
    #[define(F)] _dtype: StorageType,
) {
    if ABSOLUTE_POS >= output.len() {
        terminate!();
    }
    let channel = (ABSOLUTE_POS / voxels as usize) % channels as usize;
    let rstd = f32::cast_from(rstd[channel]);
    let centred = f32::cast_from(x[ABSOLUTE_POS]) - f32::cast_from(mean[channel]);
    let value = centred * rstd * f32::cast_from(gamma[channel]) + f32::cast_from(beta[channel]);
    output[ABSOLUTE_POS] = F::cast_from(value);
}

/// `grad_x = γ·rstd·(grad − Σgrad/n − x̂·Σ(grad·x̂)/n)`, one thread per value.
#[cube(launch)]
fn input_gradient_kernel<F: Float>(
    x: &Tensor<F>,
    grad: &Tensor<F>,
    mean: &Tensor<F>,
    rstd: &Tensor<F>,
    gamma: &Tensor<F>,
    grad_gamma: &Tensor<F>,
    grad_beta: &Tensor<F>,
    grad_x: &mut Tensor<F>,
    channels: u32,
    voxels: u32,
    count: f32,
    #[define(F)] _dtype: StorageType,
) {
    if ABSOLUTE_POS >= grad_x.len() {
        terminate!();
    }
    let channel = (ABSOLUTE_POS / voxels as usize) % channels as usize;
    let rstd = f32::cast_from(rstd[channel]);
    let normalised = (f32::cast_from(x[ABSOLUTE_POS]) - f32::cast_from(mean[channel])) * rstd;
    let grad_mean = f32::cast_from(grad_beta[channel]) / count;
    let dot_mean = f32::cast_from(grad_gamma[channel]) / count;
    let centred = f32::cast_from(grad[ABSOLUTE_POS]) - grad_mean - normalised * dot_mean;
    grad_x[ABSOLUTE_POS] = F::cast_from(f32::cast_from(gamma[channel]) * rstd * centred);
}

/// The per-channel statistics of a batch normalisation, kept for its backward pass.
#[derive(Clone)]
pub struct Statistics<R: CubeRuntime> {
    /// Mean, `[C]`.
    pub mean: CubeTensor<R>,
    /// Biased variance, `[C]`.
    pub var: CubeTensor<R>,
    /// `1/√(var + eps)`, `[C]`.
    pub rstd: CubeTensor<R>,
}

impl<R: CubeRuntime> core::fmt::Debug for Statistics<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Statistics")
    }
}

/// The normalised `x` (`dims` = `[N, C, V]`, any shape of that size) and the batch's statistics.
pub fn forward<R: CubeRuntime>(
    x: CubeTensor<R>,
    gamma: CubeTensor<R>,
    beta: CubeTensor<R>,
    [batch, channels, voxels]: [usize; 3],
    eps: f64,
) -> (CubeTensor<R>, Statistics<R>) {
    let x = into_contiguous(x);
    let (gamma, beta) = (into_contiguous(gamma), into_contiguous(beta));
    let statistics = Statistics {
        mean: empty_like(&x, &[channels]),
        var: empty_like(&x, &[channels]),
        rstd: empty_like(&x, &[channels]),
    };
    let client = x.client.clone();
    let threads = reduce_threads(&client);
    statistics_kernel::launch::<R>(
        &client,
        CubeCount::Static(channels as u32, 1, 1),
        CubeDim::new_1d(threads),
        x.clone().into_tensor_arg(),
        statistics.mean.clone().into_tensor_arg(),
        statistics.var.clone().into_tensor_arg(),
        statistics.rstd.clone().into_tensor_arg(),
        batch as u32,
        voxels as u32,
        eps as f32,
        threads as usize,
        x.dtype.into(),
    );
    let output = empty_like(&x, x.meta.shape());
    let (cube_count, cube_dim) = one_thread_each(&output, output.meta.num_elements());
    let dtype = x.dtype;
    normalise_kernel::launch::<R>(
        &client,
        cube_count,
        cube_dim,
        x.into_tensor_arg(),
        statistics.mean.clone().into_tensor_arg(),
        statistics.rstd.clone().into_tensor_arg(),
        gamma.into_tensor_arg(),
        beta.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        channels as u32,
        voxels as u32,
        dtype.into(),
    );
    (output, statistics)
}

/// The gradients `[x, γ, β]` from the output gradient: one launch for γ and β, one for `x`
/// (only when `want_input`).
pub fn backward<R: CubeRuntime>(
    x: CubeTensor<R>,
    gamma: CubeTensor<R>,
    grad: CubeTensor<R>,
    statistics: &Statistics<R>,
    dims: [usize; 3],
    want_input: bool,
) -> [CubeTensor<R>; 3] {
    let [batch, channels, voxels] = dims;
    let (x, grad, gamma) = (
        into_contiguous(x),
        into_contiguous(grad),
        into_contiguous(gamma),
    );
    let per_channel = [&statistics.mean, &statistics.rstd];
    let [grad_gamma, grad_beta] = affine_gradients(&x, &grad, per_channel, dims, false);
    let grad_x = empty_like(&x, if want_input { x.meta.shape() } else { &[1] });
    if want_input {
        let (cube_count, cube_dim) = one_thread_each(&grad_x, grad_x.meta.num_elements());
        let dtype = x.dtype;
        input_gradient_kernel::launch::<R>(
            &x.client.clone(),
            cube_count,
            cube_dim,
            x.into_tensor_arg(),
            grad.into_tensor_arg(),
            statistics.mean.clone().into_tensor_arg(),
            statistics.rstd.clone().into_tensor_arg(),
            gamma.into_tensor_arg(),
            grad_gamma.clone().into_tensor_arg(),
            grad_beta.clone().into_tensor_arg(),
            grad_x.clone().into_tensor_arg(),
            channels as u32,
            voxels as u32,
            (batch * voxels) as f32,
            dtype.into(),
        );
    }
    [grad_x, grad_gamma, grad_beta]
}

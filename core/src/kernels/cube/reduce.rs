//! The sum of one value per thread over a cube, in shared memory: the reduction step of the
//! per-channel (and per-tap) kernels; and with it the γ and β gradients of the normalisations.

use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

use super::grid::empty_like;

/// Threads of one reducing cube, where the device allows as many (a power of two).
pub const REDUCE_THREADS: u32 = 256;

/// The largest power of two `≤ REDUCE_THREADS` that the device of `client` runs in one cube.
pub fn reduce_threads<R: Runtime>(client: &ComputeClient<R>) -> u32 {
    let max_threads = client.properties().hardware.max_cube_dim.0.max(1);
    let mut threads = REDUCE_THREADS;
    while threads > max_threads {
        threads /= 2;
    }
    threads
}

/// The sum of `value` over the cube's threads (a power of two, `CUBE_DIM_X`), returned to every
/// thread. `partial` holds one value per thread; it is free again when this returns.
#[cube]
pub fn cube_sum(partial: &mut SharedMemory<f32>, value: f32) -> f32 {
    let unit = UNIT_POS_X as usize;
    partial[unit] = value;
    sync_cube();
    let mut half = (CUBE_DIM_X / 2) as usize;
    while half > 0 {
        if unit < half {
            partial[unit] += partial[unit + half];
        }
        sync_cube();
        half /= 2;
    }
    let total = partial[0];
    sync_cube();
    total
}

/// Cube `c`: `Σ grad` (β's gradient) and `Σ grad·(x − mean)·rstd` (γ's gradient) over channel
/// `c` of `[N, C, V]`. `mean` and `rstd` hold one value per channel (batch normalisation) or,
/// with `per_voxel`, one per `(n, v)` (LayerNorm over the channels).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn affine_gradient_kernel<F: Float>(
    x: &Tensor<F>,
    grad: &Tensor<F>,
    mean: &Tensor<F>,
    rstd: &Tensor<F>,
    grad_gamma: &mut Tensor<F>,
    grad_beta: &mut Tensor<F>,
    batch: u32,
    voxels: u32,
    #[comptime] per_voxel: bool,
    #[comptime] threads: usize,
    #[define(F)] _dtype: StorageType,
) {
    let channel = CUBE_POS_X as usize;
    let channels = CUBE_COUNT_X as usize;
    let voxels = voxels as usize;
    let mut partial = SharedMemory::<f32>::new(threads);
    let mut grad_sum = f32::new(0.0);
    let mut grad_dot = f32::new(0.0);
    let mut position = UNIT_POS_X as usize;
    while position < batch as usize * voxels {
        let index = ((position / voxels) * channels + channel) * voxels + position % voxels;
        let mut statistic = channel;
        if per_voxel {
            statistic = position;
        }
        let centred = f32::cast_from(x[index]) - f32::cast_from(mean[statistic]);
        let g = f32::cast_from(grad[index]);
        grad_sum += g;
        grad_dot += g * centred * f32::cast_from(rstd[statistic]);
        position += CUBE_DIM_X as usize;
    }
    let total_grad = cube_sum(&mut partial, grad_sum);
    let total_dot = cube_sum(&mut partial, grad_dot);
    if UNIT_POS_X == 0 {
        grad_beta[channel] = F::cast_from(total_grad);
        grad_gamma[channel] = F::cast_from(total_dot);
    }
}

/// `[γ's gradient, β's gradient]` (`[C]` each) of a normalisation of `x` `[N, C, V]` (`dims`,
/// contiguous) with statistics `mean`, `rstd` (per channel, or per `(n, v)` with `per_voxel`).
pub fn affine_gradients<R: CubeRuntime>(
    x: &CubeTensor<R>,
    grad: &CubeTensor<R>,
    [mean, rstd]: [&CubeTensor<R>; 2],
    [batch, channels, voxels]: [usize; 3],
    per_voxel: bool,
) -> [CubeTensor<R>; 2] {
    let gradients = [empty_like(x, &[channels]), empty_like(x, &[channels])];
    let threads = reduce_threads(&x.client);
    affine_gradient_kernel::launch::<R>(
        &x.client,
        CubeCount::Static(channels as u32, 1, 1),
        CubeDim::new_1d(threads),
        x.clone().into_tensor_arg(),
        grad.clone().into_tensor_arg(),
        mean.clone().into_tensor_arg(),
        rstd.clone().into_tensor_arg(),
        gradients[0].clone().into_tensor_arg(),
        gradients[1].clone().into_tensor_arg(),
        batch as u32,
        voxels as u32,
        per_voxel,
        threads as usize,
        x.dtype.into(),
    );
    gradients
}

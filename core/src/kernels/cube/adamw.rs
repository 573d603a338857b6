//! One AdamW step of one parameter tensor on burn's GPU backends in one launch: the moments, the
//! bias corrections, the decoupled weight decay and the update, where burn's `AdamW` launches
//! about sixteen element-wise kernels per parameter tensor.

use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

use super::grid::{empty_like, one_thread_each};

/// The scalars of one AdamW step, computed on the host as burn's `AdamW` computes them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWScalars {
    /// β₁ and `1 − β₁`.
    pub beta_1: f32,
    pub factor_1: f32,
    /// β₂ and `1 − β₂`.
    pub beta_2: f32,
    pub factor_2: f32,
    /// `1 − β₁ᵗ` and `1 − β₂ᵗ` (`t` the step, from 1).
    pub correction_1: f32,
    pub correction_2: f32,
    /// ε, added to `√v̂`.
    pub epsilon: f32,
    /// `1 − lr·weight_decay`.
    pub decay: f32,
    /// The learning rate.
    pub lr: f32,
}

/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `θ ← θ·(1 − lr·λ) − lr·(m/c₁)/(√(v/c₂) + ε)`, one thread per value.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn adamw_kernel<F: Float>(
    param: &Tensor<F>,
    grad: &Tensor<F>,
    moment_1: &Tensor<F>,
    moment_2: &Tensor<F>,
    new_param: &mut Tensor<F>,
    new_moment_1: &mut Tensor<F>,
    new_moment_2: &mut Tensor<F>,
    beta_1: f32,
    factor_1: f32,
    beta_2: f32,
    factor_2: f32,
    correction_1: f32,
    correction_2: f32,
    epsilon: f32,
    decay: f32,
    lr: f32,
    #[define(F)] _dtype: StorageType,
) {
    if ABSOLUTE_POS >= param.len() {
        terminate!();
    }
    let g = f32::cast_from(grad[ABSOLUTE_POS]);
    let m = f32::cast_from(moment_1[ABSOLUTE_POS]) * beta_1 + g * factor_1;
    let v = f32::cast_from(moment_2[ABSOLUTE_POS]) * beta_2 + g * g * factor_2;
    let corrected_m = m / correction_1;
    let corrected_v = v / correction_2;
    let delta = corrected_m / (f32::sqrt(corrected_v) + epsilon);
    let decayed = f32::cast_from(param[ABSOLUTE_POS]) * decay;
    new_param[ABSOLUTE_POS] = F::cast_from(decayed - delta * lr);
    new_moment_1[ABSOLUTE_POS] = F::cast_from(m);
    new_moment_2[ABSOLUTE_POS] = F::cast_from(v);
}

/// `[param, moment_1, moment_2]` after one step (all of `param`'s shape).
pub fn step<R: CubeRuntime>(
    param: CubeTensor<R>,
    grad: CubeTensor<R>,
    [moment_1, moment_2]: [CubeTensor<R>; 2],
    scalars: AdamWScalars,
) -> [CubeTensor<R>; 3] {
    let [param, grad, moment_1, moment_2] = [param, grad, moment_1, moment_2].map(into_contiguous);
    let outputs: [CubeTensor<R>; 3] =
        core::array::from_fn(|_| empty_like(&param, param.meta.shape()));
    let client = param.client.clone();
    let (cube_count, cube_dim) = one_thread_each(&param, param.meta.num_elements());
    let AdamWScalars {
        beta_1,
        factor_1,
        beta_2,
        factor_2,
        correction_1,
        correction_2,
        epsilon,
        decay,
        lr,
    } = scalars;
    let dtype = param.dtype;
    adamw_kernel::launch::<R>(
        &client,
        cube_count,
        cube_dim,
        param.into_tensor_arg(),
        grad.into_tensor_arg(),
        moment_1.into_tensor_arg(),
        moment_2.into_tensor_arg(),
        outputs[0].clone().into_tensor_arg(),
        outputs[1].clone().into_tensor_arg(),
        outputs[2].clone().into_tensor_arg(),
        beta_1,
        factor_1,
        beta_2,
        factor_2,
        correction_1,
        correction_2,
        epsilon,
        decay,
        lr,
        dtype.into(),
    );
    outputs
}

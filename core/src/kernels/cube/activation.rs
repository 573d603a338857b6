//! Exact GELU (erf form) on burn's GPU backends: one launch forward, one backward (burn's:
//! about five element-wise launches forward and ten backward).

use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;

use super::grid::{empty_like, one_thread_each};

/// `x · Φ(x)`, `Φ(x) = (1 + erf(x/√2))/2`.
#[cube(launch)]
fn gelu_kernel<F: Float>(x: &Tensor<F>, output: &mut Tensor<F>, #[define(F)] _dtype: StorageType) {
    if ABSOLUTE_POS >= output.len() {
        terminate!();
    }
    let value = f32::cast_from(x[ABSOLUTE_POS]);
    let cdf = (Erf::erf(value * f32::new(core::f32::consts::FRAC_1_SQRT_2)) + 1.0) * 0.5;
    output[ABSOLUTE_POS] = F::cast_from(value * cdf);
}

/// `grad · (Φ(x) + x·φ(x))`, `φ(x) = e^{−x²/2}/√(2π)`.
#[cube(launch)]
fn gelu_backward_kernel<F: Float>(
    x: &Tensor<F>,
    grad: &Tensor<F>,
    grad_x: &mut Tensor<F>,
    #[define(F)] _dtype: StorageType,
) {
    if ABSOLUTE_POS >= grad_x.len() {
        terminate!();
    }
    let value = f32::cast_from(x[ABSOLUTE_POS]);
    let cdf = (Erf::erf(value * f32::new(core::f32::consts::FRAC_1_SQRT_2)) + 1.0) * 0.5;
    let pdf = f32::exp(value * value * -0.5) * f32::new(0.398_942_3);
    let slope = cdf + value * pdf;
    grad_x[ABSOLUTE_POS] = F::cast_from(f32::cast_from(grad[ABSOLUTE_POS]) * slope);
}

/// GELU of `x`.
pub fn forward<R: CubeRuntime>(x: CubeTensor<R>) -> CubeTensor<R> {
    let x = into_contiguous(x);
    let output = empty_like(&x, x.meta.shape());
    let (cube_count, cube_dim) = one_thread_each(&x, output.meta.num_elements());
    let dtype = x.dtype;
    gelu_kernel::launch::<R>(
        &output.client,
        cube_count,
        cube_dim,
        x.into_tensor_arg(),
        output.clone().into_tensor_arg(),
        dtype.into(),
    );
    output
}

/// The gradient of `x` from the output gradient.
pub fn backward<R: CubeRuntime>(x: CubeTensor<R>, grad: CubeTensor<R>) -> CubeTensor<R> {
    let (x, grad) = (into_contiguous(x), into_contiguous(grad));
    let grad_x = empty_like(&x, x.meta.shape());
    let (cube_count, cube_dim) = one_thread_each(&x, grad_x.meta.num_elements());
    let dtype = x.dtype;
    gelu_backward_kernel::launch::<R>(
        &grad_x.client,
        cube_count,
        cube_dim,
        x.into_tensor_arg(),
        grad.into_tensor_arg(),
        grad_x.clone().into_tensor_arg(),
        dtype.into(),
    );
    grad_x
}

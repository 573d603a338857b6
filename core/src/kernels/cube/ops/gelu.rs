//! GELU's GPU kernels as a burn operation (forward, and its backward pass in the autodiff
//! graph).

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};

use super::super::activation;
use super::super::dispatch::{dispatch, is_autodiff, takes, OnCube, Tracked};
use crate::kernels::autodiff::{self, KernelBackward};
use crate::kernels::route;

/// Exact GELU with the GPU kernels when `B` is a GPU backend (with or without `Autodiff`);
/// otherwise `x` is handed back.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Result<Tensor<B, D>, Tensor<B, D>> {
    if !takes(x.dtype()) {
        return Err(x);
    }
    dispatch::<B, _>(GeluCall { x })
}

/// A GELU's call.
struct GeluCall<B: Backend, const D: usize> {
    x: Tensor<B, D>,
}

impl<B: Backend, const D: usize> OnCube<B> for GeluCall<B, D> {
    type Output = Result<Tensor<B, D>, Tensor<B, D>>;

    fn decline(self) -> Self::Output {
        Err(self.x)
    }

    fn on<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(self) -> Self::Output {
        if !is_autodiff::<B, R, F, I, BT>() {
            let x: CubeTensor<R> = route::primitive(self.x);
            return Ok(route::tensor(activation::forward(x)));
        }
        let x: Tracked<R, F, I, BT> = route::primitive(self.x);
        let output = activation::forward(x.primitive.clone());
        Ok(route::tensor(autodiff::track(
            GeluBackward,
            [&x],
            &[&x],
            output,
        )))
    }
}

/// The backward pass of GELU on a GPU backend.
#[derive(Debug)]
struct GeluBackward;

/// Kept and parent: `[x]`.
impl<R, F, I, BT> KernelBackward<CubeBackend<R, F, I, BT>> for GeluBackward
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    fn gradients(
        &self,
        kept: &[CubeTensor<R>],
        grad: &CubeTensor<R>,
        _wanted: &[bool],
    ) -> Vec<Option<CubeTensor<R>>> {
        vec![Some(activation::backward(kept[0].clone(), grad.clone()))]
    }
}

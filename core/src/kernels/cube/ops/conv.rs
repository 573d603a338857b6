//! The depthwise convolution's GPU kernels as burn operations (forward, and its backward pass
//! in the autodiff graph).

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};

use super::super::depthwise;
use super::super::dispatch::{dispatch, is_autodiff, takes, OnCube, Tracked};
use crate::kernels::autodiff::{self, KernelBackward};
use crate::kernels::plan::{ConvKind, ConvPlan};
use crate::kernels::{route, Declined};

/// Runs `plan` with a GPU kernel when `B` is a GPU backend and a kernel here covers the case;
/// otherwise hands the tensors back.
pub fn conv<B: Backend>(
    plan: &ConvPlan,
    x: Tensor<B, 5>,
    weight: Tensor<B, 5>,
    bias: Option<Tensor<B, 1>>,
) -> Result<Tensor<B, 5>, Declined<B>> {
    let covered = plan.kind == ConvKind::Depthwise
        && [x.dtype(), weight.dtype()]
            .into_iter()
            .chain(bias.as_ref().map(Tensor::dtype))
            .all(takes);
    if !covered {
        return Err((x, weight, bias));
    }
    dispatch::<B, _>(DepthwiseCall {
        plan,
        x,
        weight,
        bias,
    })
}

/// A depthwise convolution's call.
struct DepthwiseCall<'a, B: Backend> {
    plan: &'a ConvPlan,
    x: Tensor<B, 5>,
    weight: Tensor<B, 5>,
    bias: Option<Tensor<B, 1>>,
}

impl<B: Backend> OnCube<B> for DepthwiseCall<'_, B> {
    type Output = Result<Tensor<B, 5>, Declined<B>>;

    fn decline(self) -> Self::Output {
        Err((self.x, self.weight, self.bias))
    }

    fn on<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(self) -> Self::Output {
        let Self {
            plan,
            x,
            weight,
            bias,
        } = self;
        let output_dims = plan.output_dims();
        if !is_autodiff::<B, R, F, I, BT>() {
            let x: CubeTensor<R> = route::primitive(x);
            let weight: CubeTensor<R> = route::primitive(weight);
            let bias: Option<CubeTensor<R>> = bias.map(route::primitive);
            let output = depthwise::forward(&plan.shape, output_dims, x, weight, bias);
            return Ok(route::tensor(output));
        }
        let x: Tracked<R, F, I, BT> = route::primitive(x);
        let weight: Tracked<R, F, I, BT> = route::primitive(weight);
        let bias: Option<Tracked<R, F, I, BT>> = bias.map(route::primitive);
        let output = depthwise::forward(
            &plan.shape,
            output_dims,
            x.primitive.clone(),
            weight.primitive.clone(),
            bias.as_ref().map(|b| b.primitive.clone()),
        );
        let op = DepthwiseBackward { plan: plan.clone() };
        Ok(route::tensor(autodiff::track_with_bias(
            op,
            [&x, &weight],
            bias.as_ref(),
            output,
        )))
    }
}

/// The backward pass of a depthwise convolution on a GPU backend.
#[derive(Debug)]
struct DepthwiseBackward {
    plan: ConvPlan,
}

/// Kept: `[input, weight]`; parents: `[input, weight]` or `[input, weight, bias]`.
impl<R, F, I, BT> KernelBackward<CubeBackend<R, F, I, BT>> for DepthwiseBackward
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
        wanted: &[bool],
    ) -> Vec<Option<CubeTensor<R>>> {
        let [x, weight] = kept else {
            unreachable!("a convolution keeps its input and weight")
        };
        let shape = &self.plan.shape;
        let input_dims = [
            shape.batch,
            shape.in_channels,
            shape.input[0],
            shape.input[1],
            shape.input[2],
        ];
        let input = wanted[0]
            .then(|| depthwise::backward_input(shape, input_dims, weight.clone(), grad.clone()));
        let with_bias = wanted.get(2).is_some_and(|&want| want);
        let (weight_grad, bias_grad) = if wanted[1] || with_bias {
            let weight_dims = [
                shape.out_channels,
                1,
                shape.kernel[0],
                shape.kernel[1],
                shape.kernel[2],
            ];
            let (weight_grad, bias_grad) =
                depthwise::backward_weight(shape, weight_dims, x.clone(), grad.clone(), with_bias);
            (wanted[1].then_some(weight_grad), bias_grad)
        } else {
            (None, None)
        };
        vec![input, weight_grad, bias_grad]
    }
}

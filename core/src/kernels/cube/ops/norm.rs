//! The normalisations' GPU kernels as burn operations: training-mode batch normalisation and
//! LayerNorm, forward and their backward pass in the autodiff graph.

use burn::backend::Autodiff;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};

use super::super::batch_norm;
use super::super::dispatch::{dispatch, is_autodiff, takes, OnCube, Tracked};
use super::super::layer_norm as channel_norm;
use crate::kernels::autodiff::{self, KernelBackward};
use crate::kernels::route;

/// A normalised tensor and the batch's mean and biased variance (`[C]`, not tracked).
pub type Normalised<B, const D: usize> = (Tensor<B, D>, [Tensor<B, 1>; 2]);

/// Training-mode batch normalisation of `x` `[N, C, …]` with the GPU kernels when `B` is
/// `Autodiff` over a GPU backend: the output and the batch's mean and biased variance (`[C]`,
/// not tracked). Otherwise `x` is handed back.
pub fn batch_norm_training<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f64,
) -> Result<Normalised<B, D>, Tensor<B, D>> {
    let supported = [x.dtype(), gamma.dtype(), beta.dtype()]
        .into_iter()
        .all(takes);
    if D < 2 || !supported {
        return Err(x);
    }
    dispatch::<B, _>(BatchNormCall {
        x,
        gamma,
        beta,
        eps,
    })
}

/// A training-mode batch normalisation's call.
struct BatchNormCall<B: Backend, const D: usize> {
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f64,
}

impl<B: Backend, const D: usize> OnCube<B> for BatchNormCall<B, D> {
    type Output = Result<Normalised<B, D>, Tensor<B, D>>;

    fn decline(self) -> Self::Output {
        Err(self.x)
    }

    fn on<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(self) -> Self::Output {
        if !is_autodiff::<B, R, F, I, BT>() {
            return Err(self.x);
        }
        let dims = self.x.dims();
        let dims = [dims[0], dims[1], dims[2..].iter().product()];
        let x: Tracked<R, F, I, BT> = route::primitive(self.x);
        let gamma: Tracked<R, F, I, BT> = route::primitive(self.gamma);
        let beta: Tracked<R, F, I, BT> = route::primitive(self.beta);
        let (output, statistics) = batch_norm::forward(
            x.primitive.clone(),
            gamma.primitive.clone(),
            beta.primitive.clone(),
            dims,
            self.eps,
        );
        let untracked = |value: CubeTensor<R>| -> Tensor<B, 1> {
            route::tensor(
                <Autodiff<CubeBackend<R, F, I, BT>> as AutodiffBackend>::from_inner(value),
            )
        };
        let stats = [
            untracked(statistics.mean.clone()),
            untracked(statistics.var.clone()),
        ];
        let op = NormBackward {
            dims,
            statistics: NormStatistics::Batch(Box::new(statistics)),
        };
        let tracked = autodiff::track(op, [&x, &gamma, &beta], &[&x, &gamma], output);
        Ok((route::tensor(tracked), stats))
    }
}

/// LayerNorm of `x` with the GPU kernels when `B` is a GPU backend; otherwise `x` is handed
/// back. `dims` = `[N, C, V]` reads `x` as `N` blocks of `C` channels `V` values apart: the
/// channels of `[N, C, D, H, W]` are `[N, C, D·H·W]`, the last axis of `[N, L, C]` is
/// `[N·L, C, 1]`.
pub fn layer_norm<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    dims: [usize; 3],
    gamma: Tensor<B, 1>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
) -> Result<Tensor<B, D>, Tensor<B, D>> {
    let supported = [x.dtype(), gamma.dtype()]
        .into_iter()
        .chain(beta.as_ref().map(Tensor::dtype))
        .all(takes);
    if !supported {
        return Err(x);
    }
    dispatch::<B, _>(LayerNormCall {
        x,
        dims,
        gamma,
        beta,
        eps,
    })
}

/// A LayerNorm's call.
struct LayerNormCall<B: Backend, const D: usize> {
    x: Tensor<B, D>,
    dims: [usize; 3],
    gamma: Tensor<B, 1>,
    beta: Option<Tensor<B, 1>>,
    eps: f64,
}

impl<B: Backend, const D: usize> OnCube<B> for LayerNormCall<B, D> {
    type Output = Result<Tensor<B, D>, Tensor<B, D>>;

    fn decline(self) -> Self::Output {
        Err(self.x)
    }

    fn on<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(self) -> Self::Output {
        let dims = self.dims;
        if !is_autodiff::<B, R, F, I, BT>() {
            let (x, gamma): (CubeTensor<R>, CubeTensor<R>) =
                (route::primitive(self.x), route::primitive(self.gamma));
            let beta = self.beta.map(route::primitive);
            let (output, _) = channel_norm::forward(x, gamma, beta, dims, self.eps);
            return Ok(route::tensor(output));
        }
        let x: Tracked<R, F, I, BT> = route::primitive(self.x);
        let gamma: Tracked<R, F, I, BT> = route::primitive(self.gamma);
        let beta: Option<Tracked<R, F, I, BT>> = self.beta.map(route::primitive);
        let (output, statistics) = channel_norm::forward(
            x.primitive.clone(),
            gamma.primitive.clone(),
            beta.as_ref().map(|b| b.primitive.clone()),
            dims,
            self.eps,
        );
        let op = NormBackward {
            dims,
            statistics: NormStatistics::Voxel(Box::new(statistics)),
        };
        let tracked = autodiff::track_with_bias(op, [&x, &gamma], beta.as_ref(), output);
        Ok(route::tensor(tracked))
    }
}

/// The statistics a normalisation keeps for its backward pass.
enum NormStatistics<R: CubeRuntime> {
    /// Batch normalisation: per channel.
    Batch(Box<batch_norm::Statistics<R>>),
    /// LayerNorm over the channels: per `(n, v)`.
    Voxel(Box<channel_norm::VoxelStatistics<R>>),
}

/// The backward pass of a batch normalisation or a LayerNorm on a GPU backend.
struct NormBackward<R: CubeRuntime> {
    dims: [usize; 3],
    statistics: NormStatistics<R>,
}

impl<R: CubeRuntime> core::fmt::Debug for NormBackward<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let kind = match self.statistics {
            NormStatistics::Batch(_) => "batch",
            NormStatistics::Voxel(_) => "layer",
        };
        f.debug_struct("NormBackward")
            .field("kind", &kind)
            .field("dims", &self.dims)
            .finish()
    }
}

/// Kept: `[x, γ]`; parents: `[x, γ]` or `[x, γ, β]`.
impl<R, F, I, BT> KernelBackward<CubeBackend<R, F, I, BT>> for NormBackward<R>
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
        let [x, gamma] = kept else {
            unreachable!("a normalisation keeps its input and γ")
        };
        let (x, gamma, grad) = (x.clone(), gamma.clone(), grad.clone());
        let gradients = match &self.statistics {
            NormStatistics::Batch(statistics) => {
                batch_norm::backward(x, gamma, grad, statistics, self.dims, wanted[0]).map(Some)
            }
            NormStatistics::Voxel(statistics) => {
                channel_norm::backward(x, gamma, grad, statistics, self.dims, wanted[0])
            }
        };
        gradients
            .into_iter()
            .zip(wanted.iter().chain([&false]))
            .map(|(gradient, &want)| gradient.filter(|_| want))
            .collect()
    }
}

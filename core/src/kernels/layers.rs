//! Generic entry points of the activation, normalisation and attention kernels ([`gelu`],
//! [`instance_norm`], [`channel_layer_norm`], [`batch_norm_training`], [`attention_qkv`]), and
//! their backward passes in the autodiff graph.

use burn::backend::flex::FlexTensor;
use burn::nn::conv::Conv3d;
use burn::nn::{InstanceNorm, LayerNorm, PaddingConfig3d};
use burn::tensor::activation;
use burn::tensor::backend::Backend;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Tensor, TensorData};

use super::attention::{self, AttentionShape};
use super::autodiff::{self, AutodiffTensor, KernelBackward};
use super::plan::ConvPlan;
use super::route::{self, flex_tensor, values, Route};
use super::{activation as act, conv3d_module, enabled, norm};

/// Epsilon of the channel LayerNorms built by this crate (burn's `LayerNormConfig` default,
/// PyTorch's `nn.LayerNorm` default; burn keeps a LayerNorm's epsilon private, so the models
/// build theirs with this value and [`channel_layer_norm`] uses it).
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// A single-input operation: the kernel's forward pass on the CPU backends, burn's otherwise.
fn single_input<B: Backend, const D: usize, O: KernelBackward>(
    x: Tensor<B, D>,
    op: O,
    forward: impl Fn(&FlexTensor) -> FlexTensor,
    burn_op: impl FnOnce(Tensor<B, D>) -> Tensor<B, D>,
) -> Tensor<B, D> {
    match (enabled(), route::route::<B>()) {
        (true, Route::Flex) => {
            let x: FlexTensor = route::primitive(x);
            if !route::all_f32([&x]) {
                return burn_op(route::tensor(x));
            }
            route::tensor(forward(&x))
        }
        (true, Route::AutodiffFlex) => {
            let x: AutodiffTensor = route::primitive(x);
            if !route::all_f32([&x.primitive]) {
                return burn_op(route::tensor(x));
            }
            let output = forward(&x.primitive);
            route::tensor(autodiff::track(op, [&x], &[&x], output))
        }
        _ => burn_op(x),
    }
}

/// GELU (exact, erf form).
#[derive(Debug)]
struct Gelu;

impl KernelBackward for Gelu {
    fn gradients(
        &self,
        kept: &[FlexTensor],
        grad: &FlexTensor,
        _wanted: &[bool],
    ) -> Vec<Option<FlexTensor>> {
        let dx = act::gelu_backward(&values(&kept[0]), &values(grad));
        vec![Some(flex_tensor(dx, kept[0].layout().shape()))]
    }
}

/// `burn::tensor::activation::gelu` through the kernel on the CPU backends.
pub fn gelu<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    let x = match super::cube::gelu(x) {
        Ok(output) => return output,
        Err(x) => x,
    };
    let forward = |x: &FlexTensor| flex_tensor(act::gelu(&values(x)), x.layout().shape());
    single_input(x, Gelu, forward, activation::gelu)
}

/// Instance normalisation without affine parameters over `[N, C, …]`, `volume` values per
/// channel.
#[derive(Debug)]
struct InstanceNormOp {
    voxels: usize,
    eps: f64,
}

impl KernelBackward for InstanceNormOp {
    fn gradients(
        &self,
        kept: &[FlexTensor],
        grad: &FlexTensor,
        _wanted: &[bool],
    ) -> Vec<Option<FlexTensor>> {
        let dx =
            norm::instance_norm_backward(&values(&kept[0]), &values(grad), self.voxels, self.eps);
        vec![Some(flex_tensor(dx, kept[0].layout().shape()))]
    }
}

/// `norm.forward(x)`; through the kernel when `norm` has no affine parameters.
pub fn instance_norm<B: Backend, const D: usize>(
    norm: &InstanceNorm<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    if norm.affine || D < 3 {
        return norm.forward(x);
    }
    let voxels = x.dims()[2..].iter().product();
    let op = InstanceNormOp {
        voxels,
        eps: norm.epsilon,
    };
    let eps = norm.epsilon;
    let forward = move |x: &FlexTensor| {
        flex_tensor(
            norm::instance_norm(&values(x), voxels, eps),
            x.layout().shape(),
        )
    };
    single_input(x, op, forward, |x| norm.forward(x))
}

/// Over which axes an affine normalisation takes its statistics.
#[derive(Clone, Copy, Debug)]
enum NormAxes {
    /// Over the channels of each voxel (layer norm).
    Channels,
    /// Over samples and voxels, per channel (training-mode batch norm).
    Batch,
}

/// A normalisation scaled by `gamma` and shifted by `beta` over `[N, C, V]`; keeps the input and
/// `gamma`, parents `[input, gamma]` or `[input, gamma, beta]`.
#[derive(Debug)]
struct AffineNormOp {
    axes: NormAxes,
    dims: [usize; 3],
    eps: f64,
}

impl KernelBackward for AffineNormOp {
    fn gradients(
        &self,
        kept: &[FlexTensor],
        grad: &FlexTensor,
        wanted: &[bool],
    ) -> Vec<Option<FlexTensor>> {
        let [x, gamma] = kept else {
            unreachable!("an affine normalisation keeps its input and scale")
        };
        let backward = match self.axes {
            NormAxes::Channels => norm::channel_layer_norm_backward,
            NormAxes::Batch => norm::batch_norm_backward,
        };
        let (dx, dgamma, dbeta) = backward(
            &values(x),
            &values(grad),
            self.dims,
            &values(gamma),
            self.eps,
        );
        let channels = self.dims[1];
        vec![
            wanted[0].then(|| flex_tensor(dx, x.layout().shape())),
            wanted[1].then(|| flex_tensor(dgamma, &[channels])),
            wanted
                .get(2)
                .is_some_and(|&w| w)
                .then(|| flex_tensor(dbeta, &[channels])),
        ]
    }
}

/// `norm` (built with [`LAYER_NORM_EPS`]) over the channel axis of `[N, C, D, H, W]`.
pub fn channel_layer_norm<B: Backend>(norm: &LayerNorm<B>, x: Tensor<B, 5>) -> Tensor<B, 5> {
    let burn_op = |x: Tensor<B, 5>| {
        norm.forward(x.permute([0, 2, 3, 4, 1]))
            .permute([0, 4, 1, 2, 3])
    };
    let [batch, channels, d, h, w] = x.dims();
    let dims = [batch, channels, d * h * w];
    let gamma = norm.gamma.val();
    let beta = norm.beta.as_ref().map(|b| b.val());
    let forward = |x: &FlexTensor, gamma: &FlexTensor, beta: Option<&FlexTensor>| {
        let beta_values = beta.map(values);
        let out = norm::channel_layer_norm(
            &values(x),
            dims,
            &values(gamma),
            beta_values.as_deref(),
            LAYER_NORM_EPS,
        );
        flex_tensor(out, x.layout().shape())
    };
    match (enabled(), route::route::<B>()) {
        (true, Route::Flex) => {
            let (x, gamma): (FlexTensor, FlexTensor) =
                (route::primitive(x), route::primitive(gamma));
            let beta: Option<FlexTensor> = beta.map(route::primitive);
            if !route::all_f32([&x, &gamma].into_iter().chain(beta.as_ref())) {
                return burn_op(route::tensor(x));
            }
            route::tensor(forward(&x, &gamma, beta.as_ref()))
        }
        (true, Route::AutodiffFlex) => {
            let (x, gamma): (AutodiffTensor, AutodiffTensor) =
                (route::primitive(x), route::primitive(gamma));
            let beta: Option<AutodiffTensor> = beta.map(route::primitive);
            let primitives = [&x.primitive, &gamma.primitive];
            if !route::all_f32(
                primitives
                    .into_iter()
                    .chain(beta.as_ref().map(|b| &b.primitive)),
            ) {
                return burn_op(route::tensor(x));
            }
            let output = forward(
                &x.primitive,
                &gamma.primitive,
                beta.as_ref().map(|b| &b.primitive),
            );
            let tracked = autodiff::track_with_bias(
                AffineNormOp {
                    axes: NormAxes::Channels,
                    dims,
                    eps: LAYER_NORM_EPS,
                },
                [&x, &gamma],
                beta.as_ref(),
                output,
            );
            route::tensor(tracked)
        }
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        _ => super::cube::layer_norm(x, dims, gamma, beta, LAYER_NORM_EPS).unwrap_or_else(burn_op),
        #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
        _ => burn_op(x),
    }
}

/// `norm.forward(tokens)` over the last axis of `[N, L, C]`, `norm` built with epsilon `eps`
/// (burn keeps it private); through the GPU kernels on the GPU backends, burn's operation
/// elsewhere.
pub fn token_layer_norm<B: Backend>(
    norm: &LayerNorm<B>,
    tokens: Tensor<B, 3>,
    eps: f64,
) -> Tensor<B, 3> {
    #[cfg(any(feature = "wgpu", feature = "cuda"))]
    {
        let [batch, length, channels] = tokens.dims();
        let gamma = norm.gamma.val();
        let beta = norm.beta.as_ref().map(|b| b.val());
        let dims = [batch * length, channels, 1];
        super::cube::layer_norm(tokens, dims, gamma, beta, eps)
            .unwrap_or_else(|tokens| norm.forward(tokens))
    }
    #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
    {
        let _ = eps;
        norm.forward(tokens)
    }
}

/// The statistics of one training-mode batch normalisation, per channel (`[C]`, not tracked).
#[derive(Clone, Debug)]
pub struct BatchStatistics<B: Backend> {
    /// Mean over samples and voxels.
    pub mean: Tensor<B, 1>,
    /// Biased variance over samples and voxels.
    pub var: Tensor<B, 1>,
}

/// `(x − mean)/√(var + eps)·γ + β` with the batch's own statistics over `[N, C, …]` (training
/// mode), and those statistics; through the kernels on the autodiff CPU backend and on
/// `Autodiff` over the GPU backends. Elsewhere the input is handed back (`Err`) for the caller's
/// generic version.
pub fn batch_norm_training<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    gamma: Tensor<B, 1>,
    beta: Tensor<B, 1>,
    eps: f64,
) -> Result<(Tensor<B, D>, BatchStatistics<B>), Tensor<B, D>> {
    if !enabled() || D < 2 {
        return Err(x);
    }
    if route::route::<B>() != Route::AutodiffFlex {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        return super::cube::batch_norm_training(x, gamma, beta, eps)
            .map(|(output, [mean, var])| (output, BatchStatistics { mean, var }));
        #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
        return Err(x);
    }
    let device = x.device();
    let dims = x.dims();
    let dims = [dims[0], dims[1], dims[2..].iter().product()];
    let x: AutodiffTensor = route::primitive(x);
    let (gamma, beta): (AutodiffTensor, AutodiffTensor) =
        (route::primitive(gamma), route::primitive(beta));
    if !route::all_f32([&x.primitive, &gamma.primitive, &beta.primitive]) {
        return Err(route::tensor(x));
    }
    let (out, mean, var) = norm::batch_norm(
        &values(&x.primitive),
        dims,
        &values(&gamma.primitive),
        &values(&beta.primitive),
        eps,
    );
    let output = flex_tensor(out, x.primitive.layout().shape());
    let tracked = autodiff::track(
        AffineNormOp {
            axes: NormAxes::Batch,
            dims,
            eps,
        },
        [&x, &gamma, &beta],
        &[&x, &gamma],
        output,
    );
    let statistic =
        |values: Vec<f32>| Tensor::<B, 1>::from_data(TensorData::new(values, [dims[1]]), &device);
    let statistics = BatchStatistics {
        mean: statistic(mean),
        var: statistic(var),
    };
    Ok((route::tensor(tracked), statistics))
}

/// Attention from the joint `qkv` projection; keeps its output and log-sum-exp for the
/// backward pass.
#[derive(Debug)]
struct AttentionOp {
    shape: AttentionShape,
    output: FlexTensor,
    lse: Vec<f32>,
}

impl KernelBackward for AttentionOp {
    fn gradients(
        &self,
        kept: &[FlexTensor],
        grad: &FlexTensor,
        _wanted: &[bool],
    ) -> Vec<Option<FlexTensor>> {
        let qkv = &kept[0];
        let dqkv = attention::backward(
            &self.shape,
            &values(qkv),
            &values(&self.output),
            &self.lse,
            &values(grad),
        );
        vec![Some(flex_tensor(dqkv, qkv.layout().shape()))]
    }
}

/// Multi-head self-attention `softmax(Q·Kᵀ/√d)·V` from `qkv` (`[N, L, 3C]`, the last axis laid
/// out `[3][heads][C/heads]`) to `[N, L, C]`; `burn_op` is the same computation in burn's
/// operations, used on the other backends.
pub fn attention_qkv<B: Backend>(
    qkv: Tensor<B, 3>,
    heads: usize,
    burn_op: impl FnOnce(Tensor<B, 3>) -> Tensor<B, 3>,
) -> Tensor<B, 3> {
    let [batch, tokens, width] = qkv.dims();
    if heads == 0 || width % (3 * heads) != 0 || !enabled() {
        return burn_op(qkv);
    }
    let shape = AttentionShape {
        batch,
        tokens,
        heads,
        head_dim: width / (3 * heads),
    };
    let out_shape = [batch, tokens, width / 3];
    match route::route::<B>() {
        Route::Flex => {
            let qkv: FlexTensor = route::primitive(qkv);
            if !route::all_f32([&qkv]) {
                return burn_op(route::tensor(qkv));
            }
            let (out, _) = attention::forward(&shape, &values(&qkv));
            route::tensor(flex_tensor(out, &out_shape))
        }
        Route::AutodiffFlex => {
            let qkv: AutodiffTensor = route::primitive(qkv);
            if !route::all_f32([&qkv.primitive]) {
                return burn_op(route::tensor(qkv));
            }
            let (out, lse) = attention::forward(&shape, &values(&qkv.primitive));
            let output = flex_tensor(out, &out_shape);
            let op = AttentionOp {
                shape,
                output: output.clone(),
                lse,
            };
            route::tensor(autodiff::track(op, [&qkv], &[&qkv], output))
        }
        Route::Burn => burn_op(qkv),
    }
}

/// `conv(GELU(h))` for a convolution the kernels cover; keeps `h` (not `GELU(h)`) and
/// recomputes the activation in the backward pass.
#[derive(Debug)]
struct GeluConvOp {
    plan: ConvPlan,
}

impl KernelBackward for GeluConvOp {
    fn gradients(
        &self,
        kept: &[FlexTensor],
        grad: &FlexTensor,
        wanted: &[bool],
    ) -> Vec<Option<FlexTensor>> {
        let [hidden, weight] = kept else {
            unreachable!("the fused activation keeps its input and the weight")
        };
        let hidden_values = values(hidden);
        let activated = flex_tensor(act::gelu(&hidden_values), hidden.layout().shape());
        let mut gradients = self.plan.gradients(
            &[activated, weight.clone()],
            grad,
            &[true, wanted[1], wanted.get(2) == Some(&true)],
        );
        gradients[0] = gradients[0]
            .take()
            .filter(|_| wanted[0])
            .map(|activated_grad| {
                flex_tensor(
                    act::gelu_backward(&hidden_values, &values(&activated_grad)),
                    hidden.layout().shape(),
                )
            });
        gradients
    }
}

/// `conv3d_module(conv, gelu(hidden))` — the UniFormer's convolutional MLP — keeping only the
/// pre-activation for the backward pass on the autodiff CPU backend (the activation is 4× the
/// block's channels: 680 MB per block for six 96³ crops at stage 1).
pub fn gelu_conv<B: Backend>(hidden: Tensor<B, 5>, conv: &Conv3d<B>) -> Tensor<B, 5> {
    let options = ConvOptions::new(conv.stride, [0, 0, 0], conv.dilation, conv.groups);
    let plan = ConvPlan::conv(hidden.dims(), conv.weight.dims(), &options);
    let unpadded = conv.padding == PaddingConfig3d::Valid
        || conv.padding == PaddingConfig3d::Explicit(0, 0, 0);
    let (Some(plan), true, true, Route::AutodiffFlex) =
        (plan, unpadded, enabled(), route::route::<B>())
    else {
        return conv3d_module(conv, gelu(hidden));
    };
    let hidden: AutodiffTensor = route::primitive(hidden);
    let weight: AutodiffTensor = route::primitive(conv.weight.val());
    let bias: Option<AutodiffTensor> = conv.bias.as_ref().map(|b| route::primitive(b.val()));
    let primitives = [&hidden.primitive, &weight.primitive];
    if !route::all_f32(
        primitives
            .into_iter()
            .chain(bias.as_ref().map(|b| &b.primitive)),
    ) {
        return conv3d_module(conv, gelu(route::tensor(hidden)));
    }
    let activated = flex_tensor(
        act::gelu(&values(&hidden.primitive)),
        hidden.primitive.layout().shape(),
    );
    let output = plan.forward_tensor(
        &activated,
        &weight.primitive,
        bias.as_ref().map(|b| &b.primitive),
    );
    drop(activated);
    let tracked = autodiff::track_with_bias(
        GeluConvOp { plan },
        [&hidden, &weight],
        bias.as_ref(),
        output,
    );
    route::tensor(tracked)
}

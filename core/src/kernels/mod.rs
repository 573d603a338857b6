//! CPU kernels for the operations that hold the time of the models on burn's CPU backend
//! (burn-flex), reached from the generic model code through [`conv3d`] and
//! [`conv_transpose3d`].
//!
//! burn-flex 0.21 runs every 3-D convolution that is not `1×1×1` through one generic path
//! (a single-threaded layout change, then per group and tile an im2col copy and a small matrix
//! product), and burn's default backward of a grouped convolution runs one convolution per
//! channel. The UniFormer's depthwise `3³`/`5³` convolutions, its `k2 s2` patch embeddings,
//! the decoders' transposed `2³` convolutions and the UniUnet's `3³` convolutions all take that
//! path (`bench/RESULTS.md` has the profile). The kernels here cover those cases:
//!
//! | case | kernel |
//! |---|---|
//! | stride 1, groups 1 (`3³` decoder convolutions) | [`dense`]: one strided matrix product per tap over padded planes |
//! | stride 1, depthwise | [`depthwise`]: vectorised row filters per channel |
//! | kernel = stride, no padding (patch embeddings) | [`patch`]: rearrangement + one matrix product |
//! | transposed, kernel = stride (decoder up-sampling) | [`patch`]: one matrix product + rearrangement |
//!
//! Each has its forward pass, input gradient and weight gradient, and the tests hold each to
//! burn's own operation. Beside them, [`gelu`], [`instance_norm`] and [`channel_layer_norm`]
//! replace burn's multi-pass (and, for the channel LayerNorm, transposing) versions of the
//! other memory-heavy layers ([`activation`], [`norm`]). They run when the backend is `Flex` (inference) or `Autodiff<Flex>`
//! (training; see [`autodiff`]) and the values are `f32`; any other case or backend (the GPU
//! backends, whose own kernels are fast) goes to burn's operation unchanged.
//! [`set_enabled`]`(false)` sends everything to burn's operations, for comparisons.

mod activation;
mod attention;
mod autodiff;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
pub mod cube;
mod dense;
mod depthwise;
mod gemm;
mod layers;
mod norm;
mod parallel;
mod patch;
mod plan;
mod route;
mod shape;
mod simd;

use core::sync::atomic::{AtomicBool, Ordering};

use burn::backend::flex::FlexTensor;
use burn::nn::conv::{Conv3d, ConvTranspose3d};
use burn::nn::PaddingConfig3d;
use burn::tensor::backend::Backend;
use burn::tensor::module;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::Tensor;

pub use layers::{
    attention_qkv, batch_norm_training, channel_layer_norm, gelu, gelu_conv, instance_norm,
    token_layer_norm, BatchStatistics, LAYER_NORM_EPS,
};
pub use plan::{ConvKind, ConvPlan};
pub use route::{route, Route};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns the kernels on (the default) or off (every call goes to burn's own operation), for
/// the whole process.
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

std::thread_local! {
    /// This thread's setting, over the process's while [`with_enabled`] runs.
    static THREAD_ENABLED: core::cell::Cell<Option<bool>> = const { core::cell::Cell::new(None) };
}

/// Whether the kernels are on (for this thread).
pub fn enabled() -> bool {
    THREAD_ENABLED
        .with(core::cell::Cell::get)
        .unwrap_or_else(|| ENABLED.load(Ordering::Relaxed))
}

/// Runs `work` with the kernels on or off on this thread only (other threads keep the process's
/// setting): for comparisons beside other work, such as tests running in parallel. The backward
/// pass of a graph built inside follows the setting its operations were recorded with.
pub fn with_enabled<T>(enabled: bool, work: impl FnOnce() -> T) -> T {
    let previous = THREAD_ENABLED.with(|cell| cell.replace(Some(enabled)));
    let result = work();
    THREAD_ENABLED.with(|cell| cell.set(previous));
    result
}

/// `burn::tensor::module::conv3d`, through a kernel of this module where one covers the case.
pub fn conv3d<B: Backend>(
    x: Tensor<B, 5>,
    weight: Tensor<B, 5>,
    bias: Option<Tensor<B, 1>>,
    options: ConvOptions<3>,
) -> Tensor<B, 5> {
    let plan = ConvPlan::conv(x.dims(), weight.dims(), &options);
    match plan {
        Some(plan) if enabled() => run(plan, x, weight, bias)
            .unwrap_or_else(|(x, weight, bias)| module::conv3d(x, weight, bias, options)),
        _ => module::conv3d(x, weight, bias, options),
    }
}

/// `burn::tensor::module::conv_transpose3d`, through a kernel of this module where one covers
/// the case.
pub fn conv_transpose3d<B: Backend>(
    x: Tensor<B, 5>,
    weight: Tensor<B, 5>,
    bias: Option<Tensor<B, 1>>,
    options: ConvTransposeOptions<3>,
) -> Tensor<B, 5> {
    let plan = ConvPlan::conv_transpose(x.dims(), weight.dims(), &options);
    match plan {
        Some(plan) if enabled() => run(plan, x, weight, bias)
            .unwrap_or_else(|(x, weight, bias)| module::conv_transpose3d(x, weight, bias, options)),
        _ => module::conv_transpose3d(x, weight, bias, options),
    }
}

/// [`Conv3d::forward`] through [`conv3d`].
pub fn conv3d_module<B: Backend>(conv: &Conv3d<B>, x: Tensor<B, 5>) -> Tensor<B, 5> {
    let padding = match &conv.padding {
        PaddingConfig3d::Valid => [0, 0, 0],
        PaddingConfig3d::Explicit(depth, height, width) => [*depth, *height, *width],
        PaddingConfig3d::Same => return conv.forward(x),
    };
    let options = ConvOptions::new(conv.stride, padding, conv.dilation, conv.groups);
    conv3d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        options,
    )
}

/// [`ConvTranspose3d::forward`] through [`conv_transpose3d`].
pub fn conv_transpose3d_module<B: Backend>(
    conv: &ConvTranspose3d<B>,
    x: Tensor<B, 5>,
) -> Tensor<B, 5> {
    let options = ConvTransposeOptions::new(
        conv.stride,
        conv.padding,
        conv.padding_out,
        conv.dilation,
        conv.groups,
    );
    conv_transpose3d(
        x,
        conv.weight.val(),
        conv.bias.as_ref().map(|b| b.val()),
        options,
    )
}

/// The tensors of a call, handed back when the kernels do not take it.
type Declined<B> = (Tensor<B, 5>, Tensor<B, 5>, Option<Tensor<B, 1>>);

/// Runs `plan` on the CPU backends; any other backend (or a type other than `f32`) is declined.
fn run<B: Backend>(
    plan: ConvPlan,
    x: Tensor<B, 5>,
    weight: Tensor<B, 5>,
    bias: Option<Tensor<B, 1>>,
) -> Result<Tensor<B, 5>, Declined<B>> {
    match route::<B>() {
        Route::Flex => {
            let x: FlexTensor = route::primitive(x);
            let weight: FlexTensor = route::primitive(weight);
            let bias: Option<FlexTensor> = bias.map(route::primitive);
            if !route::all_f32([&x, &weight].into_iter().chain(bias.as_ref())) {
                return Err(declined(x, weight, bias));
            }
            Ok(route::tensor(plan.forward_tensor(
                &x,
                &weight,
                bias.as_ref(),
            )))
        }
        Route::AutodiffFlex => {
            let x: autodiff::AutodiffTensor = route::primitive(x);
            let weight: autodiff::AutodiffTensor = route::primitive(weight);
            let bias: Option<autodiff::AutodiffTensor> = bias.map(route::primitive);
            let primitives = [&x.primitive, &weight.primitive];
            if !route::all_f32(
                primitives
                    .into_iter()
                    .chain(bias.as_ref().map(|b| &b.primitive)),
            ) {
                return Err(declined(x, weight, bias));
            }
            let output = plan.forward_tensor(
                &x.primitive,
                &weight.primitive,
                bias.as_ref().map(|b| &b.primitive),
            );
            let tracked = autodiff::track_with_bias(plan, [&x, &weight], bias.as_ref(), output);
            Ok(route::tensor(tracked))
        }
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        Route::Burn => cube::conv(&plan, x, weight, bias),
        #[cfg(not(any(feature = "wgpu", feature = "cuda")))]
        Route::Burn => Err((x, weight, bias)),
    }
}

/// The tensors of a declined call, back in backend `B`'s types.
fn declined<B: Backend, T: 'static>(x: T, weight: T, bias: Option<T>) -> Declined<B> {
    (
        route::tensor(x),
        route::tensor(weight),
        bias.map(route::tensor),
    )
}

#[cfg(test)]
mod tests;

//! The GPU kernels against burn's own operation, on burn's wgpu backend (in CI: Mesa's lavapipe,
//! Vulkan on the CPU): forward values, and the input, weight and bias gradients, for every
//! depthwise case of the CPU kernels' tests. The reference is burn's convolution on the CPU
//! backend, so the comparison also holds the two backends to each other.

use burn::backend::{Autodiff, Flex, Wgpu};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::module;
use burn::tensor::Tensor;

use super::super::tests::{case_tensors, conv_cases, tensor, Case};
use super::super::{conv3d, ConvKind, ConvPlan};
use super::serves;

/// Relative tolerance: the kernels sum in another order than burn's (f32 rounding only).
const TOLERANCE: f32 = 1e-5;

fn depthwise_cases() -> Vec<Case> {
    conv_cases()
        .into_iter()
        .filter(|case| {
            ConvPlan::conv(case.x, case.weight, &case.options)
                .is_some_and(|plan| plan.kind == ConvKind::Depthwise)
        })
        .collect()
}

fn flat<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 values")
}

/// Largest |a − b| relative to the largest |b| (at least 1).
fn relative_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

/// Gradients of `Σ out · r` for a fixed random `r`: `[input, weight, bias]`, flattened.
fn gradients<A: AutodiffBackend>(
    forward: impl Fn(Tensor<A, 5>, Tensor<A, 5>, Option<Tensor<A, 1>>) -> Tensor<A, 5>,
    (x, w, b): (Tensor<A, 5>, Tensor<A, 5>, Option<Tensor<A, 1>>),
) -> Vec<Vec<f32>> {
    let (x, w) = (x.require_grad(), w.require_grad());
    let b = b.map(|b| b.require_grad());
    let out = forward(x.clone(), w.clone(), b.clone());
    let weights = tensor::<A, 5>(out.dims(), 99);
    let grads = (out * weights).sum().backward();
    let mut result = vec![
        flat(x.grad(&grads).expect("input gradient")),
        flat(w.grad(&grads).expect("weight gradient")),
    ];
    if let Some(b) = b {
        result.push(flat(b.grad(&grads).expect("bias gradient")));
    }
    result
}

#[test]
fn the_gpu_backends_are_served() {
    assert!(serves::<Wgpu>());
    assert!(serves::<Autodiff<Wgpu>>());
    assert!(!serves::<Flex>());
    assert!(!serves::<Autodiff<Flex>>());
}

#[test]
fn depthwise_forward_on_wgpu_equals_burn() {
    let cases = depthwise_cases();
    assert!(cases.len() >= 3, "the depthwise cases of the CPU tests");
    for (index, case) in cases.iter().enumerate() {
        let seed = 30 * index as u64;
        let (x, w, b) = case_tensors::<Wgpu>(case, seed, case.weight[0]);
        let ours = flat(conv3d(x, w, b, case.options.clone()));
        let (x, w, b) = case_tensors::<Flex>(case, seed, case.weight[0]);
        let plain = flat(module::conv3d(x, w, b, case.options.clone()));
        let difference = relative_difference(&ours, &plain);
        assert!(
            difference < TOLERANCE,
            "{}: forward differs by {difference}",
            case.name
        );
    }
}

#[test]
fn depthwise_gradients_on_wgpu_equal_burn() {
    for (index, case) in depthwise_cases().iter().enumerate() {
        let seed = 30 * index as u64;
        let options = case.options.clone();
        let ours = gradients(
            |x, w, b| conv3d(x, w, b, options.clone()),
            case_tensors::<Autodiff<Wgpu>>(case, seed, case.weight[0]),
        );
        let plain = gradients(
            |x, w, b| module::conv3d(x, w, b, options.clone()),
            case_tensors::<Autodiff<Flex>>(case, seed, case.weight[0]),
        );
        assert_eq!(ours.len(), plain.len());
        for (part, (a, b)) in ["input", "weight", "bias"]
            .iter()
            .zip(ours.iter().zip(&plain))
        {
            let difference = relative_difference(a, b);
            assert!(
                difference < TOLERANCE,
                "{}: {part} gradient differs by {difference}",
                case.name
            );
        }
    }
}

/// The weight and bias gradients of `Σ out · r` with a constant input (no input gradient).
fn parameter_gradients<A: AutodiffBackend>(
    forward: impl Fn(Tensor<A, 5>, Tensor<A, 5>, Option<Tensor<A, 1>>) -> Tensor<A, 5>,
    (x, w, b): (Tensor<A, 5>, Tensor<A, 5>, Option<Tensor<A, 1>>),
) -> Vec<Vec<f32>> {
    let (w, b) = (w.require_grad(), b.map(Tensor::require_grad));
    let out = forward(x, w.clone(), b.clone());
    let weights = tensor::<A, 5>(out.dims(), 7);
    let grads = (out * weights).sum().backward();
    let mut parts = vec![flat(w.grad(&grads).expect("weight gradient"))];
    parts.extend(b.map(|b| flat(b.grad(&grads).expect("bias gradient"))));
    parts
}

/// Only the gradients the graph asks for: a constant input (the network's own input) still
/// gives the weight and bias gradients, equal to burn's.
#[test]
fn depthwise_weight_gradient_without_input_gradient_equals_burn() {
    let case = &depthwise_cases()[0];
    let options = case.options.clone();
    let ours = parameter_gradients(
        |x, w, b| conv3d(x, w, b, options.clone()),
        case_tensors::<Autodiff<Wgpu>>(case, 5, case.weight[0]),
    );
    let plain = parameter_gradients(
        |x, w, b| module::conv3d(x, w, b, options.clone()),
        case_tensors::<Autodiff<Flex>>(case, 5, case.weight[0]),
    );
    assert_eq!(ours.len(), 2, "weight and bias");
    for (a, b) in ours.iter().zip(&plain) {
        let difference = relative_difference(a, b);
        assert!(difference < TOLERANCE, "differs by {difference}");
    }
}

#[test]
fn training_batch_norm_on_wgpu_equals_the_formula() {
    super::super::tests::check_training_batch_norm::<Autodiff<Wgpu>>();
}

/// Three AdamW steps of the fused kernel on wgpu against burn's `AdamW` on the CPU backend:
/// parameters and both moments, from the same gradients, with weight decay.
#[test]
fn fused_adamw_on_wgpu_equals_burn_adamw() {
    use crate::optim::AdamWSettings;
    use burn::optim::{AdamW, AdamWState, SimpleOptimizer};

    let settings = AdamWSettings {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-8,
        weight_decay: 0.05,
    };
    let fused = settings.build();
    let burn_adamw: AdamW = burn::optim::AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .with_weight_decay(0.05)
        .build();
    let dims = [3, 5, 7];
    let mut ours: (Tensor<Wgpu, 3>, Option<AdamWState<Wgpu, 3>>) = (tensor(dims, 40), None);
    let mut theirs: (Tensor<Flex, 3>, Option<AdamWState<Flex, 3>>) = (tensor(dims, 40), None);
    for step in 0..3u64 {
        let lr = 1e-2 / (step + 1) as f64;
        let grad_ours = tensor::<Wgpu, 3>(dims, 50 + step);
        let grad_theirs = tensor::<Flex, 3>(dims, 50 + step);
        ours = fused.step(lr, ours.0, grad_ours, ours.1);
        theirs = burn_adamw.step(lr, theirs.0, grad_theirs, theirs.1);
    }
    let (ours_state, theirs_state) = (ours.1.expect("state"), theirs.1.expect("state"));
    assert_eq!(ours_state.momentum.time, 3);
    assert_eq!(theirs_state.momentum.time, 3);
    let pairs = [
        ("parameters", flat(ours.0), flat(theirs.0)),
        (
            "first moment",
            flat(ours_state.momentum.moment_1),
            flat(theirs_state.momentum.moment_1),
        ),
        (
            "second moment",
            flat(ours_state.momentum.moment_2),
            flat(theirs_state.momentum.moment_2),
        ),
    ];
    for (part, a, b) in pairs {
        let difference = relative_difference(&a, &b);
        assert!(difference < 1e-6, "{part} differ by {difference}");
    }
}

/// Output and gradients `[output, x, γ, β]` of a LayerNorm with random γ and β, run by `norm`
/// on `input` (`Σ out · r` for a fixed random `r`).
fn layer_norm_case<A: AutodiffBackend, const D: usize>(
    input_dims: [usize; D],
    channels: usize,
    eps: f64,
    norm: impl Fn(&burn::nn::LayerNorm<A>, Tensor<A, D>) -> Tensor<A, D>,
) -> Vec<Vec<f32>> {
    use burn::module::Param;
    let mut layer = burn::nn::LayerNormConfig::new(channels)
        .with_epsilon(eps)
        .init::<A>(&Default::default());
    layer.gamma = Param::from_tensor(tensor::<A, 1>([channels], 61).add_scalar(1.0));
    layer.beta = Some(Param::from_tensor(tensor::<A, 1>([channels], 62)));
    let x = tensor::<A, D>(input_dims, 60)
        .mul_scalar(3.0)
        .require_grad();
    let out = norm(&layer, x.clone());
    let grads = (out.clone() * tensor::<A, D>(input_dims, 63))
        .sum()
        .backward();
    let beta = layer.beta.as_ref().expect("β");
    vec![
        flat(out),
        flat(x.grad(&grads).expect("input gradient")),
        flat(layer.gamma.val().grad(&grads).expect("γ gradient")),
        flat(beta.val().grad(&grads).expect("β gradient")),
    ]
}

fn assert_parts_close(ours: &[Vec<f32>], plain: &[Vec<f32>], what: &str) {
    assert_eq!(ours.len(), plain.len());
    for (part, (a, b)) in ["output", "input gradient", "γ gradient", "β gradient"]
        .iter()
        .zip(ours.iter().zip(plain))
    {
        let difference = relative_difference(a, b);
        assert!(difference < 1e-5, "{what}: {part} differs by {difference}");
    }
}

#[test]
fn token_layer_norm_on_wgpu_equals_burn() {
    use super::super::token_layer_norm;
    let dims = [2, 9, 12];
    let ours = layer_norm_case::<Autodiff<Wgpu>, 3>(dims, 12, 1e-6, |norm, x| {
        token_layer_norm(norm, x, 1e-6)
    });
    let plain = layer_norm_case::<Autodiff<Flex>, 3>(dims, 12, 1e-6, |norm, x| norm.forward(x));
    assert_parts_close(&ours, &plain, "token LayerNorm");
}

#[test]
fn channel_layer_norm_on_wgpu_equals_burn() {
    use super::super::{channel_layer_norm, LAYER_NORM_EPS};
    let dims = [2, 6, 3, 4, 5];
    let eps_layer = |norm: &burn::nn::LayerNorm<Autodiff<Flex>>, x: Tensor<Autodiff<Flex>, 5>| {
        norm.forward(x.permute([0, 2, 3, 4, 1]))
            .permute([0, 4, 1, 2, 3])
    };
    let ours = layer_norm_case::<Autodiff<Wgpu>, 5>(dims, 6, LAYER_NORM_EPS, |norm, x| {
        channel_layer_norm(norm, x)
    });
    let plain = layer_norm_case::<Autodiff<Flex>, 5>(dims, 6, LAYER_NORM_EPS, eps_layer);
    assert_parts_close(&ours, &plain, "channel LayerNorm");
}

#[test]
fn gelu_on_wgpu_equals_burn() {
    use super::super::gelu;
    let run = |on_gpu: bool| -> Vec<Vec<f32>> {
        fn case<A: AutodiffBackend>(
            activation: impl Fn(Tensor<A, 3>) -> Tensor<A, 3>,
        ) -> Vec<Vec<f32>> {
            let dims = [3, 4, 50];
            let x = tensor::<A, 3>(dims, 70).mul_scalar(4.0).require_grad();
            let out = activation(x.clone());
            let grads = (out.clone() * tensor::<A, 3>(dims, 71)).sum().backward();
            vec![flat(out), flat(x.grad(&grads).expect("input gradient"))]
        }
        if on_gpu {
            case::<Autodiff<Wgpu>>(gelu)
        } else {
            case::<Autodiff<Flex>>(burn::tensor::activation::gelu)
        }
    };
    let (ours, plain) = (run(true), run(false));
    for (part, (a, b)) in ["output", "input gradient"]
        .iter()
        .zip(ours.iter().zip(&plain))
    {
        let difference = relative_difference(a, b);
        assert!(difference < 1e-5, "GELU {part} differs by {difference}");
    }
}

//! Every kernel against burn's own operation on the same backend: forward values on `Flex`,
//! and the input, weight and bias gradients on `Autodiff<Flex>`.

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::module;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Tensor, TensorData};

use super::*;

type Ad = Autodiff<Flex>;

/// Deterministic values in [-1, 1).
fn values(count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub(super) fn tensor<B: Backend, const D: usize>(dims: [usize; D], seed: u64) -> Tensor<B, D> {
    let count = dims.iter().product();
    Tensor::from_data(
        TensorData::new(values(count, seed), dims),
        &Default::default(),
    )
}

/// Largest |a − b| relative to the largest |b| (at least 1).
fn relative_difference<B: Backend, const D: usize>(a: Tensor<B, D>, b: Tensor<B, D>) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let a = a.into_data().to_vec::<f32>().unwrap();
    let b = b.into_data().to_vec::<f32>().unwrap();
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

/// A convolution case: input, weight, bias or not, options.
pub(super) struct Case {
    pub name: &'static str,
    pub x: [usize; 5],
    pub weight: [usize; 5],
    pub bias: bool,
    pub options: ConvOptions<3>,
}

pub(super) fn conv_cases() -> Vec<Case> {
    let options = |stride: usize, padding: [usize; 3], groups: usize| {
        ConvOptions::new([stride; 3], padding, [1, 1, 1], groups)
    };
    vec![
        Case {
            name: "dense 3³ pad 1",
            x: [2, 3, 6, 5, 7],
            weight: [4, 3, 3, 3, 3],
            bias: true,
            options: options(1, [1, 1, 1], 1),
        },
        Case {
            name: "dense 3³ no pad",
            x: [1, 5, 5, 6, 4],
            weight: [2, 5, 3, 3, 3],
            bias: false,
            options: options(1, [0, 0, 0], 1),
        },
        Case {
            name: "dense 1×3×5 mixed pad",
            x: [2, 2, 4, 5, 9],
            weight: [3, 2, 1, 3, 5],
            bias: true,
            options: options(1, [0, 1, 2], 1),
        },
        Case {
            name: "dense 3³ pad 2",
            x: [1, 2, 3, 3, 3],
            weight: [2, 2, 3, 3, 3],
            bias: true,
            options: options(1, [2, 2, 2], 1),
        },
        Case {
            name: "dense 1³",
            x: [2, 6, 3, 2, 4],
            weight: [5, 6, 1, 1, 1],
            bias: true,
            options: options(1, [0, 0, 0], 1),
        },
        Case {
            name: "depthwise 3³ pad 1",
            x: [2, 4, 5, 6, 7],
            weight: [4, 1, 3, 3, 3],
            bias: true,
            options: options(1, [1, 1, 1], 4),
        },
        Case {
            name: "depthwise 5³ pad 2",
            x: [2, 3, 6, 4, 5],
            weight: [3, 1, 5, 5, 5],
            bias: true,
            options: options(1, [2, 2, 2], 3),
        },
        Case {
            name: "depthwise 3³ no pad, no bias",
            x: [1, 2, 4, 5, 6],
            weight: [2, 1, 3, 3, 3],
            bias: false,
            options: options(1, [0, 0, 0], 2),
        },
        Case {
            name: "patch k2 s2",
            x: [2, 3, 4, 6, 8],
            weight: [5, 3, 2, 2, 2],
            bias: true,
            options: options(2, [0, 0, 0], 1),
        },
        Case {
            name: "patch k2 s2 no bias",
            x: [1, 1, 8, 4, 2],
            weight: [4, 1, 2, 2, 2],
            bias: false,
            options: options(2, [0, 0, 0], 1),
        },
    ]
}

/// Input, weight and (if the case has one) a bias of `bias_len` channels.
pub(super) fn case_tensors<B: Backend>(
    case: &Case,
    seed: u64,
    bias_len: usize,
) -> (Tensor<B, 5>, Tensor<B, 5>, Option<Tensor<B, 1>>) {
    let bias = case.bias.then(|| tensor::<B, 1>([bias_len], seed + 2));
    (tensor(case.x, seed), tensor(case.weight, seed + 1), bias)
}

#[test]
fn every_case_is_planned_as_its_kernel_family() {
    let kinds: Vec<ConvKind> = conv_cases()
        .iter()
        .map(|case| {
            ConvPlan::conv(case.x, case.weight, &case.options)
                .expect(case.name)
                .kind
        })
        .collect();
    use ConvKind::*;
    assert_eq!(
        kinds,
        [Dense, Dense, Dense, Dense, Patch, Depthwise, Depthwise, Depthwise, Patch, Patch]
    );
}

#[test]
fn uncovered_convolutions_are_left_to_burn() {
    let strided = ConvOptions::new([2, 2, 2], [1, 1, 1], [1, 1, 1], 1);
    assert!(ConvPlan::conv([1, 2, 8, 8, 8], [2, 2, 3, 3, 3], &strided).is_none());
    let dilated = ConvOptions::new([1, 1, 1], [1, 1, 1], [2, 2, 2], 1);
    assert!(ConvPlan::conv([1, 2, 8, 8, 8], [2, 2, 3, 3, 3], &dilated).is_none());
    let grouped = ConvOptions::new([1, 1, 1], [1, 1, 1], [1, 1, 1], 2);
    assert!(ConvPlan::conv([1, 4, 8, 8, 8], [4, 2, 3, 3, 3], &grouped).is_none());
    let odd_patch = ConvOptions::new([2, 2, 2], [0, 0, 0], [1, 1, 1], 1);
    assert!(ConvPlan::conv([1, 2, 7, 8, 8], [2, 2, 2, 2, 2], &odd_patch).is_none());
    let padded_transpose = ConvTransposeOptions::new([2, 2, 2], [1, 1, 1], [0, 0, 0], [1, 1, 1], 1);
    assert!(
        ConvPlan::conv_transpose([1, 2, 4, 4, 4], [2, 3, 2, 2, 2], &padded_transpose).is_none()
    );
}

#[test]
fn the_backends_are_routed() {
    assert_eq!(route::<Flex>(), Route::Flex);
    assert_eq!(route::<Ad>(), Route::AutodiffFlex);
}

#[test]
fn conv_forward_equals_burn() {
    for (index, case) in conv_cases().iter().enumerate() {
        let (x, w, b) = case_tensors::<Flex>(case, 10 * index as u64, case.weight[0]);
        let ours = conv3d(x.clone(), w.clone(), b.clone(), case.options.clone());
        let plain = module::conv3d(x, w, b, case.options.clone());
        let difference = relative_difference(ours, plain);
        assert!(
            difference < 1e-5,
            "{}: forward differs by {difference}",
            case.name
        );
    }
}

/// Gradients of `Σ out · r` for a fixed random `r`: `[input, weight, bias]`.
fn gradients(
    forward: impl Fn(Tensor<Ad, 5>, Tensor<Ad, 5>, Option<Tensor<Ad, 1>>) -> Tensor<Ad, 5>,
    (x, w, b): (Tensor<Ad, 5>, Tensor<Ad, 5>, Option<Tensor<Ad, 1>>),
) -> Vec<Tensor<Flex, 5>> {
    let (x, w) = (x.require_grad(), w.require_grad());
    let b = b.map(|b| b.require_grad());
    let out = forward(x.clone(), w.clone(), b.clone());
    let weights = tensor::<Ad, 5>(out.dims(), 99);
    let grads = (out * weights).sum().backward();
    let mut result = vec![
        x.grad(&grads).expect("input gradient"),
        w.grad(&grads).expect("weight gradient"),
    ];
    if let Some(b) = b {
        result.push(
            b.grad(&grads)
                .expect("bias gradient")
                .reshape([1, 1, 1, 1, -1]),
        );
    }
    result
}

#[test]
fn conv_gradients_equal_burn() {
    for (index, case) in conv_cases().iter().enumerate() {
        let inputs = || case_tensors::<Ad>(case, 10 * index as u64, case.weight[0]);
        let options = case.options.clone();
        let ours = gradients(|x, w, b| conv3d(x, w, b, options.clone()), inputs());
        let plain = gradients(|x, w, b| module::conv3d(x, w, b, options.clone()), inputs());
        for (part, (a, b)) in ["input", "weight", "bias"]
            .iter()
            .zip(ours.into_iter().zip(plain))
        {
            let difference = relative_difference(a, b);
            assert!(
                difference < 1e-5,
                "{}: {part} gradient differs by {difference}",
                case.name
            );
        }
    }
}

fn transpose_cases() -> Vec<(&'static str, [usize; 5], [usize; 5], bool)> {
    vec![
        ("transpose k2 s2", [2, 3, 2, 3, 4], [3, 5, 2, 2, 2], false),
        (
            "transpose k2 s2 bias",
            [1, 4, 3, 2, 2],
            [4, 2, 2, 2, 2],
            true,
        ),
        ("transpose 1×2×3", [2, 2, 3, 2, 2], [2, 3, 1, 2, 3], true),
    ]
}

#[test]
fn conv_transpose_forward_and_gradients_equal_burn() {
    for (index, (name, x_dims, w_dims, bias)) in transpose_cases().into_iter().enumerate() {
        let kernel = [w_dims[2], w_dims[3], w_dims[4]];
        let options = ConvTransposeOptions::new(kernel, [0, 0, 0], [0, 0, 0], [1, 1, 1], 1);
        let case = Case {
            name,
            x: x_dims,
            weight: w_dims,
            bias,
            options: ConvOptions::new([1; 3], [0; 3], [1; 3], 1),
        };
        assert_eq!(
            ConvPlan::conv_transpose(x_dims, w_dims, &options).map(|p| p.kind),
            Some(ConvKind::PatchTranspose)
        );
        let (x, w, b) = case_tensors::<Flex>(&case, 7 * index as u64, w_dims[1]);
        let ours = conv_transpose3d(x.clone(), w.clone(), b.clone(), options.clone());
        let plain = module::conv_transpose3d(x, w, b, options.clone());
        assert!(
            relative_difference(ours, plain) < 1e-5,
            "{name}: forward differs"
        );

        let inputs = || case_tensors::<Ad>(&case, 7 * index as u64, w_dims[1]);
        let ours = gradients(
            |x, w, b| conv_transpose3d(x, w, b, options.clone()),
            inputs(),
        );
        let plain = gradients(
            |x, w, b| module::conv_transpose3d(x, w, b, options.clone()),
            inputs(),
        );
        for (part, (a, b)) in ["input", "weight", "bias"]
            .iter()
            .zip(ours.into_iter().zip(plain))
        {
            let difference = relative_difference(a, b);
            assert!(
                difference < 1e-5,
                "{name}: {part} gradient differs by {difference}"
            );
        }
    }
}

#[test]
fn a_network_input_without_gradient_still_gives_the_weight_gradient() {
    let case = &conv_cases()[0];
    let (x, w, b) = case_tensors::<Ad>(case, 3, case.weight[0]);
    let w = w.require_grad();
    let out = conv3d(x, w.clone(), b, case.options.clone());
    let grads = out.sum().backward();
    assert!(w.grad(&grads).is_some());
}

/// `Σ out · r` gradients of `op` for the given parameters (each with its gradient).
fn layer_gradients<const D: usize>(
    op: impl Fn(Tensor<Ad, D>) -> Tensor<Ad, D>,
    x: Tensor<Ad, D>,
) -> Tensor<Flex, D> {
    let x = x.require_grad();
    let out = op(x.clone());
    let weights = tensor::<Ad, D>(out.dims(), 77);
    let grads = (out * weights).sum().backward();
    x.grad(&grads).expect("input gradient")
}

#[test]
fn gelu_forward_and_gradient_equal_burn() {
    let dims = [2, 5, 40_000];
    let x = tensor::<Flex, 3>(dims, 5).mul_scalar(4.0);
    let difference = relative_difference(gelu(x.clone()), burn::tensor::activation::gelu(x));
    assert!(difference < 2e-6, "forward differs by {difference}");
    let x = tensor::<Ad, 3>(dims, 5).mul_scalar(4.0);
    let ours = layer_gradients(gelu, x.clone());
    let plain = layer_gradients(burn::tensor::activation::gelu, x);
    let difference = relative_difference(ours, plain);
    assert!(difference < 2e-6, "gradient differs by {difference}");
}

#[test]
fn instance_norm_forward_and_gradient_equal_burn() {
    use burn::nn::InstanceNormConfig;
    let dims = [2, 3, 5, 6, 7];
    let norm_flex = InstanceNormConfig::new(3)
        .with_affine(false)
        .init::<Flex>(&Default::default());
    let x = tensor::<Flex, 5>(dims, 8).mul_scalar(3.0).add_scalar(1.5);
    let difference =
        relative_difference(instance_norm(&norm_flex, x.clone()), norm_flex.forward(x));
    assert!(difference < 1e-5, "forward differs by {difference}");
    let norm = InstanceNormConfig::new(3)
        .with_affine(false)
        .init::<Ad>(&Default::default());
    let x = tensor::<Ad, 5>(dims, 8).mul_scalar(3.0).add_scalar(1.5);
    let ours = layer_gradients(|x| instance_norm(&norm, x), x.clone());
    let plain = layer_gradients(|x| norm.forward(x), x);
    let difference = relative_difference(ours, plain);
    assert!(difference < 1e-5, "gradient differs by {difference}");
}

#[test]
fn channel_layer_norm_forward_and_gradients_equal_burn() {
    use burn::module::{AutodiffModule, Param};
    use burn::nn::LayerNormConfig;
    let dims = [2, 6, 3, 4, 5];
    let plain = |norm: &burn::nn::LayerNorm<Ad>, x: Tensor<Ad, 5>| {
        norm.forward(x.permute([0, 2, 3, 4, 1]))
            .permute([0, 4, 1, 2, 3])
    };
    let mut norm = LayerNormConfig::new(6)
        .with_epsilon(LAYER_NORM_EPS)
        .init::<Ad>(&Default::default());
    norm.gamma = Param::from_tensor(tensor::<Ad, 1>([6], 11).add_scalar(1.0));
    norm.beta = Some(Param::from_tensor(tensor::<Ad, 1>([6], 12)));
    let x = tensor::<Ad, 5>(dims, 13).mul_scalar(2.0);
    let forward = relative_difference(
        channel_layer_norm(&norm, x.clone()).inner(),
        plain(&norm, x.clone()).inner(),
    );
    assert!(forward < 1e-5, "forward differs by {forward}");
    let flex_norm = norm.valid();
    let flex_x = x.clone().inner();
    let flex_plain = flex_norm
        .forward(flex_x.clone().permute([0, 2, 3, 4, 1]))
        .permute([0, 4, 1, 2, 3]);
    assert!(relative_difference(channel_layer_norm(&flex_norm, flex_x), flex_plain) < 1e-5);

    let gradients = |op: &dyn Fn(Tensor<Ad, 5>) -> Tensor<Ad, 5>| {
        let x = x.clone().require_grad();
        let out = op(x.clone());
        let grads = (out.clone() * tensor::<Ad, 5>(out.dims(), 14))
            .sum()
            .backward();
        let gamma = norm
            .gamma
            .grad(&grads)
            .expect("gamma gradient")
            .reshape([1, 1, 1, 1, 6]);
        let beta = norm
            .beta
            .as_ref()
            .and_then(|b| b.grad(&grads))
            .expect("beta gradient")
            .reshape([1, 1, 1, 1, 6]);
        [x.grad(&grads).expect("input gradient"), gamma, beta]
    };
    let ours = gradients(&|x| channel_layer_norm(&norm, x));
    let theirs = gradients(&|x| plain(&norm, x));
    for (part, (a, b)) in ["input", "gamma", "beta"]
        .iter()
        .zip(ours.into_iter().zip(theirs))
    {
        let difference = relative_difference(a, b);
        assert!(difference < 1e-5, "{part} gradient differs by {difference}");
    }
}

/// The batch normalisation kernel on autodiff backend `A` against the formula in burn's
/// operations on the same backend: output, statistics and the three gradients.
pub(super) fn check_training_batch_norm<A: AutodiffBackend>() {
    let dims = [3, 4, 5, 2, 6];
    let eps = 1e-5;
    let plain = |x: Tensor<A, 5>, gamma: Tensor<A, 1>, beta: Tensor<A, 1>| {
        let rows = x.clone().swap_dims(0, 1).reshape([4, 3 * 5 * 2 * 6]);
        let mean = rows.clone().mean_dim(1);
        let var = (rows - mean.clone()).square().mean_dim(1);
        let shape = [1, 4, 1, 1, 1];
        let normalised =
            (x - mean.clone().reshape(shape)) / var.clone().add_scalar(eps).sqrt().reshape(shape);
        (
            normalised * gamma.reshape(shape) + beta.reshape(shape),
            mean,
            var,
        )
    };
    let inputs = || {
        let x = tensor::<A, 5>(dims, 21)
            .mul_scalar(2.0)
            .add_scalar(0.7)
            .require_grad();
        let gamma = tensor::<A, 1>([4], 22).add_scalar(1.0).require_grad();
        let beta = tensor::<A, 1>([4], 23).require_grad();
        (x, gamma, beta)
    };
    let (x, gamma, beta) = inputs();
    let (ours, statistics) =
        batch_norm_training(x.clone(), gamma.clone(), beta.clone(), eps).expect("kernel route");
    let ours_grads = (ours.clone() * tensor::<A, 5>(dims, 24)).sum().backward();
    let (x2, gamma2, beta2) = inputs();
    let (theirs, mean, var) = plain(x2.clone(), gamma2.clone(), beta2.clone());
    let their_grads = (theirs.clone() * tensor::<A, 5>(dims, 24)).sum().backward();
    assert!(
        relative_difference(ours.inner(), theirs.inner()) < 1e-5,
        "output"
    );
    let host = |t: Tensor<A, 1>| t.inner().into_data().to_vec::<f32>().unwrap();
    let ours_statistics = host(statistics.mean)
        .into_iter()
        .chain(host(statistics.var));
    let their_statistics = host(mean.reshape([4]))
        .into_iter()
        .chain(host(var.reshape([4])));
    for (a, b) in ours_statistics.zip(their_statistics) {
        assert!((a - b).abs() < 1e-5, "statistics {a} vs {b}");
    }
    let pairs = [
        (x.grad(&ours_grads).unwrap(), x2.grad(&their_grads).unwrap()),
        (
            gamma.grad(&ours_grads).unwrap().reshape([1, 1, 1, 1, 4]),
            gamma2.grad(&their_grads).unwrap().reshape([1, 1, 1, 1, 4]),
        ),
        (
            beta.grad(&ours_grads).unwrap().reshape([1, 1, 1, 1, 4]),
            beta2.grad(&their_grads).unwrap().reshape([1, 1, 1, 1, 4]),
        ),
    ];
    for (part, (a, b)) in ["input", "gamma", "beta"].iter().zip(pairs) {
        let difference = relative_difference(a, b);
        assert!(difference < 1e-5, "{part} gradient differs by {difference}");
    }
}

#[test]
fn training_batch_norm_output_statistics_and_gradients_equal_the_formula() {
    check_training_batch_norm::<Ad>();
    assert!(batch_norm_training(
        tensor::<Flex, 5>([3, 4, 5, 2, 6], 1),
        tensor([4], 2),
        tensor([4], 3),
        1e-5
    )
    .is_err());
}

/// Attention in burn's operations, as the UniFormer's `Attention` composes it.
fn attention_reference<B: Backend>(qkv: Tensor<B, 3>, heads: usize) -> Tensor<B, 3> {
    let [batch, length, width] = qkv.dims();
    let head_dim = width / 3 / heads;
    let qkv = qkv.reshape([batch, length, 3, heads, head_dim]);
    let part = |index: usize| -> Tensor<B, 4> {
        qkv.clone()
            .narrow(2, index, 1)
            .reshape([batch, length, heads, head_dim])
            .swap_dims(1, 2)
    };
    let scores = part(0)
        .matmul(part(1).swap_dims(2, 3))
        .mul_scalar((head_dim as f64).powf(-0.5));
    burn::tensor::activation::softmax(scores, 3)
        .matmul(part(2))
        .swap_dims(1, 2)
        .reshape([batch, length, width / 3])
}

#[test]
fn attention_forward_and_gradient_equal_burn() {
    for (tokens, heads, head_dim) in [(37, 2, 8), (150, 3, 4)] {
        let dims = [2, tokens, 3 * heads * head_dim];
        let qkv = tensor::<Flex, 3>(dims, 31).mul_scalar(2.0);
        let ours = attention_qkv(qkv.clone(), heads, |qkv| attention_reference(qkv, heads));
        let difference = relative_difference(ours, attention_reference(qkv, heads));
        assert!(
            difference < 1e-5,
            "{tokens} tokens: forward differs by {difference}"
        );
        let qkv = tensor::<Ad, 3>(dims, 31).mul_scalar(2.0);
        let ours = layer_gradients(
            |qkv| attention_qkv(qkv, heads, |qkv| attention_reference(qkv, heads)),
            qkv.clone(),
        );
        let theirs = layer_gradients(|qkv| attention_reference(qkv, heads), qkv);
        let difference = relative_difference(ours, theirs);
        assert!(
            difference < 1e-5,
            "{tokens} tokens: gradient differs by {difference}"
        );
    }
}

#[test]
fn fused_gelu_convolution_equals_burn() {
    use burn::module::Param;
    use burn::nn::conv::Conv3dConfig;
    let mut conv = Conv3dConfig::new([6, 4], [1, 1, 1]).init::<Ad>(&Default::default());
    conv.weight = Param::from_tensor(tensor::<Ad, 5>([4, 6, 1, 1, 1], 41));
    conv.bias = Some(Param::from_tensor(tensor::<Ad, 1>([4], 42)));
    let dims = [2, 6, 3, 4, 5];
    let plain = |h: Tensor<Ad, 5>| {
        let bias = conv.bias.as_ref().map(|b| b.val());
        module::conv3d(
            burn::tensor::activation::gelu(h),
            conv.weight.val(),
            bias,
            ConvOptions::new([1; 3], [0; 3], [1; 3], 1),
        )
    };
    let gradients = |op: &dyn Fn(Tensor<Ad, 5>) -> Tensor<Ad, 5>| {
        let h = tensor::<Ad, 5>(dims, 43).mul_scalar(2.0).require_grad();
        let out = op(h.clone());
        let grads = (out.clone() * tensor::<Ad, 5>(out.dims(), 44))
            .sum()
            .backward();
        let weight = conv.weight.grad(&grads).expect("weight gradient");
        let bias = conv
            .bias
            .as_ref()
            .and_then(|b| b.grad(&grads))
            .expect("bias gradient")
            .reshape([1, 1, 1, 1, 4]);
        [
            out.inner(),
            h.grad(&grads).expect("input gradient"),
            weight,
            bias,
        ]
    };
    let ours = gradients(&|h| gelu_conv(h, &conv));
    let theirs = gradients(&plain);
    for (part, (a, b)) in ["output", "input", "weight", "bias"]
        .iter()
        .zip(ours.into_iter().zip(theirs))
    {
        let difference = relative_difference(a, b);
        assert!(difference < 2e-6, "{part} differs by {difference}");
    }
}

//! Every kernel against burn's own operation on the same backend: forward values on `Flex`,
//! and the input, weight and bias gradients on `Autodiff<Flex>`.

use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
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

fn tensor<B: Backend, const D: usize>(dims: [usize; D], seed: u64) -> Tensor<B, D> {
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
struct Case {
    name: &'static str,
    x: [usize; 5],
    weight: [usize; 5],
    bias: bool,
    options: ConvOptions<3>,
}

fn conv_cases() -> Vec<Case> {
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
fn case_tensors<B: Backend>(
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

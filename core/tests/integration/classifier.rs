//! The classifier: output shape, parameter count, the pooled features recomputed from the encoder's
//! stage-4 map and the logits from the head's weights, the weighted cross-entropy against an f64
//! reference, input and config errors, and a few Adam steps that lower the loss on a fixed batch.

use crate::support::{AD, B};
use brainmvp_core::model::classifier::{
    class_balanced_cross_entropy, global_average_pool, Classifier, ClassifierConfig,
};
use brainmvp_core::model::{Architecture, UniformerConfig};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::{Distribution, Int, Tensor, TensorData};

fn tiny(in_channels: usize, classes: usize) -> Classifier<B> {
    ClassifierConfig::new(in_channels, classes)
        .with_encoder(Architecture::UniformerTiny)
        .init(&Default::default())
        .unwrap()
}

fn to_vec<const D: usize>(tensor: Tensor<B, D>) -> Vec<f32> {
    tensor.into_data().convert::<f32>().to_vec().unwrap()
}

#[test]
fn logits_shape_and_parameter_count() {
    let model = tiny(2, 3);
    let input = Tensor::<B, 5>::random(
        [2, 2, 32, 32, 32],
        Distribution::Default,
        &Default::default(),
    );
    assert_eq!(model.try_forward(input).unwrap().dims(), [2, 3]);
    let encoder = UniformerConfig::tiny(2)
        .init::<B>(&Default::default())
        .unwrap();
    assert_eq!(
        model.num_learnable_params(),
        encoder.num_learnable_params() + 64 * 3 + 3
    );
    let default = ClassifierConfig::new(4, 2);
    assert_eq!(default.encoder, Architecture::UniformerS);
}

#[test]
fn pooling_and_head_recomputed_by_hand() {
    let model = tiny(1, 3);
    let device = Default::default();
    let input = Tensor::<B, 5>::random([2, 1, 32, 32, 32], Distribution::Normal(0.0, 1.0), &device);
    let [_, _, _, stage4] = model.encoder.forward(input.clone());
    let [batch, channels, d, h, w] = stage4.dims();
    assert_eq!([batch, channels, d, h, w], [2, 64, 2, 2, 2]);
    let map = to_vec(stage4);
    let voxels = d * h * w;
    let means: Vec<f64> = (0..batch * channels)
        .map(|row| {
            map[row * voxels..(row + 1) * voxels]
                .iter()
                .map(|&v| v as f64)
                .sum::<f64>()
                / voxels as f64
        })
        .collect();
    let features = to_vec(model.features(input.clone()));
    for (got, want) in features.iter().zip(&means) {
        assert!((*got as f64 - want).abs() < 1e-5, "{got} vs {want}");
    }
    // logits = features · W + b with W [64, 3].
    let weight = to_vec(model.head.weight.val());
    let bias = to_vec(model.head.bias.as_ref().unwrap().val());
    let logits = to_vec(model.forward(input));
    for sample in 0..batch {
        for class in 0..3 {
            let reference: f64 = bias[class] as f64
                + (0..channels)
                    .map(|c| means[sample * channels + c] * weight[c * 3 + class] as f64)
                    .sum::<f64>();
            let got = logits[sample * 3 + class] as f64;
            assert!((got - reference).abs() < 1e-4, "{got} vs {reference}");
        }
    }
    // The pooling helper alone, on a map with known means.
    let ramp: Vec<f32> = (0..2 * 8).map(|v| v as f32).collect();
    let pooled = global_average_pool(Tensor::<B, 5>::from_data(
        TensorData::new(ramp, [1, 2, 2, 2, 2]),
        &device,
    ));
    assert_eq!(to_vec(pooled), vec![3.5, 11.5]);
}

/// `−ln softmax(x)_y` in f64.
fn nll(logits: &[f64], label: usize) -> f64 {
    let max = logits.iter().cloned().fold(f64::MIN, f64::max);
    let sum: f64 = logits.iter().map(|v| (v - max).exp()).sum();
    -(logits[label] - max - sum.ln())
}

#[test]
fn weighted_cross_entropy_matches_the_reference() {
    let device = Default::default();
    let rows = [
        [2.0, -1.0, 0.5],
        [0.1, 0.2, 0.3],
        [-3.0, 4.0, 1.0],
        [1.0, 1.0, -2.0],
    ];
    let labels = [0usize, 2, 1, 2];
    let logits = Tensor::<B, 2>::from_data(
        TensorData::new(
            rows.iter().flatten().map(|&v| v as f32).collect::<Vec<_>>(),
            [4, 3],
        ),
        &device,
    );
    let label_tensor = || {
        Tensor::<B, 1, Int>::from_data(
            TensorData::new(labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), [4]),
            &device,
        )
    };
    let losses: Vec<f64> = rows
        .iter()
        .zip(labels)
        .map(|(row, l)| nll(row, l))
        .collect();
    let plain = class_balanced_cross_entropy(logits.clone(), label_tensor(), None).unwrap();
    let mean = losses.iter().sum::<f64>() / 4.0;
    assert!((to_vec(plain)[0] as f64 - mean).abs() < 1e-5);
    let weights = [0.5, 2.0, 1.5];
    let weighted =
        class_balanced_cross_entropy(logits.clone(), label_tensor(), Some(&weights)).unwrap();
    let numerator: f64 = losses
        .iter()
        .zip(labels)
        .map(|(loss, l)| weights[l] * loss)
        .sum();
    let denominator: f64 = labels.iter().map(|&l| weights[l]).sum();
    let reference = numerator / denominator;
    assert!((to_vec(weighted)[0] as f64 - reference).abs() < 1e-5);
    assert!(
        (reference - mean).abs() > 1e-2,
        "the weights must matter in this case"
    );
    assert!(
        class_balanced_cross_entropy(logits.clone(), label_tensor(), Some(&[1.0, 1.0])).is_err()
    );
    assert!(class_balanced_cross_entropy(logits, label_tensor(), Some(&[1.0, 0.0, 1.0])).is_err());
}

#[test]
fn input_and_config_errors() {
    let model = tiny(2, 3);
    let device = Default::default();
    let wrong_channels = Tensor::<B, 5>::zeros([1, 3, 16, 16, 16], &device);
    let err = model.try_forward(wrong_channels).unwrap_err().to_string();
    assert!(err.starts_with("classifier input: 3 channels"), "{err}");
    let wrong_size = Tensor::<B, 5>::zeros([1, 2, 16, 24, 16], &device);
    assert!(model.try_forward(wrong_size).is_err());
    for (channels, classes) in [(0, 3), (2, 1), (2, 5000)] {
        let config =
            ClassifierConfig::new(channels, classes).with_encoder(Architecture::UniformerTiny);
        assert!(config.init::<B>(&device).is_err(), "{channels} {classes}");
    }
}

#[test]
fn adam_steps_lower_the_cross_entropy() {
    let device = Default::default();
    let mut model: Classifier<AD> = ClassifierConfig::new(2, 3)
        .with_encoder(Architecture::UniformerTiny)
        .init(&device)
        .unwrap();
    let inputs =
        Tensor::<AD, 5>::random([4, 2, 16, 16, 16], Distribution::Normal(0.0, 1.0), &device);
    let labels =
        Tensor::<AD, 1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 1], [4]), &device);
    let mut optimizer = AdamConfig::new().init();
    let mut losses = Vec::new();
    for _ in 0..12 {
        let logits = model.try_forward(inputs.clone()).unwrap();
        let loss = class_balanced_cross_entropy(logits, labels.clone(), None).unwrap();
        losses.push(
            loss.clone()
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .unwrap()[0],
        );
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(1e-3, model, grads);
    }
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(last < 0.7 * first, "loss {first} → {last}: {losses:?}");
}

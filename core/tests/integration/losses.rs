//! Segmentation losses: hand-computed values, batch-wide sums, perfect predictions, gradients,
//! deep supervision and BraTS channel targets.

use crate::support::B;
use brainmvp_core::losses::{
    brats_targets, deep_supervision_loss, sigmoid_dice_bce, softmax_dice_ce,
    weighted_sigmoid_dice_bce, weighted_softmax_dice_ce,
};
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

fn float5<Bk: Backend>(values: &[f64], shape: [usize; 5]) -> Tensor<Bk, 5> {
    let data: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    Tensor::from_data(TensorData::new(data, shape), &Default::default())
}

fn scalar(tensor: Tensor<B, 1>) -> f64 {
    f64::from(tensor.into_data().to_vec::<f32>().expect("f32")[0])
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Reference of the official loss in f64: channel-major data `[batch][channel][voxel]`.
fn reference_sigmoid_loss(logits: &[f64], targets: &[f64], shape: [usize; 5]) -> f64 {
    let [batch, channels, z, y, x] = shape;
    let voxels = z * y * x;
    let mut total = 0.0;
    for channel in 0..channels {
        let (mut inter, mut pp, mut tt, mut bce) = (0.0, 0.0, 0.0, 0.0);
        for case in 0..batch {
            for voxel in 0..voxels {
                let i = (case * channels + channel) * voxels + voxel;
                let p = sigmoid(logits[i]);
                let t = targets[i];
                inter += p * t;
                pp += p * p;
                tt += t * t;
                bce -= t * p.ln() + (1.0 - t) * (1.0 - p).ln();
            }
        }
        let dice = 1.0 - (2.0 * inter + 1.0) / (pp + tt + 1.0);
        total += 0.7 * dice + 0.3 * bce / (batch * voxels) as f64;
    }
    total / channels as f64
}

fn pattern(count: usize, scale: f64, offset: f64) -> Vec<f64> {
    (0..count)
        .map(|i| (i as f64 * 1.7 + offset).sin() * scale)
        .collect()
}

#[test]
fn sigmoid_loss_matches_hand_value_on_two_voxels() {
    // p = [0.5, 0.75], t = [1, 0]: I = 0.5, Σp² = 0.8125, Σt² = 1.
    let logits = float5::<B>(&[0.0, 3f64.ln()], [1, 1, 1, 1, 2]);
    let targets = float5::<B>(&[1.0, 0.0], [1, 1, 1, 1, 2]);
    let dice = 1.0 - 2.0 / 2.8125;
    let bce = (2f64.ln() + 4f64.ln()) / 2.0;
    let expected = 0.7 * dice + 0.3 * bce;
    let loss = scalar(sigmoid_dice_bce(logits, targets).unwrap());
    assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
}

#[test]
fn sigmoid_loss_sums_over_the_batch_and_averages_channels() {
    let shape = [2, 3, 2, 2, 3];
    let count: usize = shape.iter().product();
    let logits = pattern(count, 3.0, 0.3);
    let targets: Vec<f64> = pattern(count, 1.0, 2.0)
        .iter()
        .map(|v| f64::from(u8::from(*v > 0.2)))
        .collect();
    let expected = reference_sigmoid_loss(&logits, &targets, shape);
    let loss = scalar(sigmoid_dice_bce(float5(&logits, shape), float5(&targets, shape)).unwrap());
    assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
    // The per-sample mean differs, so the batch-wide sums are really what is computed.
    let half = count / 2;
    let per_sample = (reference_sigmoid_loss(&logits[..half], &targets[..half], [1, 3, 2, 2, 3])
        + reference_sigmoid_loss(&logits[half..], &targets[half..], [1, 3, 2, 2, 3]))
        / 2.0;
    assert!((per_sample - expected).abs() > 1e-4);
}

#[test]
fn perfect_prediction_gives_almost_zero_loss() {
    let shape = [1, 2, 2, 2, 2];
    let targets: Vec<f64> = (0..16).map(|i| f64::from(u8::from(i % 3 == 0))).collect();
    let logits: Vec<f64> = targets
        .iter()
        .map(|t| if *t > 0.5 { 30.0 } else { -30.0 })
        .collect();
    let loss = scalar(sigmoid_dice_bce(float5(&logits, shape), float5(&targets, shape)).unwrap());
    assert!(loss.abs() < 1e-5, "{loss}");
    // A wrong prediction is far from zero.
    let wrong: Vec<f64> = logits.iter().map(|v| -v).collect();
    let loss = scalar(sigmoid_dice_bce(float5(&wrong, shape), float5(&targets, shape)).unwrap());
    assert!(loss > 5.0, "{loss}");
}

#[test]
fn shape_mismatch_is_an_error() {
    let logits = float5::<B>(&[0.0; 4], [1, 2, 1, 1, 2]);
    let targets = float5::<B>(&[0.0; 2], [1, 1, 1, 1, 2]);
    let err = sigmoid_dice_bce(logits, targets).unwrap_err().to_string();
    assert!(err.contains("shape"), "{err}");
}

#[test]
fn softmax_loss_matches_reference() {
    let shape = [2, 3, 1, 2, 2];
    let count: usize = shape.iter().product();
    let logits = pattern(count, 2.0, 0.7);
    let labels: Vec<i64> = vec![0, 1, 2, 2, 1, 1, 0, 2];
    let (batch, classes, voxels) = (2, 3, 4);
    let mut ce = 0.0;
    let mut inter = vec![0.0; classes];
    let mut pp = vec![0.0; classes];
    let mut tt = vec![0.0; classes];
    for case in 0..batch {
        for voxel in 0..voxels {
            let at = |c: usize| logits[(case * classes + c) * voxels + voxel];
            let norm: f64 = (0..classes).map(|c| at(c).exp()).sum();
            let label = labels[case * voxels + voxel] as usize;
            ce -= (at(label).exp() / norm).ln();
            for c in 0..classes {
                let p = at(c).exp() / norm;
                let t = f64::from(u8::from(c == label));
                inter[c] += p * t;
                pp[c] += p * p;
                tt[c] += t;
            }
        }
    }
    let dice: f64 = (0..classes)
        .map(|c| 1.0 - (2.0 * inter[c] + 1.0) / (pp[c] + tt[c] + 1.0))
        .sum::<f64>()
        / classes as f64;
    let expected = 0.7 * dice + 0.3 * ce / (batch * voxels) as f64;
    let labels_tensor: Tensor<B, 4, Int> =
        Tensor::from_data(TensorData::new(labels, [2, 1, 2, 2]), &Default::default());
    let loss = scalar(softmax_dice_ce(float5(&logits, shape), labels_tensor).unwrap());
    assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
}

/// Voxel weights of 1 on the first `kept` voxels along x and 0 on the rest give the unweighted
/// loss of the kept voxels alone, for both losses.
#[test]
fn weights_of_zero_drop_voxels_and_weights_of_one_change_nothing() {
    let (kept, width) = (2, 4);
    let full = [2, 3, 1, 2, width];
    let part = [2, 3, 1, 2, kept];
    let count: usize = full.iter().product();
    let logits = pattern(count, 2.0, 0.3);
    let targets: Vec<f64> = pattern(count, 1.0, 1.1)
        .iter()
        .map(|v| f64::from(u8::from(*v > 0.0)))
        .collect();
    let keep = |values: &[f64]| -> Vec<f64> {
        values
            .chunks(width)
            .flat_map(|row| row[..kept].to_vec())
            .collect()
    };
    let weight_rows = [2, 1, 1, 2, width];
    let weights: Vec<f64> = (0..2 * 2 * width)
        .map(|i| f64::from(u8::from(i % width < kept)))
        .collect();
    let weighted = scalar(
        weighted_sigmoid_dice_bce(
            float5(&logits, full),
            float5(&targets, full),
            Some(float5(&weights, weight_rows)),
        )
        .unwrap(),
    );
    let alone = scalar(
        sigmoid_dice_bce(float5(&keep(&logits), part), float5(&keep(&targets), part)).unwrap(),
    );
    assert!(
        (weighted - alone).abs() < 1e-6,
        "sigmoid: {weighted} vs {alone}"
    );
    let ones = vec![1.0; 2 * 2 * width];
    let with_ones = scalar(
        weighted_sigmoid_dice_bce(
            float5(&logits, full),
            float5(&targets, full),
            Some(float5(&ones, weight_rows)),
        )
        .unwrap(),
    );
    let plain = scalar(sigmoid_dice_bce(float5(&logits, full), float5(&targets, full)).unwrap());
    assert!((with_ones - plain).abs() < 1e-6, "{with_ones} vs {plain}");
    let labels: Vec<i64> = (0..2 * 2 * width as i64)
        .map(|i| (i * 7 + i / 3) % 3)
        .collect();
    let labels_of = |values: Vec<i64>, x: usize| -> Tensor<B, 4, Int> {
        Tensor::from_data(TensorData::new(values, [2, 1, 2, x]), &Default::default())
    };
    let kept_labels: Vec<i64> = labels
        .chunks(width)
        .flat_map(|row| row[..kept].to_vec())
        .collect();
    let weighted = scalar(
        weighted_softmax_dice_ce(
            float5(&logits, full),
            labels_of(labels.clone(), width),
            Some(float5(&weights, weight_rows)),
        )
        .unwrap(),
    );
    let alone = scalar(
        softmax_dice_ce(float5(&keep(&logits), part), labels_of(kept_labels, kept)).unwrap(),
    );
    assert!(
        (weighted - alone).abs() < 1e-5,
        "softmax: {weighted} vs {alone}"
    );
}

#[test]
fn softmax_label_shape_mismatch_is_an_error() {
    let labels: Tensor<B, 4, Int> = Tensor::from_data(
        TensorData::new(vec![0i64; 3], [1, 1, 1, 3]),
        &Default::default(),
    );
    assert!(softmax_dice_ce(float5::<B>(&[0.0; 4], [1, 2, 1, 1, 2]), labels).is_err());
}

#[test]
fn gradient_flows_through_autodiff() {
    type AD = Autodiff<Flex>;
    let logits = float5::<AD>(&[0.0, 0.5, -0.5, 1.0], [1, 1, 1, 2, 2]).require_grad();
    let targets = float5::<AD>(&[1.0, 0.0, 1.0, 0.0], [1, 1, 1, 2, 2]);
    let loss = sigmoid_dice_bce(logits.clone(), targets).unwrap();
    let grads = loss.backward();
    let grad = logits.grad(&grads).expect("gradient of the logits");
    let values = grad.into_data().to_vec::<f32>().unwrap();
    assert_eq!(values.len(), 4);
    // Raising the logit of a positive voxel lowers the loss, of a negative voxel raises it.
    assert!(values[0] < 0.0 && values[2] < 0.0, "{values:?}");
    assert!(values[1] > 0.0 && values[3] > 0.0, "{values:?}");
}

#[test]
fn deep_supervision_sums_the_outputs() {
    let shape = [1, 1, 1, 1, 4];
    let targets = float5::<B>(&[1.0, 0.0, 1.0, 0.0], shape);
    let first = float5::<B>(&[1.0, -2.0, 0.5, 0.0], shape);
    let second = float5::<B>(&[-1.0, 2.0, 0.0, 3.0], shape);
    let expected = scalar(sigmoid_dice_bce(first.clone(), targets.clone()).unwrap())
        + scalar(sigmoid_dice_bce(second.clone(), targets.clone()).unwrap());
    let total =
        scalar(deep_supervision_loss(&[first, second], &targets, sigmoid_dice_bce).unwrap());
    assert!((total - expected).abs() < 1e-6, "{total} vs {expected}");
    assert!(deep_supervision_loss(&[], &targets, sigmoid_dice_bce).is_err());
}

fn target_values(labels: &[u8], batch: usize, dims: [usize; 3], enhancing: u8) -> Vec<f32> {
    let targets: Tensor<B, 5> =
        brats_targets(labels, batch, dims, enhancing, &Default::default()).unwrap();
    assert_eq!(targets.dims(), [batch, 3, dims[2], dims[1], dims[0]]);
    targets.into_data().to_vec::<f32>().unwrap()
}

#[test]
fn brats_targets_for_2021_and_2023_labels() {
    // Channels TC, WT, ET for labels 0, 1, 2, ET.
    let expected = [
        0.0, 1.0, 0.0, 1.0, // TC
        0.0, 1.0, 1.0, 1.0, // WT
        0.0, 0.0, 0.0, 1.0, // ET
    ];
    assert_eq!(target_values(&[0, 1, 2, 4], 1, [4, 1, 1], 4), expected);
    assert_eq!(target_values(&[0, 1, 2, 3], 1, [4, 1, 1], 3), expected);
    // Under the 2021 convention label 3 is nothing.
    assert_eq!(target_values(&[3, 3, 3, 3], 1, [2, 2, 1], 4), vec![0.0; 12]);
    // Two cases keep their own channel blocks.
    let two = target_values(&[4, 0, 2, 1], 2, [2, 1, 1], 4);
    assert_eq!(
        two,
        [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    );
}

#[test]
fn brats_targets_refuse_wrong_lengths() {
    let result: brainmvp_core::Result<Tensor<B, 5>> =
        brats_targets(&[0, 1, 2], 1, [2, 2, 1], 4, &Default::default());
    assert!(result.unwrap_err().to_string().contains("labels"));
    let result: brainmvp_core::Result<Tensor<B, 5>> =
        brats_targets(&[], 0, [2, 2, 1], 4, &Default::default());
    assert!(result.is_err());
}

//! Contrastive loss: hand-computed values in f64, ordering of matched vs mismatched pairings,
//! temperature scaling, the one-sample batch, and gradients on an autodiff backend.

use crate::support::{device, B};
use brainmvp_core::pretext::contrastive::{
    contrastive_loss, flatten_normalised, ContrastiveConfig,
};
use burn::backend::{Autodiff, Flex};
use burn::tensor::{Tensor, TensorData};

/// A `[N, 2, 1, 1, 1]` feature map from `N` two-component vectors.
fn features<Back: burn::tensor::backend::Backend>(
    rows: &[[f64; 2]],
    device: &Back::Device,
) -> Tensor<Back, 5> {
    let values: Vec<f32> = rows.iter().flatten().map(|&v| v as f32).collect();
    Tensor::from_data(TensorData::new(values, [rows.len(), 2, 1, 1, 1]), device)
}

fn scalar(loss: Tensor<B, 1>) -> f64 {
    assert_eq!(loss.dims(), [1]);
    loss.into_data().to_vec::<f32>().unwrap()[0] as f64
}

fn normalise(row: [f64; 2]) -> [f64; 2] {
    let norm = (row[0] * row[0] + row[1] * row[1]).sqrt();
    [row[0] / norm, row[1] / norm]
}

/// Reference: mean over directions of mean over rows of `-log softmax(row)[diagonal]`.
fn reference_loss(view_a: &[[f64; 2]], view_b: &[[f64; 2]], temperature: f64) -> f64 {
    let a: Vec<_> = view_a.iter().map(|&r| normalise(r)).collect();
    let b: Vec<_> = view_b.iter().map(|&r| normalise(r)).collect();
    let samples = a.len();
    let logit = |i: usize, j: usize| (b[i][0] * a[j][0] + b[i][1] * a[j][1]) / temperature;
    let cross_entropy = |entry: &dyn Fn(usize, usize) -> f64| {
        (0..samples)
            .map(|i| {
                let log_sum: f64 = (0..samples).map(|j| entry(i, j).exp()).sum::<f64>().ln();
                log_sum - entry(i, i)
            })
            .sum::<f64>()
            / samples as f64
    };
    let rows = cross_entropy(&|i, j| logit(i, j));
    let columns = cross_entropy(&|i, j| logit(j, i));
    (rows + columns) / 2.0
}

const VIEW_A: [[f64; 2]; 3] = [[1.0, 0.5], [-0.3, 2.0], [0.7, -1.2]];
const VIEW_B: [[f64; 2]; 3] = [[0.9, 0.1], [0.2, 1.5], [-0.4, -0.8]];

#[test]
fn loss_matches_hand_computation() {
    for temperature in [1.0, 0.1, 0.5] {
        let loss = scalar(contrastive_loss(
            features::<B>(&VIEW_A, &device()),
            features::<B>(&VIEW_B, &device()),
            temperature,
        ));
        let expected = reference_loss(&VIEW_A, &VIEW_B, temperature);
        assert!(
            (loss - expected).abs() < 1e-5,
            "τ = {temperature}: {loss} vs {expected}"
        );
    }
}

#[test]
fn swapping_the_views_leaves_the_loss_unchanged() {
    // Swapping the views transposes the logits; the mean of both directions is unchanged.
    let forward = scalar(contrastive_loss(
        features::<B>(&VIEW_A, &device()),
        features::<B>(&VIEW_B, &device()),
        1.0,
    ));
    let swapped = scalar(contrastive_loss(
        features::<B>(&VIEW_B, &device()),
        features::<B>(&VIEW_A, &device()),
        1.0,
    ));
    assert!((forward - swapped).abs() < 1e-6, "{forward} vs {swapped}");
}

#[test]
fn matched_pairs_beat_mismatched_pairing() {
    let orthogonal = [[1.0, 0.0], [0.0, 1.0]];
    let swapped = [[0.0, 1.0], [1.0, 0.0]];
    let matched = scalar(contrastive_loss(
        features::<B>(&orthogonal, &device()),
        features::<B>(&orthogonal, &device()),
        1.0,
    ));
    let mismatched = scalar(contrastive_loss(
        features::<B>(&orthogonal, &device()),
        features::<B>(&swapped, &device()),
        1.0,
    ));
    // Analytic: matched logits are the identity, so each CE is ln(1 + e⁻¹); mismatched ln(1 + e).
    let e = std::f64::consts::E;
    assert!((matched - (1.0 + 1.0 / e).ln()).abs() < 1e-5, "{matched}");
    assert!((mismatched - (1.0 + e).ln()).abs() < 1e-5, "{mismatched}");
    assert!(matched < mismatched);
}

#[test]
fn temperature_divides_the_logits() {
    let orthogonal = [[3.0, 0.0], [0.0, 0.5]];
    for temperature in [1.0, 0.5, 0.1, 2.0] {
        let loss = scalar(contrastive_loss(
            features::<B>(&orthogonal, &device()),
            features::<B>(&orthogonal, &device()),
            temperature,
        ));
        // Logits are diag(1/τ): CE = ln(1 + e^(-1/τ)).
        let expected = (1.0 + (-1.0 / temperature).exp()).ln();
        assert!((loss - expected).abs() < 1e-5, "τ = {temperature}: {loss}");
    }
}

#[test]
fn config_default_temperature_is_one() {
    let config = ContrastiveConfig::new();
    assert_eq!(config.temperature, 1.0);
    let via_config = scalar(config.loss(
        features::<B>(&VIEW_A, &device()),
        features::<B>(&VIEW_B, &device()),
    ));
    let expected = reference_loss(&VIEW_A, &VIEW_B, 1.0);
    assert!((via_config - expected).abs() < 1e-5);
}

#[test]
fn single_sample_batch_gives_zero() {
    let loss = scalar(contrastive_loss(
        features::<B>(&[[0.3, -2.0]], &device()),
        features::<B>(&[[5.0, 1.0]], &device()),
        0.1,
    ));
    assert!(loss.abs() < 1e-7, "{loss}");
}

#[test]
fn flatten_normalised_gives_unit_rows_and_keeps_zero_rows() {
    let device = device();
    let values: Vec<f32> = (0..2 * 3 * 2 * 2 * 2).map(|v| v as f32 - 7.0).collect();
    let mut data = values.clone();
    data[24..].fill(0.0); // second sample all zeros
    let map = Tensor::<B, 5>::from_data(TensorData::new(data.clone(), [2, 3, 2, 2, 2]), &device);
    let rows = flatten_normalised(map);
    assert_eq!(rows.dims(), [2, 24]);
    let rows = rows.into_data().to_vec::<f32>().unwrap();
    let norm: f64 = data[..24]
        .iter()
        .map(|&v| (v as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    for (got, &raw) in rows[..24].iter().zip(&data[..24]) {
        assert!((*got as f64 - raw as f64 / norm).abs() < 1e-6);
    }
    assert!(rows[24..].iter().all(|&v| v == 0.0));
}

#[test]
fn gradients_reach_both_views() {
    type AD = Autodiff<Flex>;
    let device: burn::tensor::Device<AD> = Default::default();
    let view_a = features::<AD>(&VIEW_A, &device).require_grad();
    let view_b = features::<AD>(&VIEW_B, &device).require_grad();
    let loss = contrastive_loss(view_a.clone(), view_b.clone(), 0.5);
    let gradients = loss.backward();
    for (name, view) in [("view A", view_a), ("view B", view_b)] {
        let gradient = view.grad(&gradients).expect("gradient exists");
        assert_eq!(gradient.dims(), [3, 2, 1, 1, 1]);
        let values = gradient.into_data().to_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| v.is_finite()), "{name}: {values:?}");
        assert!(values.iter().any(|&v| v.abs() > 1e-4), "{name}: {values:?}");
    }
}

/// A stand-in for the other devices: the whole batch's normalised rows of one view, of which this
/// device holds rows `offset..offset + n`.
struct FakeDevices {
    all_a: Tensor<B, 2>,
    all_b: Tensor<B, 2>,
    offset: usize,
}

impl brainmvp_core::pretext::contrastive::NegativeGather<B> for FakeDevices {
    fn gather(&self, rows: Tensor<B, 2>) -> brainmvp_core::Result<(Tensor<B, 2>, usize)> {
        let [local, _] = rows.dims();
        let all_a_local = self.all_a.clone().narrow(0, self.offset, local);
        let is_a = (all_a_local - rows.clone()).abs().max().into_scalar() < 1e-6;
        let all = if is_a {
            self.all_a.clone()
        } else {
            self.all_b.clone()
        };
        // This device's own rows come from `rows` (they carry its gradient), the others are given.
        let [total, _] = all.dims();
        let after_start = self.offset + local;
        let mut parts = Vec::new();
        if self.offset > 0 {
            parts.push(all.clone().narrow(0, 0, self.offset));
        }
        parts.push(rows);
        if after_start < total {
            parts.push(all.narrow(0, after_start, total - after_start));
        }
        Ok((Tensor::cat(parts, 0), self.offset))
    }
}

#[test]
fn gathered_negatives_average_to_the_whole_batch_loss() {
    use brainmvp_core::pretext::contrastive::contrastive_loss_gathered;
    let view_a = [[1.0, 0.5], [-0.3, 2.0], [0.7, -1.2], [0.1, 0.4]];
    let view_b = [[0.9, 0.1], [0.2, 1.5], [-0.4, -0.8], [1.1, -0.2]];
    let temperature = 0.5;
    let whole = scalar(contrastive_loss(
        features::<B>(&view_a, &device()),
        features::<B>(&view_b, &device()),
        temperature,
    ));
    let devices = FakeDevices {
        all_a: flatten_normalised(features::<B>(&view_a, &device())),
        all_b: flatten_normalised(features::<B>(&view_b, &device())),
        offset: 0,
    };
    // Two devices of two samples each: the mean of their losses is the whole batch's loss.
    let mut per_device = Vec::new();
    for rank in 0..2 {
        let gather = FakeDevices {
            offset: 2 * rank,
            all_a: devices.all_a.clone(),
            all_b: devices.all_b.clone(),
        };
        let local = 2 * rank..2 * rank + 2;
        let loss = contrastive_loss_gathered(
            features::<B>(&view_a[local.clone()], &device()),
            features::<B>(&view_b[local], &device()),
            temperature,
            &gather,
        )
        .unwrap();
        per_device.push(scalar(loss));
    }
    let mean = (per_device[0] + per_device[1]) / 2.0;
    assert!((mean - whole).abs() < 1e-5, "{per_device:?} vs {whole}");
    // Each device alone (no gathering) sees fewer negatives: a different, smaller loss.
    let alone = scalar(contrastive_loss(
        features::<B>(&view_a[..2], &device()),
        features::<B>(&view_b[..2], &device()),
        temperature,
    ));
    assert!((alone - per_device[0]).abs() > 1e-3);
    // One device holding everything: gathering changes nothing.
    let everything = contrastive_loss_gathered(
        features::<B>(&view_a, &device()),
        features::<B>(&view_b, &device()),
        temperature,
        &devices,
    )
    .unwrap();
    assert!((scalar(everything) - whole).abs() < 1e-6);
}

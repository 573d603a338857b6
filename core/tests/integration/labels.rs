//! Label schemes: decoding follows the official BraTS post-processing, class arg-max, the losses
//! match the core losses they wrap, scores match the metrics, bad input is refused.

use crate::support::B;
use brainmvp_core::labels::LabelScheme;
use brainmvp_core::losses::{brats_targets, sigmoid_dice_bce};
use burn::tensor::{Tensor, TensorData};

/// Probabilities of one case, channel-major, from per-voxel channel values.
fn channel_major(per_voxel: &[[f32; 3]]) -> Vec<f32> {
    (0..3)
        .flat_map(|c| per_voxel.iter().map(move |p| p[c]))
        .collect()
}

#[test]
fn brats_decoding_is_the_official_post_processing() {
    let scheme = LabelScheme::Brats { enhancing_label: 4 };
    // [TC, WT, ET] per voxel.
    let voxels = [
        [0.1, 0.2, 0.3], // nothing → 0
        [0.1, 0.9, 0.2], // WT only → oedema 2
        [0.8, 0.9, 0.1], // TC → necrotic core 1
        [0.8, 0.9, 0.7], // ET → 4
        [0.2, 0.1, 0.6], // ET wins even without WT/TC (official order: ET last)
        [0.6, 0.2, 0.1], // TC without WT → 1
    ];
    let decoded = scheme
        .decode(&channel_major(&voxels), voxels.len())
        .unwrap();
    assert_eq!(decoded, vec![0, 2, 1, 4, 4, 1]);
    let brats2023 = LabelScheme::Brats { enhancing_label: 3 };
    let decoded = brats2023
        .decode(&channel_major(&voxels), voxels.len())
        .unwrap();
    assert_eq!(decoded, vec![0, 2, 1, 3, 3, 1]);
}

#[test]
fn class_decoding_is_the_arg_max_mapped_to_label_values() {
    let scheme = LabelScheme::Classes {
        labels: vec![0, 10, 20],
    };
    let voxels = [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]];
    let decoded = scheme.decode(&channel_major(&voxels), 3).unwrap();
    assert_eq!(decoded, vec![0, 20, 10]);
    assert!(scheme.decode(&[0.0; 8], 3).is_err());
}

#[test]
fn brats_loss_sums_the_deep_supervision_outputs() {
    let scheme = LabelScheme::Brats { enhancing_label: 4 };
    let dims = [4, 2, 2];
    let labels: Vec<u8> = (0..16).map(|i| [0u8, 1, 2, 4][i % 4]).collect();
    let device = Default::default();
    let logits: Vec<f32> = (0..48).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
    let main = Tensor::<B, 5>::from_data(TensorData::new(logits.clone(), [1, 3, 2, 2, 4]), &device);
    let other = main.clone().mul_scalar(0.5);
    let loss = scheme
        .loss(&[main.clone(), other.clone()], &labels, 1, dims)
        .unwrap()
        .into_scalar();
    let targets = brats_targets::<B>(&labels, 1, dims, 4, &device).unwrap();
    let expected = sigmoid_dice_bce(main, targets.clone())
        .unwrap()
        .into_scalar()
        + sigmoid_dice_bce(other, targets).unwrap().into_scalar();
    assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
}

#[test]
fn class_loss_is_lowest_for_the_right_classes_and_refuses_unknown_labels() {
    let scheme = LabelScheme::Classes { labels: vec![0, 3] };
    let labels = vec![0u8, 3, 3, 0, 0, 3, 0, 3];
    let device = Default::default();
    let logits_for = |sign: f32| {
        let mut values = Vec::new();
        for channel in 0..2 {
            for &label in &labels {
                let right = (label == 3) == (channel == 1);
                values.push(if right { 4.0 * sign } else { -4.0 * sign });
            }
        }
        Tensor::<B, 5>::from_data(TensorData::new(values, [1, 2, 2, 2, 2]), &device)
    };
    let good = scheme
        .loss(&[logits_for(1.0)], &labels, 1, [2, 2, 2])
        .unwrap()
        .into_scalar();
    let bad = scheme
        .loss(&[logits_for(-1.0)], &labels, 1, [2, 2, 2])
        .unwrap()
        .into_scalar();
    assert!(good < 0.05 && bad > 1.0, "good {good}, bad {bad}");
    let mut unknown = labels.clone();
    unknown[0] = 7;
    let err = scheme
        .loss(&[logits_for(1.0)], &unknown, 1, [2, 2, 2])
        .unwrap_err();
    assert!(err.to_string().contains("label value 7"), "{err}");
}

#[test]
fn schemes_are_detected_and_validated() {
    let a = [0u8, 1, 2, 3];
    let b = [0u8, 2, 2, 0];
    assert_eq!(
        LabelScheme::detect_brats(&[&a, &b]),
        LabelScheme::Brats { enhancing_label: 3 }
    );
    assert_eq!(
        LabelScheme::detect_brats(&[&b]),
        LabelScheme::Brats { enhancing_label: 4 }
    );
    assert_eq!(
        LabelScheme::classes_of(&[&[5u8, 9], &[9u8, 2]]),
        LabelScheme::Classes {
            labels: vec![0, 2, 5, 9]
        }
    );
    assert!(LabelScheme::Brats { enhancing_label: 2 }
        .validate()
        .is_err());
    assert!(LabelScheme::Classes { labels: vec![0] }.validate().is_err());
    assert!(LabelScheme::Classes {
        labels: vec![0, 1, 1]
    }
    .validate()
    .is_err());
}

#[test]
fn class_scores_count_each_foreground_class() {
    let scheme = LabelScheme::Classes {
        labels: vec![0, 1, 2],
    };
    // 4×1×1 line: truth 1 1 2 0, prediction 1 0 2 2.
    let truth = [1u8, 1, 2, 0];
    let prediction = [1u8, 0, 2, 2];
    let scores = scheme
        .score(&prediction, &truth, [4, 1, 1], [1.0; 3])
        .unwrap();
    assert_eq!(scheme.region_names(), vec!["label 1", "label 2"]);
    assert!((scores[0].dice - 2.0 / 3.0).abs() < 1e-12);
    assert!((scores[1].dice - 2.0 / 3.0).abs() < 1e-12);
}

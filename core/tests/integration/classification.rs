//! Classification metrics on hand-made predictions, AUC against brute force, balanced sampling.

use brainmvp_core::classification::{
    accuracy, balanced_sample_order, balanced_weights, f1_binary, macro_f1, roc_auc,
};
use brainmvp_core::rng::Rng;

#[test]
fn accuracy_counts_matches() {
    assert_eq!(accuracy(&[0, 1, 1, 2], &[0, 1, 2, 2]).unwrap(), 0.75);
    assert_eq!(accuracy(&[1, 1], &[0, 0]).unwrap(), 0.0);
    assert!(accuracy(&[0, 1], &[0]).is_err());
    assert!(accuracy(&[], &[]).is_err());
}

#[test]
fn f1_of_hand_made_predictions() {
    // Class 1: TP = 2 (samples 1, 3), FP = 1 (sample 2), FN = 1 (sample 4) -> 4 / 6.
    let predicted = [0, 1, 1, 1, 0, 0];
    let truth = [0, 1, 0, 1, 1, 0];
    assert!((f1_binary(&predicted, &truth, 1).unwrap() - 4.0 / 6.0).abs() < 1e-12);
    // Class 0: TP = 2 (0, 5), FP = 1 (4), FN = 1 (2) -> 4 / 6 as well.
    assert!((f1_binary(&predicted, &truth, 0).unwrap() - 4.0 / 6.0).abs() < 1e-12);
    // A class never predicted nor present scores 0 (zero_division = 0).
    assert_eq!(f1_binary(&predicted, &truth, 7).unwrap(), 0.0);
    assert!(f1_binary(&predicted, &truth[..3], 1).is_err());
}

#[test]
fn macro_f1_averages_present_classes() {
    // Class 0: TP 1, FP 0, FN 1 -> 2/3; class 1: TP 1, FP 1, FN 0 -> 2/3; class 2: TP 1 -> 1.
    let predicted = [0, 1, 1, 2];
    let truth = [0, 0, 1, 2];
    let expected = (2.0 / 3.0 + 2.0 / 3.0 + 1.0) / 3.0;
    assert!((macro_f1(&predicted, &truth).unwrap() - expected).abs() < 1e-12);
    // A class only predicted (3) counts with F1 0; class 0 has TP 1, FN 1 -> 2/3.
    let value = macro_f1(&[0, 3], &[0, 0]).unwrap();
    assert!((value - (2.0 / 3.0 + 0.0) / 2.0).abs() < 1e-12, "{value}");
    assert!(macro_f1(&[0], &[]).is_err());
}

/// AUC by brute force over all positive/negative pairs, ties counting one half.
fn brute_force_auc(scores: &[f64], truth: &[bool]) -> f64 {
    let (mut wins, mut pairs) = (0.0, 0.0);
    for (i, &positive) in truth.iter().enumerate() {
        for (j, &negative) in truth.iter().enumerate() {
            if positive && !negative {
                pairs += 1.0;
                if scores[i] > scores[j] {
                    wins += 1.0;
                } else if scores[i] == scores[j] {
                    wins += 0.5;
                }
            }
        }
    }
    wins / pairs
}

#[test]
fn auc_of_hand_made_scores() {
    // Perfect, reversed and the classic sklearn example (0.75).
    assert_eq!(
        roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]).unwrap(),
        1.0
    );
    assert_eq!(
        roc_auc(&[0.9, 0.8, 0.2, 0.1], &[false, false, true, true]).unwrap(),
        0.0
    );
    let auc = roc_auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
    assert!((auc - 0.75).abs() < 1e-12);
    // All scores tied: 0.5.
    assert_eq!(
        roc_auc(&[0.3; 5], &[true, false, true, false, false]).unwrap(),
        0.5
    );
}

#[test]
fn auc_with_ties_equals_brute_force() {
    let mut rng = Rng::new(11);
    for _ in 0..20 {
        let size = 5 + rng.below(30);
        // Few distinct score values, so ties are common.
        let scores: Vec<f64> = (0..size).map(|_| rng.below(5) as f64 * 0.25).collect();
        let mut truth: Vec<bool> = (0..size).map(|_| rng.chance(0.4)).collect();
        truth[0] = true;
        truth[1] = false;
        let auc = roc_auc(&scores, &truth).unwrap();
        let expected = brute_force_auc(&scores, &truth);
        assert!((auc - expected).abs() < 1e-12, "{auc} vs {expected}");
    }
}

#[test]
fn auc_errors() {
    assert!(roc_auc(&[0.1, 0.2], &[true, true]).is_err());
    assert!(roc_auc(&[0.1, 0.2], &[false, false]).is_err());
    assert!(roc_auc(&[0.1], &[true, false]).is_err());
    assert!(roc_auc(&[f64::NAN, 0.2], &[true, false]).is_err());
}

#[test]
fn balanced_weights_give_classes_equal_mass() {
    let labels = [0, 0, 0, 1, 2, 2];
    let weights = balanced_weights(&labels).unwrap();
    let class_mass = |class: usize| -> f64 {
        labels
            .iter()
            .zip(&weights)
            .filter(|(l, _)| **l == class)
            .map(|(_, w)| w)
            .sum()
    };
    for class in 0..3 {
        assert!((class_mass(class) - 1.0 / 3.0).abs() < 1e-12);
    }
    assert!((weights[0] - 1.0 / 9.0).abs() < 1e-12);
    assert!(balanced_weights(&[]).is_err());
}

#[test]
fn balanced_order_draws_each_class_equally_often() {
    // Class 0 has 8 samples, class 1 has 2, class 3 has 1 (class 2 absent).
    let labels = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 3];
    let mut rng = Rng::new(5);
    let order = balanced_sample_order(&labels, 31, &mut rng).unwrap();
    assert_eq!(order.len(), 31);
    let count = |class: usize| order.iter().filter(|&&i| labels[i] == class).count();
    let counts = [count(0), count(1), count(3)];
    assert!(counts.iter().all(|&c| c == 10 || c == 11), "{counts:?}");
    assert_eq!(counts.iter().sum::<usize>(), 31);
    // Within class 0 the first 8 draws visit every sample once.
    let first_zeros: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| labels[i] == 0)
        .take(8)
        .collect();
    let mut sorted = first_zeros.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..8).collect::<Vec<_>>());
    // Deterministic for a seed.
    assert_eq!(
        order,
        balanced_sample_order(&labels, 31, &mut Rng::new(5)).unwrap()
    );
    assert!(balanced_sample_order(&[], 3, &mut rng).is_err());
}

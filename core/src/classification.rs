//! Classification metrics (accuracy, F1, ROC AUC) and class-balanced sampling.
//!
//! The conventions follow scikit-learn: `f1_score` with `zero_division=0`, macro F1 averaged over
//! the classes present in the predictions or the truth, and `roc_auc_score` for binary labels,
//! computed here as the Mann–Whitney U statistic with tied scores given their average rank.

use crate::rng::Rng;
use crate::{Error, Result};

fn check_lengths(predicted: usize, truth: usize, what: &str) -> Result<()> {
    if predicted != truth {
        return Err(Error::new(
            what,
            format!("{predicted} predictions but {truth} true labels"),
        ));
    }
    if truth == 0 {
        return Err(Error::new(what, "no samples"));
    }
    Ok(())
}

/// The fraction of samples whose predicted class equals the true class.
/// An error when the lengths differ or are zero.
pub fn accuracy(predicted: &[usize], truth: &[usize]) -> Result<f64> {
    check_lengths(predicted.len(), truth.len(), "accuracy")?;
    let correct = predicted
        .iter()
        .zip(truth)
        .filter(|(predicted, truth)| predicted == truth)
        .count();
    Ok(correct as f64 / truth.len() as f64)
}

/// F1 of class `positive` against the rest: `2·TP / (2·TP + FP + FN)`, 0 when the class is
/// neither predicted nor present (scikit-learn's `zero_division=0`).
pub fn f1_binary(predicted: &[usize], truth: &[usize], positive: usize) -> Result<f64> {
    check_lengths(predicted.len(), truth.len(), "F1")?;
    Ok(class_f1(predicted, truth, positive))
}

fn class_f1(predicted: &[usize], truth: &[usize], positive: usize) -> f64 {
    let (mut true_positives, mut false_positives, mut false_negatives) = (0usize, 0usize, 0usize);
    for (&predicted, &truth) in predicted.iter().zip(truth) {
        match (predicted == positive, truth == positive) {
            (true, true) => true_positives += 1,
            (true, false) => false_positives += 1,
            (false, true) => false_negatives += 1,
            (false, false) => {}
        }
    }
    let denominator = 2 * true_positives + false_positives + false_negatives;
    if denominator == 0 {
        0.0
    } else {
        (2 * true_positives) as f64 / denominator as f64
    }
}

/// Macro F1: the unweighted mean of the per-class F1 over every class that occurs in the
/// predictions or in the truth (scikit-learn's `average="macro"` without `labels`).
pub fn macro_f1(predicted: &[usize], truth: &[usize]) -> Result<f64> {
    check_lengths(predicted.len(), truth.len(), "macro F1")?;
    let mut classes: Vec<usize> = predicted.iter().chain(truth).copied().collect();
    classes.sort_unstable();
    classes.dedup();
    let total: f64 = classes
        .iter()
        .map(|&class| class_f1(predicted, truth, class))
        .sum();
    Ok(total / classes.len() as f64)
}

/// Area under the ROC curve of `scores` (higher means positive) for binary `truth`: the
/// probability that a random positive scores above a random negative, ties counting one half.
///
/// Computed as the Mann–Whitney statistic `(R₊ − n₊(n₊+1)/2) / (n₊·n₋)` with `R₊` the sum of the
/// positives' ranks, tied scores getting their average rank; this equals scikit-learn's
/// `roc_auc_score`. An error when the lengths differ, a score is not finite, or only one class
/// is present (the AUC is undefined then).
pub fn roc_auc(scores: &[f64], truth: &[bool]) -> Result<f64> {
    if scores.len() != truth.len() {
        return Err(Error::new(
            "ROC AUC",
            format!("{} scores but {} true labels", scores.len(), truth.len()),
        ));
    }
    if let Some(index) = scores.iter().position(|score| !score.is_finite()) {
        return Err(Error::new(
            "ROC AUC",
            format!("score {index} is not finite ({})", scores[index]),
        ));
    }
    let positives = truth.iter().filter(|&&positive| positive).count();
    let negatives = truth.len() - positives;
    if positives == 0 || negatives == 0 {
        return Err(Error::new(
            "ROC AUC",
            format!("undefined with {positives} positive(s) and {negatives} negative(s)"),
        ));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut positive_rank_sum = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        // Ranks start..end (0-based) share the average 1-based rank.
        let average_rank = (start + end + 1) as f64 / 2.0;
        let tied_positives = order[start..end].iter().filter(|&&i| truth[i]).count();
        positive_rank_sum += average_rank * tied_positives as f64;
        start = end;
    }
    let positives = positives as f64;
    let u_statistic = positive_rank_sum - positives * (positives + 1.0) / 2.0;
    Ok(u_statistic / (positives * negatives as f64))
}

/// Per-sample weights that give every class the same total weight: `1 / (K·n_c)` for a sample of
/// class `c` with `n_c` members among `K` classes present (the weights sum to 1).
pub fn balanced_weights(labels: &[usize]) -> Result<Vec<f64>> {
    let members = class_members(labels)?;
    let present = members.iter().filter(|list| !list.is_empty()).count() as f64;
    Ok(labels
        .iter()
        .map(|&label| 1.0 / (present * members[label].len() as f64))
        .collect())
}

/// Sample indices of each class (`members[c]` lists the samples of class `c`).
fn class_members(labels: &[usize]) -> Result<Vec<Vec<usize>>> {
    let largest = labels
        .iter()
        .copied()
        .max()
        .ok_or_else(|| Error::new("balanced sampling", "no labels"))?;
    if largest > labels.len().max(1 << 16) {
        return Err(Error::new(
            "balanced sampling",
            format!(
                "class label {largest} is absurdly large for {} samples",
                labels.len()
            ),
        ));
    }
    let mut members = vec![Vec::new(); largest + 1];
    for (index, &label) in labels.iter().enumerate() {
        members[label].push(index);
    }
    Ok(members)
}

/// `count` sample indices drawn class-balanced: the classes present take turns (each round of
/// `K` draws visits every class once, in a shuffled order), so each class is drawn
/// `⌊count/K⌋` or `⌈count/K⌉` times; within a class the samples are visited in a shuffled order
/// and reshuffled once all were used. Deterministic for a given `rng` state.
pub fn balanced_sample_order(labels: &[usize], count: usize, rng: &mut Rng) -> Result<Vec<usize>> {
    let members = class_members(labels)?;
    let mut pools: Vec<Vec<usize>> = members.into_iter().filter(|m| !m.is_empty()).collect();
    let mut cursors = vec![0usize; pools.len()];
    for pool in &mut pools {
        rng.shuffle(pool);
    }
    let mut class_order: Vec<usize> = (0..pools.len()).collect();
    let mut order = Vec::with_capacity(count);
    while order.len() < count {
        rng.shuffle(&mut class_order);
        for &class in class_order.iter().take(count - order.len()) {
            if cursors[class] == pools[class].len() {
                rng.shuffle(&mut pools[class]);
                cursors[class] = 0;
            }
            order.push(pools[class][cursors[class]]);
            cursors[class] += 1;
        }
    }
    Ok(order)
}

//! Paired comparisons of two fine-tuning arms (pre-trained vs scratch, or two pre-trainings)
//! that share the split, the test subjects and the training seeds.
//!
//! A run's test Dice depends on two sources of noise: which subjects are tested, and the training
//! seed (weights, label subset, crops). Pairing on the same seed and subject removes what the
//! arms share. [`PairedDifference::over_seeds`] averages each seed's differences over the test
//! subjects and puts a Student-t 95 % interval over the seeds: the honest interval for "would this
//! hold with another seed" (the test subjects are fixed). [`PairedDifference::over_pairs`] treats
//! every (seed, subject) pair as independent: narrower, optimistic, reported beside it.

/// A mean difference with its 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedDifference {
    /// Mean of `a − b`.
    pub mean: f64,
    /// 95 % Student-t interval of the mean (NaN with fewer than 2 values).
    pub low: f64,
    pub high: f64,
    /// Values the interval is over (seeds, or pairs).
    pub count: usize,
    /// Pairs (seed, subject) where `a > b`, `a < b`, out of all pairs.
    pub wins: usize,
    pub losses: usize,
    pub pairs: usize,
}

/// The headline region's index among `regions`: `WT` when the labels have it; `None` means the
/// headline is the mean over regions.
pub fn headline_region<'a>(regions: impl IntoIterator<Item = &'a str>) -> Option<usize> {
    regions.into_iter().position(|name| name == "WT")
}

/// One case's headline Dice from its Dice per region (see [`headline_region`]).
pub fn headline_of(dice: &[f64], region: Option<usize>) -> f64 {
    match region {
        Some(index) => dice[index],
        None => dice.iter().sum::<f64>() / dice.len().max(1) as f64,
    }
}

/// `a − b` for every subject id both lists score, in the order of `a`.
pub fn differences_by_id(a: &[(String, f64)], b: &[(String, f64)]) -> Vec<f64> {
    a.iter()
        .filter_map(|(id, value)| {
            let (_, other) = b.iter().find(|(other_id, _)| other_id == id)?;
            Some(value - other)
        })
        .collect()
}

/// Two-sided 97.5 % quantile of Student's t with `df` degrees of freedom.
pub fn t_quantile_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => TABLE[df - 1],
        31..=60 => 2.000,
        61..=120 => 1.980,
        _ => 1.960,
    }
}

/// Mean and 95 % t-interval half-width of `values`.
pub fn mean_and_half_width(values: &[f64]) -> (f64, f64) {
    let count = values.len();
    if count == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mean = values.iter().sum::<f64>() / count as f64;
    if count < 2 {
        return (mean, f64::NAN);
    }
    let variance = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (count - 1) as f64;
    let half = t_quantile_975(count - 1) * (variance / count as f64).sqrt();
    (mean, half)
}

impl PairedDifference {
    /// `per_seed[s]` holds the differences `a − b` of seed `s`, one per test subject.
    pub fn over_seeds(per_seed: &[Vec<f64>]) -> Self {
        let seed_means: Vec<f64> = per_seed
            .iter()
            .filter(|values| !values.is_empty())
            .map(|values| values.iter().sum::<f64>() / values.len() as f64)
            .collect();
        Self::with_interval_over(&seed_means, per_seed)
    }

    /// Every (seed, subject) difference as an independent value (optimistic).
    pub fn over_pairs(per_seed: &[Vec<f64>]) -> Self {
        let all: Vec<f64> = per_seed.iter().flatten().copied().collect();
        Self::with_interval_over(&all, per_seed)
    }

    fn with_interval_over(values: &[f64], per_seed: &[Vec<f64>]) -> Self {
        let (mean, half) = mean_and_half_width(values);
        let pairs: Vec<f64> = per_seed.iter().flatten().copied().collect();
        Self {
            mean,
            low: mean - half,
            high: mean + half,
            count: values.len(),
            wins: pairs.iter().filter(|&&d| d > 0.0).count(),
            losses: pairs.iter().filter(|&&d| d < 0.0).count(),
            pairs: pairs.len(),
        }
    }

    /// `+0.012 [−0.020, +0.044]`.
    pub fn cell(&self) -> String {
        match self.low.is_finite() {
            true => format!("{:+.3} [{:+.3}, {:+.3}]", self.mean, self.low, self.high),
            false => format!("{:+.3}", self.mean),
        }
    }

    /// Whether the interval excludes zero.
    pub fn resolved(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_matches_a_hand_computed_t_interval() {
        // Seed means 0.1, 0.2, 0.3: mean 0.2, sd 0.1, half-width 4.303 · 0.1 / √3.
        let per_seed = vec![vec![0.0, 0.2], vec![0.2, 0.2], vec![0.3, 0.3]];
        let seeds = PairedDifference::over_seeds(&per_seed);
        assert!((seeds.mean - 0.2).abs() < 1e-12);
        let half = 4.303 * 0.1 / 3f64.sqrt();
        assert!((seeds.high - 0.2 - half).abs() < 1e-9, "{seeds:?}");
        assert_eq!(seeds.count, 3);
        assert_eq!((seeds.wins, seeds.losses, seeds.pairs), (5, 0, 6));
        // Three seeds cannot resolve it; the six pairs taken as independent do (optimistic).
        assert!(!seeds.resolved());
        let pairs = PairedDifference::over_pairs(&per_seed);
        assert!(pairs.resolved(), "{pairs:?}");
        assert_eq!(pairs.count, 6);
        assert!((pairs.mean - 1.2 / 6.0).abs() < 1e-12);
        assert!(pairs.high - pairs.low < seeds.high - seeds.low);
    }

    #[test]
    fn no_difference_is_not_resolved_and_one_value_has_no_interval() {
        let per_seed = vec![vec![0.1, -0.1], vec![-0.2, 0.2]];
        assert!(!PairedDifference::over_seeds(&per_seed).resolved());
        let single = PairedDifference::over_seeds(&[vec![0.5]]);
        assert_eq!(single.cell(), "+0.500");
        assert!(!single.resolved());
        assert_eq!(t_quantile_975(4), 2.776);
        assert!(t_quantile_975(0).is_nan());
    }
}

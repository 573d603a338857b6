//! Seeded train/validation/test splits of the labelled subjects and nested label fractions.
//!
//! A split depends only on the subject ids **as a set** and the seed: the ids are sorted before
//! the seeded shuffle, so listing the subjects in another order gives the same subjects in each
//! part. The label fractions of the label-efficiency experiment are nested: for one seed the
//! 10 % subset lies inside the 20 % subset, which lies inside the 40 % one, and so on.

use crate::error::{Error, Result};
use crate::rng::Rng;

/// Context named by the errors of this module.
const CONTEXT: &str = "subject split";

/// Mixed into the seed of [`label_fraction`], so its shuffle differs from the split's.
const FRACTION_SALT: u64 = 0x1B87_3593_CC9E_2D51;

/// Tolerance on `fraction · n` before rounding, so that e.g. `0.7 · 10` counts 7, not 8.
const ROUNDING_SLACK: f64 = 1e-9;

/// A partition of subjects: indices into the id list given to [`split_subjects`], each part
/// ordered by subject id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Subjects to train on.
    pub train: Vec<usize>,
    /// Subjects for validation (model selection).
    pub validation: Vec<usize>,
    /// Held-out test subjects.
    pub test: Vec<usize>,
}

/// Splits `ids` into train, validation and test parts of about `validation_fraction` and
/// `test_fraction` of the subjects (rounded, at least one subject in a part whose fraction is
/// positive, and at least one training subject).
///
/// Deterministic in (the set of ids, seed). Errors on repeated ids, fractions outside `[0, 1)` or
/// summing to 1 or more, and too few subjects to give every requested part one subject.
pub fn split_subjects(
    ids: &[String],
    validation_fraction: f64,
    test_fraction: f64,
    seed: u64,
) -> Result<Split> {
    check_fractions(validation_fraction, test_fraction)?;
    let mut by_id: Vec<usize> = (0..ids.len()).collect();
    by_id.sort_by(|&a, &b| ids[a].cmp(&ids[b]));
    if let Some(pair) = by_id.windows(2).find(|pair| ids[pair[0]] == ids[pair[1]]) {
        return Err(Error::new(
            CONTEXT,
            format!("subject id '{}' appears more than once", ids[pair[0]]),
        ));
    }
    let count = ids.len();
    let validation_count = part_size(validation_fraction, count);
    let test_count = part_size(test_fraction, count);
    if validation_count + test_count >= count {
        return Err(Error::new(
            CONTEXT,
            format!(
                "{count} subjects are too few for validation {validation_fraction} and test \
                 {test_fraction} with at least one subject per part"
            ),
        ));
    }
    // Rank of each subject in the seeded order of the sorted ids.
    let mut shuffled = by_id.clone();
    Rng::new(seed).shuffle(&mut shuffled);
    let mut part_of = vec![0u8; count];
    for (position, &index) in shuffled.iter().enumerate() {
        part_of[index] = match position {
            p if p < test_count => 2,
            p if p < test_count + validation_count => 1,
            _ => 0,
        };
    }
    let part = |wanted: u8| -> Vec<usize> {
        by_id
            .iter()
            .copied()
            .filter(|&index| part_of[index] == wanted)
            .collect()
    };
    Ok(Split {
        train: part(0),
        validation: part(1),
        test: part(2),
    })
}

/// The number of subjects a part with `fraction` of `count` subjects gets.
fn part_size(fraction: f64, count: usize) -> usize {
    if fraction <= 0.0 {
        return 0;
    }
    ((fraction * count as f64).round() as usize).max(1)
}

/// Both fractions in `[0, 1)`, finite, summing to less than 1.
fn check_fractions(validation_fraction: f64, test_fraction: f64) -> Result<()> {
    let valid = |fraction: f64| fraction.is_finite() && (0.0..1.0).contains(&fraction);
    if !valid(validation_fraction)
        || !valid(test_fraction)
        || validation_fraction + test_fraction >= 1.0
    {
        return Err(Error::new(
            CONTEXT,
            format!(
                "validation {validation_fraction} and test {test_fraction} fractions must be in \
                 [0, 1) and sum to less than 1"
            ),
        ));
    }
    Ok(())
}

/// A seeded subset of `train` holding `ceil(fraction · n)` subjects (at least one), for the
/// label-efficiency experiment: `train` is shuffled once by `seed` and the subset is a prefix of
/// that order, so the subsets of one seed are nested (10 % ⊂ 20 % ⊂ 40 % ⊂ 100 %).
///
/// The result depends on the order of `train` (as given by [`split_subjects`], by subject id).
/// Errors when `fraction` is not in `(0, 1]` or `train` is empty.
pub fn label_fraction(train: &[usize], fraction: f64, seed: u64) -> Result<Vec<usize>> {
    if !(fraction.is_finite() && fraction > 0.0 && fraction <= 1.0) {
        return Err(Error::new(
            "label fraction",
            format!("fraction {fraction} is not in (0, 1]"),
        ));
    }
    if train.is_empty() {
        return Err(Error::new(
            "label fraction",
            "there are no training subjects",
        ));
    }
    let mut order = train.to_vec();
    Rng::new(seed ^ FRACTION_SALT).shuffle(&mut order);
    let wanted = (fraction * train.len() as f64 - ROUNDING_SLACK).ceil() as usize;
    order.truncate(wanted.clamp(1, train.len()));
    Ok(order)
}

//! Subject splits and label fractions: disjoint covering parts of the requested sizes, determinism by
//! seed, independence from the order of the ids, nested label fractions, and the errors.

use brainmvp_core::finetune::split::{label_fraction, split_subjects, Split};
use std::collections::BTreeSet;

fn ids(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("sub-{i:03}")).collect()
}

/// The ids of each part, as sets.
fn id_sets(ids: &[String], split: &Split) -> [BTreeSet<String>; 3] {
    let set = |part: &[usize]| part.iter().map(|&i| ids[i].clone()).collect();
    [set(&split.train), set(&split.validation), set(&split.test)]
}

#[test]
fn parts_are_disjoint_cover_all_and_have_the_rounded_sizes() {
    let ids = ids(50);
    let split = split_subjects(&ids, 0.2, 0.1, 7).unwrap();
    assert_eq!(
        (split.train.len(), split.validation.len(), split.test.len()),
        (35, 10, 5)
    );
    let mut all: Vec<usize> = [&split.train, &split.validation, &split.test]
        .iter()
        .flat_map(|part| part.iter().copied())
        .collect();
    all.sort();
    assert_eq!(all, (0..50).collect::<Vec<_>>());
    // Each part is ordered by id.
    for part in [&split.train, &split.validation, &split.test] {
        assert!(part.windows(2).all(|w| ids[w[0]] < ids[w[1]]));
    }
}

#[test]
fn small_cohorts_get_one_subject_per_requested_part() {
    let split = split_subjects(&ids(3), 0.05, 0.05, 1).unwrap();
    assert_eq!(
        (split.train.len(), split.validation.len(), split.test.len()),
        (1, 1, 1)
    );
    let no_test = split_subjects(&ids(4), 0.25, 0.0, 1).unwrap();
    assert_eq!((no_test.train.len(), no_test.validation.len()), (3, 1));
    assert!(no_test.test.is_empty());
}

#[test]
fn deterministic_by_seed_and_seeds_differ() {
    let ids = ids(40);
    let a = split_subjects(&ids, 0.2, 0.2, 3).unwrap();
    assert_eq!(a, split_subjects(&ids, 0.2, 0.2, 3).unwrap());
    let b = split_subjects(&ids, 0.2, 0.2, 4).unwrap();
    assert_ne!(a.test, b.test);
}

#[test]
fn the_order_of_the_ids_does_not_matter() {
    let ids = ids(30);
    let mut reversed = ids.clone();
    reversed.reverse();
    let mut rotated = ids.clone();
    rotated.rotate_left(11);
    let reference = id_sets(&ids, &split_subjects(&ids, 0.2, 0.3, 9).unwrap());
    for other in [reversed, rotated] {
        let split = split_subjects(&other, 0.2, 0.3, 9).unwrap();
        assert_eq!(id_sets(&other, &split), reference);
        // The label fractions follow the subjects, not the positions.
        let subset = label_fraction(&split.train, 0.4, 9).unwrap();
        let reference_split = split_subjects(&ids, 0.2, 0.3, 9).unwrap();
        let reference_subset = label_fraction(&reference_split.train, 0.4, 9).unwrap();
        let names = |list: &[String], part: &[usize]| -> BTreeSet<String> {
            part.iter().map(|&i| list[i].clone()).collect()
        };
        assert_eq!(names(&other, &subset), names(&ids, &reference_subset));
    }
}

#[test]
fn label_fractions_are_nested_with_ceiling_sizes() {
    let train: Vec<usize> = (100..137).collect();
    let mut previous: BTreeSet<usize> = BTreeSet::new();
    for (fraction, size) in [(0.1, 4), (0.2, 8), (0.4, 15), (1.0, 37)] {
        let subset = label_fraction(&train, fraction, 5).unwrap();
        assert_eq!(subset.len(), size, "fraction {fraction}");
        let set: BTreeSet<usize> = subset.iter().copied().collect();
        assert_eq!(set.len(), size, "no repeats");
        assert!(set.iter().all(|i| train.contains(i)));
        assert!(
            previous.is_subset(&set),
            "fraction {fraction} is not nested"
        );
        previous = set;
    }
    // Exact products are not rounded up (0.7 · 10 is 7, not 8), at least one subject is kept.
    let ten: Vec<usize> = (0..10).collect();
    assert_eq!(label_fraction(&ten, 0.7, 1).unwrap().len(), 7);
    assert_eq!(label_fraction(&ten, 0.01, 1).unwrap().len(), 1);
    assert_eq!(
        label_fraction(&train, 0.4, 5).unwrap(),
        label_fraction(&train, 0.4, 5).unwrap()
    );
    assert_ne!(
        label_fraction(&train, 0.4, 5).unwrap(),
        label_fraction(&train, 0.4, 6).unwrap()
    );
}

#[test]
fn errors_name_the_cause() {
    let ids = ids(10);
    let err = split_subjects(&ids, 0.6, 0.5, 1).unwrap_err();
    assert!(err.to_string().contains("sum to less than 1"), "{err}");
    assert!(split_subjects(&ids, -0.1, 0.1, 1).is_err());
    assert!(split_subjects(&ids, f64::NAN, 0.1, 1).is_err());
    let err = split_subjects(&ids[..2], 0.1, 0.1, 1).unwrap_err();
    assert!(err.to_string().contains("too few"), "{err}");
    let mut repeated = ids.clone();
    repeated.push("sub-003".into());
    let err = split_subjects(&repeated, 0.1, 0.1, 1).unwrap_err();
    assert!(err.to_string().contains("sub-003"), "{err}");
    for fraction in [0.0, -0.5, 1.5, f64::INFINITY] {
        assert!(label_fraction(&[1, 2, 3], fraction, 1).is_err());
    }
    assert!(label_fraction(&[], 0.5, 1).is_err());
}

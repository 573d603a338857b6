//! The realistic lesion style and the domain randomisation of the synthetic cohort, measured on
//! generated subjects (in memory, 2 mm): low-grade tumours have a non-enhancing core, glioma rims
//! are thinner than the classic shell, metastases come as several lesions, enhancing tumour is
//! the brightest compartment on T1ce, and randomisation varies the tissue contrast between
//! subjects while the classic style stays as it was.

use brainmvp_core::metrics::components::connected_components;
use brainmvp_core::synth::anatomy::{GM, WM};
use brainmvp_core::synth::{
    generate_subject, load_anatomy, locate_templates, plan_cohort, Grade, LesionStyle,
    SharedAnatomy, SynthConfig, SyntheticSubject, ENHANCING, NECROSIS, OEDEMA,
};
use std::sync::OnceLock;

fn shared() -> &'static SharedAnatomy {
    static TWO: OnceLock<SharedAnatomy> = OnceLock::new();
    TWO.get_or_init(|| {
        let templates = locate_templates(None).expect("ICBM152 templates in ../shared/data/mri");
        SharedAnatomy::new(load_anatomy(&templates, 2.0).unwrap())
    })
}

fn cohort(style: LesionStyle, randomisation: f64, subjects: usize) -> Vec<SyntheticSubject> {
    let config = SynthConfig {
        subjects,
        seed: 5,
        spacing_mm: 2.0,
        no_tumour_fraction: 0.0,
        missing_modality_fraction: 0.0,
        low_grade_fraction: 0.25,
        lesion_style: style,
        domain_randomisation: randomisation,
        ..SynthConfig::default()
    };
    config.validate().unwrap();
    plan_cohort(&config)
        .iter()
        .map(|plan| generate_subject(shared(), &config, plan))
        .collect()
}

/// Mean of modality `m` (file order t1, t1ce, t2, flair, pd) over the voxels `keep` accepts.
fn mean_where(subject: &SyntheticSubject, m: usize, keep: impl Fn(usize) -> bool) -> f64 {
    let (mut sum, mut count) = (0.0, 0usize);
    for (i, &value) in subject.images[m].data.iter().enumerate() {
        if keep(i) {
            sum += value as f64;
            count += 1;
        }
    }
    sum / count.max(1) as f64
}

/// Enhancing voxels as a share of the tumour core (necrosis + enhancing).
fn enhancing_share(subject: &SyntheticSubject) -> f64 {
    let counts = subject.counts;
    counts.enhancing as f64 / (counts.enhancing + counts.necrosis).max(1) as f64
}

#[test]
fn realistic_low_grade_has_a_core_and_high_grade_thin_rims_and_metastases() {
    let realistic = cohort(LesionStyle::Realistic, 0.0, 24);
    let mut multi_lesion = 0;
    for subject in &realistic {
        let counts = subject.counts;
        match subject.plan.grade {
            Grade::Lgg => {
                assert!(
                    counts.necrosis > 0,
                    "{}: low grade without core",
                    subject.plan.id
                );
                assert_eq!(
                    counts.enhancing, 0,
                    "{}: low grade enhances",
                    subject.plan.id
                );
            }
            _ => assert!(
                counts.enhancing > 0,
                "{}: no enhancing tumour",
                subject.plan.id
            ),
        }
        let core: Vec<bool> = subject
            .seg
            .data
            .iter()
            .map(|&l| l == NECROSIS || l == ENHANCING)
            .collect();
        let lesions = connected_components(&core, subject.seg.dims).unwrap();
        let sizable = lesions
            .voxel_counts
            .iter()
            .filter(|&&size| size >= 20)
            .count();
        multi_lesion += usize::from(sizable >= 2);
    }
    assert!(
        multi_lesion >= 2,
        "only {multi_lesion} subjects with several lesions"
    );
    let high = |subjects: &[SyntheticSubject]| -> f64 {
        let shares: Vec<f64> = subjects
            .iter()
            .filter(|s| s.plan.grade == Grade::Hgg)
            .map(enhancing_share)
            .collect();
        shares.iter().sum::<f64>() / shares.len() as f64
    };
    let classic = cohort(LesionStyle::Classic, 0.0, 24);
    let (realistic_share, classic_share) = (high(&realistic), high(&classic));
    println!(
        "enhancing share of the core: realistic {realistic_share:.2}, classic {classic_share:.2}"
    );
    assert!(realistic_share < classic_share - 0.1);
}

#[test]
fn realistic_contrasts_keep_the_relations_real_tumours_show() {
    for subject in cohort(LesionStyle::Realistic, 1.0, 16) {
        if subject.plan.grade != Grade::Hgg {
            continue;
        }
        let seg = &subject.seg.data;
        let label_mean = |m: usize, label: u8| mean_where(&subject, m, |i| seg[i] == label);
        let id = &subject.plan.id;
        // T1ce (file position 1): the enhancing tumour is brighter than necrosis and oedema.
        let enhancing = label_mean(1, ENHANCING);
        assert!(
            enhancing > label_mean(1, NECROSIS) && enhancing > label_mean(1, OEDEMA),
            "{id}"
        );
        // Oedema is bright on T2 and FLAIR against tumour-free white matter.
        let anatomy = &shared().anatomy;
        let white =
            |m: usize| mean_where(&subject, m, |i| seg[i] == 0 && anatomy.voxels[i][WM] > 0.9);
        for m in [2, 3] {
            assert!(label_mean(m, OEDEMA) > 1.1 * white(m), "{id}: modality {m}");
        }
    }
}

/// Median of modality `m` over the voxels `keep` accepts (robust to the few look-alike spots and
/// bright edges).
fn median_where(subject: &SyntheticSubject, m: usize, keep: impl Fn(usize) -> bool) -> f64 {
    let mut values: Vec<f32> = (0..subject.images[m].data.len())
        .filter(|&i| keep(i))
        .map(|i| subject.images[m].data[i])
        .collect();
    values.sort_by(f32::total_cmp);
    values[values.len() / 2] as f64
}

#[test]
fn domain_randomisation_varies_tissue_contrast_between_subjects() {
    let anatomy = &shared().anatomy;
    let grey = |i: usize| anatomy.voxels[i][GM] > 0.8;
    let white = |i: usize| anatomy.voxels[i][WM] > 0.9;
    let spread = |subjects: &[SyntheticSubject]| {
        let ratios: Vec<f64> = subjects
            .iter()
            .filter(|s| s.plan.grade == Grade::Lgg)
            .map(|s| median_where(s, 2, grey) / median_where(s, 2, white))
            .collect();
        let max = ratios.iter().cloned().fold(f64::MIN, f64::max);
        let min = ratios.iter().cloned().fold(f64::MAX, f64::min);
        max - min
    };
    let plain = spread(&cohort(LesionStyle::Realistic, 0.0, 16));
    let randomised = spread(&cohort(LesionStyle::Realistic, 1.0, 16));
    println!("T2 GM/WM ratio spread (medians): plain {plain:.3}, randomised {randomised:.3}");
    assert!(randomised > 2.0 * plain + 0.05);
}

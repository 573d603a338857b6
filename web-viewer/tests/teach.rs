//! Teaching from hand corrections, as the page does it, on the CPU backend: a simulated user
//! paints the truth of the whole tumour (WT) on three axial slices of a synthetic case whose
//! truth is known (subject 0 of the sample's cohort), the bundled model is taught 20 steps
//! (corrections up-weighted, the page's defaults), and the case is segmented again. The WT Dice
//! on the slices that were **not** painted rises; on a second case of the same cohort (subject 1,
//! the bundled sample) it does not fall by more than 0.05.
//!
//! `cargo test --release -p brainmvp-web --test teach -- --ignored --nocapture` runs the sweep
//! behind `docs/browser.md` (both teaching focuses, six cases of the cohort).

mod support;

use brainmvp_core::bmvp::BmvpModel;
use brainmvp_core::correction::weights::{TEACHING_BATCH, TEACHING_LEARNING_RATE};
use brainmvp_core::correction::{Corrections, SlicePlane, TeachingFocus};
use brainmvp_core::inference::segment::InferenceOptions;
use brainmvp_core::model::footprint::MemoryLimits;
use brainmvp_core::nifti::Datatype;
use brainmvp_core::synth::{
    generate_subject, load_anatomy, locate_templates, plan_cohort, SharedAnatomy, SynthConfig,
    SynthModality,
};
use brainmvp_core::{nifti, Modality, Volume};
use brainmvp_web::jobs::{self, FinetuneSettings, InputFile, LabelledFiles};
use burn::backend::{Autodiff, Flex};
use support::{assets, block_on};

/// Teaching steps of the page's budget.
const STEPS: usize = 20;
/// Axial slices the simulated user paints.
const PAINTED_SLICES: usize = 3;

fn demo_model() -> Vec<u8> {
    std::fs::read(assets().join("demo-model.bmvp")).unwrap()
}

/// A case of the page's sample cohort (`brainmvp synth --seed 7 --spacing-mm 2`, every subject
/// high-grade with four modalities; subject 1 is the bundled sample): its images and truth.
struct Case {
    images: Vec<InputFile>,
    truth: Volume<u8>,
}

fn cohort_case(subject: usize) -> Case {
    let config = SynthConfig {
        subjects: 6,
        seed: 7,
        spacing_mm: 2.0,
        no_tumour_fraction: 0.0,
        missing_modality_fraction: 0.0,
        low_grade_fraction: 0.0,
        ..SynthConfig::default()
    };
    let templates = locate_templates(None).expect("ICBM152 templates under ../shared/data/mri");
    let shared = SharedAnatomy::new(load_anatomy(&templates, 2.0).unwrap());
    let plan = &plan_cohort(&config)[subject];
    let generated = generate_subject(&shared, &config, plan);
    let modalities = [
        (SynthModality::T1, Modality::T1),
        (SynthModality::T1ce, Modality::T1c),
        (SynthModality::T2, Modality::T2),
        (SynthModality::Flair, Modality::Flair),
    ];
    let images = modalities
        .iter()
        .map(|&(synth, modality)| InputFile {
            name: format!("subject{subject}_{modality}.nii.gz"),
            modality,
            // As `brainmvp synth` writes them (int16), so subject 1 is the bundled sample.
            bytes: nifti::encode_as(&generated.images[synth.index()], Datatype::I16, true).unwrap(),
        })
        .collect();
    Case {
        images,
        truth: generated.seg,
    }
}

fn segment(model: &[u8], case: &Case) -> Volume<u8> {
    let bmvp = jobs::read_model("model.bmvp", model).unwrap();
    let options = InferenceOptions::default();
    let outcome = block_on(jobs::segment::<Flex>(
        &bmvp,
        &case.images,
        &options,
        &MemoryLimits::default(),
        &Default::default(),
        |_, _| {},
    ))
    .unwrap();
    let labels = nifti::read_bytes(&outcome.nifti, "seg.nii.gz")
        .unwrap()
        .volume;
    labels.map(|value| value as u8)
}

/// Dice of the whole tumour (label > 0) over the axial slices `slices` accepts.
fn wt_dice(predicted: &Volume<u8>, truth: &Volume<u8>, slices: impl Fn(usize) -> bool) -> f64 {
    let slice_len = truth.dims[0] * truth.dims[1];
    let (mut both, mut total) = (0usize, 0usize);
    for (index, (&p, &t)) in predicted.data.iter().zip(&truth.data).enumerate() {
        if slices(index / slice_len) {
            both += usize::from(p > 0 && t > 0);
            total += usize::from(p > 0) + usize::from(t > 0);
        }
    }
    if total == 0 {
        1.0
    } else {
        2.0 * both as f64 / total as f64
    }
}

/// `PAINTED_SLICES` axial slices spread over the middle of the truth's tumour.
fn slices_to_paint(truth: &Volume<u8>) -> Vec<usize> {
    let slice_len = truth.dims[0] * truth.dims[1];
    let tumour: Vec<usize> = (0..truth.dims[2])
        .filter(|&z| {
            truth.data[z * slice_len..(z + 1) * slice_len]
                .iter()
                .any(|&l| l > 0)
        })
        .collect();
    let (low, high) = (tumour[0], tumour[tumour.len() - 1]);
    (1..=PAINTED_SLICES)
        .map(|k| low + (high - low) * k / (PAINTED_SLICES + 1))
        .collect()
}

/// The simulated user: on each slice, every voxel where the prediction's whole tumour differs
/// from the truth's is painted with the truth's label (0 erases), one brush stroke per slice.
fn paint_truth(
    predicted: &Volume<u8>,
    truth: &Volume<u8>,
    slices: &[usize],
) -> (Volume<u8>, Corrections) {
    let mut labels = predicted.clone();
    let mut corrections = Corrections::new(&labels);
    let [nx, ny, _] = truth.dims;
    for &z in slices {
        let plane = SlicePlane {
            normal_axis: 2,
            index: z,
        };
        corrections.begin_stroke(&labels, plane).unwrap();
        for y in 0..ny {
            for x in 0..nx {
                let (p, t) = (predicted.get(x, y, z), truth.get(x, y, z));
                if (p > 0) != (t > 0) {
                    corrections.brush(&mut labels, [x, y, z], 0.5, t).unwrap();
                }
            }
        }
        corrections.end_stroke(&labels);
    }
    (labels, corrections)
}

/// Teach the model on the corrected case; returns the taught `.bmvp` and the losses.
fn teach(
    model: &[u8],
    case: &Case,
    labels: &Volume<u8>,
    corrections: &Corrections,
    focus: TeachingFocus,
) -> (Vec<u8>, Vec<f32>) {
    let bmvp: BmvpModel = jobs::read_model("model.bmvp", model).unwrap();
    let classes = Volume {
        dims: labels.dims,
        affine: labels.affine,
        data: focus.weight_classes(corrections, labels.dims),
    };
    let cases = [LabelledFiles {
        images: case.images.clone(),
        label: (
            "corrected.nii.gz".into(),
            nifti::encode_u8(labels, true).unwrap(),
        ),
        weight_classes: Some((
            "weights.nii.gz".into(),
            nifti::encode_u8(&classes, true).unwrap(),
        )),
    }];
    let settings = FinetuneSettings {
        steps: STEPS,
        learning_rate: TEACHING_LEARNING_RATE,
        batch: TEACHING_BATCH,
        seed: 1,
        focus,
    };
    let outcome = block_on(jobs::finetune::<Autodiff<Flex>, _, _>(
        &bmvp,
        &cases,
        settings,
        &Default::default(),
        |_, _| std::future::ready(true),
    ))
    .unwrap();
    (outcome.model, outcome.losses)
}

/// WT Dice before and after teaching: on the unpainted slices of the taught case, and on the
/// whole of a second case.
struct Outcome {
    unpainted: [f64; 2],
    second: [f64; 2],
    corrected_voxels: usize,
}

fn run(taught: &Case, second: &Case, focus: TeachingFocus) -> Outcome {
    let model = demo_model();
    let before = segment(&model, taught);
    let slices = slices_to_paint(&taught.truth);
    let (labels, corrections) = paint_truth(&before, &taught.truth, &slices);
    let (tuned, losses) = teach(&model, taught, &labels, &corrections, focus);
    assert!(losses.iter().all(|loss| loss.is_finite()), "{losses:?}");
    let after = segment(&tuned, taught);
    let unpainted = |z: usize| !slices.contains(&z);
    let second_before = segment(&model, second);
    let second_after = segment(&tuned, second);
    let all = |_| true;
    Outcome {
        unpainted: [
            wt_dice(&before, &taught.truth, unpainted),
            wt_dice(&after, &taught.truth, unpainted),
        ],
        second: [
            wt_dice(&second_before, &second.truth, all),
            wt_dice(&second_after, &second.truth, all),
        ],
        corrected_voxels: corrections.marked_count(),
    }
}

#[test]
fn teaching_on_three_painted_slices_lifts_the_unpainted_slices() {
    let outcome = run(&cohort_case(0), &cohort_case(1), TeachingFocus::UpWeighted);
    let [before, after] = outcome.unpainted;
    let [second_before, second_after] = outcome.second;
    println!(
        "{} corrected voxels; unpainted slices WT {before:.3} -> {after:.3}; second case {second_before:.3} -> {second_after:.3}",
        outcome.corrected_voxels
    );
    assert!(
        after > before + 0.02,
        "WT Dice on unpainted slices {before:.3} -> {after:.3}"
    );
    assert!(
        second_after > second_before - 0.05,
        "second case {second_before:.3} -> {second_after:.3}"
    );
}

#[test]
#[ignore = "the sweep behind docs/browser.md: ~5 min on 2 cores"]
fn sweep_of_both_focuses_over_the_cohort() {
    let cases: Vec<Case> = (0..6).map(cohort_case).collect();
    println!("| taught case | focus | corrected voxels | WT unpainted before → after | next case WT before → after |");
    for focus in [TeachingFocus::UpWeighted, TeachingFocus::CorrectedSlices] {
        for taught in 0..cases.len() {
            let second = (taught + 1) % cases.len();
            let outcome = run(&cases[taught], &cases[second], focus);
            println!(
                "| {taught} | {} | {} | {:.3} → {:.3} | {:.3} → {:.3} |",
                focus.name(),
                outcome.corrected_voxels,
                outcome.unpainted[0],
                outcome.unpainted[1],
                outcome.second[0],
                outcome.second[1]
            );
        }
    }
}

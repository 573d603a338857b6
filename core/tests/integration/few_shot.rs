//! Few-shot fine-tuning in memory (the browser's): crops keep images and labels aligned through
//! preprocessing, cropping and flips; a few Adam steps on labelled cases lower the loss and
//! change the weights; bad cases are one-line errors.

use crate::support::AD;
use brainmvp_core::correction::weights::UP_WEIGHT;
use brainmvp_core::correction::TeachingFocus;
use brainmvp_core::finetune::few_shot::{FewShotSet, FewShotTrainer, LabelledCase};
use brainmvp_core::inference::segment::{SegmenterManifest, SEGMENTER_FORMAT, SEGMENTER_VERSION};
use brainmvp_core::inference::SlidingWindowConfig;
use brainmvp_core::labels::LabelScheme;
use brainmvp_core::model::{Architecture, UniUnetConfig};
use brainmvp_core::preprocess::PreprocessConfig;
use brainmvp_core::rng::Rng;
use brainmvp_core::volume::IDENTITY;
use brainmvp_core::{Modality, Volume};
use burn::tensor::backend::Backend;

const EDGE: usize = 36;
const ROI: usize = 32;

fn manifest() -> SegmenterManifest {
    SegmenterManifest {
        format: SEGMENTER_FORMAT.to_string(),
        version: SEGMENTER_VERSION,
        model: UniUnetConfig::new(2, 3)
            .with_encoder(Architecture::UniformerTiny)
            .with_deep_supervision(true),
        modalities: vec![Modality::T1, Modality::Flair],
        labels: LabelScheme::Brats { enhancing_label: 4 },
        preprocess: PreprocessConfig {
            clip: false,
            ..PreprocessConfig::default()
        },
        window: SlidingWindowConfig {
            roi: [ROI; 3],
            ..SlidingWindowConfig::default()
        },
        templates: Vec::new(),
        init: "scratch".into(),
        brainmvp_version: String::new(),
    }
}

/// A head-like cube of tissue with a bright FLAIR ball (labels 2 outside, 4 in its core).
fn case(rng: &mut Rng, id: &str) -> LabelledCase {
    let voxels = EDGE * EDGE * EDGE;
    let centre: Vec<f64> = (0..3).map(|_| rng.range_f64(12.0, 24.0)).collect();
    let radius = rng.range_f64(5.0, 9.0);
    let (mut t1, mut flair, mut label) =
        (vec![0f32; voxels], vec![0f32; voxels], vec![0f32; voxels]);
    for index in 0..voxels {
        let p = [index % EDGE, (index / EDGE) % EDGE, index / (EDGE * EDGE)];
        if p.iter().any(|&c| !(2..EDGE - 2).contains(&c)) {
            continue; // background around the "head"
        }
        let distance = (0..3)
            .map(|a| (p[a] as f64 - centre[a]).powi(2))
            .sum::<f64>()
            .sqrt();
        t1[index] = 100.0 + 20.0 * rng.uniform() as f32;
        flair[index] = if distance < radius { 400.0 } else { 100.0 } + 20.0 * rng.uniform() as f32;
        label[index] = match distance {
            d if d < radius * 0.5 => 4.0,
            d if d < radius => 2.0,
            _ => 0.0,
        };
    }
    let volume = |data| Volume {
        dims: [EDGE; 3],
        affine: IDENTITY,
        data,
    };
    LabelledCase {
        id: id.to_string(),
        images: vec![(Modality::T1, volume(t1)), (Modality::Flair, volume(flair))],
        label: volume(label),
        weight_classes: None,
    }
}

#[test]
fn crops_keep_images_and_labels_aligned() {
    let mut rng = Rng::new(3);
    let cases = (0..2)
        .map(|i| case(&mut rng, &format!("case {i}")))
        .collect();
    let set = FewShotSet::new(&manifest(), cases, None).unwrap();
    assert_eq!(set.len(), 2);
    let batch = set.sample(&mut Rng::new(9), 6);
    let (inputs, labels, shape) = (batch.inputs, batch.labels, batch.shape);
    assert_eq!(shape, [6, 2, ROI, ROI, ROI]);
    assert!(batch.weights.is_none(), "no weights without corrections");
    let crop_voxels = ROI * ROI * ROI;
    assert_eq!(labels.len(), 6 * crop_voxels);
    let mut labelled = 0;
    for sample in 0..6 {
        let flair = &inputs[(2 * sample + 1) * crop_voxels..(2 * sample + 2) * crop_voxels];
        let label = &labels[sample * crop_voxels..(sample + 1) * crop_voxels];
        // After percentile scaling the ball is far brighter than tissue: the label is exactly
        // the bright voxels, wherever the crop and its flips put them.
        let threshold = (flair.iter().cloned().fold(f32::MIN, f32::max) + 0.0) / 2.0;
        for (value, &class) in flair.iter().zip(label) {
            if class > 0 {
                assert!(*value > threshold, "label {class} on a dark voxel {value}");
                labelled += 1;
            }
        }
        assert!(label.iter().all(|&class| [0, 2, 4].contains(&class)));
    }
    // Half the crops are placed on a labelled voxel: some labels are always seen.
    assert!(labelled > 0);
}

/// `case` with weight classes: the ball's core (label 4) corrected, the slices z in 14..=16
/// reviewed, the rest ignored.
fn teaching_case(rng: &mut Rng) -> LabelledCase {
    let mut case = case(rng, "taught");
    let classes = case
        .label
        .data
        .iter()
        .enumerate()
        .map(|(index, &label)| match (label, index / (EDGE * EDGE)) {
            (4.0, _) => 2.0,
            (_, 14..=16) => 1.0,
            _ => 0.0,
        })
        .collect();
    case.weight_classes = Some(Volume {
        dims: [EDGE; 3],
        affine: IDENTITY,
        data: classes,
    });
    case
}

#[test]
fn teaching_crops_carry_the_weight_classes_through_preprocessing_and_are_trained_on() {
    let set = FewShotSet::new(&manifest(), vec![teaching_case(&mut Rng::new(4))], None)
        .unwrap()
        .with_focus(TeachingFocus::UpWeighted);
    let crop_voxels = ROI * ROI * ROI;
    let mut with_correction = 0;
    for seed in 0..8 {
        let batch = set.sample(&mut Rng::new(seed), 2);
        let weights = batch.weights.expect("teaching batches are weighted");
        assert_eq!(weights.len(), batch.labels.len());
        for sample in 0..2 {
            let range = sample * crop_voxels..(sample + 1) * crop_voxels;
            let (labels, weights) = (&batch.labels[range.clone()], &weights[range]);
            // The corrected voxels are exactly the core's, wherever crop and flips put them,
            // and the labels lost nothing to the packing.
            for (&label, &weight) in labels.iter().zip(weights) {
                assert_eq!(
                    weight == UP_WEIGHT,
                    label == 4,
                    "label {label}, weight {weight}"
                );
                assert!([0, 2, 4].contains(&label));
            }
            // Every crop holds a voxel that is trained on; half of them (on average) a correction.
            assert!(
                weights.iter().any(|&weight| weight > 0.0),
                "crop {sample} of seed {seed}"
            );
            with_correction += usize::from(labels.contains(&4));
        }
    }
    assert!(
        with_correction >= 8,
        "{with_correction} of 16 crops hold a correction"
    );
    // Corrected slices: the ignored voxels weigh 0, the reviewed slices and corrections 1.
    let set = FewShotSet::new(&manifest(), vec![teaching_case(&mut Rng::new(4))], None)
        .unwrap()
        .with_focus(TeachingFocus::CorrectedSlices);
    let weights = set.sample(&mut Rng::new(1), 1).weights.unwrap();
    assert!(weights.iter().all(|&weight| weight == 0.0 || weight == 1.0));
    let counted = weights.iter().filter(|&&weight| weight == 1.0).count();
    assert!(
        counted > 0 && counted < crop_voxels / 2,
        "{counted} weighted voxels"
    );
}

#[test]
fn teaching_refuses_bad_weight_classes_and_cases_without_a_correction() {
    let mut case = teaching_case(&mut Rng::new(4));
    let classes = case.weight_classes.as_mut().unwrap();
    classes.data[0] = 3.0;
    let err = FewShotSet::new(&manifest(), vec![case.clone()], None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("weight class 3"), "{err}");
    let classes = case.weight_classes.as_mut().unwrap();
    classes
        .data
        .iter_mut()
        .for_each(|class| *class = class.min(1.0));
    let err = FewShotSet::new(&manifest(), vec![case.clone()], None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("no corrected voxel"), "{err}");
    case.label.data[0] = 64.0;
    let err = FewShotSet::new(&manifest(), vec![case], None)
        .err()
        .unwrap();
    assert!(err.to_string().contains("label value 64"), "{err}");
}

#[test]
fn a_few_steps_lower_the_loss_and_change_the_weights() {
    let device = Default::default();
    <AD as Backend>::seed(&device, 5);
    let manifest = manifest();
    let mut rng = Rng::new(11);
    let cases = (0..3)
        .map(|i| case(&mut rng, &format!("case {i}")))
        .collect();
    let set = FewShotSet::new(&manifest, cases, None).unwrap();
    let model = manifest.model.init::<AD>(&device).unwrap();
    let before: Vec<f32> = model.head.weight.val().into_data().to_vec().unwrap();
    let mut trainer = FewShotTrainer::new(model, &manifest, set, 2, 1);
    let losses: Vec<f32> = (0..24)
        .map(|_| trainer.step(1e-2).unwrap().into_scalar())
        .collect();
    assert_eq!(trainer.steps_done(), 24);
    assert!(losses.iter().all(|loss| loss.is_finite()), "{losses:?}");
    let first = losses[..4].iter().sum::<f32>() / 4.0;
    let last = losses[20..].iter().sum::<f32>() / 4.0;
    assert!(last < 0.8 * first, "loss {first} -> {last}: {losses:?}");
    let after: Vec<f32> = trainer
        .model()
        .head
        .weight
        .val()
        .into_data()
        .to_vec()
        .unwrap();
    assert_ne!(before, after);
}

#[test]
fn bad_cases_are_one_line_errors() {
    let manifest = manifest();
    let err = FewShotSet::new(&manifest, Vec::new(), None).err().unwrap();
    assert!(err.to_string().contains("no labelled case"), "{err}");
    let mut only_t2 = case(&mut Rng::new(1), "only-t2.nii.gz");
    only_t2.images = vec![(Modality::T2, only_t2.images.remove(0).1)];
    let err = FewShotSet::new(&manifest, vec![only_t2], None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.starts_with("only-t2.nii.gz"), "{err}");
    assert!(!err.contains('\n'));
    // A label map on another grid is resampled onto the images'; one elsewhere in the world is
    // refused.
    let mut other_grid = case(&mut Rng::new(2), "other-grid");
    other_grid.label.dims = [EDGE, EDGE, EDGE - 1];
    other_grid.label.data.truncate(EDGE * EDGE * (EDGE - 1));
    assert!(FewShotSet::new(&manifest, vec![other_grid.clone()], None).is_ok());
    other_grid.label.affine[0][3] += 1e4;
    let err = FewShotSet::new(&manifest, vec![other_grid], None)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("does not overlap"), "{err}");
}

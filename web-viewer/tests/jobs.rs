//! The Web Worker's jobs on the CPU backend, with the bundled demo model and sample case: the
//! segmentation is the CLI pipeline's, fine-tuning stops when asked and returns a model that
//! loads, and bad inputs are one-line errors naming the file.

mod support;

use brainmvp_core::bmvp::BmvpModel;
use brainmvp_core::inference::segment::Segmenter;
use brainmvp_core::model::footprint::MemoryLimits;
use brainmvp_core::nifti;
use brainmvp_core::Modality;
use brainmvp_web::jobs::{self, FinetuneSettings, InputFile, LabelledFiles};
use burn::backend::{Autodiff, Flex};
use support::{assets, block_on};

fn model() -> BmvpModel {
    let bytes = std::fs::read(assets().join("demo-model.bmvp")).unwrap();
    jobs::read_model("demo-model.bmvp", &bytes).unwrap()
}

fn sample(modalities: &[(Modality, &str)]) -> Vec<InputFile> {
    modalities
        .iter()
        .map(|(modality, token)| {
            let name = format!("sample_{token}.nii.gz");
            InputFile {
                bytes: std::fs::read(assets().join("sample").join(&name)).unwrap(),
                name,
                modality: *modality,
            }
        })
        .collect()
}

#[test]
fn segmentation_is_the_cli_pipeline_and_a_missing_modality_is_synthesised() {
    let bmvp = model();
    // FLAIR left out: the model fills it from its template and hands it back as synthetic.
    let files = sample(&[
        (Modality::T1, "t1"),
        (Modality::T1c, "t1ce"),
        (Modality::T2, "t2"),
    ]);
    let device = Default::default();
    let mut progress = Vec::new();
    let outcome = block_on(jobs::segment::<Flex>(
        &bmvp,
        &files,
        &Default::default(),
        &MemoryLimits::default(),
        &device,
        |done, total| progress.push((done, total)),
    ))
    .unwrap();
    assert_eq!(progress.last(), Some(&(outcome.windows, outcome.windows)));
    // The sample is skull-stripped on one grid: nothing to warn about.
    assert_eq!(outcome.input_warnings, Vec::<String>::new());
    let images = jobs::decode_case(&files).unwrap();
    let grid = (images[0].1.dims, images[0].1.affine);
    let model = bmvp.load_model::<Flex>(&device).unwrap();
    let templates = bmvp.template_bank().unwrap();
    let segmenter = Segmenter {
        model: &model,
        manifest: &bmvp.manifest,
        templates: templates.as_ref(),
    };
    let reference = segmenter
        .segment("ref", images, &Default::default(), &device, |_, _| {})
        .unwrap();
    let labels = nifti::read_bytes(&outcome.nifti, "seg.nii.gz")
        .unwrap()
        .volume;
    assert_eq!((labels.dims, labels.affine), grid);
    let expected: Vec<f32> = reference
        .label_map
        .data
        .iter()
        .map(|&l| f32::from(l))
        .collect();
    assert_eq!(labels.data, expected);
    let voxels: usize = outcome.label_measures.iter().map(|v| v.voxels).sum();
    assert_eq!(
        voxels,
        reference.label_map.data.iter().filter(|&&l| l > 0).count()
    );
    assert_eq!(outcome.synthetic.len(), 1);
    let (modality, bytes) = &outcome.synthetic[0];
    assert_eq!(*modality, Modality::Flair);
    let synthetic = nifti::read_bytes(bytes, "flair.nii.gz").unwrap().volume;
    assert_eq!((synthetic.dims, synthetic.affine), grid);
    assert!(
        synthetic.data.iter().any(|&v| v != 0.0),
        "the synthetic FLAIR is empty"
    );
}

#[test]
fn fine_tuning_stops_when_asked_and_its_model_loads() {
    let bmvp = model();
    let images = sample(&[
        (Modality::T1, "t1"),
        (Modality::T1c, "t1ce"),
        (Modality::T2, "t2"),
        (Modality::Flair, "flair"),
    ]);
    let label = std::fs::read(assets().join("sample/sample_seg.nii.gz")).unwrap();
    let cases = [LabelledFiles {
        images,
        label: ("sample_seg.nii.gz".into(), label),
        weight_classes: None,
    }];
    let settings = FinetuneSettings {
        steps: 5,
        learning_rate: 1e-3,
        batch: 1,
        seed: 3,
        focus: Default::default(),
    };
    let outcome = block_on(jobs::finetune::<Autodiff<Flex>, _, _>(
        &bmvp,
        &cases,
        settings,
        &Default::default(),
        |step, _loss| std::future::ready(step < 2),
    ))
    .unwrap();
    assert_eq!(outcome.losses.len(), 2, "stopped after the second step");
    assert!(outcome.losses.iter().all(|l| l.is_finite() && *l > 0.0));
    let tuned = jobs::read_model("tuned.bmvp", &outcome.model).unwrap();
    assert_eq!(tuned.precision, bmvp.precision);
    assert_eq!(tuned.templates.len(), bmvp.templates.len());
    assert_ne!(tuned.tensors, bmvp.tensors, "the weights did not change");
    tuned.load_model::<Flex>(&Default::default()).unwrap();
}

#[test]
fn a_model_too_large_for_the_limits_is_refused_and_the_window_batch_shrinks_to_fit() {
    let bmvp = model();
    let files = sample(&[(Modality::T1, "t1")]);
    let device = Default::default();
    let info = jobs::model_info(&bmvp);
    assert_eq!(info.encoder, "UniFormer tiny");
    assert_eq!(info.footprint.batch, 1);
    assert_eq!(info.footprint.weight_values, bmvp.weight_values());
    let one_window = info.footprint.largest_tensor_bytes;
    let narrow = MemoryLimits {
        max_buffer_bytes: Some(one_window - 1),
        max_total_bytes: None,
    };
    let run = |limits: &MemoryLimits| {
        block_on(jobs::segment::<Flex>(
            &bmvp,
            &files,
            &Default::default(),
            limits,
            &device,
            |_, _| {},
        ))
    };
    let err = run(&narrow).unwrap_err();
    assert!(matches!(err, jobs::JobError::DoesNotFit(_)), "{err}");
    let err = err.to_string();
    assert!(
        err.starts_with("the model does not fit: one ") && err.contains("window needs a "),
        "{err}"
    );
    let just_one = MemoryLimits {
        max_buffer_bytes: Some(one_window),
        max_total_bytes: None,
    };
    let outcome = run(&just_one).unwrap();
    assert_eq!(outcome.footprint.batch, 1);
    let unlimited = run(&MemoryLimits::default()).unwrap();
    assert_eq!(unlimited.footprint.batch, bmvp.manifest.window.batch);
    assert_eq!(
        outcome.nifti, unlimited.nifti,
        "the batch changed the labels"
    );
}

#[test]
fn bad_inputs_are_one_line_errors_naming_the_file() {
    let bmvp = model();
    let device = Default::default();
    let mut broken = sample(&[(Modality::T1, "t1")]);
    broken[0].name = "broken.nii.gz".into();
    broken[0].bytes.truncate(500);
    let err = block_on(jobs::segment::<Flex>(
        &bmvp,
        &broken,
        &Default::default(),
        &MemoryLimits::default(),
        &device,
        |_, _| {},
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("broken.nii.gz: ") && !err.contains('\n'),
        "{err}"
    );
    let twice = [
        sample(&[(Modality::T1, "t1")]),
        sample(&[(Modality::T1, "t2")]),
    ]
    .concat();
    let err = jobs::decode_case(&twice).unwrap_err().to_string();
    assert!(err.starts_with("sample_t2.nii.gz: a second t1"), "{err}");
    let err = jobs::read_model("photo.jpg", b"\xff\xd8\xff\xe0 jpeg")
        .unwrap_err()
        .to_string();
    assert_eq!(err, "photo.jpg: not a brainmvp model (.bmvp) file");
    // A 4D image: the header says 3 volumes, and the data holds them.
    let t1 = jobs::decode_case(&sample(&[(Modality::T1, "t1")])).unwrap();
    let mut four_d = nifti::encode_f32(&t1[0].1, false).unwrap();
    four_d[40..42].copy_from_slice(&4i16.to_le_bytes());
    four_d[48..50].copy_from_slice(&3i16.to_le_bytes());
    let voxel_bytes = four_d.len() - 352;
    four_d.extend(std::iter::repeat_n(0u8, 2 * voxel_bytes));
    // The worker takes its first volume, as the viewer shows it.
    let first = jobs::decode_image("dwi.nii", &four_d).unwrap();
    assert_eq!((first.dims, &first.data), (t1[0].1.dims, &t1[0].1.data));
}

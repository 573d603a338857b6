//! `brainmvp finetune`, `segment` and `evaluate` end to end on a small synthetic cohort (tiny
//! UniUnet, 32³ crops, CPU): fine-tuning raises the validation Dice above the untrained model's,
//! the model folder works with `segment` on raw files in another orientation and voxel size, the
//! pre-trained encoder is transferred with a report, and bad input fails in one line.

use crate::support::{brainmvp, run, scratch, synth_and_prepare, text};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use brainmvp_core::nifti::{read_path, write_f32};
use brainmvp_core::postprocess::{components, Connectivity};
use brainmvp_core::preprocess::resample_linear;
use brainmvp_core::Volume;
use brainmvp_trainer::report::read_metrics;

/// A 10-subject synthetic cohort at 2 mm and its cache (prepared at 2 mm).
fn cohort() -> &'static (PathBuf, PathBuf) {
    static COHORT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    COHORT.get_or_init(|| {
        synth_and_prepare(
            &scratch("finetune-cohort"),
            &["--subjects", "8", "--seed", "5", "--spacing-mm", "2"],
            "[preprocess]\ntarget_spacing_mm = 2.0\nclip = false\n",
        )
    })
}

/// A fine-tuning job for the tiny model; `extra` is appended (TOML).
fn job(dir: &Path, steps: u64, extra: &str) -> PathBuf {
    let path = dir.join("finetune.toml");
    let body = format!(
        r#"cache = "{cache}"
out = "{out}"
seed = 1
encoder = "uniformer-tiny"
modalities = ["flair", "t1", "t1c", "t2"]
steps = {steps}
deep_supervision = false

[data]
crop_size = [32, 32, 32]
batch_size = 2
workers = 2
foreground_fraction = 0.5

[optim]
lr = 1e-2

[window]
roi = [32, 32, 32]
overlap = 0.0
batch = 8
{extra}"#,
        cache = cohort().1.display(),
        out = dir.join("run").display(),
    );
    std::fs::write(&path, body).unwrap();
    path
}

/// The model folder of one fine-tuning run shared by the tests below (trained once).
fn trained() -> &'static PathBuf {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = scratch("trained");
        let config = job(&dir, 150, "[validation]\nevery = 50\nlog_every = 25\n");
        let output = run(brainmvp().args(["finetune", "--config"]).arg(&config));
        assert!(output.status.success(), "{}", text(&output.stderr));
        dir.join("run")
    })
}

#[test]
fn fine_tuning_beats_the_untrained_model_and_writes_its_outputs() {
    let out = trained();
    let records = read_metrics(&out.join("metrics.jsonl")).unwrap();
    let validations: Vec<(u64, f64)> = records
        .iter()
        .filter(|r| r.kind == "validation")
        .map(|r| (r.step, r.values["dice"]))
        .collect();
    assert_eq!(
        validations.iter().map(|v| v.0).collect::<Vec<_>>(),
        vec![0, 50, 100, 150]
    );
    let untrained = validations[0].1;
    let best = validations.iter().map(|v| v.1).fold(0.0, f64::max);
    assert!(best > untrained + 0.1, "validation Dice {validations:?}");
    let train: Vec<f64> = records
        .iter()
        .filter(|r| r.kind == "train")
        .map(|r| r.values["loss"])
        .collect();
    let first = train[..10].iter().sum::<f64>() / 10.0;
    let last = train[train.len() - 10..].iter().sum::<f64>() / 10.0;
    assert!(last < first, "training loss {first} -> {last}");
    for name in [
        "config.toml",
        "loss.png",
        "dice.png",
        "best.json",
        "model/model.json",
        "model/model.mpk",
        "test/evaluation.csv",
        "test/evaluation.md",
    ] {
        assert!(out.join(name).is_file(), "{name} missing");
    }
    let csv = std::fs::read_to_string(out.join("test/evaluation.csv")).unwrap();
    let test_ids: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(test_ids.len(), 2 * 3, "{csv}");
    // Test predictions lie on each subject's original grid.
    let (cohort_dir, _) = cohort();
    for id in &test_ids[..1] {
        let predicted = read_path(&out.join(format!("test/predictions/{id}_seg.nii.gz"))).unwrap();
        let truth = read_path(&cohort_dir.join(id).join(format!("{id}_seg.nii.gz"))).unwrap();
        assert_eq!(predicted.volume.dims, truth.volume.dims);
        assert_eq!(predicted.volume.affine, truth.volume.affine);
    }
}

/// A subject's four modality files in the cohort.
fn subject_files(id: &str) -> Vec<(&'static str, PathBuf)> {
    let (cohort_dir, _) = cohort();
    [
        ("--flair", "flair"),
        ("--t1", "t1"),
        ("--t1c", "t1ce"),
        ("--t2", "t2"),
    ]
    .into_iter()
    .map(|(flag, token)| {
        (
            flag,
            cohort_dir.join(id).join(format!("{id}_{token}.nii.gz")),
        )
    })
    .filter(|(_, path)| path.is_file())
    .collect()
}

fn segment(model: &Path, files: &[(&str, PathBuf)], out: &Path) -> Output {
    let mut command = brainmvp();
    command
        .arg("segment")
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(out);
    for (flag, path) in files {
        command.arg(flag).arg(path);
    }
    run(&mut command)
}

/// `volume` mirrored along x and y with an affine describing the same physical image (LPS).
fn as_lps(volume: &Volume<f32>) -> Volume<f32> {
    let [nx, ny, nz] = volume.dims;
    let mut data = vec![0.0; volume.data.len()];
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                data[(z * ny + (ny - 1 - y)) * nx + (nx - 1 - x)] =
                    volume.data[(z * ny + y) * nx + x];
            }
        }
    }
    let mut affine = volume.affine;
    for (row, extent) in [(0usize, nx), (1, ny)]
        .into_iter()
        .flat_map(|(axis, n)| (0..3).map(move |r| (r, (axis, n))))
    {
        let (axis, n) = extent;
        affine[row][3] += affine[row][axis] * (n as f64 - 1.0);
        affine[row][axis] = -affine[row][axis];
    }
    Volume {
        dims: volume.dims,
        affine,
        data,
    }
}

#[test]
fn segment_writes_the_label_map_on_the_input_grid_in_any_orientation() {
    let model = trained().join("model");
    let dir = scratch("segment");
    let files = subject_files("SynthBraTS_00000");
    let ras_out = dir.join("ras_seg.nii.gz");
    let output = segment(&model, &files, &ras_out);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // A skull-stripped synthetic case on one grid: no input-check warning.
    assert!(
        !text(&output.stderr).contains("input check:"),
        "{}",
        text(&output.stderr)
    );
    let ras = read_path(&ras_out).unwrap().volume;
    // The same physical images stored LPS: the label map must be the same image, mirrored back.
    let mut lps_files = Vec::new();
    for (flag, path) in &files {
        let lps_path = dir.join(format!("lps{flag}.nii.gz"));
        write_f32(&lps_path, &as_lps(&read_path(path).unwrap().volume)).unwrap();
        lps_files.push((*flag, lps_path));
    }
    let lps_out = dir.join("lps_seg.nii.gz");
    let output = segment(&model, &lps_files, &lps_out);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let lps = read_path(&lps_out).unwrap().volume;
    let lps_input = read_path(&lps_files[0].1).unwrap().volume;
    assert_eq!((lps.dims, lps.affine), (lps_input.dims, lps_input.affine));
    assert_eq!(
        as_lps(&ras).data,
        lps.data,
        "LPS segmentation differs from RAS"
    );
    // LPS at 1.5 mm: the label map has the input's own dims and affine.
    let mut fine_files = Vec::new();
    for (flag, path) in &lps_files {
        let fine = resample_linear(&read_path(path).unwrap().volume, [1.5; 3]);
        let fine_path = dir.join(format!("fine{flag}.nii.gz"));
        write_f32(&fine_path, &fine).unwrap();
        fine_files.push((*flag, fine_path));
    }
    let fine_out = dir.join("fine_seg.nii.gz");
    let output = segment(&model, &fine_files, &fine_out);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let fine = read_path(&fine_out).unwrap().volume;
    let fine_input = read_path(&fine_files[0].1).unwrap().volume;
    assert_eq!(fine.dims, fine_input.dims);
    for (row, expected) in fine.affine.iter().zip(fine_input.affine.iter()) {
        for (a, b) in row.iter().zip(expected) {
            assert!(
                (a - b).abs() < 1e-4,
                "{:?} vs {:?}",
                fine.affine,
                fine_input.affine
            );
        }
    }
    assert!(fine.data.iter().all(|&v| [0.0, 1.0, 2.0, 4.0].contains(&v)));
}

#[test]
fn segment_cleans_up_and_takes_a_flair_on_another_grid() {
    let model = trained().join("model");
    let dir = scratch("segment-clean");
    let id = (0..10)
        .map(|i| format!("SynthBraTS_{i:05}"))
        .find(|id| subject_files(id).len() == 4)
        .expect("a subject with all four modalities");
    let mut files = subject_files(&id);
    // The FLAIR at 3 mm, as clinical FLAIRs often are: resampled onto the T1's grid.
    let flair = files
        .iter_mut()
        .find(|(flag, _)| *flag == "--flair")
        .unwrap();
    let coarse = resample_linear(&read_path(&flair.1).unwrap().volume, [3.0; 3]);
    let coarse_path = dir.join("flair_3mm.nii.gz");
    write_f32(&coarse_path, &coarse).unwrap();
    flair.1 = coarse_path;
    let out = dir.join("clean_seg.nii.gz");
    let mut command = brainmvp();
    command.args(["segment", "--clean", "--min-component-ml", "0.5", "--model"]);
    command.arg(&model).arg("--out").arg(&out);
    for (flag, path) in &files {
        command.arg(flag).arg(path);
    }
    let output = run(&mut command);
    assert!(output.status.success(), "{}", text(&output.stderr));
    // The FLAIR on its own grid is named in a warning; segmentation still runs.
    assert!(
        text(&output.stderr).contains("input check: not co-registered: flair"),
        "{}",
        text(&output.stderr)
    );
    assert!(
        text(&output.stdout).contains("post-processing: "),
        "{}",
        text(&output.stdout)
    );
    let labels = read_path(&out).unwrap().volume;
    let t1 = read_path(&files.iter().find(|(f, _)| *f == "--t1").unwrap().1)
        .unwrap()
        .volume;
    assert_eq!((labels.dims, labels.affine), (t1.dims, t1.affine));
    // No tumour component (26-connected) under 0.5 ml is left; regions stay nested.
    let data: Vec<u8> = labels.data.iter().map(|&v| v as u8).collect();
    let voxel_ml = labels.spacing().iter().product::<f64>() / 1000.0;
    let tumour = components(labels.dims, &data, |l| l != 0, Connectivity::Full);
    assert!(
        tumour
            .sizes
            .iter()
            .all(|&size| size as f64 * voxel_ml >= 0.5),
        "{:?}",
        tumour.sizes
    );
    assert!(data.iter().all(|l| [0, 1, 2, 4].contains(l)));
}

/// Pre-trains the tiny UniFormer for `steps` into `<dir>/pre`; `templates` adds keys to
/// `[model.templates]`, `extra` appends tables.
fn pretrain_tiny(dir: &Path, steps: u64, templates: &str, extra: &str) {
    let pretrain = dir.join("pretrain.toml");
    std::fs::write(
        &pretrain,
        format!(
            "cache = \"{}\"\nout = \"{}\"\nsteps = {steps}\n[model]\narch = \"uniformer-tiny\"\n[model.templates]\ncanvas = [64, 64, 64]\nmodalities = [\"flair\", \"t1\", \"t1c\", \"t2\", \"pd\"]\n{templates}[data]\ncrop_size = [32, 32, 32]\nbatch_size = 2\n{extra}",
            cohort().1.display(),
            dir.join("pre").display()
        ),
    )
    .unwrap();
    let output = run(brainmvp().args(["pretrain", "--config"]).arg(&pretrain));
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn a_pretrained_encoder_is_transferred_and_templates_fill_missing_modalities() {
    let dir = scratch("init");
    pretrain_tiny(dir.as_path(), 3, "", "");
    let config = job(&dir, 4, "[validation]\nevery = 4\nat_start = false\n");
    let output = run(brainmvp()
        .args(["finetune", "--mix-template", "--config"])
        .arg(&config)
        .arg("--init")
        .arg(dir.join("pre/export")));
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        stdout.contains("re-initialised patch_embeds.0.proj (1 → 4 input channels"),
        "{stdout}"
    );
    let model = dir.join("run/model");
    let manifest = std::fs::read_to_string(model.join("model.json")).unwrap();
    assert!(
        manifest.contains("\"templates\": [\n    \"flair\""),
        "{manifest}"
    );
    assert!(model.join("templates/t1c.nii.gz").is_file());
    let files: Vec<_> = subject_files("SynthBraTS_00001")
        .into_iter()
        .filter(|(flag, _)| *flag != "--t1c")
        .collect();
    let output = segment(&model, &files, &dir.join("seg.nii.gz"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("missing t1c: filled with its template"),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn bad_input_fails_in_one_line_naming_the_file() {
    let dir = scratch("bad");
    let config = job(&dir, 2, "");
    let output = run(brainmvp()
        .args(["finetune", "--config"])
        .arg(&config)
        .arg("--init")
        .arg(&dir));
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("encoder.json") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
    // Segmentation refuses a split without validation subjects, as classification does.
    let no_validation = scratch("bad-split");
    let config = job(&no_validation, 2, "[split]\nvalidation_fraction = 0.0\n");
    let output = run(brainmvp().args(["finetune", "--config"]).arg(&config));
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("no validation or no test subject") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
    let broken = dir.join("broken.nii.gz");
    std::fs::write(&broken, b"not a nifti file").unwrap();
    let output = segment(
        &trained().join("model"),
        &[("--t1", broken.clone())],
        &dir.join("x.nii.gz"),
    );
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("broken.nii.gz") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
    let output = run(brainmvp()
        .args(["segment", "--model"])
        .arg(&dir)
        .arg("--t1")
        .arg(&broken)
        .arg("--out")
        .arg(dir.join("y.nii.gz")));
    assert!(
        text(&output.stderr).contains("model.json"),
        "{}",
        text(&output.stderr)
    );
}

/// `patch_embeds[1].proj.weight` of an encoder, as host values.
fn second_embedding<B: burn::tensor::backend::Backend>(
    encoder: &brainmvp_core::model::Uniformer<B>,
) -> Vec<f32> {
    encoder.patch_embeds[1]
        .proj
        .weight
        .val()
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .unwrap()
}

/// The fine-tuned encoder's second patch embedding, and the pre-trained one.
fn embeddings_after(run_dir: &Path, export: &Path) -> (Vec<f32>, Vec<f32>) {
    use brainmvp_trainer::model_folder::load_segmenter;
    use brainmvp_trainer::pretrain::pretrained::load_pretrained_encoder;
    type Flex = burn::backend::Flex;
    let device = Default::default();
    let tuned = load_segmenter::<Flex>(&run_dir.join("model"), &device).unwrap();
    let (_, pretrained) = load_pretrained_encoder::<Flex>(export, &device).unwrap();
    (
        second_embedding(&tuned.model.encoder),
        second_embedding(&pretrained),
    )
}

#[test]
fn cohort_mean_templates_frozen_encoders_and_patience_do_what_they_say() {
    let dir = scratch("recipe");
    let checkpoint = "[checkpoint]\nevery = 2\nlog_every = 1\n";
    pretrain_tiny(dir.as_path(), 2, "init = \"cohort-mean\"\n", checkpoint);
    // Started from the cohort means, every template correlates perfectly with them at step 0.
    let metrics = read_metrics(&dir.join("pre/metrics.jsonl")).unwrap();
    let start = metrics
        .iter()
        .find(|r| r.kind == "templates" && r.step == 0)
        .expect("template correlations at step 0");
    assert_eq!(start.values.len(), 5, "{:?}", start.values);
    for (name, r) in &start.values {
        assert!((r - 1.0).abs() < 1e-5, "{name} = {r}");
    }
    // ... and they learn from there: some correlation has moved by step 2 (it stayed bit-equal
    // when the initialisation dropped the templates' require_grad).
    let later = metrics
        .iter()
        .find(|r| r.kind == "templates" && r.step == 2)
        .expect("template correlations at step 2");
    assert!(
        later
            .values
            .iter()
            .zip(&start.values)
            .any(|(a, b)| a.1 != b.1),
        "templates did not move: {:?}",
        later.values
    );
    assert!(dir.join("pre/templates/step-000000.png").is_file());
    assert!(dir.join("pre/templates/step-000002.png").is_file());
    assert!(dir.join("pre/templates.png").is_file());

    let export = dir.join("pre/export");
    // `optim` replaces the job's `lr = 1e-2` line of its [optim] table.
    let tune = |name: &str, optim: &str, extra: &str, steps: u64| {
        let run_dir = dir.join(name);
        std::fs::create_dir_all(&run_dir).unwrap();
        let config = job(&run_dir, steps, extra);
        let body = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, body.replace("lr = 1e-2", optim)).unwrap();
        let output = run(brainmvp()
            .env("RUST_LOG", "info")
            .args(["finetune", "--config"])
            .arg(&config)
            .arg("--init")
            .arg(&export));
        assert!(output.status.success(), "{}", text(&output.stderr));
        (run_dir.join("run"), text(&output.stderr))
    };
    let validation = "[validation]\nevery = 3\nat_start = false\n";
    // The default recipe moves the pre-trained encoder; a frozen one stays bit-identical.
    let (moved, _) = tune("moved", "lr = 1e-2", validation, 3);
    let (tuned, pretrained) = embeddings_after(&moved, &export);
    assert_ne!(tuned, pretrained);
    let freeze = "lr = 1e-2\nfreeze_encoder_steps = 3";
    let (frozen, _) = tune("frozen", freeze, validation, 3);
    let (tuned, pretrained) = embeddings_after(&frozen, &export);
    assert_eq!(tuned, pretrained);
    let (scaled, _) = tune("scaled", "lr = 1e-2\nencoder_lr_scale = 0.0", validation, 3);
    let (tuned, pretrained) = embeddings_after(&scaled, &export);
    assert_eq!(tuned, pretrained);
    // lr 1e-9 cannot improve on the step-0 validation: patience 1 stops at the first check.
    let patience = "[validation]\nevery = 2\npatience = 1\n";
    let (patient, log) = tune("patient", "lr = 1e-9", patience, 12);
    let steps: Vec<u64> = read_metrics(&patient.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .filter(|r| r.kind == "train")
        .map(|r| r.step)
        .collect();
    assert_eq!(steps, vec![1, 2], "{log}");
    assert!(
        log.contains("stopping, 1 validations without improvement"),
        "{log}"
    );
    assert!(patient.join("model/model.json").is_file());
}

//! `brainmvp pretrain` end to end on a small synthetic cohort (tiny UniFormer, 32³ crops, CPU):
//! the loss falls, a run killed mid-way resumes to exactly the losses of an uninterrupted run,
//! outputs (config, metrics, plot, checkpoints, export) are complete, bad configs fail in one line.

use crate::support::{brainmvp, kill_after_checkpoint, run, scratch, shared_mri, text};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use brainmvp_trainer::job::JobFile;
use brainmvp_trainer::pretrain::PretrainConfig;
use brainmvp_trainer::report::{read_metrics, MetricRecord};

/// A 6-subject synthetic cohort at 2 mm, prepared at 2 mm (volumes about 70×85×70).
pub(crate) fn cache() -> &'static Path {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        let dir = scratch("cohort");
        let cohort = dir.join("cohort");
        let templates = shared_mri().join("icbm152-2mm");
        let output = run(brainmvp()
            .args([
                "synth",
                "--subjects",
                "6",
                "--seed",
                "3",
                "--spacing-mm",
                "2",
            ])
            .arg("--out")
            .arg(&cohort)
            .arg("--templates")
            .arg(&templates));
        assert!(output.status.success(), "{}", text(&output.stderr));
        let prepare_config = dir.join("prepare.toml");
        std::fs::write(&prepare_config, "[preprocess]\ntarget_spacing_mm = 2.0\n").unwrap();
        let cache = dir.join("cache");
        let output = run(brainmvp()
            .arg("prepare")
            .arg(&cohort)
            .arg("--out")
            .arg(&cache)
            .arg("--config")
            .arg(&prepare_config));
        assert!(output.status.success(), "{}", text(&output.stderr));
        cache
    })
}

/// A job file for the tiny model; `extra` is appended (TOML).
pub(crate) fn job(dir: &Path, steps: u64, extra: &str) -> PathBuf {
    let path = dir.join("job.toml");
    let text = format!(
        r#"cache = "{cache}"
out = "{out}"
seed = 7
steps = {steps}

[model]
arch = "uniformer-tiny"
[model.templates]
canvas = [64, 64, 64]
modalities = ["flair", "t1", "t1c", "t2", "pd"]

[data]
crop_size = [32, 32, 32]
batch_size = 2
workers = 2
intensity_shift = 0.0
intensity_scale = 0.0

[optim]
lr = 2e-3
warmup_fraction = 0.05
{extra}"#,
        cache = cache().display(),
        out = dir.join("run").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The training steps' records (not the `templates` watch rows).
pub(crate) fn losses(out: &Path) -> Vec<MetricRecord> {
    let records = read_metrics(&out.join("metrics.jsonl")).unwrap();
    records.into_iter().filter(|r| r.kind == "train").collect()
}

fn mean_of(records: &[MetricRecord], key: &str) -> f64 {
    records.iter().map(|r| r.values[key]).sum::<f64>() / records.len() as f64
}

#[test]
fn tiny_model_loss_falls_and_the_outputs_are_complete() {
    let dir = scratch("falls");
    let config = job(&dir, 160, "[checkpoint]\nevery = 80\nlog_every = 40\n");
    let output = run(brainmvp().args(["pretrain", "--config"]).arg(&config));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let out = dir.join("run");
    let records = losses(&out);
    assert_eq!(records.len(), 160);
    let first = mean_of(&records[..20], "mse_template");
    let last = mean_of(&records[130..], "mse_template");
    assert!(last < 0.5 * first, "template MSE {first} -> {last}");
    // View B is far harder (80 % of the blocks come from another modality): it only has to stay
    // finite here; the template task is what a few hundred CPU steps visibly learn.
    assert!(records
        .iter()
        .all(|r| r.values["mse_cross_modal"].is_finite()));
    assert!(records.iter().all(|r| r.values["contrastive"].is_finite()));
    for name in [
        "config.toml",
        "loss.png",
        "export/encoder.mpk",
        "export/encoder.json",
    ] {
        assert!(out.join(name).is_file(), "{name} missing");
    }
    for modality in ["flair", "t1", "t1c", "t2"] {
        let path = out.join(format!("export/templates/{modality}.nii.gz"));
        let image = brainmvp_core::nifti::read_path(&path).unwrap();
        assert_eq!(image.volume.dims, [64, 64, 64]);
        let (low, high) = image
            .volume
            .data
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        // Trained templates are min-max normalised and no longer constant.
        assert!(
            low.abs() < 1e-6 && (high - 1.0).abs() < 1e-4,
            "{modality}: {low}..{high}"
        );
    }
    let latest = std::fs::read_to_string(out.join("checkpoints/latest")).unwrap();
    assert_eq!(latest.trim(), "step-00000160");
    let resolved = PretrainConfig::load(&out.join("config.toml")).unwrap();
    assert_eq!((resolved.steps, resolved.optim.weight_decay), (160, 1e-5));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_killed_run_resumes_to_the_losses_of_an_uninterrupted_one() {
    let steps = 12;
    let extra = "[checkpoint]\nevery = 4\nkeep = 2\n";
    let reference_dir = scratch("reference");
    let config = job(&reference_dir, steps, extra);
    let output = run(brainmvp().args(["pretrain", "--config"]).arg(&config));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let reference = losses(&reference_dir.join("run"));

    let dir = scratch("killed");
    let config = job(&dir, steps, extra);
    let out = dir.join("run");
    let mut child = brainmvp()
        .args(["pretrain", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kill_after_checkpoint(&mut child, &out, 4);
    let again = run(brainmvp().args(["pretrain", "--config"]).arg(&config));
    assert!(
        !again.status.success(),
        "a second fresh run must refuse the folder"
    );
    assert!(
        text(&again.stderr).contains("--resume"),
        "{}",
        text(&again.stderr)
    );
    let resumed = run(brainmvp()
        .args(["pretrain", "--resume", "--config"])
        .arg(&config));
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let records = losses(&out);
    assert_eq!(records.len(), reference.len());
    for (got, expected) in records.iter().zip(&reference) {
        assert_eq!(got.step, expected.step);
        for key in [
            "loss",
            "mse_template",
            "mse_cross_modal",
            "contrastive",
            "lr",
        ] {
            let (a, b) = (got.values[key], expected.values[key]);
            assert!(
                (a - b).abs() <= 1e-5 * b.abs().max(1e-3),
                "step {} {key}: resumed {a} vs uninterrupted {b}",
                got.step
            );
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&reference_dir).unwrap();
}

#[test]
fn bad_jobs_fail_with_one_line_naming_the_file() {
    let dir = scratch("bad");
    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "stepz = 3\n").unwrap();
    let output = run(brainmvp().args(["pretrain", "--config"]).arg(&typo));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("typo.toml") && stderr.contains("stepz"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let odd_crop = job(&dir, 3, "");
    let text_job = std::fs::read_to_string(&odd_crop).unwrap();
    std::fs::write(&odd_crop, text_job.replace("[32, 32, 32]", "[40, 32, 32]")).unwrap();
    let output = run(brainmvp().args(["pretrain", "--config"]).arg(&odd_crop));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("crop_size") && stderr.contains("job.toml"),
        "{stderr}"
    );

    let missing_template = job(&dir, 3, "");
    let text_job = std::fs::read_to_string(&missing_template).unwrap();
    std::fs::write(
        &missing_template,
        text_job.replace(r#"["flair", "t1", "t1c", "t2", "pd"]"#, r#"["t1", "t2"]"#),
    )
    .unwrap();
    let output = run(brainmvp()
        .args(["pretrain", "--config"])
        .arg(&missing_template));
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("without a template"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn shipped_job_files_parse_and_validate() {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let full = PretrainConfig::load(&configs.join("pretrain-uniformer-s.toml")).unwrap();
    assert_eq!(full.data.crop_size, [96, 96, 96]);
    assert_eq!(full.model.templates.canvas, [240, 240, 155]);
    assert_eq!((full.optim.lr, full.optim.weight_decay), (3e-4, 1e-5));
    assert_eq!((full.loss.template, full.loss.cross_modal), (10.0, 1.0));
    let tiny = PretrainConfig::load(&configs.join("pretrain-tiny-cpu.toml")).unwrap();
    assert_eq!(tiny.data.crop_size, [32, 32, 32]);
}

/// Two data-parallel CPU ranks as threads of one process: both train, rank 0 alone logs,
/// checkpoints and exports, and a resumed two-rank run continues the same losses.
#[test]
fn two_cpu_ranks_train_checkpoint_and_resume_together() {
    let steps = 6;
    let dir = scratch("ranks");
    let config = job(
        &dir,
        steps,
        "[checkpoint]\nevery = 3\n[distributed]\ngather_negatives = true\n",
    );
    let output = run(brainmvp()
        .args(["pretrain", "--device", "cpu:2", "--config"])
        .arg(&config));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let out = dir.join("run");
    let reference = losses(&out);
    assert_eq!(reference.len(), steps as usize);
    assert!(reference.iter().all(|r| r.values["loss"].is_finite()));
    // Two ranks of batch 2 each: 4 subjects per step.
    assert!(out.join("export/encoder.mpk").is_file());

    // Roll back to the step-3 checkpoint and resume with two ranks again.
    let checkpoints = out.join("checkpoints");
    std::fs::remove_dir_all(checkpoints.join("step-00000006")).unwrap();
    std::fs::write(checkpoints.join("latest"), "step-00000003\n").unwrap();
    let resumed = run(brainmvp()
        .args(["pretrain", "--device", "cpu:2", "--resume", "--config"])
        .arg(&config));
    assert!(resumed.status.success(), "{}", text(&resumed.stderr));
    let records = losses(&out);
    assert_eq!(records.len(), reference.len());
    for (got, expected) in records.iter().zip(&reference) {
        let (a, b) = (got.values["loss"], expected.values["loss"]);
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1e-3),
            "step {}: {a} vs {b}",
            got.step
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

//! The `brainmvp` binary end to end: exit codes, error lines and outputs on real and synthetic data.

use crate::support::{brainmvp_output, scratch, shared_mri, text};
use std::path::Path;

#[test]
fn info_reports_real_files_and_fails_with_one_line_per_bad_file() {
    let dir = scratch("info");
    let broken = dir.join("broken.nii");
    std::fs::write(&broken, b"not a nifti file at all").unwrap();
    let fixture = shared_mri().join("fixtures/anatomical.nii");
    let t1 = shared_mri().join("icbm152-2mm/avg152T1.nii.gz");
    let output = brainmvp_output(&[
        "info",
        fixture.to_str().unwrap(),
        broken.to_str().unwrap(),
        t1.to_str().unwrap(),
    ]);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    // Both good files are still reported, in order, with the facts nibabel gives for them.
    let fixture_at = stdout.find("anatomical.nii").expect("fixture reported");
    let t1_at = stdout.find("avg152T1.nii.gz").expect("T1 reported");
    assert!(fixture_at < t1_at);
    let fixture_part = &stdout[fixture_at..t1_at];
    for line in [
        "dims: 33x41x25",
        "datatype: int16",
        "endianness: big",
        "orientation: LAS",
    ] {
        assert!(
            fixture_part.contains(line),
            "missing '{line}' in:\n{fixture_part}"
        );
    }
    assert!(stdout[t1_at..].contains("dims: 91x109x91"), "{stdout}");
    assert!(stdout[t1_at..].contains("voxel_size_mm: 2 2 2"), "{stdout}");
    // The broken file: exactly one line on stderr naming it, and no panic.
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "stderr: {stderr}");
    assert!(lines[0].contains("broken.nii"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn synth_prepare_bench_round_trip_and_prepare_resumes() {
    let dir = scratch("pipeline");
    let cohort = dir.join("cohort");
    let cache = dir.join("cache");
    let (cohort_s, cache_s) = (cohort.to_str().unwrap(), cache.to_str().unwrap());
    let synth = brainmvp_output(&[
        "synth",
        "--out",
        cohort_s,
        "--subjects",
        "3",
        "--seed",
        "5",
        "--spacing-mm",
        "2",
    ]);
    assert!(synth.status.success(), "{}", text(&synth.stderr));
    assert!(text(&synth.stdout).contains("wrote 3 subjects"));
    let csv = std::fs::read_to_string(cohort.join("subjects.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");

    let prepare = brainmvp_output(&["prepare", cohort_s, "--out", cache_s]);
    assert!(prepare.status.success(), "{}", text(&prepare.stderr));
    assert!(text(&prepare.stdout).contains("3 subjects (3 prepared, 0 already done)"));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cache.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["subjects"].as_array().unwrap().len(), 3);
    assert!(cache.join("prepare-config.toml").exists());

    // A second run finds everything done and rewrites nothing.
    let again = brainmvp_output(&["prepare", cohort_s, "--out", cache_s]);
    assert!(again.status.success());
    assert!(
        text(&again.stdout).contains("(0 prepared, 3 already done)"),
        "{}",
        text(&again.stdout)
    );

    let bench = brainmvp_output(&["bench", "data", cache_s, "--crop", "32", "--batches", "3"]);
    assert!(bench.status.success(), "{}", text(&bench.stderr));
    assert!(
        text(&bench.stdout).contains("crops/s"),
        "{}",
        text(&bench.stdout)
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn prepare_of_a_missing_folder_is_a_one_line_error() {
    let output = brainmvp_output(&[
        "prepare",
        "/nonexistent/cohort",
        "--out",
        "/tmp/never-written",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("/nonexistent/cohort"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(!Path::new("/tmp/never-written/manifest.json").exists());
}

#[test]
fn demo_runs_the_whole_main_job() {
    let dir = scratch("demo");
    let out = dir.join("out");
    let output = brainmvp_output(&[
        "demo",
        "--out",
        out.to_str().unwrap(),
        "--subjects",
        "8",
        "--pretrain-steps",
        "4",
        "--finetune-steps",
        "4",
    ]);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    let summary = std::fs::read_to_string(out.join("summary.md")).unwrap();
    let rows = summary
        .lines()
        .filter(|l| l.starts_with("| SynthBraTS_"))
        .count();
    assert_eq!(rows, 8, "{summary}");
    for name in [
        "demo-config.toml",
        "cache/manifest.json",
        "pretrain/export/encoder.json",
        "finetune-pretrained/test/evaluation.csv",
        "finetune-scratch/test/evaluation.csv",
        "model/model.json",
        "model.bmvp",
        "model.bmvp.json",
        "segmentation/SynthBraTS_00000_seg.nii.gz",
        "results.md",
    ] {
        assert!(out.join(name).exists(), "{name} missing");
    }
    assert!(stdout.contains("loader step 1"), "{stdout}");
    // The export compared f16 with f32 on labelled subjects and said which it wrote.
    let export: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.bmvp.json")).unwrap())
            .unwrap();
    assert!(
        export["dice_f32"].is_number() && export["dice_f16"].is_number(),
        "{export}"
    );
    assert!(stdout.contains("f16/f32 voxel agreement"), "{stdout}");
    assert!(
        stdout.contains("| pre-trained encoder |") && stdout.contains("| scratch |"),
        "{stdout}"
    );
    // The closing table counts the test cases and says whether the paired difference resolves.
    let results = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(results.contains("| test cases |"), "{results}");
    assert!(
        results.contains("pre-trained − scratch, paired by test subject")
            && results.contains("95 % t-interval over 2 subjects"),
        "{results}"
    );
    // The study's recipe: cohort-mean templates (the frozen-encoder steps are checked in demo.rs).
    let config = std::fs::read_to_string(out.join("demo-config.toml")).unwrap();
    assert!(config.contains("init = \"cohort-mean\""), "{config}");
    std::fs::remove_dir_all(dir).unwrap();
}

//! `brainmvp finetune --task classify` end to end on a small synthetic cohort (tumour vs no
//! tumour, tiny UniFormer, 32³ crops that hold the whole 6 mm brain, CPU): the loss falls, the
//! outputs are complete and consistent (metrics in [0, 1], one prediction per test subject of the
//! split, the saved model reproduces them); plus the label table, metrics and crop helpers on
//! hand-made inputs.

use crate::support::{brainmvp, kill_after_checkpoint, run_ok, scratch, synth_and_prepare, text};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use brainmvp_core::cache::CacheReader;
use brainmvp_core::finetune::split::split_subjects;
use brainmvp_trainer::finetune::classify::{
    centred_start, load_classifier, predict_subjects, read_label_table, subject_classes,
    ClassMetrics, ClassifySummary, Prediction,
};
use brainmvp_trainer::report::{read_metrics, MetricRecord};
use burn::backend::Flex;

/// 12 synthetic subjects (6 with a high-grade tumour, 6 without) at 4 mm, prepared at 6 mm
/// (volumes about 25×31×29, so a 32³ crop holds the whole brain). Returns (cohort, cache).
fn cohort() -> &'static (PathBuf, PathBuf) {
    static COHORT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    COHORT.get_or_init(|| {
        synth_and_prepare(
            &scratch("classify-cohort"),
            &[
                "--subjects",
                "12",
                "--seed",
                "5",
                "--spacing-mm",
                "4",
                "--no-tumour-fraction",
                "0.5",
                "--low-grade-fraction",
                "0",
            ],
            "[preprocess]\ntarget_spacing_mm = 6.0\n",
        )
    })
}

/// A classification job file for the tiny model writing into `dir/run`.
fn job(dir: &Path, steps: u64, extra: &str) -> PathBuf {
    let (cohort, cache) = cohort();
    let path = dir.join("job.toml");
    let text = format!(
        r#"task = "classify"
cache = "{cache}"
out = "{out}"
seed = 7
encoder = "uniformer-tiny"
steps = {steps}

[split]
validation_fraction = 0.25
test_fraction = 0.25
seed = 1

[optim]
lr = 3e-4

[data]
crop_size = [32, 32, 32]
batch_size = 4
workers = 1
intensity_shift = 0.0
intensity_scale = 0.0
flips = false

[validation]
every = 10
log_every = 10
keep = 2

[classify]
labels_csv = "{csv}"
{extra}"#,
        cache = cache.display(),
        out = dir.join("run").display(),
        csv = cohort.join("subjects.csv").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn mean_loss(records: &[&MetricRecord]) -> f64 {
    records.iter().map(|r| r.values["loss"]).sum::<f64>() / records.len() as f64
}

/// The test subjects of the job's split, as ids.
fn test_ids(cache: &Path) -> Vec<String> {
    let reader = CacheReader::open(cache).unwrap();
    let ids: Vec<String> = reader
        .manifest()
        .subjects
        .iter()
        .map(|s| s.id.clone())
        .collect();
    let split = split_subjects(&ids, 0.25, 0.25, 1).unwrap();
    let mut test: Vec<String> = split.test.iter().map(|&i| ids[i].clone()).collect();
    test.sort();
    test
}

/// `predictions.csv` rows keyed by id: (truth, predicted, probabilities).
fn read_predictions(path: &Path) -> BTreeMap<String, (String, String, Vec<f64>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("id,truth,predicted,p_HGG,p_none"));
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 5, "{line}");
            let probabilities = fields[3..].iter().map(|v| v.parse().unwrap()).collect();
            (
                fields[0].to_string(),
                (fields[1].to_string(), fields[2].to_string(), probabilities),
            )
        })
        .collect()
}

#[test]
fn tiny_classifier_loss_falls_and_the_outputs_are_complete() {
    let dir = scratch("run");
    let config = job(&dir, 40, "");
    run_ok(brainmvp().args(["finetune", "--config"]).arg(&config));
    let out = dir.join("run");
    for name in [
        "config.toml",
        "metrics.jsonl",
        "loss.png",
        "validation.png",
        "best.json",
        "model/model.json",
        "model/model.mpk",
        "test/classification.md",
        "test/predictions.csv",
        "checkpoints/latest",
    ] {
        assert!(out.join(name).is_file(), "{name} missing");
    }
    let records = read_metrics(&out.join("metrics.jsonl")).unwrap();
    let train: Vec<&MetricRecord> = records.iter().filter(|r| r.kind == "train").collect();
    assert_eq!(train.len(), 40);
    let (first, last) = (mean_loss(&train[..10]), mean_loss(&train[30..]));
    assert!(last < first, "cross-entropy {first} -> {last}");
    let validation: Vec<&MetricRecord> =
        records.iter().filter(|r| r.kind == "validation").collect();
    let steps: Vec<u64> = validation.iter().map(|r| r.step).collect();
    assert_eq!(steps, [10, 20, 30, 40]);
    for record in &validation {
        for key in ["accuracy", "macro_f1"] {
            assert!(
                (0.0..=1.0).contains(&record.values[key]),
                "{key} {:?}",
                record.values
            );
        }
        let auc = record.values["auc"];
        assert!(auc.is_nan() || (0.0..=1.0).contains(&auc), "auc {auc}");
    }
    check_predictions(&out);
    let report = std::fs::read_to_string(out.join("test/classification.md")).unwrap();
    assert!(report.contains("| test | 3 |"), "{report}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// One row per test subject of the split, true classes from the table, probabilities that sum
/// to 1 with the arg-max as the prediction.
fn check_predictions(out: &Path) {
    let (cohort, cache) = cohort();
    let table = read_label_table(&cohort.join("subjects.csv"), "id", "grade").unwrap();
    let predictions = read_predictions(&out.join("test/predictions.csv"));
    assert_eq!(
        predictions.keys().cloned().collect::<Vec<_>>(),
        test_ids(cache)
    );
    for (id, (truth, predicted, probabilities)) in &predictions {
        assert_eq!(truth, &table[id]);
        assert!(
            (probabilities.iter().sum::<f64>() - 1.0).abs() < 1e-4,
            "{probabilities:?}"
        );
        let arg_max = if probabilities[0] >= probabilities[1] {
            "HGG"
        } else {
            "none"
        };
        assert_eq!(predicted, arg_max);
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model/model.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["classes"], serde_json::json!(["HGG", "none"]));
    assert_eq!(manifest["crop_size"], serde_json::json!([32, 32, 32]));
    // The saved model reproduces the written probabilities.
    let device = Default::default();
    let (manifest, model) = load_classifier::<Flex>(&out.join("model"), &device).unwrap();
    let reader = CacheReader::open(cache).unwrap();
    let ids: Vec<String> = reader
        .manifest()
        .subjects
        .iter()
        .map(|s| s.id.clone())
        .collect();
    let (_, subject_class) = subject_classes(&table, &ids, &cohort.join("subjects.csv")).unwrap();
    let test: Vec<usize> = (0..ids.len())
        .filter(|&i| predictions.contains_key(&ids[i]))
        .collect();
    let again =
        predict_subjects(&model, &manifest, &reader, &test, &subject_class, &device).unwrap();
    for prediction in again {
        let written = &predictions[&prediction.id].2;
        for (a, b) in prediction.probabilities.iter().zip(written) {
            assert!((a - b).abs() < 2e-6, "{}: {a} vs {b}", prediction.id);
        }
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn label_table_reads_columns_by_name_and_refuses_bad_tables() {
    let dir = scratch("tables");
    let good = write(
        &dir,
        "good.csv",
        "grade,id,x\nHGG,a,1\n\"L,GG\",\"b\",2\nnone,c,3\nHGG,a,1\n",
    );
    let table = read_label_table(&good, "id", "grade").unwrap();
    let expected: BTreeMap<String, String> = [("a", "HGG"), ("b", "L,GG"), ("c", "none")]
        .map(|(id, class)| (id.to_string(), class.to_string()))
        .into();
    assert_eq!(table, expected);
    let ids: Vec<String> = ["c", "a", "b"].map(String::from).into();
    let (classes, indices) = subject_classes(&table, &ids, &good).unwrap();
    assert_eq!(classes, ["HGG", "L,GG", "none"]);
    assert_eq!(indices, [2, 0, 1]);

    let error = |path: &Path, id: &str, label: &str| {
        format!("{:#}", read_label_table(path, id, label).unwrap_err())
    };
    let message = error(&good, "id", "diagnosis");
    assert!(
        message.contains("good.csv") && message.contains("diagnosis"),
        "{message}"
    );
    let short = write(&dir, "short.csv", "id,grade\na,HGG\nb\n");
    assert!(error(&short, "id", "grade").contains("short.csv: line 3"));
    let twice = write(&dir, "twice.csv", "id,grade\na,HGG\na,none\n");
    assert!(error(&twice, "id", "grade").contains("twice.csv: subject a"));
    let empty = write(&dir, "empty.csv", "\n");
    assert!(error(&empty, "id", "grade").contains("empty.csv"));
    assert!(error(&dir.join("absent.csv"), "id", "grade").contains("absent.csv"));

    let unknown: Vec<String> = ["a", "zz"].map(String::from).into();
    let message = format!(
        "{:#}",
        subject_classes(&table, &unknown, &good).unwrap_err()
    );
    assert!(
        message.contains("good.csv") && message.contains("zz"),
        "{message}"
    );
    let one_class: Vec<String> = ["a"].map(String::from).into();
    assert!(subject_classes(&table, &one_class, &good).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn prediction(truth: usize, probabilities: &[f64]) -> Prediction {
    Prediction {
        id: String::new(),
        truth,
        probabilities: probabilities.to_vec(),
    }
}

#[test]
fn metrics_of_hand_made_predictions() {
    // Binary: positive = class 1. Scores of the positives 0.8, 0.4; negatives 0.6, 0.1:
    // 3 of the 4 positive-negative pairs are ordered right, AUC 0.75.
    let binary = [
        prediction(1, &[0.2, 0.8]),
        prediction(1, &[0.6, 0.4]),
        prediction(0, &[0.4, 0.6]),
        prediction(0, &[0.9, 0.1]),
    ];
    let metrics = ClassMetrics::of(&binary, 2).unwrap();
    assert_eq!(metrics.cases, 4);
    assert!((metrics.accuracy - 0.5).abs() < 1e-12);
    // Each class: TP 1, FP 1, FN 1 -> F1 1/2.
    assert!((metrics.macro_f1 - 0.5).abs() < 1e-12);
    assert!((metrics.auc.unwrap() - 0.75).abs() < 1e-12);

    // Three classes, class 2 never true: the one-vs-rest AUC of classes 0 and 1 are averaged.
    let three = [
        prediction(0, &[0.7, 0.2, 0.1]),
        prediction(0, &[0.3, 0.6, 0.1]),
        prediction(1, &[0.5, 0.4, 0.1]),
    ];
    let metrics = ClassMetrics::of(&three, 3).unwrap();
    // Class 0: positives 0.7, 0.3 vs negative 0.5 -> 1/2. Class 1: positive 0.4 vs 0.2, 0.6 -> 1/2.
    assert!((metrics.auc.unwrap() - 0.5).abs() < 1e-12);
    assert!((metrics.accuracy - 1.0 / 3.0).abs() < 1e-12);

    let one_class = [prediction(1, &[0.2, 0.8]), prediction(1, &[0.6, 0.4])];
    assert_eq!(ClassMetrics::of(&one_class, 2).unwrap().auc, None);
    assert!(ClassMetrics::of(&[], 2).is_err());

    let better = ClassMetrics {
        accuracy: 0.5,
        macro_f1: 0.6,
        auc: None,
        cases: 4,
    };
    let tie = ClassMetrics {
        accuracy: 0.75,
        ..better.clone()
    };
    assert!(tie.better_than(&better) && !better.better_than(&tie) && !tie.better_than(&tie));

    let summary = ClassifySummary {
        classes: vec!["HGG".into(), "none".into()],
        best_step: 20,
        best_validation: better,
        test: metrics,
        init_report: None,
        train_subjects: 6,
    };
    let markdown = summary.to_markdown();
    assert!(
        markdown.contains("| validation (best, step 20) | 4 | 0.5000 | 0.6000 | undefined |"),
        "{markdown}"
    );
    assert!(markdown.contains("| test | 3 | 0.3333 |"), "{markdown}");
}

#[test]
fn centred_crops_pad_equally_with_the_extra_voxel_after() {
    assert_eq!(centred_start([40, 33, 32], [32, 32, 32]), [4, 0, 0]);
    // 25 voxels in a 32 crop: 7 of padding, 3 before and 4 after (as the loader).
    assert_eq!(centred_start([25, 31, 30], [32, 32, 32]), [-3, 0, -1]);
}

fn train_losses(out: &Path) -> Vec<(u64, f64)> {
    let records = read_metrics(&out.join("metrics.jsonl")).unwrap();
    records
        .iter()
        .filter(|r| r.kind == "train")
        .map(|r| (r.step, r.values["loss"]))
        .collect()
}

#[test]
fn a_killed_run_resumes_to_the_losses_and_test_of_an_uninterrupted_one() {
    let reference_dir = scratch("reference");
    run_ok(
        brainmvp()
            .args(["finetune", "--config"])
            .arg(job(&reference_dir, 20, "")),
    );
    let reference = reference_dir.join("run");

    let dir = scratch("killed");
    let config = job(&dir, 20, "");
    let out = dir.join("run");
    let mut child = brainmvp()
        .args(["finetune", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    kill_after_checkpoint(&mut child, &out, 10);
    run_ok(
        brainmvp()
            .args(["finetune", "--resume", "--config"])
            .arg(&config),
    );
    let (got, expected) = (train_losses(&out), train_losses(&reference));
    assert_eq!(got.len(), 20);
    for ((step, a), (expected_step, b)) in got.iter().zip(&expected) {
        assert_eq!(step, expected_step);
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1e-3),
            "step {step}: resumed {a} vs {b}"
        );
    }
    let predictions =
        |out: &Path| std::fs::read_to_string(out.join("test/predictions.csv")).unwrap();
    assert_eq!(predictions(&out), predictions(&reference));
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&reference_dir).unwrap();
}

#[test]
fn a_missing_label_column_is_a_one_line_error_naming_the_table() {
    let dir = scratch("bad-column");
    let config = job(&dir, 4, "");
    let text_job = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text_job}label_column = \"diagnosis\"\n")).unwrap();
    let output = brainmvp()
        .args(["finetune", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("subjects.csv") && stderr.contains("diagnosis"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

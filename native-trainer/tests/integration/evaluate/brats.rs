//! `brainmvp evaluate --metrics brats` against the official `brats-evaluation` package: every
//! number of `tests/reference/brats_metrics.json` (written by `tests/reference/brats_metrics.py`,
//! which runs the package) is reproduced — per case and region the raw panoptica values, and the
//! parser's table with its `mean`/`std`/`median` rows — on the committed synthetic edge cases and
//! on the real reference label maps of `../shared/data/real/` (read there, never copied).
//! Tolerance: 1e-4 relative, HD95 within 0.01 mm; NaN and infinities must match exactly.

use crate::support::{brainmvp_output, scratch, text};
use brainmvp_core::metrics::brats::ChallengeRegion;
use brainmvp_core::metrics::brats_region::{BratsRegionReport, LesionMetric};
use brainmvp_core::metrics::brats_table::BratsTable;
use brainmvp_core::metrics::matching::minimum_cost_assignment;
use brainmvp_core::rng::Rng;
use brainmvp_trainer::evaluate::brats::{score_brats_case, BratsCase};
use brainmvp_trainer::evaluate::{read_label_map, LabelsChoice};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `tests/reference/` of the repository.
fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/reference")
}

/// `../shared/data/real` beside the repository: the real cases and their reference label maps.
fn shared_real() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/real")
}

fn official() -> Value {
    let path = reference_dir().join("brats_metrics.json");
    let text = std::fs::read_to_string(&path).expect("tests/reference/brats_metrics.json");
    serde_json::from_str(&text).expect("valid JSON")
}

/// A file named in the JSON: `real/...` lies in the shared folder, the rest beside the JSON.
fn label_map_path(shown: &str) -> PathBuf {
    match shown.strip_prefix("real/") {
        Some(relative) => shared_real().join(relative),
        None => reference_dir().join(shown),
    }
}

/// A number of the JSON (NaN and infinities are strings there).
fn number(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) if s == "nan" => f64::NAN,
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        other => panic!("not a number: {other}"),
    }
}

/// Asserts `ours` reproduces the package's `expected` (HD95 keys within 0.01 mm, else 1e-4
/// relative).
fn assert_reproduces(ours: f64, expected: f64, what: &str) {
    let agrees = if expected.is_nan() || expected.is_infinite() {
        ours.is_nan() == expected.is_nan() && (ours.is_nan() || ours == expected)
    } else if what.contains("hd95") {
        (ours - expected).abs() <= 0.01
    } else {
        (ours - expected).abs() <= 1e-4 * expected.abs() + 1e-12
    };
    assert!(agrees, "{what}: ours {ours}, brats-evaluation {expected}");
}

fn region_of(key: &str) -> ChallengeRegion {
    ChallengeRegion::ALL
        .into_iter()
        .find(|r| r.key() == key)
        .unwrap_or_else(|| panic!("unknown region {key}"))
}

/// Our value of a raw panoptica key.
fn raw_value(report: &BratsRegionReport, key: &str) -> f64 {
    match key {
        "n_ref_instances" => report.reference_lesions as f64,
        "n_pred_instances" => report.predicted_lesions as f64,
        "tp" => report.true_positives() as f64,
        "fp" => report.false_positives() as f64,
        "fn" => report.false_negatives() as f64,
        "prec" => report.precision(),
        "rec" => report.recall(),
        "rq" => report.f1(),
        "global_bin_dsc" => report.global_dice,
        "global_bin_nsd" => report.global_nsd,
        "global_bin_hd95" => report.global_hd95,
        "sq_dsc" => report.lesion_wise_mean(LesionMetric::Dice),
        "sq_dsc_std" => report.lesion_wise_std(LesionMetric::Dice),
        "sq_nsd" => report.lesion_wise_mean(LesionMetric::Nsd),
        "sq_nsd_std" => report.lesion_wise_std(LesionMetric::Nsd),
        "sq_hd95" => report.lesion_wise_mean(LesionMetric::Hd95),
        "sq_hd95_std" => report.lesion_wise_std(LesionMetric::Hd95),
        other => panic!("unknown key {other}"),
    }
}

/// Scores one case of the JSON with our library and checks every raw value of every region.
fn check_case(case: &Value) -> BratsCase {
    let name = case["name"].as_str().unwrap();
    let prediction = read_label_map(&label_map_path(case["prediction"].as_str().unwrap())).unwrap();
    let reference = read_label_map(&label_map_path(case["reference"].as_str().unwrap())).unwrap();
    let ours = score_brats_case(name, &prediction, &reference, LabelsChoice::Auto).unwrap();
    let convention = |c: brainmvp_core::metrics::brats::LabelConvention| match c {
        brainmvp_core::metrics::brats::LabelConvention::Brats2021 => "brats2021",
        brainmvp_core::metrics::brats::LabelConvention::Brats2023 => "brats2023",
    };
    assert_eq!(
        convention(ours.prediction_labels),
        case["prediction_labels"],
        "{name}"
    );
    assert_eq!(
        convention(ours.truth_labels),
        case["reference_labels"],
        "{name}"
    );
    for (key, values) in case["regions"].as_object().unwrap() {
        let region = region_of(key);
        let report = ours.regions.iter().find(|r| r.region == region).unwrap();
        for (raw_key, expected) in values.as_object().unwrap() {
            let what = format!("{name} {key} {raw_key}");
            assert_reproduces(raw_value(report, raw_key), number(expected), &what);
        }
    }
    ours
}

/// Our table of a run (the package's six regions, cases in its order, then its missing ones).
fn our_table(run: &Value, cases: &[BratsCase]) -> BratsTable {
    let mut table = BratsTable::new(ChallengeRegion::ALL.to_vec());
    for case in cases {
        table.push_case(&case.id, &case.regions).unwrap();
    }
    for missing in run["missing"].as_array().unwrap() {
        table.push_missing(missing.as_str().unwrap());
    }
    table
}

/// Every cell of the parser's table, summary rows included, against ours (cells by column name).
fn check_table(name: &str, run: &Value, table: &BratsTable) {
    let expected = &run["table"];
    let columns: Vec<String> = table.column_names();
    let mut rows: Vec<_> = table.rows.clone();
    rows.extend(table.summary_rows());
    let expected_rows = expected["rows"].as_array().unwrap();
    assert_eq!(rows.len(), expected_rows.len(), "{name}: rows");
    assert_eq!(expected["columns"].as_array().unwrap().len(), columns.len());
    for (row, expected_row) in rows.iter().zip(expected_rows) {
        assert_eq!(
            row.subject_id, expected_row["subject_id"],
            "{name}: row order"
        );
        for (column, value) in columns.iter().zip(&row.values) {
            let expected_value = number(&expected_row["values"][column.as_str()]);
            let what = format!("{name} table {} {column}", row.subject_id);
            assert_reproduces(*value, expected_value, &what);
        }
    }
}

#[test]
fn synthetic_edge_cases_match_brats_evaluation() {
    let official = official();
    let run = &official["runs"]["synthetic"];
    let cases: Vec<BratsCase> = run["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(check_case)
        .collect();
    assert!(cases.len() >= 12, "the edge cases are all there");
    check_table("synthetic", run, &our_table(run, &cases));
}

#[test]
fn real_reference_maps_match_brats_evaluation() {
    let real = shared_real();
    assert!(
        real.join("README.md").is_file(),
        "{}: the shared real cases",
        real.display()
    );
    let official = official();
    let run = &official["runs"]["real"];
    let cases: Vec<BratsCase> = run["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(check_case)
        .collect();
    check_table("real", run, &our_table(run, &cases));
}

/// Links (copies) a label map as `dir/<id>_seg.nii.gz`.
fn place(dir: &Path, id: &str, source: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(source, dir.join(format!("{id}_seg.nii.gz"))).unwrap();
}

/// Parses our `evaluation-brats.csv` into rows of named values.
fn read_our_csv(path: &Path) -> Vec<(String, BTreeMap<String, f64>)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[0], "subject_id");
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            let values = header[1..]
                .iter()
                .zip(&cells[1..])
                .map(|(&column, &cell)| (column.to_string(), cell.parse::<f64>().unwrap()))
                .collect();
            (cells[0].to_string(), values)
        })
        .collect()
}

#[test]
fn cli_writes_the_packages_table_with_missing_cases_and_summary_rows() {
    let official = official();
    let run = &official["runs"]["synthetic"];
    let dir = scratch("brats-cli");
    let (pred_dir, truth_dir, out_dir) = (dir.join("pred"), dir.join("truth"), dir.join("out"));
    let cases = run["cases"].as_array().unwrap();
    for case in cases {
        let id = case["name"].as_str().unwrap();
        place(
            &pred_dir,
            id,
            &label_map_path(case["prediction"].as_str().unwrap()),
        );
        place(
            &truth_dir,
            id,
            &label_map_path(case["reference"].as_str().unwrap()),
        );
    }
    for missing in run["missing"].as_array().unwrap() {
        let any_truth = label_map_path(cases[0]["reference"].as_str().unwrap());
        place(&truth_dir, missing.as_str().unwrap(), &any_truth);
    }
    let [pred, truth, out] = [&pred_dir, &truth_dir, &out_dir].map(|p| p.to_str().unwrap());
    let output = brainmvp_output(&[
        "evaluate",
        "--pred",
        pred,
        "--truth",
        truth,
        "--metrics",
        "brats",
        "--out",
        out,
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("scored as missing cases"));
    let ours: BTreeMap<String, BTreeMap<String, f64>> =
        read_our_csv(&out_dir.join("evaluation-brats.csv"))
            .into_iter()
            .collect();
    let expected_rows = run["table"]["rows"].as_array().unwrap();
    assert_eq!(
        ours.len(),
        expected_rows.len(),
        "one row per case, missing and summary row"
    );
    for expected_row in expected_rows {
        let subject = expected_row["subject_id"].as_str().unwrap();
        let row = &ours[subject];
        for (column, value) in expected_row["values"].as_object().unwrap() {
            let what = format!("CLI {subject} {column}");
            assert_reproduces(row[column], number(value), &what);
        }
    }
    let markdown = std::fs::read_to_string(out_dir.join("evaluation-brats.md")).unwrap();
    assert!(
        markdown.contains("| WT |") && markdown.contains("| RC |"),
        "{markdown}"
    );
}

#[test]
fn cli_refuses_non_brats_labels_and_other_grids_naming_the_file() {
    let official = official();
    let case = &official["runs"]["synthetic"]["cases"][0];
    let reference = read_label_map(&label_map_path(case["reference"].as_str().unwrap())).unwrap();
    let dir = scratch("brats-cli-errors");
    let (pred_dir, truth_dir) = (dir.join("pred"), dir.join("truth"));
    std::fs::create_dir_all(&pred_dir).unwrap();
    std::fs::create_dir_all(&truth_dir).unwrap();
    brainmvp_core::nifti::write_u8(&truth_dir.join("a_seg.nii.gz"), &reference).unwrap();
    let mut odd = reference.clone();
    odd.data[5] = 7;
    brainmvp_core::nifti::write_u8(&pred_dir.join("a_seg.nii.gz"), &odd).unwrap();
    let [pred, truth] = [&pred_dir, &truth_dir].map(|p| p.to_str().unwrap());
    let evaluate = |extra: &[&str]| {
        let mut args = vec![
            "evaluate",
            "--pred",
            pred,
            "--truth",
            truth,
            "--metrics",
            "brats",
        ];
        args.extend_from_slice(extra);
        brainmvp_output(&args)
    };
    let output = evaluate(&[]);
    let message = text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        message.contains("a_seg.nii.gz") && message.contains("holds 7"),
        "{message}"
    );
    assert_eq!(message.trim().lines().count(), 1, "{message}");

    let mut shifted = reference.clone();
    shifted.affine[0][3] += 1.0;
    brainmvp_core::nifti::write_u8(&pred_dir.join("a_seg.nii.gz"), &shifted).unwrap();
    let message = text(&evaluate(&[]).stderr);
    assert!(
        message.contains("a_seg.nii.gz") && message.contains("affine"),
        "{message}"
    );

    let output = evaluate(&["--labels", "classes"]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("BraTS labels"),
        "{}",
        text(&output.stderr)
    );
}

/// The cheapest assignment by trying every injection of rows into columns.
fn brute_force_minimum(cost: &[f64], rows: usize, columns: usize) -> f64 {
    fn search(cost: &[f64], row: usize, rows: usize, columns: usize, used: &mut [bool]) -> f64 {
        if row == rows {
            return 0.0;
        }
        let mut best = f64::INFINITY;
        for column in 0..columns {
            if !used[column] {
                used[column] = true;
                let rest = search(cost, row + 1, rows, columns, used);
                best = best.min(cost[row * columns + column] + rest);
                used[column] = false;
            }
        }
        best
    }
    if rows > columns {
        let transposed: Vec<f64> = (0..rows * columns)
            .map(|i| cost[(i % rows) * columns + i / rows])
            .collect();
        return brute_force_minimum(&transposed, columns, rows);
    }
    search(cost, 0, rows, columns, &mut vec![false; columns])
}

#[test]
fn lesion_assignment_is_the_optimum_of_brute_force() {
    let mut rng = Rng::new(11);
    for trial in 0..300 {
        let (rows, columns) = (1 + rng.below(5), 1 + rng.below(5));
        let cost: Vec<f64> = (0..rows * columns)
            .map(|_| match rng.chance(0.4) {
                true => 1.0 + 1e-6,
                false => rng.uniform(),
            })
            .collect();
        let assignment = minimum_cost_assignment(&cost, rows, columns);
        assert_eq!(assignment.len(), rows.min(columns), "trial {trial}");
        let mut seen_rows: Vec<usize> = assignment.iter().map(|p| p.0).collect();
        let mut seen_columns: Vec<usize> = assignment.iter().map(|p| p.1).collect();
        seen_rows.sort_unstable();
        seen_rows.dedup();
        seen_columns.sort_unstable();
        seen_columns.dedup();
        assert_eq!(
            seen_rows.len(),
            assignment.len(),
            "trial {trial}: one per row"
        );
        assert_eq!(
            seen_columns.len(),
            assignment.len(),
            "trial {trial}: one per column"
        );
        let total: f64 = assignment.iter().map(|&(r, c)| cost[r * columns + c]).sum();
        let best = brute_force_minimum(&cost, rows, columns);
        assert!(
            (total - best).abs() < 1e-12,
            "trial {trial}: {total} vs {best}"
        );
    }
}

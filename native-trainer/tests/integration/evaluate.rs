//! `brainmvp evaluate` and its library: Dice and HD95 (MONAI) of analytic shapes against
//! brute-force values, empty-mask conventions, pairing errors, the CLI end to end; and `bench
//! segment`'s window count against MONAI's placement. The BraTS challenge metrics (`--metrics
//! brats`) against the official package: [`brats`].

mod brats;

use crate::support::{brainmvp_output, scratch, text};
use brainmvp_core::labels::LabelScheme;
use brainmvp_core::nifti::{write_f32, write_u8};
use brainmvp_core::{Affine, Volume};
use brainmvp_trainer::evaluate::{evaluate_folders, score_case, LabelsChoice};
use std::path::Path;

/// Voxel size of the test volumes (anisotropic, so the spacing must come from the affine).
const SPACING: [f64; 3] = [1.0, 1.5, 2.0];
const DIMS: [usize; 3] = [40, 30, 24];

fn affine() -> Affine {
    [
        [SPACING[0], 0.0, 0.0, -20.0],
        [0.0, SPACING[1], 0.0, 10.0],
        [0.0, 0.0, SPACING[2], 5.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

/// A BraTS-like map: a sphere of oedema (2) of `outer` mm around `centre` (mm, voxel frame) with
/// an enhancing core (4) of `inner` mm.
fn tumour(centre: [f64; 3], outer: f64, inner: f64) -> Volume<u8> {
    let mut volume = Volume::filled(DIMS, affine(), 0u8);
    for z in 0..DIMS[2] {
        for y in 0..DIMS[1] {
            for x in 0..DIMS[0] {
                let offset = [x, y, z].map(|c| c as f64);
                let distance = (0..3)
                    .map(|a| ((offset[a] - centre[a]) * SPACING[a]).powi(2))
                    .sum::<f64>()
                    .sqrt();
                let label = match distance {
                    d if d <= inner => 4,
                    d if d <= outer => 2,
                    _ => 0,
                };
                volume.set(x, y, z, label);
            }
        }
    }
    volume
}

fn coords(index: usize) -> [usize; 3] {
    [
        index % DIMS[0],
        (index / DIMS[0]) % DIMS[1],
        index / (DIMS[0] * DIMS[1]),
    ]
}

/// Surface voxels by brute force: foreground with a 6-neighbour outside the mask or the volume.
fn surface(mask: &[bool]) -> Vec<[usize; 3]> {
    let inside = |c: [i64; 3]| {
        (0..3).all(|a| c[a] >= 0 && (c[a] as usize) < DIMS[a])
            && mask[c[0] as usize + DIMS[0] * (c[1] as usize + DIMS[1] * c[2] as usize)]
    };
    (0..mask.len())
        .filter(|&i| mask[i])
        .map(coords)
        .filter(|c| {
            let c = c.map(|v| v as i64);
            (0..3).any(|a| {
                let (mut below, mut above) = (c, c);
                below[a] -= 1;
                above[a] += 1;
                !inside(below) || !inside(above)
            })
        })
        .collect()
}

/// numpy.percentile (linear interpolation) of `values`.
fn percentile(mut values: Vec<f64>, q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = q / 100.0 * (values.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    values[low] + (values[high] - values[low]) * (rank - low as f64)
}

/// Brute-force HD95 (max of the two directed 95th percentiles of surface distances, in mm).
fn brute_hd95(a: &[bool], b: &[bool]) -> f64 {
    let (surface_a, surface_b) = (surface(a), surface(b));
    let directed = |from: &[[usize; 3]], to: &[[usize; 3]]| {
        let distances = from
            .iter()
            .map(|p| {
                to.iter()
                    .map(|q| {
                        (0..3)
                            .map(|k| ((p[k] as f64 - q[k] as f64) * SPACING[k]).powi(2))
                            .sum::<f64>()
                    })
                    .fold(f64::INFINITY, f64::min)
                    .sqrt()
            })
            .collect();
        percentile(distances, 95.0)
    };
    directed(&surface_a, &surface_b).max(directed(&surface_b, &surface_a))
}

fn brute_dice(a: &[bool], b: &[bool]) -> f64 {
    let shared = a.iter().zip(b).filter(|(&p, &t)| p && t).count();
    let total = a.iter().filter(|&&p| p).count() + b.iter().filter(|&&t| t).count();
    2.0 * shared as f64 / total as f64
}

fn mask(volume: &Volume<u8>, labels: &[u8]) -> Vec<bool> {
    volume.data.iter().map(|v| labels.contains(v)).collect()
}

/// A BraTS-named cohort subject: an image (needed for discovery) and the label map.
fn write_cohort_subject(root: &Path, id: &str, truth: &Volume<u8>) {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    let image = truth.map(f32::from);
    write_f32(&dir.join(format!("{id}_t1.nii.gz")), &image).unwrap();
    write_u8(&dir.join(format!("{id}_seg.nii.gz")), truth).unwrap();
}

#[test]
fn offset_spheres_match_brute_force_dice_and_hd95() {
    let dir = scratch("spheres");
    let (truth_dir, pred_dir) = (dir.join("truth"), dir.join("pred"));
    std::fs::create_dir_all(&pred_dir).unwrap();
    let truth = tumour([18.0, 14.0, 11.0], 9.0, 4.5);
    let prediction = tumour([21.0, 13.0, 12.0], 8.0, 5.0);
    write_cohort_subject(&truth_dir, "BraTS2021_00001", &truth);
    write_u8(&pred_dir.join("BraTS2021_00001_pred.nii.gz"), &prediction).unwrap();

    let report = evaluate_folders(&pred_dir, &truth_dir, LabelsChoice::Auto).unwrap();
    assert_eq!(report.regions, ["TC", "WT", "ET"]);
    assert_eq!(report.cases.len(), 1);
    assert_eq!(report.cases[0].id, "BraTS2021_00001");
    // TC = {1, 4} and ET = {4} are the core here; WT = {1, 2, 4} the whole sphere.
    let regions: [&[u8]; 3] = [&[1, 4], &[1, 2, 4], &[4]];
    for (index, labels) in regions.iter().enumerate() {
        let (p, t) = (mask(&prediction, labels), mask(&truth, labels));
        let expected_dice = brute_dice(&p, &t);
        let expected_hd95 = brute_hd95(&p, &t);
        let score = report.cases[0].scores[index];
        assert!(
            (score.dice - expected_dice).abs() < 1e-12,
            "{index}: {score:?} vs {expected_dice}"
        );
        let hd95 = score.hd95.expect("both masks non-empty");
        assert!(
            (hd95 - expected_hd95).abs() < 1e-9,
            "{index}: {hd95} vs {expected_hd95}"
        );
        assert!(expected_dice > 0.2 && expected_dice < 0.95 && expected_hd95 > 1.0);
        assert!((report.mean_dice(index) - expected_dice).abs() < 1e-12);
        assert_eq!(report.mean_hd95(index), (Some(hd95), 0));
    }
    // The in-memory API gives the same scores.
    let scheme = LabelScheme::Brats { enhancing_label: 4 };
    let in_memory = score_case(&scheme, "case", &prediction, &truth).unwrap();
    assert_eq!(in_memory.scores, report.cases[0].scores);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn empty_truths_score_one_or_zero_and_hd95_is_undefined() {
    let dir = scratch("empty");
    let (truth_dir, pred_dir) = (dir.join("truth"), dir.join("pred"));
    std::fs::create_dir_all(&truth_dir).unwrap();
    std::fs::create_dir_all(&pred_dir).unwrap();
    let empty = Volume::filled(DIMS, affine(), 0u8);
    let oedema = tumour([20.0, 15.0, 12.0], 6.0, -1.0);
    write_u8(&truth_dir.join("a_seg.nii.gz"), &empty).unwrap();
    write_u8(&truth_dir.join("b.nii.gz"), &empty).unwrap();
    write_u8(&pred_dir.join("a_seg.nii.gz"), &empty).unwrap();
    write_u8(&pred_dir.join("b.nii"), &oedema).unwrap();

    let report = evaluate_folders(&pred_dir, &truth_dir, LabelsChoice::Brats).unwrap();
    let ids: Vec<&str> = report.cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    for score in &report.cases[0].scores {
        assert_eq!((score.dice, score.hd95), (1.0, None));
    }
    // b: WT predicted on an empty truth scores 0; TC and ET are empty on both sides.
    let b: Vec<(f64, Option<f64>)> = report.cases[1]
        .scores
        .iter()
        .map(|s| (s.dice, s.hd95))
        .collect();
    assert_eq!(b, [(1.0, None), (0.0, None), (1.0, None)]);
    assert_eq!(report.mean_dice(1), 0.5);
    assert_eq!(report.mean_hd95(1), (None, 2));
    let csv = report.to_csv();
    assert!(csv.starts_with("id,region,dice,hd95_monai\n"), "{csv}");
    assert!(csv.contains("a,TC,1,undefined\n"), "{csv}");
    assert!(csv.contains("b,WT,0,undefined\n"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + 2 * 3);
    assert!(!csv.lines().any(|line| line.ends_with(",0")), "{csv}");
    assert!(report
        .to_markdown()
        .contains("| WT | 0.5000 ± 0.5000 | undefined | 2 of 2 |"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn missing_prediction_grid_mismatch_and_fractional_labels_are_refused() {
    let dir = scratch("errors");
    let (truth_dir, pred_dir) = (dir.join("truth"), dir.join("pred"));
    std::fs::create_dir_all(&truth_dir).unwrap();
    std::fs::create_dir_all(&pred_dir).unwrap();
    let truth = tumour([20.0, 15.0, 12.0], 6.0, 3.0);
    for id in ["case1", "case2", "case3"] {
        write_u8(&truth_dir.join(format!("{id}_seg.nii.gz")), &truth).unwrap();
    }
    write_u8(&pred_dir.join("case1.nii.gz"), &truth).unwrap();
    let error = evaluate_folders(&pred_dir, &truth_dir, LabelsChoice::Auto).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("case2, case3") && !message.contains("case1,"),
        "{message}"
    );
    assert!(!message.contains('\n'));

    let mut shifted = truth.clone();
    shifted.affine[0][3] += 0.01;
    write_u8(&pred_dir.join("case2_seg.nii.gz"), &shifted).unwrap();
    let mut fractional = truth.map(f32::from);
    fractional.data[7] = 0.5;
    write_f32(&pred_dir.join("case3_pred.nii.gz"), &fractional).unwrap();
    let error = evaluate_folders(&pred_dir, &truth_dir, LabelsChoice::Auto).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("case2_seg.nii.gz") || message.contains("case3_pred.nii.gz"),
        "{message}"
    );
    std::fs::remove_file(pred_dir.join("case3_pred.nii.gz")).unwrap();
    write_u8(&pred_dir.join("case3_pred.nii.gz"), &truth).unwrap();
    let message = evaluate_folders(&pred_dir, &truth_dir, LabelsChoice::Auto)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("case2_seg.nii.gz") && message.contains("affine"),
        "{message}"
    );

    write_u8(&pred_dir.join("case2_seg.nii.gz"), &truth).unwrap();
    write_f32(&pred_dir.join("case3_pred.nii.gz"), &fractional).unwrap();
    let message = evaluate_folders(&pred_dir, &truth_dir, LabelsChoice::Auto)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("case3_pred.nii.gz") && message.contains("0.5"),
        "{message}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn auto_labels_fall_back_to_classes_beyond_brats_values() {
    let dir = scratch("classes");
    let (truth_dir, pred_dir) = (dir.join("truth"), dir.join("pred"));
    std::fs::create_dir_all(&truth_dir).unwrap();
    std::fs::create_dir_all(&pred_dir).unwrap();
    let truth = tumour([20.0, 15.0, 12.0], 7.0, 3.0).map(|v| if v == 4 { 9 } else { v });
    let prediction = tumour([21.0, 15.0, 12.0], 7.0, 3.0).map(|v| if v == 4 { 9 } else { v });
    write_u8(&truth_dir.join("s_seg.nii.gz"), &truth).unwrap();
    write_u8(&pred_dir.join("s_seg.nii.gz"), &prediction).unwrap();
    let report = evaluate_folders(&pred_dir, &truth_dir, LabelsChoice::Auto).unwrap();
    assert_eq!(report.regions, ["label 2", "label 9"]);
    for (index, label) in [2u8, 9].iter().enumerate() {
        let expected = brute_dice(&mask(&prediction, &[*label]), &mask(&truth, &[*label]));
        assert!((report.mean_dice(index) - expected).abs() < 1e-12);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_prediction_in_the_other_brats_convention_is_read_in_the_truths() {
    let dir = scratch("conventions");
    let (truth_dir, pred_dir) = (dir.join("truth"), dir.join("pred"));
    std::fs::create_dir_all(&truth_dir).unwrap();
    std::fs::create_dir_all(&pred_dir).unwrap();
    let as_2023 = |volume: &Volume<u8>| volume.map(|v| if v == 4 { 3 } else { v });
    let truth = tumour([18.0, 14.0, 11.0], 9.0, 4.5);
    let prediction = tumour([21.0, 13.0, 12.0], 8.0, 5.0);
    write_u8(&truth_dir.join("a_seg.nii.gz"), &as_2023(&truth)).unwrap();
    // The prediction written with BraTS 2021's enhancing 4 against BraTS 2023 truths (3)...
    write_u8(&pred_dir.join("a_seg.nii.gz"), &prediction).unwrap();
    let mixed = evaluate_folders(&pred_dir, &truth_dir, LabelsChoice::Auto).unwrap();
    // ...scores as the same prediction written with 3.
    write_u8(&pred_dir.join("a_seg.nii.gz"), &as_2023(&prediction)).unwrap();
    let same = evaluate_folders(&pred_dir, &truth_dir, LabelsChoice::Auto).unwrap();
    assert_eq!(mixed.cases[0].scores, same.cases[0].scores);
    let et = mixed.cases[0].scores[2];
    assert!(et.dice > 0.2 && et.hd95.is_some(), "{et:?}");
    // A map holding both 3 and 4 cannot say which is enhancing: refused, naming the file.
    let mut both = as_2023(&prediction);
    both.data[0] = 4;
    write_u8(&pred_dir.join("a_seg.nii.gz"), &both).unwrap();
    let err = evaluate_folders(&pred_dir, &truth_dir, LabelsChoice::Auto).unwrap_err();
    assert!(err.to_string().contains("a_seg.nii.gz"), "{err}");
    assert!(err.to_string().contains("both 3 and 4"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cli_evaluates_end_to_end_and_fails_with_one_line() {
    let dir = scratch("cli");
    let (truth_dir, pred_dir, out_dir) = (dir.join("truth"), dir.join("pred"), dir.join("out"));
    std::fs::create_dir_all(&truth_dir).unwrap();
    std::fs::create_dir_all(&pred_dir).unwrap();
    let truth = tumour([20.0, 15.0, 12.0], 7.0, 3.0);
    let prediction = tumour([22.0, 15.0, 12.0], 7.0, 3.0);
    for id in ["x1", "x2"] {
        write_u8(&truth_dir.join(format!("{id}_seg.nii.gz")), &truth).unwrap();
        write_u8(&pred_dir.join(format!("{id}_seg.nii.gz")), &prediction).unwrap();
    }
    let (pred, truth_arg, out) = (
        pred_dir.to_str().unwrap(),
        truth_dir.to_str().unwrap(),
        out_dir.to_str().unwrap(),
    );
    let output = brainmvp_output(&[
        "evaluate", "--pred", pred, "--truth", truth_arg, "--out", out,
    ]);
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    assert!(
        stdout.contains("| region | Dice |") && stdout.contains("| ET |"),
        "{stdout}"
    );
    assert!(
        stdout.contains("evaluation.csv") && stdout.contains("evaluation.md"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(out_dir.join("evaluation.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2 * 3, "{csv}");
    let markdown = std::fs::read_to_string(out_dir.join("evaluation.md")).unwrap();
    assert!(markdown.starts_with("2 cases"), "{markdown}");

    std::fs::remove_file(pred_dir.join("x2_seg.nii.gz")).unwrap();
    let output = brainmvp_output(&["evaluate", "--pred", pred, "--truth", truth_arg]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains("x2") && !stderr.contains("panicked"),
        "{stderr}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// MONAI's window count along one axis (`_get_scan_interval` + `dense_patch_slices`).
fn monai_windows(size: usize, roi: usize, overlap: f64) -> usize {
    if size <= roi {
        return 1;
    }
    let interval = ((roi as f64 * (1.0 - overlap)) as usize).max(1);
    // dense_patch_slices: ceil((size - roi) / interval) + 1 starts, deduplicated after clamping.
    (size - roi).div_ceil(interval) + 1
}

#[test]
fn bench_segment_runs_the_monai_window_count() {
    for (size, roi) in [([32, 32, 32], 32), ([48, 32, 40], 32)] {
        let size_arg = format!("{},{},{}", size[0], size[1], size[2]);
        let roi_arg = roi.to_string();
        let output = brainmvp_output(&[
            "bench",
            "segment",
            "--encoder",
            "uniformer-tiny",
            "--size",
            &size_arg,
            "--roi",
            &roi_arg,
            "--repeats",
            "1",
            "--sw-batch",
            "2",
        ]);
        let stdout = text(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{stdout}\n{}",
            text(&output.stderr)
        );
        let expected: usize = size.iter().map(|&s| monai_windows(s, roi, 0.5)).product();
        assert!(
            stdout.contains(&format!("windows per case: {expected}\n")),
            "expected {expected} windows:\n{stdout}"
        );
    }
    // 240x240x155 at 96³, overlap 0.5: 4 x 4 x 3 windows, the official geometry.
    assert_eq!(
        [240, 240, 155]
            .iter()
            .map(|&s| monai_windows(s, 96, 0.5))
            .product::<usize>(),
        48
    );
}

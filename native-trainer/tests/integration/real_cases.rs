//! `brainmvp evaluate --model MODEL --cases DIR`: discovery of real cases (modalities by name,
//! the reference's preference order, one-line errors for incomplete folders) and, on a crop of a
//! real patient of `../shared/data/real` (read there, the crop written to a scratch folder) with
//! the page's bundled model, the Dice it reports against the Dice of `brainmvp segment` followed
//! by `brainmvp evaluate --pred --truth` on the same crop.

use brainmvp_core::nifti::{read_path, write_f32, write_u8};
use brainmvp_core::preprocess::crop::crop;
use brainmvp_core::preprocess::CropBox;
use brainmvp_core::{Affine, Modality, Volume};
use brainmvp_trainer::evaluate::read_label_map;
use brainmvp_trainer::evaluate::real_cases::discover_real_cases;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::support::{brainmvp_output, run_ok, scratch, text};

/// The real case cropped for the cross-check.
const CASE: &str = "BraTS-GLI-00001-000";
/// Size of the crop around the reference's tumour (voxels; the tumour spans 59 × 99 × 74). A
/// 64 × 64 × 48 crop cuts the tumour and leaves the model too little brain to scale the
/// intensities by (WT Dice 0.01); this one keeps the full case's figure (0.57 against 0.66).
const CROP: [usize; 3] = [128, 128, 96];

/// `../shared/data/real` beside the repository: the real tumour patients.
fn shared_real() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/real")
}

/// The page's bundled model.
fn page_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../www/assets/demo-model.bmvp")
}

const IDENTITY: Affine = [
    [1.0, 0.0, 0.0, 0.0],
    [0.0, 1.0, 0.0, 0.0],
    [0.0, 0.0, 1.0, 0.0],
    [0.0, 0.0, 0.0, 1.0],
];

/// A small case folder `dir/<id>` with an 8³ image per name in `images` and a label map per name
/// in `references` (under `reference/`).
fn tiny_case(dir: &Path, id: &str, images: &[&str], references: &[&str]) -> PathBuf {
    let case = dir.join(id);
    std::fs::create_dir_all(case.join("reference")).unwrap();
    for name in images {
        write_f32(&case.join(name), &Volume::filled([8; 3], IDENTITY, 1.0)).unwrap();
    }
    for name in references {
        let path = case.join("reference").join(name);
        write_u8(&path, &Volume::filled([8; 3], IDENTITY, 0)).unwrap();
    }
    case
}

#[test]
fn discovery_reads_brats_toolkit_names_and_prefers_the_fusion() {
    let dir = scratch("real-cases-discovery");
    let tcga = ["t1", "t1c", "t2", "fla"].map(|m| format!("TCGA-XY-0001_{m}_bet.nii.gz"));
    let tcga: Vec<&str> = tcga.iter().map(String::as_str).collect();
    let references = ["hnfnetv1-20.nii.gz", "mav.nii.gz", "simple.nii.gz"];
    tiny_case(&dir, "TCGA-XY-0001", &tcga, &references);
    let gli = ["t1n", "t1c", "t2w", "t2f"].map(|m| format!("BraTS-GLI-00002-000-{m}.nii.gz"));
    let gli: Vec<&str> = gli.iter().map(String::as_str).collect();
    tiny_case(
        &dir,
        "BraTS-GLI-00002-000",
        &gli,
        &["isen.nii.gz", "BraTS23_1.nii.gz"],
    );
    // A folder without reference maps is not a case.
    std::fs::create_dir_all(dir.join("notes").join("reference")).unwrap();
    let cases = discover_real_cases(&dir).unwrap();
    let ids: Vec<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["BraTS-GLI-00002-000", "TCGA-XY-0001"]);
    assert_eq!(cases[0].reference_name(), "BraTS23_1");
    assert_eq!(cases[1].reference_name(), "mav");
    assert_eq!(cases[1].references, ["hnfnetv1-20", "mav", "simple"]);
    let flair = cases[1].images.iter().find(|(m, _)| *m == Modality::Flair);
    assert!(flair.unwrap().1.ends_with("TCGA-XY-0001_fla_bet.nii.gz"));
    assert_eq!(cases[1].images.len(), 4);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_case_without_its_modalities_is_a_one_line_error_naming_the_folder() {
    let dir = scratch("real-cases-missing");
    tiny_case(&dir, "EMPTY-CASE", &[], &["mav.nii.gz"]);
    let err = discover_real_cases(&dir).unwrap_err().to_string();
    assert!(err.contains("EMPTY-CASE"), "{err}");
    assert!(err.contains("no flair, t1, t1c, t2 image"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    std::fs::remove_dir_all(dir.join("EMPTY-CASE")).unwrap();
    let three = ["t1", "t1c", "flair"].map(|m| format!("CASE-3_{m}.nii.gz"));
    let three: Vec<&str> = three.iter().map(String::as_str).collect();
    tiny_case(&dir, "CASE-3", &three, &["seg.nii.gz"]);
    let output = brainmvp_output(&[
        "evaluate",
        "--model",
        page_model().to_str().unwrap(),
        "--cases",
        dir.to_str().unwrap(),
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("CASE-3") && stderr.contains("no t2 image"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn evaluate_rejects_pred_with_cases_and_needs_one_of_the_two_forms() {
    let both = brainmvp_output(&["evaluate", "--pred", "p", "--model", "m", "--cases", "c"]);
    assert!(!both.status.success());
    assert!(
        text(&both.stderr).contains("cannot be used with"),
        "{}",
        text(&both.stderr)
    );
    let neither = brainmvp_output(&["evaluate"]);
    assert!(!neither.status.success());
    assert!(
        text(&neither.stderr).contains("--pred"),
        "{}",
        text(&neither.stderr)
    );
}

/// The crop of the reference's tumour: [`CROP`] voxels centred on its bounding box, inside the
/// grid.
fn tumour_crop(reference: &Volume<u8>) -> CropBox {
    let [nx, ny, _] = reference.dims;
    let (mut low, mut high) = ([usize::MAX; 3], [0usize; 3]);
    for (index, _) in reference.data.iter().enumerate().filter(|(_, &v)| v != 0) {
        let voxel = [index % nx, (index / nx) % ny, index / (nx * ny)];
        for axis in 0..3 {
            low[axis] = low[axis].min(voxel[axis]);
            high[axis] = high[axis].max(voxel[axis]);
        }
    }
    let start: [usize; 3] = std::array::from_fn(|axis| {
        let centre = (low[axis] + high[axis]) / 2;
        let last = reference.dims[axis] - CROP[axis];
        centre.saturating_sub(CROP[axis] / 2).min(last)
    });
    CropBox { start, size: CROP }
}

/// Writes the crop of the real case (its four images under their own names, its two reference
/// maps) into `cases/<CASE>`; returns the crop of `BraTS23_1`.
fn write_cropped_case(cases: &Path) -> Volume<u8> {
    let source = shared_real().join(CASE);
    let reference = read_label_map(&source.join("reference/BraTS23_1.nii.gz")).unwrap();
    let crop_box = tumour_crop(&reference);
    let target = cases.join(CASE);
    std::fs::create_dir_all(target.join("reference")).unwrap();
    for modality in ["t1c", "t1n", "t2f", "t2w"] {
        let name = format!("{CASE}-{modality}.nii.gz");
        let image = read_path(&source.join(&name)).unwrap().volume;
        write_f32(&target.join(&name), &crop(&image, &crop_box)).unwrap();
    }
    let isen = read_label_map(&source.join("reference/isen.nii.gz")).unwrap();
    let isen_path = target.join("reference/isen.nii.gz");
    write_u8(&isen_path, &crop(&isen, &crop_box)).unwrap();
    let cropped = crop(&reference, &crop_box);
    write_u8(&target.join("reference/BraTS23_1.nii.gz"), &cropped).unwrap();
    cropped
}

/// `region → dice` of the rows of `csv` whose first field is `id` (columns: id, reference?,
/// region, dice; `region_column` says where the region is).
fn dice_by_region(csv: &str, region_column: usize) -> BTreeMap<String, f64> {
    csv.lines()
        .skip(1)
        .map(|line| line.split(',').collect::<Vec<_>>())
        .filter(|fields| fields[0] == CASE)
        .map(|fields| {
            let dice = fields[region_column + 1].parse().expect("a Dice");
            (fields[region_column].to_string(), dice)
        })
        .collect()
}

/// The Dice of `brainmvp segment --mirror --clean` then `brainmvp evaluate --pred --truth`.
fn dice_of_segment_then_evaluate(dir: &Path, case: &Path, truth: &Volume<u8>) -> String {
    let (pred, truth_dir) = (dir.join("pred"), dir.join("truth"));
    std::fs::create_dir_all(&truth_dir).unwrap();
    std::fs::create_dir_all(&pred).unwrap();
    write_u8(&truth_dir.join(format!("{CASE}.nii.gz")), truth).unwrap();
    let image = |m: &str| case.join(format!("{CASE}-{m}.nii.gz"));
    run_ok(
        crate::support::brainmvp()
            .args(["segment", "--model", page_model().to_str().unwrap()])
            .arg("--t1")
            .arg(image("t1n"))
            .arg("--t1c")
            .arg(image("t1c"))
            .arg("--t2")
            .arg(image("t2w"))
            .arg("--flair")
            .arg(image("t2f"))
            .args(["--mirror", "--clean", "--out"])
            .arg(pred.join(format!("{CASE}_seg.nii.gz"))),
    );
    let out = dir.join("cross-check");
    run_ok(
        crate::support::brainmvp()
            .args(["evaluate", "--pred"])
            .arg(&pred)
            .arg("--truth")
            .arg(&truth_dir)
            .arg("--out")
            .arg(&out),
    );
    std::fs::read_to_string(out.join("evaluation.csv")).unwrap()
}

#[test]
fn real_case_dice_equals_segment_then_evaluate_on_a_real_crop() {
    if !shared_real().join(CASE).is_dir() || !page_model().is_file() {
        println!(
            "skipped: {} or {} is absent",
            shared_real().join(CASE).display(),
            page_model().display()
        );
        return;
    }
    let dir = scratch("real-cases-crop");
    let cases = dir.join("cases");
    let truth = write_cropped_case(&cases);
    let found = discover_real_cases(&cases).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].reference_name(), "BraTS23_1");
    assert_eq!(found[0].references, ["BraTS23_1", "isen"]);
    let out = dir.join("eval");
    let output = run_ok(
        crate::support::brainmvp()
            .args(["evaluate", "--model", page_model().to_str().unwrap()])
            .arg("--cases")
            .arg(&cases)
            .arg("--out")
            .arg(&out),
    );
    let stdout = text(&output.stdout);
    let ours = dice_by_region(
        &std::fs::read_to_string(out.join("real_cases.csv")).unwrap(),
        2,
    );
    let theirs = dice_by_region(
        &dice_of_segment_then_evaluate(&dir, &cases.join(CASE), &truth),
        1,
    );
    for region in ["WT", "TC", "ET"] {
        assert!(
            (ours[region] - theirs[region]).abs() < 1e-12,
            "{region}: {} vs {}",
            ours[region],
            theirs[region]
        );
    }
    assert!(ours["WT"] > 0.3, "the model finds the tumour: {ours:?}");
    let row = format!(
        "| {CASE} | BraTS23_1 | {:.3} | {:.3} | {:.3} |",
        ours["WT"], ours["TC"], ours["ET"]
    );
    assert!(stdout.contains(&row), "{row}\n{stdout}");
    assert!(out.join(format!("{CASE}_seg.nii.gz")).is_file());
    std::fs::remove_dir_all(dir).unwrap();
}

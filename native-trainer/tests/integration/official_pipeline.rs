//! The official downstream test pipeline, end to end, on a real patient's scans.
//!
//! `tests/reference/official_pipeline.py --fixture` ran the official test path (MONAI transforms
//! of `Downstream/dataset/transforms.py`, the official sliding window, sigmoid > 0.5, MONAI's
//! inverse back onto the input grid) with the tiny official-class UniUnet of
//! `tests/reference/fixtures/uniunet.pt` on a crop of the real case BraTS-GLI-00001-000, once at
//! its own 1 mm and once with its voxel size changed so that `Spacingd` resamples, and committed
//! the label maps. Here the same checkpoint goes through `brainmvp import` and the same crop
//! through `brainmvp segment`, and the label maps must agree on ≥ 99.99 % of the voxels.

use brainmvp_core::nifti::{read_path, write_f32};
use brainmvp_core::preprocess::crop::crop;
use brainmvp_core::preprocess::CropBox;
use brainmvp_core::Volume;
use std::path::{Path, PathBuf};

use crate::support::golden::committed;
use crate::support::{brainmvp, run_ok, scratch};

/// The folder of the official pipeline's fixture.
fn fixture(name: &str) -> PathBuf {
    committed("official_pipeline").join(name)
}

/// `../shared/data/real` beside the repository: the real tumour patients.
fn shared_real() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/real")
}

fn usizes(value: &serde_json::Value) -> [usize; 3] {
    let values: Vec<usize> = value
        .as_array()
        .expect("an array")
        .iter()
        .map(|v| v.as_u64().expect("an integer") as usize)
        .collect();
    [values[0], values[1], values[2]]
}

/// The fixture's crop of one source file, with its voxel size scaled by `pixdim` (the affine's
/// columns, as the reference script does), written to `path`.
fn write_crop(source: &Path, crop_box: &CropBox, pixdim: [f64; 3], path: &Path) {
    let image = read_path(source).expect("the real case reads");
    let mut cropped: Volume<f32> = crop(&image.volume, crop_box);
    for row in cropped.affine.iter_mut().take(3) {
        for (column, scale) in pixdim.iter().enumerate() {
            row[column] *= scale;
        }
    }
    write_f32(path, &cropped).expect("the crop writes");
}

/// Imports the tiny official UniUnet with the fixture's window and BraTS 2023 labels.
fn import_tiny_uniunet(dir: &Path, roi: usize) -> PathBuf {
    let model = dir.join("model");
    run_ok(
        brainmvp()
            .args(["import", "--torch"])
            .arg(committed("uniunet.pt"))
            .args([
                "--arch",
                "uniunet",
                "--enhancing-label",
                "3",
                "--roi",
                &roi.to_string(),
                "--out",
                model.to_str().unwrap(),
            ]),
    );
    model
}

/// Fraction of voxels on which two label maps of the same grid agree.
fn agreement(ours: &Volume<u8>, official: &Volume<u8>) -> f64 {
    assert_eq!(ours.dims, official.dims);
    let same = ours
        .data
        .iter()
        .zip(&official.data)
        .filter(|(a, b)| a == b)
        .count();
    same as f64 / ours.data.len() as f64
}

fn label_map(path: &Path) -> Volume<u8> {
    let volume = read_path(path).expect("a label map").volume;
    volume.map(|value| value.round() as u8)
}

#[test]
fn imported_official_uniunet_gives_the_official_pipelines_label_map_on_a_real_crop() {
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("official_pipeline.json")).unwrap())
            .unwrap();
    let crop_meta = &meta["crop"];
    let crop_box = CropBox {
        start: usizes(&crop_meta["start"]),
        size: usizes(&crop_meta["size"]),
    };
    let case_dir = shared_real().join(crop_meta["source_case"].as_str().unwrap());
    let dir = scratch("official-pipeline");
    let model = import_tiny_uniunet(&dir, usizes(&meta["roi"])[0]);
    let anisotropic = meta["anisotropic"]["pixdim"].as_array().unwrap();
    let anisotropic: Vec<f64> = anisotropic.iter().map(|v| v.as_f64().unwrap()).collect();
    let cases = [
        ("crop_1mm", [1.0; 3]),
        (
            "crop_anisotropic",
            [anisotropic[0], anisotropic[1], anisotropic[2]],
        ),
    ];
    let files = crop_meta["source_files"].as_array().unwrap();
    for (case, pixdim) in cases {
        let mut segment = brainmvp();
        segment.args(["segment", "--model", model.to_str().unwrap()]);
        // The official channel order t1, t1c, t2, flair; the fixture names the files in it.
        for (flag, file) in ["--t1", "--t1c", "--t2", "--flair"].iter().zip(files) {
            let cropped = dir.join(format!("{case}_{}", file.as_str().unwrap()));
            write_crop(
                &case_dir.join(file.as_str().unwrap()),
                &crop_box,
                pixdim,
                &cropped,
            );
            segment.arg(flag).arg(&cropped);
        }
        let out = dir.join(format!("{case}_ours.nii.gz"));
        run_ok(segment.arg("--out").arg(&out));
        let ours = label_map(&out);
        let official = label_map(&fixture(&format!("{case}_label.nii.gz")));
        let agreed = agreement(&ours, &official);
        eprintln!("{case}: {:.4} % of the voxels agree", 100.0 * agreed);
        let labels = |map: &Volume<u8>| {
            (0..4u8)
                .map(|l| map.data.iter().filter(|&&v| v == l).count())
                .collect::<Vec<_>>()
        };
        eprintln!(
            "  voxels per label 0..3: ours {:?}, official {:?}",
            labels(&ours),
            labels(&official)
        );
        assert!(
            labels(&official).iter().filter(|&&count| count > 0).count() >= 3,
            "a label map of one or two labels proves little"
        );
        assert!(
            agreed >= 0.9999,
            "{case}: only {agreed} of the voxels agree"
        );
    }
}

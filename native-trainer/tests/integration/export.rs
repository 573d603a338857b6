//! `brainmvp export` end to end on a tiny model folder and a two-subject synthetic cohort: the
//! `.bmvp` segments exactly like the folder (f32), f16 halves the file, `--check` compares f16
//! with f32 on labelled subjects and decides by the 0.5-point rule, and damaged files fail in one
//! line naming the file.

use crate::support::{brainmvp, run, scratch, synth_cohort, text};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use brainmvp_core::bmvp::{BmvpModel, WeightPrecision};
use brainmvp_core::inference::segment::{SegmenterManifest, SEGMENTER_FORMAT, SEGMENTER_VERSION};
use brainmvp_core::inference::SlidingWindowConfig;
use brainmvp_core::labels::LabelScheme;
use brainmvp_core::model::{Architecture, UniUnetConfig};
use brainmvp_core::nifti::read_path;
use brainmvp_core::preprocess::PreprocessConfig;
use brainmvp_core::Modality;
use brainmvp_trainer::bmvp::F16_DICE_TOLERANCE;
use brainmvp_trainer::model_folder::{load_segmenter, save_segmenter};
use burn::backend::Flex;
use burn::tensor::backend::Backend;

const MODALITIES: [Modality; 4] = [Modality::Flair, Modality::T1, Modality::T1c, Modality::T2];

/// A two-subject synthetic cohort at 2 mm (every subject with a tumour and all four modalities)
/// and an untrained tiny model folder working at 2 mm with 32³ windows.
fn fixture() -> &'static (PathBuf, PathBuf) {
    static FIXTURE: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = scratch("fixture");
        let cohort = synth_cohort(
            &dir,
            &[
                "--subjects",
                "2",
                "--seed",
                "3",
                "--spacing-mm",
                "2",
                "--no-tumour-fraction",
                "0",
                "--missing-modality-fraction",
                "0",
            ],
        );
        let manifest = SegmenterManifest {
            format: SEGMENTER_FORMAT.to_string(),
            version: SEGMENTER_VERSION,
            model: UniUnetConfig::new(4, 3).with_encoder(Architecture::UniformerTiny),
            modalities: MODALITIES.to_vec(),
            labels: LabelScheme::Brats { enhancing_label: 4 },
            preprocess: PreprocessConfig {
                target_spacing_mm: 2.0,
                clip: false,
                ..PreprocessConfig::default()
            },
            window: SlidingWindowConfig {
                roi: [32; 3],
                overlap: 0.0,
                batch: 8,
                ..SlidingWindowConfig::default()
            },
            templates: Vec::new(),
            init: "scratch".into(),
            brainmvp_version: String::new(),
        };
        let device = Default::default();
        Flex::seed(&device, 11);
        let model = manifest.model.init::<Flex>(&device).unwrap();
        let folder = dir.join("model");
        save_segmenter(&folder, &manifest, &model, None).unwrap();
        (cohort, folder)
    })
}

/// The first subject's four modality files as `segment` flags.
fn subject_flags() -> Vec<(String, PathBuf)> {
    let (cohort, _) = fixture();
    let subject = std::fs::read_dir(cohort)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .min()
        .unwrap();
    let id = subject.file_name().unwrap().to_string_lossy().into_owned();
    [
        ("--flair", "flair"),
        ("--t1", "t1"),
        ("--t1c", "t1ce"),
        ("--t2", "t2"),
    ]
    .into_iter()
    .map(|(flag, token)| {
        let path = subject.join(format!("{id}_{token}.nii.gz"));
        assert!(path.is_file(), "{} missing", path.display());
        (flag.to_string(), path)
    })
    .collect()
}

fn segment(model: &Path, out: &Path) -> Output {
    let mut command = brainmvp();
    command
        .arg("segment")
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(out);
    for (flag, path) in subject_flags() {
        command.arg(flag).arg(path);
    }
    run(&mut command)
}

fn export(model: &Path, out: &Path, extra: &[&str]) -> Output {
    run(brainmvp()
        .arg("export")
        .arg("--model")
        .arg(model)
        .arg("--out")
        .arg(out)
        .args(extra))
}

fn report(out: &Path) -> serde_json::Value {
    let json = std::fs::read_to_string(format!("{}.json", out.display())).unwrap();
    serde_json::from_str(&json).unwrap()
}

#[test]
fn the_bmvp_segments_exactly_like_the_folder_and_f16_halves_it() {
    let (_, folder) = fixture();
    let dir = scratch("same");
    let exported = dir.join("tiny.bmvp");
    let output = export(folder, &exported, &["--precision", "f32"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("f32 as asked"), "{stdout}");
    let bytes = std::fs::read(&exported).unwrap();
    let bmvp = BmvpModel::from_bytes(&bytes, "tiny.bmvp").unwrap();
    assert_eq!(bmvp.precision, WeightPrecision::F32);
    assert_eq!(report(&exported)["bytes"], bytes.len());
    // The library reads the file too, with the folder's manifest.
    let device = Default::default();
    let loaded = load_segmenter::<Flex>(&exported, &device).unwrap();
    let original = load_segmenter::<Flex>(folder, &device).unwrap();
    assert_eq!(
        serde_json::to_value(&loaded.manifest).unwrap(),
        serde_json::to_value(&original.manifest).unwrap()
    );

    let from_folder = dir.join("folder_seg.nii.gz");
    let from_file = dir.join("file_seg.nii.gz");
    for (model, out) in [(folder.as_path(), &from_folder), (&exported, &from_file)] {
        let output = segment(model, out);
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    let (a, b) = (
        read_path(&from_folder).unwrap().volume,
        read_path(&from_file).unwrap().volume,
    );
    assert_eq!((a.dims, a.affine), (b.dims, b.affine));
    assert!(a.data == b.data, "f32 .bmvp and folder disagree");

    let half = dir.join("tiny-f16.bmvp");
    let output = export(&exported, &half, &["--precision", "f16"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let half_bytes = std::fs::metadata(&half).unwrap().len() as f64;
    let ratio = half_bytes / bytes.len() as f64;
    assert!((0.49..0.53).contains(&ratio), "f16/f32 size ratio {ratio}");
    let output = segment(&half, &dir.join("half_seg.nii.gz"));
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn auto_with_check_scores_both_precisions_and_follows_the_rule() {
    let (cohort, folder) = fixture();
    let dir = scratch("auto");
    let out = dir.join("auto.bmvp");
    let output = export(
        folder,
        &out,
        &[
            "--check",
            &cohort.display().to_string(),
            "--check-cases",
            "2",
        ],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("| f16 |") && stdout.contains("agreement"),
        "{stdout}"
    );
    let json = report(&out);
    let (dice_f32, dice_f16) = (
        json["dice_f32"].as_f64().unwrap(),
        json["dice_f16"].as_f64().unwrap(),
    );
    assert!((0.0..=1.0).contains(&dice_f32) && (0.0..=1.0).contains(&dice_f16));
    let agreement = json["agreement"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&agreement), "{json}");
    assert_eq!(json["check_cases"].as_array().unwrap().len(), 2, "{json}");
    let expected = match (dice_f16 - dice_f32).abs() <= F16_DICE_TOLERANCE {
        true => "f16",
        false => "f32",
    };
    assert_eq!(json["precision"], expected, "{json}");
    let written = BmvpModel::from_bytes(&std::fs::read(&out).unwrap(), "auto.bmvp").unwrap();
    assert_eq!(serde_json::to_value(written.precision).unwrap(), expected);
    let sizes = (
        json["bytes_f32"].as_f64().unwrap(),
        json["bytes_f16"].as_f64().unwrap(),
    );
    assert!(sizes.1 < 0.55 * sizes.0, "{json}");

    // Without labelled cases to compare on, auto keeps f32 and says why.
    let plain = dir.join("plain.bmvp");
    let output = export(folder, &plain, &[]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let json = report(&plain);
    assert_eq!(json["precision"], "f32", "{json}");
    assert!(json["dice_f32"].is_null(), "{json}");
    assert!(
        json["decision"].as_str().unwrap().contains("--check"),
        "{json}"
    );
}

#[test]
fn damaged_or_foreign_model_files_fail_in_one_line_naming_the_file() {
    let (_, folder) = fixture();
    let dir = scratch("damaged");
    let good = dir.join("good.bmvp");
    let output = export(folder, &good, &["--precision", "f16"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let bytes = std::fs::read(&good).unwrap();
    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    let cases = [
        ("flipped.bmvp", flipped),
        ("truncated.bmvp", bytes[..bytes.len() / 3].to_vec()),
        ("photo.bmvp", b"\x89PNG\r\n\x1a\nnot a model".to_vec()),
    ];
    for (name, content) in cases {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        let output = segment(&path, &dir.join("x.nii.gz"));
        assert!(!output.status.success(), "{name} was accepted");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains(name) && stderr.trim().lines().count() == 1,
            "{stderr}"
        );
    }
    let stderr = text(&segment(&dir.join("photo.bmvp"), &dir.join("y.nii.gz")).stderr);
    assert!(
        stderr.contains("not a brainmvp model (.bmvp) file"),
        "{stderr}"
    );
    // `export` refuses a damaged input the same way.
    let output = export(&dir.join("flipped.bmvp"), &dir.join("out.bmvp"), &[]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("flipped.bmvp") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
    assert!(!dir.join("out.bmvp").exists());
}

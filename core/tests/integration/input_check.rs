//! The input check on real data read from `../shared` (never copied): the three skull-stripped
//! BraTS-grid patients give no finding; the skull-on Colin27 and ICBM152 heads give the skull
//! finding; a copy with 5 mm slices gives the thick-slice finding; a modality shifted by 5 mm
//! gives the co-registration finding. The calibration test prints every file's statistics
//! (`--nocapture`).

use crate::support::{shared_mri, shared_real};
use brainmvp_core::inference::input_check::{
    background_statistics, check_input, looks_skull_stripped, FindingKind, InputFinding, SUMMARY,
};
use brainmvp_core::{nifti, Modality, Volume};
use std::path::{Path, PathBuf};

/// The real patients: folder and the file suffix of each modality.
const REAL_CASES: [(&str, [(Modality, &str); 4]); 3] = [
    (
        "BraTS-GLI-00001-000",
        [
            (Modality::T1, "-t1n.nii.gz"),
            (Modality::T1c, "-t1c.nii.gz"),
            (Modality::T2, "-t2w.nii.gz"),
            (Modality::Flair, "-t2f.nii.gz"),
        ],
    ),
    (
        "TCGA-DU-7294",
        [
            (Modality::T1, "_t1_bet.nii.gz"),
            (Modality::T1c, "_t1c_bet.nii.gz"),
            (Modality::T2, "_t2_bet.nii.gz"),
            (Modality::Flair, "_fla_bet.nii.gz"),
        ],
    ),
    (
        "BraTS-MET-00110-000",
        [
            (Modality::T1, "-t1n.nii.gz"),
            (Modality::T1c, "-t1c.nii.gz"),
            (Modality::T2, "-t2w.nii.gz"),
            (Modality::Flair, "-t2f.nii.gz"),
        ],
    ),
];

fn read(path: &Path) -> Volume<f32> {
    nifti::read_path(path)
        .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
        .volume
}

/// The four modalities of real patient `case`.
fn real_case(case: &str) -> Vec<(Modality, Volume<f32>)> {
    let (folder, suffixes) = REAL_CASES.iter().find(|(name, _)| *name == case).unwrap();
    suffixes
        .iter()
        .map(|(modality, suffix)| {
            let path = shared_real().join(folder).join(format!("{folder}{suffix}"));
            (*modality, read(&path))
        })
        .collect()
}

fn kinds(findings: &[InputFinding]) -> Vec<FindingKind> {
    findings.iter().map(|finding| finding.kind).collect()
}

/// Every skull-stripped file (real patients, Colin27 brain-masked, the page's sample) and every
/// skull-on one (Colin27, ICBM152), with whether it is skull-stripped.
fn calibration_files() -> Vec<(PathBuf, bool)> {
    let mut files: Vec<(PathBuf, bool)> = REAL_CASES
        .iter()
        .flat_map(|(folder, suffixes)| {
            suffixes.iter().map(move |(_, suffix)| {
                (
                    shared_real().join(folder).join(format!("{folder}{suffix}")),
                    true,
                )
            })
        })
        .collect();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www/assets/sample");
    for modality in ["t1", "t1ce", "t2", "flair"] {
        files.push((sample.join(format!("sample_{modality}.nii.gz")), true));
    }
    files.push((shared_mri().join("colin27/ch2bet.nii.gz"), true));
    files.push((shared_mri().join("colin27/ch2.nii.gz"), false));
    for name in ["avg152T1", "avg152T2", "avg152PD"] {
        files.push((
            shared_mri().join(format!("icbm152-2mm/{name}.nii.gz")),
            false,
        ));
    }
    files
}

#[test]
fn background_statistics_separate_brains_from_heads() {
    for (path, skull_stripped) in calibration_files() {
        let volume = read(&path);
        let statistics = background_statistics(&volume);
        eprintln!(
            "{}: {:?} {:?} mm, background {} on {:.3} of the grid, {:.0} ml of tissue",
            path.display(),
            volume.dims,
            volume.spacing(),
            statistics.background_value,
            statistics.background_fraction,
            statistics.foreground_ml
        );
        assert_eq!(
            looks_skull_stripped(&statistics),
            skull_stripped,
            "{}: {statistics:?}",
            path.display()
        );
    }
}

#[test]
fn real_skull_stripped_cases_give_no_finding() {
    for (case, _) in REAL_CASES {
        let findings = check_input(&real_case(case));
        assert!(findings.is_empty(), "{case}: {findings:?}");
    }
}

#[test]
fn skull_on_head_gives_the_skull_finding() {
    let head = read(&shared_mri().join("colin27/ch2.nii.gz"));
    let findings = check_input(&[(Modality::T1, head)]);
    assert_eq!(
        kinds(&findings),
        [FindingKind::NotSkullStripped, FindingKind::Summary]
    );
    assert!(findings[0].message.starts_with("not skull-stripped: t1 "));
    assert_eq!(findings[1].message, SUMMARY);
}

#[test]
fn five_mm_slices_give_the_thick_slice_finding() {
    let mut images = real_case("BraTS-GLI-00001-000");
    let (_, flair) = images
        .iter_mut()
        .find(|(m, _)| *m == Modality::Flair)
        .unwrap();
    for row in flair.affine.iter_mut().take(3) {
        row[2] *= 5.0;
    }
    let findings = check_input(&images);
    let thick = findings
        .iter()
        .find(|finding| finding.kind == FindingKind::ThickSlices)
        .unwrap_or_else(|| panic!("no thick-slice finding: {findings:?}"));
    assert!(
        thick.message.contains("flair 1.0×1.0×5.0 mm"),
        "{}",
        thick.message
    );
    assert!(!thick.message.contains("t1 "), "{}", thick.message);
    assert_eq!(findings.last().unwrap().kind, FindingKind::Summary);
}

#[test]
fn a_modality_shifted_by_5_mm_gives_the_co_registration_finding() {
    let mut images = real_case("TCGA-DU-7294");
    let (_, t2) = images.iter_mut().find(|(m, _)| *m == Modality::T2).unwrap();
    t2.affine[0][3] += 5.0;
    let findings = check_input(&images);
    assert_eq!(
        kinds(&findings),
        [FindingKind::NotCoRegistered, FindingKind::Summary]
    );
    let message = &findings[0].message;
    assert!(message.starts_with("not co-registered: t2 "), "{message}");
    assert!(message.contains("5.0 mm apart"), "{message}");
    assert!(message.contains("than t1"), "{message}");
}

//! Cohort discovery on temporary BraTS 2021, BraTS 2023 and IXI-style trees.

use brainmvp_core::cohort::{classify_file_name, discover, FileRole, NamingScheme};
use brainmvp_core::Modality;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh temporary folder, removed when dropped.
struct TempTree(PathBuf);

impl TempTree {
    fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let unique = format!(
            "brainmvp-cohort-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let root = std::env::temp_dir().join(unique);
        std::fs::create_dir_all(&root).unwrap();
        Self(root)
    }

    /// Create empty files at these paths (relative to the root).
    fn touch(&self, files: &[&str]) {
        for file in files {
            let path = self.0.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, b"").unwrap();
        }
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn file_names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn classifies_every_scheme_case_insensitively() {
    use Modality::*;
    let cases: &[(&str, Option<FileRole>)] = &[
        ("BraTS2021_00000_t1.nii.gz", Some(FileRole::Image(T1))),
        ("BraTS2021_00000_t1ce.nii.gz", Some(FileRole::Image(T1c))),
        ("BraTS2021_00000_T2.NII.GZ", Some(FileRole::Image(T2))),
        ("BraTS2021_00000_flair.nii", Some(FileRole::Image(Flair))),
        ("BraTS2021_00000_seg.nii.gz", Some(FileRole::Label)),
        ("BraTS-GLI-00000-000-t1n.nii.gz", Some(FileRole::Image(T1))),
        ("BraTS-GLI-00000-000-t1c.nii.gz", Some(FileRole::Image(T1c))),
        ("BraTS-GLI-00000-000-t2w.nii.gz", Some(FileRole::Image(T2))),
        (
            "BraTS-GLI-00000-000-T2F.nii.gz",
            Some(FileRole::Image(Flair)),
        ),
        ("BraTS-GLI-00000-000-seg.nii.gz", Some(FileRole::Label)),
        ("IXI002-Guys-0828-T1.nii.gz", Some(FileRole::Image(T1))),
        ("IXI002-Guys-0828-PD.nii.gz", Some(FileRole::Image(Pd))),
        ("IXI002-Guys-0828-MRA.nii", Some(FileRole::Image(Mra))),
        ("IXI002-Guys-0828-DTI-00.nii.gz", Some(FileRole::Image(Dwi))),
        ("sub-01_T1w.nii.gz", Some(FileRole::Image(T1))),
        ("BraTS2021_00000_t1.mgz", None),
        ("BraTS2021_00000_mask.nii.gz", None),
        ("BraTS2021_00000.nii.gz", None),
        ("notes.txt", None),
        (".nii.gz", None),
    ];
    for (name, expected) in cases {
        assert_eq!(classify_file_name(name), *expected, "{name}");
    }
}

#[test]
fn brats_2021_tree_with_missing_modality_and_unknown_file() {
    let tree = TempTree::new("brats21");
    tree.touch(&[
        "BraTS2021_00002/BraTS2021_00002_t1.nii.gz",
        "BraTS2021_00002/BraTS2021_00002_t1ce.nii.gz",
        "BraTS2021_00002/BraTS2021_00002_t2.nii.gz",
        "BraTS2021_00002/BraTS2021_00002_flair.nii.gz",
        "BraTS2021_00002/BraTS2021_00002_seg.nii.gz",
        // No T1ce, no label, an unknown image, a side file and a hidden one.
        "BraTS2021_00000/BraTS2021_00000_t1.nii.gz",
        "BraTS2021_00000/BraTS2021_00000_t2.nii.gz",
        "BraTS2021_00000/BraTS2021_00000_flair.nii.gz",
        "BraTS2021_00000/BraTS2021_00000_brainmask.nii.gz",
        "BraTS2021_00000/notes.txt",
        "BraTS2021_00000/.DS_Store",
        "README.md",
    ]);
    let cohort = discover(&tree.0).unwrap();
    assert_eq!(cohort.scheme, NamingScheme::Brats2021);
    let ids: Vec<&str> = cohort.subjects.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["BraTS2021_00000", "BraTS2021_00002"]);
    let expected = [Modality::Flair, Modality::T1, Modality::T1c, Modality::T2];
    let first = &cohort.subjects[0];
    assert_eq!(first.missing(&expected), [Modality::T1c]);
    assert_eq!(first.label, None);
    assert_eq!(first.dir, tree.0.join("BraTS2021_00000"));
    let second = &cohort.subjects[1];
    assert!(second.missing(&expected).is_empty());
    assert_eq!(
        second.images[&Modality::T1c],
        tree.0.join("BraTS2021_00002/BraTS2021_00002_t1ce.nii.gz")
    );
    assert_eq!(
        second.label.as_deref(),
        Some(
            tree.0
                .join("BraTS2021_00002/BraTS2021_00002_seg.nii.gz")
                .as_path()
        )
    );
    // Only image files count as unknown; notes.txt and README.md are side files.
    assert_eq!(
        file_names(&cohort.unknown_files),
        ["BraTS2021_00000_brainmask.nii.gz"]
    );
    assert_eq!(cohort.modalities(), expected);
}

#[test]
fn brats_2023_tree_maps_onto_canonical_modalities() {
    let tree = TempTree::new("brats23");
    tree.touch(&[
        "BraTS-GLI-00001-000/BraTS-GLI-00001-000-t1n.nii.gz",
        "BraTS-GLI-00001-000/BraTS-GLI-00001-000-t1c.nii.gz",
        "BraTS-GLI-00001-000/BraTS-GLI-00001-000-t2w.nii.gz",
        "BraTS-GLI-00001-000/BraTS-GLI-00001-000-t2f.nii.gz",
        "BraTS-GLI-00001-000/BraTS-GLI-00001-000-seg.nii.gz",
        // No FLAIR (t2f); an unrecognised modality token.
        "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1n.nii.gz",
        "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1c.nii.gz",
        "BraTS-GLI-00000-000/BraTS-GLI-00000-000-t2w.nii.gz",
        "BraTS-GLI-00000-000/BraTS-GLI-00000-000-swi.nii.gz",
    ]);
    let cohort = discover(&tree.0).unwrap();
    assert_eq!(cohort.scheme, NamingScheme::Brats2023);
    assert_eq!(cohort.subjects.len(), 2);
    let incomplete = &cohort.subjects[0];
    assert_eq!(incomplete.id, "BraTS-GLI-00000-000");
    assert_eq!(
        incomplete.modalities(),
        [Modality::T1, Modality::T1c, Modality::T2]
    );
    assert_eq!(incomplete.missing(&cohort.modalities()), [Modality::Flair]);
    let complete = &cohort.subjects[1];
    assert!(complete.images[&Modality::Flair].ends_with("BraTS-GLI-00001-000-t2f.nii.gz"));
    assert!(complete.label.is_some());
    assert_eq!(
        file_names(&cohort.unknown_files),
        ["BraTS-GLI-00000-000-swi.nii.gz"]
    );
}

#[test]
fn flat_ixi_folder_groups_files_by_subject_prefix() {
    let tree = TempTree::new("ixi-flat");
    tree.touch(&[
        "IXI012-HH-1211-T1.nii.gz",
        "IXI012-HH-1211-T2.nii.gz",
        "IXI012-HH-1211-PD.nii.gz",
        "IXI002-Guys-0828-T1.nii.gz",
        "IXI002-Guys-0828-T2.nii.gz",
        "IXI002-Guys-0828-MRA.nii",
        "IXI002-Guys-0828-DTI-00.nii.gz",
        "IXI002-Guys-0828-DTI-01.nii.gz",
        "IXI.xls",
    ]);
    let cohort = discover(&tree.0).unwrap();
    assert_eq!(cohort.scheme, NamingScheme::Ixi);
    let ids: Vec<&str> = cohort.subjects.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["IXI002-Guys-0828", "IXI012-HH-1211"]);
    let guys = &cohort.subjects[0];
    assert_eq!(
        guys.modalities(),
        [Modality::T1, Modality::T2, Modality::Mra, Modality::Dwi]
    );
    assert!(guys.images[&Modality::Dwi].ends_with("IXI002-Guys-0828-DTI-00.nii.gz"));
    assert_eq!(guys.missing(&[Modality::T1, Modality::Pd]), [Modality::Pd]);
    assert_eq!(guys.dir, tree.0);
    assert_eq!(cohort.subjects[1].missing(&[Modality::Pd]), []);
    assert_eq!(
        file_names(&cohort.duplicate_files),
        ["IXI002-Guys-0828-DTI-01.nii.gz"]
    );
    // The spreadsheet of demographics is a side file, not an unknown image.
    assert!(cohort.unknown_files.is_empty());
}

#[test]
fn ixi_one_folder_per_modality_merges_subjects() {
    let tree = TempTree::new("ixi-split");
    tree.touch(&[
        "IXI-T1/IXI002-Guys-0828-T1.nii.gz",
        "IXI-T1/IXI012-HH-1211-T1.nii.gz",
        "IXI-T2/IXI002-Guys-0828-T2.nii.gz",
        "IXI-T2/IXI012-HH-1211-T2.nii.gz",
        "IXI-PD/IXI002-Guys-0828-PD.nii.gz",
        "IXI-PD/IXI013-HH-1212-PD.nii.gz",
    ]);
    let cohort = discover(&tree.0).unwrap();
    let ids: Vec<&str> = cohort.subjects.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        ["IXI002-Guys-0828", "IXI012-HH-1211", "IXI013-HH-1212"]
    );
    assert_eq!(
        cohort.subjects[0].modalities(),
        [Modality::T1, Modality::T2, Modality::Pd]
    );
    assert_eq!(cohort.subjects[0].dir, tree.0);
    assert_eq!(
        cohort.subjects[2].missing(&cohort.modalities()),
        [Modality::T1, Modality::T2]
    );
}

#[test]
fn errors_name_the_path() {
    let tree = TempTree::new("errors");
    let missing = tree.0.join("does-not-exist");
    let err = discover(&missing).unwrap_err();
    assert!(
        err.to_string().starts_with(&missing.display().to_string()),
        "{err}"
    );

    tree.touch(&["file.nii.gz", "empty/notes.txt"]);
    let err = discover(&tree.0.join("file.nii.gz")).unwrap_err();
    assert!(err.to_string().contains("not a folder"), "{err}");

    let empty: &Path = &tree.0.join("empty");
    let err = discover(empty).unwrap_err();
    assert_eq!(err.context, empty.display().to_string());
    assert!(err.cause.contains("no subject"), "{err}");
}

//! `manifest.json`: what a cache holds (subjects, modalities, grids, file names) and how it was made.

use crate::preprocess::{CropBox, GridRecord};
use crate::{Affine, Error, Modality, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Name of the manifest file inside a cache folder.
pub const CACHE_MANIFEST_FILE: &str = "manifest.json";
/// Value of [`Manifest::format`].
pub const FORMAT_NAME: &str = "brainmvp-cache";
/// Version of the on-disk layout; readers refuse any other.
pub const FORMAT_VERSION: u32 = 1;
/// Largest volume (voxels) a cache entry may describe: 1024³, far above any MRI.
pub const MAX_VOXELS: usize = 1 << 30;

/// Voxel type of the image files (label maps are always `u8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheDtype {
    /// IEEE half precision, little-endian (2 bytes a voxel).
    #[default]
    F16,
    /// IEEE single precision, little-endian (4 bytes a voxel).
    F32,
}

impl CacheDtype {
    /// Bytes per voxel.
    pub fn bytes(self) -> usize {
        match self {
            CacheDtype::F16 => 2,
            CacheDtype::F32 => 4,
        }
    }

    /// File extension of image files in this dtype.
    pub fn extension(self) -> &'static str {
        match self {
            CacheDtype::F16 => "f16",
            CacheDtype::F32 => "f32",
        }
    }
}

/// One subject of the cache: its grid, its files and where the grid sits in the original images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectEntry {
    pub id: String,
    /// Grid size of every volume of this subject (x fastest in the files).
    pub dims: [usize; 3],
    /// Voxel size in mm.
    pub spacing: [f64; 3],
    /// Voxel → world (RAS mm) of the cropped grid.
    pub affine: Affine,
    /// The foreground crop in the resampled RAS grid (same as `record.crop`).
    pub crop: CropBox,
    /// Full record of reorientation, resampling and crop.
    pub record: GridRecord,
    pub dtype: CacheDtype,
    /// Present modalities and their file names (relative to the cache folder).
    pub images: BTreeMap<Modality, String>,
    /// Modalities found in other subjects of the cohort but not in this one.
    #[serde(default)]
    pub missing: Vec<Modality>,
    /// File name of the `u8` label map, when the subject has one.
    pub label: Option<String>,
}

impl SubjectEntry {
    /// Voxels per volume.
    pub fn voxel_count(&self) -> usize {
        self.dims.iter().product()
    }

    /// Present modalities in canonical order.
    pub fn modalities(&self) -> Vec<Modality> {
        self.images.keys().copied().collect()
    }

    /// Expected size in bytes of each image file and of the label file.
    pub fn expected_bytes(&self) -> (u64, u64) {
        let voxels = self.voxel_count() as u64;
        (voxels * self.dtype.bytes() as u64, voxels)
    }

    /// Every file of this subject with its expected size.
    pub fn files(&self) -> Vec<(&str, u64)> {
        let (image_bytes, label_bytes) = self.expected_bytes();
        let mut files: Vec<(&str, u64)> = self
            .images
            .values()
            .map(|f| (f.as_str(), image_bytes))
            .collect();
        if let Some(label) = &self.label {
            files.push((label.as_str(), label_bytes));
        }
        files
    }
}

/// A subject that could not be preprocessed, with the one-line error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedSubject {
    pub id: String,
    pub error: String,
}

/// The cache's table of contents, written last by `prepare` (its presence means the cache is whole).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT_NAME`].
    pub format: String,
    /// Always [`FORMAT_VERSION`] for caches this build can read.
    pub version: u32,
    /// The prepare configuration used (dtype and the preprocessing settings), as written.
    pub config: serde_json::Value,
    /// Union of the modalities of all subjects, canonical order.
    pub modalities: Vec<Modality>,
    pub subjects: Vec<SubjectEntry>,
    /// Subjects left out because preprocessing failed.
    #[serde(default)]
    pub failures: Vec<FailedSubject>,
}

impl Manifest {
    /// Build a manifest from complete subject entries; fills each subject's `missing` list.
    pub fn new(
        config: serde_json::Value,
        mut subjects: Vec<SubjectEntry>,
        failures: Vec<FailedSubject>,
    ) -> Self {
        let mut modalities: Vec<Modality> = subjects
            .iter()
            .flat_map(|s| s.images.keys().copied())
            .collect();
        modalities.sort();
        modalities.dedup();
        for subject in &mut subjects {
            subject.missing = modalities
                .iter()
                .copied()
                .filter(|m| !subject.images.contains_key(m))
                .collect();
        }
        Self {
            format: FORMAT_NAME.to_string(),
            version: FORMAT_VERSION,
            config,
            modalities,
            subjects,
            failures,
        }
    }

    /// Parse and check a manifest (format, version, sane dims, file names inside the folder).
    pub fn from_json(text: &str, name: &str) -> Result<Self> {
        let manifest: Manifest = serde_json::from_str(text)
            .map_err(|e| Error::new(name, format!("invalid manifest: {e}")))?;
        if manifest.format != FORMAT_NAME {
            let msg = format!(
                "not a brainmvp cache manifest (format '{}')",
                manifest.format
            );
            return Err(Error::new(name, msg));
        }
        if manifest.version != FORMAT_VERSION {
            let msg = format!(
                "cache format version {} is not supported (this build reads version {FORMAT_VERSION}); re-run `brainmvp prepare`",
                manifest.version
            );
            return Err(Error::new(name, msg));
        }
        for subject in &manifest.subjects {
            check_entry(subject).map_err(|cause| Error::new(name, cause))?;
        }
        Ok(manifest)
    }

    /// Read and check `dir/manifest.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CACHE_MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Pretty JSON text of the manifest.
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Index of the subject with this id.
    pub fn subject_index(&self, id: &str) -> Option<usize> {
        self.subjects.iter().position(|s| s.id == id)
    }
}

/// Check one subject entry: dims non-zero and bounded, file names plain (no path separators).
pub(crate) fn check_entry(subject: &SubjectEntry) -> std::result::Result<(), String> {
    let id = &subject.id;
    if subject.dims.contains(&0) {
        return Err(format!("subject {id}: empty grid {:?}", subject.dims));
    }
    let voxels = subject
        .dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&v| v <= MAX_VOXELS);
    if voxels.is_none() {
        return Err(format!(
            "subject {id}: grid {:?} exceeds the {MAX_VOXELS}-voxel bound",
            subject.dims
        ));
    }
    for (file, _) in subject.files() {
        if file.is_empty() || file.contains(['/', '\\']) || file == "." || file == ".." {
            return Err(format!("subject {id}: invalid file name '{file}'"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nifti::Reorientation;
    use crate::volume::IDENTITY;

    fn entry(id: &str, modalities: &[Modality]) -> SubjectEntry {
        let crop = CropBox {
            start: [1, 2, 3],
            size: [4, 5, 6],
        };
        let record = GridRecord {
            reorientation: Reorientation {
                source_dims: [10, 10, 10],
                source_affine: IDENTITY,
                source_axis: [0, 1, 2],
                flipped: [false; 3],
            },
            resampled_dims: [10, 10, 10],
            resampled_affine: IDENTITY,
            crop,
        };
        SubjectEntry {
            id: id.to_string(),
            dims: [4, 5, 6],
            spacing: [1.0; 3],
            affine: IDENTITY,
            crop,
            record,
            dtype: CacheDtype::F16,
            images: modalities
                .iter()
                .map(|m| (*m, format!("{id}_{m}.f16")))
                .collect(),
            missing: vec![],
            label: Some(format!("{id}_seg.u8")),
        }
    }

    #[test]
    fn missing_modalities_are_relative_to_the_cohort_union() {
        let manifest = Manifest::new(
            serde_json::json!({}),
            vec![
                entry("a", &[Modality::T1, Modality::T2]),
                entry("b", &[Modality::Flair, Modality::T1]),
            ],
            vec![],
        );
        assert_eq!(
            manifest.modalities,
            vec![Modality::Flair, Modality::T1, Modality::T2]
        );
        assert_eq!(manifest.subjects[0].missing, vec![Modality::Flair]);
        assert_eq!(manifest.subjects[1].missing, vec![Modality::T2]);
    }

    #[test]
    fn json_round_trip_and_refusals() {
        let manifest = Manifest::new(
            serde_json::json!({"dtype": "f16"}),
            vec![entry("a", &[Modality::T1])],
            vec![],
        );
        let text = manifest.to_json();
        assert_eq!(Manifest::from_json(&text, "m.json").unwrap(), manifest);

        let mut other = manifest.clone();
        other.version = FORMAT_VERSION + 1;
        let err = Manifest::from_json(&other.to_json(), "m.json").unwrap_err();
        assert!(
            err.to_string().starts_with("m.json: cache format version"),
            "{err}"
        );

        let mut evil = manifest.clone();
        evil.subjects[0].label = Some("../etc".into());
        let err = Manifest::from_json(&evil.to_json(), "m.json").unwrap_err();
        assert!(
            err.to_string().contains("invalid file name '../etc'"),
            "{err}"
        );

        let mut huge = manifest;
        huge.subjects[0].dims = [1 << 20, 1 << 20, 1 << 20];
        let err = Manifest::from_json(&huge.to_json(), "m.json").unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");

        let err = Manifest::from_json("{", "m.json").unwrap_err();
        assert!(
            err.to_string().starts_with("m.json: invalid manifest"),
            "{err}"
        );
    }
}

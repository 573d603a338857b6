//! Writing a synthetic cohort to disk: BraTS-2021-named int16 images and a uint8 segmentation per
//! subject, `subjects.csv` (class labels, label volumes, missing modalities) and
//! `synth_config.json`. Subjects are generated and written in parallel (rayon); every subject has
//! its own random streams, so the bytes do not depend on the number of threads.

use super::plan::{plan_cohort, Grade, SynthModality, SYNTH_MODALITIES};
use super::subject::{generate_subject, LabelCounts, SharedAnatomy, SyntheticSubject};
use super::templates::{load_anatomy, locate_templates};
use super::SynthConfig;
use crate::nifti::Datatype;
use crate::{Error, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Name of the per-subject table in the cohort folder.
pub const SUBJECTS_CSV: &str = "subjects.csv";
/// Name of the saved configuration in the cohort folder.
pub const CONFIG_JSON: &str = "synth_config.json";

/// What `subjects.csv` says about one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRecord {
    pub id: String,
    pub grade: Grade,
    pub counts: LabelCounts,
    pub missing: Vec<SynthModality>,
}

impl SubjectRecord {
    fn of(subject: &SyntheticSubject) -> Self {
        Self {
            id: subject.plan.id.clone(),
            grade: subject.plan.grade,
            counts: subject.counts,
            missing: subject.plan.missing.clone(),
        }
    }

    /// The `subjects.csv` row (see [`SUBJECTS_CSV_HEADER`]).
    pub fn csv_row(&self) -> String {
        let missing: Vec<&str> = self.missing.iter().map(|m| m.token()).collect();
        format!(
            "{},{},{},{},{},{}",
            self.id,
            self.grade.name(),
            self.counts.necrosis,
            self.counts.oedema,
            self.counts.enhancing,
            missing.join(";")
        )
    }
}

/// Header of `subjects.csv`; `missing_modalities` is a `;`-separated list of file tokens.
pub const SUBJECTS_CSV_HEADER: &str =
    "id,grade,necrosis_voxels,oedema_voxels,enhancing_voxels,missing_modalities";

/// File name of `modality` (or the segmentation, for `None`) of subject `id`.
pub fn subject_file(id: &str, modality: Option<SynthModality>) -> String {
    let token = modality.map_or("seg", |m| m.token());
    format!("{id}_{token}.nii.gz")
}

/// Locate the templates named by `config` (or the usual places) and build the shared anatomy.
pub fn load_shared(config: &SynthConfig) -> Result<(PathBuf, SharedAnatomy)> {
    let dir = locate_templates(config.template_dir.as_deref().map(Path::new))?;
    let anatomy = load_anatomy(&dir, config.spacing_mm)?;
    Ok((dir, SharedAnatomy::new(anatomy)))
}

/// Write the whole cohort of `config` into `out` (created if needed), calling `progress` after
/// each subject (from worker threads). Returns the records in subject order.
pub fn write_cohort(
    config: &SynthConfig,
    out: &Path,
    progress: impl Fn(&SubjectRecord) + Sync,
) -> Result<Vec<SubjectRecord>> {
    config.validate()?;
    let (_, shared) = load_shared(config)?;
    write_cohort_with(config, &shared, out, progress)
}

/// [`write_cohort`] with an already built anatomy.
pub fn write_cohort_with(
    config: &SynthConfig,
    shared: &SharedAnatomy,
    out: &Path,
    progress: impl Fn(&SubjectRecord) + Sync,
) -> Result<Vec<SubjectRecord>> {
    config.validate()?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out.display(), e))?;
    let json =
        serde_json::to_string_pretty(config).map_err(|e| Error::new(CONFIG_JSON, e.to_string()))?;
    write_text(&out.join(CONFIG_JSON), &(json + "\n"))?;
    let records = plan_cohort(config)
        .par_iter()
        .map(|plan| {
            let subject = generate_subject(shared, config, plan);
            write_subject(out, &subject)?;
            let record = SubjectRecord::of(&subject);
            progress(&record);
            Ok(record)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut csv = String::from(SUBJECTS_CSV_HEADER);
    csv.push('\n');
    for record in &records {
        csv.push_str(&record.csv_row());
        csv.push('\n');
    }
    write_text(&out.join(SUBJECTS_CSV), &csv)?;
    Ok(records)
}

/// Write one subject's folder: present modalities as int16, the segmentation as uint8 (the files
/// are compressed in parallel, which helps when there are fewer subjects than threads).
pub fn write_subject(out: &Path, subject: &SyntheticSubject) -> Result<()> {
    let id = &subject.plan.id;
    let dir = out.join(id);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    SYNTH_MODALITIES
        .par_iter()
        .filter(|&&modality| subject.plan.has(modality))
        .try_for_each(|&modality| {
            let path = dir.join(subject_file(id, Some(modality)));
            crate::nifti::write_as(&path, subject.image(modality), Datatype::I16)
        })?;
    crate::nifti::write_u8(&dir.join(subject_file(id, None)), &subject.seg)
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| Error::io(path.display(), e))
}

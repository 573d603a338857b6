//! Preprocessing a discovered subject straight from its files (native only).

use super::config::PreprocessConfig;
use super::pipeline::{run_pipeline, NamedVolume};
use super::record::PreprocessedSubject;
use crate::cohort::SubjectFiles;
use crate::Result;
use std::path::Path;

/// Read the subject's images and label map (NIfTI warnings go to `log::warn!`) and preprocess
/// them with [`super::preprocess_images`]'s pipeline; errors name the offending file (or the
/// subject's folder for subject-level problems).
pub fn preprocess_subject(
    files: &SubjectFiles,
    config: &PreprocessConfig,
) -> Result<PreprocessedSubject> {
    let images = files
        .images
        .iter()
        .map(|(&modality, path)| read_logged(path).map(|named| (modality, named)))
        .collect::<Result<Vec<_>>>()?;
    let label = files.label.as_deref().map(read_logged).transpose()?;
    let context = files.dir.display().to_string();
    run_pipeline(&files.id, &context, images, label, config)
}

fn read_logged(path: &Path) -> Result<NamedVolume> {
    let image = crate::nifti::read_path(path)?;
    let name = path.display().to_string();
    for warning in &image.warnings {
        log::warn!("{name}: {warning}");
    }
    Ok(NamedVolume {
        name,
        volume: image.volume,
    })
}

//! The model folder on disk: the fine-tuned segmentation model as `model.json` + `model.mpk` +
//! `templates/` (written atomically, read back), and reading or writing its one-file `.bmvp`
//! form ([`brainmvp_core::bmvp`]; `brainmvp export`, the browser).

use anyhow::{bail, Context, Result};
use brainmvp_core::bmvp::{BmvpModel, WeightPrecision, BMVP_EXTENSION};
use brainmvp_core::inference::segment::{
    build_model, SegmenterManifest, MODEL_MANIFEST_FILE, TEMPLATES_DIR, WEIGHTS_FILE,
};
use brainmvp_core::model::UniUnet;
use brainmvp_core::template_bank::TemplateBank;
use brainmvp_core::{Modality, Volume};
use burn::module::Module;
use burn::tensor::backend::Backend;
use std::path::Path;

use crate::checkpoint::CheckpointRecorder;
use brainmvp_core::fs::{folder_of, replace_folder, write_atomic};

/// Reads the `<modality>.nii.gz` templates of `dir` for `modalities` (those present).
pub fn read_templates(dir: &Path, modalities: &[Modality]) -> Result<Vec<(Modality, Volume<f32>)>> {
    let mut templates = Vec::new();
    for &modality in modalities {
        let path = dir.join(format!("{}.nii.gz", modality.name()));
        if path.is_file() {
            let image = brainmvp_core::nifti::read_path(&path)?;
            templates.push((modality, image.volume));
        }
    }
    Ok(templates)
}

/// [`read_templates`] as a bank; an error when none is there.
pub fn load_template_bank(dir: &Path, modalities: &[Modality]) -> Result<TemplateBank> {
    let templates = read_templates(dir, modalities)?;
    if templates.is_empty() {
        bail!("{}: no template of {:?} found", dir.display(), modalities);
    }
    Ok(TemplateBank::new(templates)?)
}

/// Writes the model folder `dir` (replacing it atomically: written beside it, then renamed).
pub fn save_segmenter<B: Backend>(
    dir: &Path,
    manifest: &SegmenterManifest,
    model: &UniUnet<B>,
    templates: Option<&Path>,
) -> Result<()> {
    replace_folder(dir, |partial| {
        write_segmenter(partial, manifest, model, templates)
    })
}

/// The files of a model folder, written into `partial` (see [`save_segmenter`]).
fn write_segmenter<B: Backend>(
    partial: &Path,
    manifest: &SegmenterManifest,
    model: &UniUnet<B>,
    templates: Option<&Path>,
) -> Result<()> {
    let weights = partial.join(WEIGHTS_FILE);
    model
        .clone()
        .save_file(weights.with_extension(""), &CheckpointRecorder::new())
        .with_context(|| format!("{}: cannot write", weights.display()))?;
    let mut manifest = manifest.clone();
    manifest.templates.clear();
    if let Some(source) = templates {
        let target = partial.join(TEMPLATES_DIR);
        std::fs::create_dir_all(&target)?;
        for &modality in &manifest.modalities.clone() {
            let name = format!("{}.nii.gz", modality.name());
            if source.join(&name).is_file() {
                std::fs::copy(source.join(&name), target.join(&name))
                    .with_context(|| format!("{}: cannot copy", source.join(&name).display()))?;
                manifest.templates.push(modality);
            }
        }
    }
    let json = serde_json::to_string_pretty(&manifest)?;
    write_atomic(&partial.join(MODEL_MANIFEST_FILE), |file| {
        file.write_all(json.as_bytes())
    })?;
    Ok(())
}

/// A model folder read back: manifest, network and templates (when it ships some).
pub struct LoadedSegmenter<B: Backend> {
    pub manifest: SegmenterManifest,
    pub model: UniUnet<B>,
    pub templates: Option<TemplateBank>,
}

/// Whether `path` names a one-file model (`.bmvp`).
pub fn is_bmvp_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case(BMVP_EXTENSION))
}

/// Reads a `.bmvp` file.
pub fn read_bmvp(path: &Path) -> Result<BmvpModel> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(BmvpModel::from_bytes(&bytes, &path.display().to_string())?)
}

/// Writes a `.bmvp` file atomically (beside it, then renamed); returns its size in bytes.
pub fn write_bmvp(path: &Path, bmvp: &BmvpModel) -> Result<usize> {
    let bytes = bmvp.to_bytes()?;
    write_atomic(path, |file| file.write_all(&bytes))?;
    Ok(bytes.len())
}

/// A model folder or `.bmvp` file as one bmvp (f32 unless the file says otherwise).
pub fn bmvp_of<B: Backend>(path: &Path, device: &B::Device) -> Result<BmvpModel> {
    if is_bmvp_file(path) {
        return read_bmvp(path);
    }
    let loaded = load_segmenter::<B>(path, device)?;
    let templates = read_templates(
        &folder_of(path).join(TEMPLATES_DIR),
        &loaded.manifest.templates,
    )?;
    Ok(BmvpModel::from_model(
        &loaded.manifest,
        &loaded.model,
        WeightPrecision::F32,
        templates,
    )?)
}

/// Reads a model: the folder `dir` (or the folder of a given `model.json`), or a `.bmvp` file.
pub fn load_segmenter<B: Backend>(dir: &Path, device: &B::Device) -> Result<LoadedSegmenter<B>> {
    if is_bmvp_file(dir) {
        let bmvp = read_bmvp(dir)?;
        let name = dir.display().to_string();
        let model = bmvp
            .load_model::<B>(device)
            .map_err(|err| err.with_context(&name))?;
        let templates = bmvp.template_bank()?;
        return Ok(LoadedSegmenter {
            manifest: bmvp.manifest,
            model,
            templates,
        });
    }
    let dir = folder_of(dir);
    let manifest_path = dir.join(MODEL_MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "{}: cannot read (is this a brainmvp model folder?)",
            manifest_path.display()
        )
    })?;
    let manifest = SegmenterManifest::from_json(&text, &manifest_path.display().to_string())?;
    let weights = dir.join(WEIGHTS_FILE);
    let model = build_model::<B>(&manifest, device)?
        .load_file(
            weights.with_extension(""),
            &CheckpointRecorder::new(),
            device,
        )
        .map_err(|err| anyhow::anyhow!("{}: cannot load: {err}", weights.display()))?;
    let templates = match manifest.templates.is_empty() {
        true => None,
        false => Some(load_template_bank(
            &dir.join(TEMPLATES_DIR),
            &manifest.templates,
        )?),
    };
    Ok(LoadedSegmenter {
        manifest,
        model,
        templates,
    })
}

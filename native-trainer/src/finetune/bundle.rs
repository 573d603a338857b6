//! Model files on disk: the pre-trained encoder export (read), the fine-tuned segmentation
//! model folder (`model.json` + `model.mpk` + `templates/`, written atomically, read back), and
//! the one-file `.bmvp` form of that model (`brainmvp export`, the browser).

use anyhow::{bail, Context, Result};
use brainmvp_core::finetune::cutmix::TemplateBank;
use brainmvp_core::finetune::export::{ModelBundle, WeightPrecision, BUNDLE_EXTENSION};
use brainmvp_core::finetune::segment::{
    init_model, SegmenterManifest, MANIFEST_FILE, TEMPLATES_DIR, WEIGHTS_FILE,
};
use brainmvp_core::model::{EncoderPreset, UniUnet, Uniformer, UniformerConfig};
use brainmvp_core::pretrain::Architecture;
use brainmvp_core::{Modality, Volume};
use burn::module::Module;
use burn::tensor::backend::Backend;
use std::path::{Path, PathBuf};

use crate::pretrain::checkpoint::CheckpointRecorder;
use crate::pretrain::export::EncoderManifest;
use brainmvp_core::cache::files::write_atomic;

/// The export folder of `path`: the folder itself, or the folder of a given `encoder.mpk`/`.json`.
pub fn export_dir(path: &Path) -> PathBuf {
    match path.is_file() {
        true => path.parent().map_or_else(PathBuf::new, Path::to_path_buf),
        false => path.to_path_buf(),
    }
}

/// The encoder preset a pre-trained export holds; an error for a UNet3D export (UniUnet needs a
/// UniFormer).
pub fn preset_of(manifest: &EncoderManifest, path: &Path) -> Result<EncoderPreset> {
    match manifest.arch {
        Architecture::UniformerS => Ok(EncoderPreset::Small),
        Architecture::UniformerTiny => Ok(EncoderPreset::Tiny),
        Architecture::Unet3d => bail!(
            "{}: a UNet3D encoder cannot initialise UniUnet (pre-train uniformer-s or uniformer-tiny)",
            path.display()
        ),
    }
}

/// Reads `encoder.json` of an export folder.
pub fn read_encoder_manifest(export: &Path) -> Result<EncoderManifest> {
    let path = export.join("encoder.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{}: cannot read (is this a pre-training export folder?)",
            path.display()
        )
    })?;
    serde_json::from_str(&text)
        .map_err(|err| anyhow::anyhow!("{}: not an encoder manifest: {err}", path.display()))
}

/// Loads the pre-trained UniFormer of an export folder (its own channel count, usually 1).
pub fn load_pretrained_encoder<B: Backend>(
    export: &Path,
    device: &B::Device,
) -> Result<(EncoderManifest, Uniformer<B>)> {
    let manifest = read_encoder_manifest(export)?;
    let preset = preset_of(&manifest, export)?;
    let config: UniformerConfig = preset.encoder_config(manifest.in_channels);
    let fresh = config.init::<B>(device)?;
    let weights = export.join("encoder.mpk");
    let encoder = fresh
        .load_file(&weights, &CheckpointRecorder::new(), device)
        .map_err(|err| anyhow::anyhow!("{}: cannot load: {err}", weights.display()))?;
    Ok((manifest, encoder))
}

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
    let partial = dir.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("{}: cannot remove", partial.display()))?;
    }
    std::fs::create_dir_all(&partial)
        .with_context(|| format!("{}: cannot create", partial.display()))?;
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
    write_atomic(&partial.join(MANIFEST_FILE), |file| {
        file.write_all(json.as_bytes())
    })?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("{}: cannot replace", dir.display()))?;
    }
    std::fs::rename(&partial, dir)
        .with_context(|| format!("{}: cannot rename into place", dir.display()))?;
    Ok(())
}

/// A model folder read back: manifest, network and templates (when it ships some).
pub struct LoadedSegmenter<B: Backend> {
    pub manifest: SegmenterManifest,
    pub model: UniUnet<B>,
    pub templates: Option<TemplateBank>,
}

/// Whether `path` names a one-file model (`.bmvp`).
pub fn is_bundle_file(path: &Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case(BUNDLE_EXTENSION))
}

/// Reads a `.bmvp` file.
pub fn read_bundle(path: &Path) -> Result<ModelBundle> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    Ok(ModelBundle::from_bytes(
        &bytes,
        &path.display().to_string(),
    )?)
}

/// Writes a `.bmvp` file atomically (beside it, then renamed); returns its size in bytes.
pub fn write_bundle(path: &Path, bundle: &ModelBundle) -> Result<usize> {
    let bytes = bundle.to_bytes()?;
    write_atomic(path, |file| file.write_all(&bytes))?;
    Ok(bytes.len())
}

/// A model folder or `.bmvp` file as one bundle (f32 unless the file says otherwise).
pub fn bundle_of<B: Backend>(path: &Path, device: &B::Device) -> Result<ModelBundle> {
    if is_bundle_file(path) {
        return read_bundle(path);
    }
    let loaded = load_segmenter::<B>(path, device)?;
    let templates = read_templates(
        &export_dir(path).join(TEMPLATES_DIR),
        &loaded.manifest.templates,
    )?;
    Ok(ModelBundle::from_model(
        &loaded.manifest,
        &loaded.model,
        WeightPrecision::F32,
        templates,
    )?)
}

/// Reads a model: the folder `dir` (or the folder of a given `model.json`), or a `.bmvp` file.
pub fn load_segmenter<B: Backend>(dir: &Path, device: &B::Device) -> Result<LoadedSegmenter<B>> {
    if is_bundle_file(dir) {
        let bundle = read_bundle(dir)?;
        let name = dir.display().to_string();
        let model = bundle
            .load_model::<B>(device)
            .map_err(|err| err.with_context(&name))?;
        let templates = bundle.template_bank()?;
        return Ok(LoadedSegmenter {
            manifest: bundle.manifest,
            model,
            templates,
        });
    }
    let dir = export_dir(dir);
    let manifest_path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!(
            "{}: cannot read (is this a brainmvp model folder?)",
            manifest_path.display()
        )
    })?;
    let manifest = SegmenterManifest::from_json(&text, &manifest_path.display().to_string())?;
    let weights = dir.join(WEIGHTS_FILE);
    let model = init_model::<B>(&manifest, device)?
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

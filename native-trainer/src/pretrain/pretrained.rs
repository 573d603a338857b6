//! The pre-trained folder (`<pretrain out>/export`): what pre-training hands on, the encoder
//! weights for fine-tuning and every learned modality template as a NIfTI volume; written here
//! at the end of pre-training and read here by fine-tuning (`--init`).
//!
//! `export/encoder.mpk` is the backbone's burn record (named MessagePack, f32) and
//! `export/encoder.json` says which backbone it is; `export/templates/<modality>.nii.gz` are the
//! min–max normalised templates on the 1 mm canvas, centred on the world origin (RAS).

use anyhow::{bail, Context, Result};
use brainmvp_core::model::{Architecture, Unet3d, Unet3dConfig, Uniformer, UniformerConfig};
use brainmvp_core::pretrain::model::Encoder;
use brainmvp_core::pretrain::BrainMvp;
use burn::module::Module;
use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::checkpoint::CheckpointRecorder;
use brainmvp_core::fs::write_atomic;

/// `export/encoder.json`: which backbone `encoder.mpk` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderManifest {
    /// `uniformer` or `unet3d`.
    pub backbone: String,
    /// The preset pre-trained (`uniformer-s`, `uniformer-tiny`, `unet3d`).
    pub arch: Architecture,
    /// The backbone's burn config (JSON).
    pub config: serde_json::Value,
    /// Input channels of the pre-trained first layer (1: single-modality pre-training).
    pub in_channels: usize,
    /// brainmvp version that wrote it.
    pub version: String,
}

/// Writes the export folder of `out` and returns its path.
pub fn export_run<B: Backend>(
    model: &BrainMvp<B>,
    arch: Architecture,
    out: &Path,
) -> Result<PathBuf> {
    let export = out.join("export");
    write_export(model, arch, &export)?;
    Ok(export)
}

/// Writes `model`'s encoder and templates into the export folder `export`.
pub fn write_export<B: Backend>(
    model: &BrainMvp<B>,
    arch: Architecture,
    export: &Path,
) -> Result<()> {
    write_encoder_export(&model.encoder, arch, 1, export)?;
    let templates_dir = export.join("templates");
    std::fs::create_dir_all(&templates_dir)
        .with_context(|| format!("{}: cannot create", templates_dir.display()))?;
    for (modality, volume) in model.templates.to_volumes()? {
        let path = templates_dir.join(format!("{}.nii.gz", modality.name()));
        brainmvp_core::nifti::write_f32(&path, &volume)?;
    }
    log::info!(
        "exported the encoder and {} templates to {}",
        model.templates.modalities.len(),
        export.display()
    );
    Ok(())
}

/// Writes `encoder.mpk` and `encoder.json` (an encoder of `in_channels` inputs) into `export`.
pub fn write_encoder_export<B: Backend>(
    encoder: &Encoder<B>,
    arch: Architecture,
    in_channels: usize,
    export: &Path,
) -> Result<()> {
    std::fs::create_dir_all(export)
        .with_context(|| format!("{}: cannot create", export.display()))?;
    let manifest = save_encoder(encoder, arch, in_channels, export)?;
    let manifest_json = serde_json::to_string_pretty(&manifest)?;
    write_atomic(&export.join("encoder.json"), |file| {
        file.write_all(manifest_json.as_bytes())
    })?;
    Ok(())
}

/// The config of a built UNet3D (its base width and depths may differ from the official ones,
/// e.g. a small imported checkpoint).
fn unet_config<B: Backend>(unet: &Unet3d<B>) -> Unet3dConfig {
    let mut depths = [0; 4];
    for (depth, level) in depths.iter_mut().zip(&unet.levels) {
        *depth = level.len();
    }
    Unet3dConfig::official(unet.in_channels)
        .with_base_width(unet.base_width)
        .with_depths(depths)
}

fn save_encoder<B: Backend>(
    encoder: &Encoder<B>,
    arch: Architecture,
    in_channels: usize,
    export: &Path,
) -> Result<EncoderManifest> {
    let recorder = CheckpointRecorder::new();
    let temp = export.join("encoder.partial");
    let (backbone, config) = match encoder {
        Encoder::Uniformer(uniformer) => {
            uniformer.clone().save_file(&temp, &recorder)?;
            ("uniformer", arch.encoder_config_json(in_channels))
        }
        Encoder::Unet3d(unet) => {
            unet.clone().save_file(&temp, &recorder)?;
            ("unet3d", serde_json::to_value(unet_config(unet))?)
        }
    };
    std::fs::rename(temp.with_extension("mpk"), export.join("encoder.mpk"))
        .with_context(|| format!("{}: cannot write encoder.mpk", export.display()))?;
    Ok(EncoderManifest {
        backbone: backbone.to_string(),
        arch,
        config,
        in_channels,
        version: brainmvp_core::VERSION.to_string(),
    })
}

/// The encoder preset a pre-trained export holds; an error for a UNet3D export (UniUnet needs a
/// UniFormer).
pub fn preset_of(manifest: &EncoderManifest, path: &Path) -> Result<Architecture> {
    if !manifest.arch.is_uniformer() {
        bail!(
            "{}: a UNet3D encoder cannot initialise UniUnet (pre-train uniformer-s or uniformer-tiny)",
            path.display()
        );
    }
    Ok(manifest.arch)
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
    let config: UniformerConfig = preset.uniformer_config(manifest.in_channels)?;
    let fresh = config.init::<B>(device)?;
    let weights = export.join("encoder.mpk");
    let encoder = fresh
        .load_file(&weights, &CheckpointRecorder::new(), device)
        .map_err(|err| anyhow::anyhow!("{}: cannot load: {err}", weights.display()))?;
    Ok((manifest, encoder))
}

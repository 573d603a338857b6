//! The jobs behind `brainmvp import --torch` and `brainmvp export --torch`: an official
//! checkpoint into a brainmvp model folder, `.bmvp` file or pre-training export folder, and a
//! brainmvp model into an official-name safetensors file.

use anyhow::{bail, Result};
use brainmvp_core::bmvp::{BmvpModel, WeightPrecision};
use brainmvp_core::inference::segment::{SegmenterManifest, SEGMENTER_FORMAT, SEGMENTER_VERSION};
use brainmvp_core::inference::SlidingWindowConfig;
use brainmvp_core::labels::LabelScheme;
use brainmvp_core::model::{Architecture, UniUnetConfig};
use brainmvp_core::preprocess::PreprocessConfig;
use brainmvp_core::pretrain::model::Encoder;
use brainmvp_core::Modality;
use burn::backend::Flex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::import::{
    import_encoder, import_rec_model, import_unet_rec_model, import_uniunet, ImportReport,
};
use super::read::read_state_dict;
use super::write::{uniunet_state_dict, write_safetensors};
use crate::model_folder::{bmvp_of, is_bmvp_file, save_segmenter, write_bmvp};
use crate::pretrain::pretrained::{write_encoder_export, write_export};

/// Which official class a checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OfficialArch {
    /// The UniFormer encoder alone (taken from any official checkpoint holding one): an export
    /// folder usable as `finetune --init`.
    UniformerS,
    /// brainmvp's tiny UniFormer preset, likewise.
    UniformerTiny,
    /// `Downstream/model/Uni_unet.py::UniUnet`: a segmentation model folder or `.bmvp`.
    Uniunet,
    /// `models/Uniformer.py::RecModel` (the released pre-training checkpoints): an export folder
    /// with the encoder and every template.
    RecModel,
    /// `models/Unet.py::RecModel` (pre-training with `--use_Unet`): an export folder with the
    /// UNet3D encoder (any base width) and every template.
    Unet3d,
}

/// One import job (printed at start and saved as `import.json` beside folder outputs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportJob {
    /// The official checkpoint (`.pt`, `.pth` or `.safetensors`).
    pub torch: PathBuf,
    /// What it holds.
    pub arch: OfficialArch,
    /// Where to write: a folder, or a `.bmvp` file (UniUnet only).
    pub out: PathBuf,
    /// Input channels the file must have (checked when given).
    pub in_channels: Option<usize>,
    /// UniUnet: the modality of each input channel (official BraTS order: t1 t1c t2 flair).
    pub modalities: Vec<Modality>,
    /// RecModel: the modality of each template (default by count: the official lists).
    pub template_modalities: Option<Vec<Modality>>,
    /// UniUnet: the enhancing-tumour label (4 BraTS 2021, 3 BraTS 2023).
    pub enhancing_label: u8,
    /// UniUnet: the sliding window (official inference: 96³, overlap 0.5, constant blending).
    pub window: SlidingWindowConfig,
    /// UniUnet into a `.bmvp`: store the weights as IEEE half (half the file; the page's size).
    #[serde(default)]
    pub half: bool,
}

/// The official fine-tuning's channel order (`get_modality_names` for BraTS).
pub const OFFICIAL_BRATS_CHANNELS: [Modality; 4] =
    [Modality::T1, Modality::T1c, Modality::T2, Modality::Flair];

/// Runs an import job; returns what was loaded and ignored.
pub fn import_checkpoint(job: &ImportJob) -> Result<ImportReport> {
    let dict = read_state_dict(&job.torch)?;
    let device = Default::default();
    let report = match job.arch {
        OfficialArch::Uniunet => {
            let (model, config, report) = import_uniunet::<Flex>(&dict, &device)?;
            check_channels(job, config.in_channels)?;
            if job.modalities.len() != config.in_channels {
                bail!(
                    "{}: {} input channels, but {} modalities were named (--modalities)",
                    dict.source,
                    config.in_channels,
                    job.modalities.len()
                );
            }
            let manifest = SegmenterManifest {
                format: SEGMENTER_FORMAT.to_string(),
                version: SEGMENTER_VERSION,
                model: config,
                modalities: job.modalities.clone(),
                labels: LabelScheme::Brats {
                    enhancing_label: job.enhancing_label,
                },
                // The official test pipeline's transforms, so that the label map is its own.
                preprocess: PreprocessConfig::official_downstream(),
                window: job.window.clone(),
                templates: Vec::new(),
                init: format!("torch:{}", job.torch.display()),
                brainmvp_version: brainmvp_core::VERSION.to_string(),
            };
            manifest.validate()?;
            match is_bmvp_file(&job.out) {
                true => {
                    let precision = match job.half {
                        true => WeightPrecision::F16,
                        false => WeightPrecision::F32,
                    };
                    let bmvp = BmvpModel::from_model(&manifest, &model, precision, Vec::new())?;
                    write_bmvp(&job.out, &bmvp)?;
                }
                false => save_segmenter(&job.out, &manifest, &model, None)?,
            }
            report
        }
        OfficialArch::RecModel => {
            refuse_bmvp(job)?;
            let modalities = job.template_modalities.clone();
            let (model, arch, report) = import_rec_model::<Flex>(&dict, modalities, &device)?;
            check_channels(job, 1)?;
            write_export(&model, arch, &job.out)?;
            report
        }
        OfficialArch::Unet3d => {
            refuse_bmvp(job)?;
            let modalities = job.template_modalities.clone();
            let (model, _, report) = import_unet_rec_model::<Flex>(&dict, modalities, &device)?;
            check_channels(job, 1)?;
            write_export(&model, Architecture::Unet3d, &job.out)?;
            report
        }
        OfficialArch::UniformerS | OfficialArch::UniformerTiny => {
            refuse_bmvp(job)?;
            let (encoder, preset, report) = import_encoder::<Flex>(&dict, &device)?;
            let arch = preset;
            let asked = match job.arch {
                OfficialArch::UniformerS => Architecture::UniformerS,
                _ => Architecture::UniformerTiny,
            };
            if arch != asked {
                bail!(
                    "{}: holds a {} encoder, not {}",
                    dict.source,
                    arch.name(),
                    asked.name()
                );
            }
            check_channels(job, encoder.in_channels)?;
            let channels = encoder.in_channels;
            write_encoder_export(&Encoder::Uniformer(encoder), arch, channels, &job.out)?;
            report
        }
    };
    if !is_bmvp_file(&job.out) {
        let json = serde_json::to_string_pretty(job)?;
        brainmvp_core::fs::write_atomic(&job.out.join("import.json"), |file| {
            file.write_all(json.as_bytes())
        })?;
    }
    Ok(report)
}

fn check_channels(job: &ImportJob, found: usize) -> Result<()> {
    match job.in_channels {
        Some(expected) if expected != found => bail!(
            "{}: the model takes {found} input channels, --in-channels says {expected}",
            job.torch.display()
        ),
        _ => Ok(()),
    }
}

fn refuse_bmvp(job: &ImportJob) -> Result<()> {
    match is_bmvp_file(&job.out) {
        true => bail!(
            "{}: a .bmvp holds a segmentation model; a {:?} import writes a folder",
            job.out.display(),
            job.arch
        ),
        false => Ok(()),
    }
}

/// Writes an untrained UniUnet of `encoder` (4 → 3 channels, `multi_scale=True`, initialised as
/// the official code with burn's generator seeded by `seed`) as the official state dict at
/// `out`: a full-size official-layout checkpoint, for trying the import and the page's memory
/// limits where no official weights and no PyTorch are at hand. Returns the parameter count.
pub fn write_untrained_torch(encoder: Architecture, seed: u64, out: &Path) -> Result<usize> {
    let device = Default::default();
    <Flex as burn::tensor::backend::Backend>::seed(&device, seed);
    let config = UniUnetConfig::new(OFFICIAL_BRATS_CHANNELS.len(), 3)
        .with_encoder(encoder)
        .with_deep_supervision(true);
    let network = config.init::<Flex>(&device)?;
    // burn draws a parameter's values when it is first read: read them all in module order now,
    // so the seed decides every value whatever order the name table is read in.
    burn::module::Module::visit(&network, &mut InModuleOrder);
    let parameters = burn::module::Module::num_params(&network);
    let tensors = uniunet_state_dict(&network, &config)?;
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        (
            "official_class".to_string(),
            "Downstream/model/Uni_unet.py::UniUnet(in_channels=4, out_channels=3, multi_scale=True)"
                .to_string(),
        ),
        ("weights".to_string(), format!("untrained, seed {seed}")),
        ("brainmvp_version".to_string(), brainmvp_core::VERSION.to_string()),
    ]);
    write_safetensors(out, &tensors, metadata)?;
    Ok(parameters)
}

/// Reads every float parameter once, in module order (see [`write_untrained_torch`]).
struct InModuleOrder;

impl<B: burn::tensor::backend::Backend> burn::module::ModuleVisitor<B> for InModuleOrder {
    fn visit_float<const D: usize>(
        &mut self,
        param: &burn::module::Param<burn::tensor::Tensor<B, D>>,
    ) {
        let _ = param.val();
    }
}

/// Writes the segmentation model `model` (folder or `.bmvp`) as the official `UniUnet`'s state
/// dict in safetensors at `out`; returns the number of tensors written.
pub fn export_torch(model: &Path, out: &Path) -> Result<usize> {
    let bmvp = bmvp_of::<Flex>(model, &Default::default())?;
    let network = bmvp.load_model::<Flex>(&Default::default())?;
    let config = &bmvp.manifest.model;
    let tensors = uniunet_state_dict(&network, config)?;
    let modalities: Vec<&str> = bmvp.manifest.modalities.iter().map(|m| m.name()).collect();
    let metadata = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        (
            "official_class".to_string(),
            format!(
                "Downstream/model/Uni_unet.py::UniUnet(in_channels={}, out_channels={}, multi_scale={})",
                config.in_channels,
                config.out_channels,
                if config.deep_supervision { "True" } else { "False" }
            ),
        ),
        ("channels".to_string(), modalities.join(",")),
        ("layout".to_string(), "official: volumes [N, C, X, Y, Z]".to_string()),
        ("brainmvp_version".to_string(), brainmvp_core::VERSION.to_string()),
    ]);
    write_safetensors(out, &tensors, metadata)?;
    Ok(tensors.len())
}

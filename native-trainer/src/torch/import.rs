//! Official state dicts into our models: every tensor mapped by name (the tables of
//! `brainmvp_core::official::names`), rearranged to our layout, checked by shape, then applied
//! with burn-store. Anything missing, unexpected or mis-shaped is refused in one line naming the
//! first such tensor; what is left out on purpose is listed in the report.

use anyhow::{bail, Result};
use brainmvp_core::model::{
    Architecture, Unet3dConfig, UnetDecoderConfig, UniUnet, UniUnetConfig, Uniformer,
};
use brainmvp_core::official::names::{
    self, ignored_in_rec_model, ignored_in_uniunet, TensorPair, UNIFORMER_IN_REC_MODEL,
    UNIFORMER_IN_UNIUNET,
};
use brainmvp_core::pretext::templates::TemplateConfig;
use brainmvp_core::pretrain::model::{Decoder, Encoder};
use brainmvp_core::pretrain::{BrainMvp, BrainMvpConfig};
use brainmvp_core::Modality;
use burn::module::{Module, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::TensorData;
use burn_store::{ModuleSnapshot, TensorSnapshot};
use std::collections::BTreeMap;

use super::read::StateDict;

/// What an import loaded and what it left out on purpose.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The checkpoint file.
    pub source: String,
    /// How the state dict was reached ("nested under `state_dict`, DDP `module.` prefix removed").
    pub unwrapping: String,
    /// The backbone recognised (`UniFormer-S`, `UniFormer tiny`, `UNet3D, base width 32`).
    pub backbone: String,
    /// Tensors loaded into our model.
    pub loaded_tensors: usize,
    /// Values loaded (parameters and BatchNorm statistics).
    pub loaded_values: usize,
    /// Official tensors not imported, with the reason.
    pub ignored: Vec<(String, &'static str)>,
}

impl ImportReport {
    /// One paragraph for the log: what was read, loaded and ignored (grouped by reason).
    pub fn summary(&self) -> String {
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, reason) in &self.ignored {
            *reasons.entry(reason).or_default() += 1;
        }
        let ignored: Vec<String> = reasons
            .iter()
            .map(|(reason, count)| format!("{count} × {reason}"))
            .collect();
        format!(
            "{}: {}; {}; loaded {} tensors ({} values); ignored {}",
            self.source,
            self.unwrapping,
            self.backbone,
            self.loaded_tensors,
            self.loaded_values,
            match ignored.is_empty() {
                true => "nothing".to_string(),
                false => ignored.join(", "),
            }
        )
    }
}

/// The official `UniUnet` of `dict` as our [`UniUnet`] (deep-supervision heads kept when the
/// checkpoint has `ms_out`), with its config.
pub fn import_uniunet<B: Backend>(
    dict: &StateDict,
    device: &B::Device,
) -> Result<(UniUnet<B>, UniUnetConfig, ImportReport)> {
    let encoder = infer_encoder(dict, UNIFORMER_IN_UNIUNET)?;
    let out_channels = shape_of(dict, "decoder.out.conv.conv.weight")?[0];
    let config = UniUnetConfig::new(encoder.in_channels, out_channels)
        .with_encoder(encoder.preset)
        .with_deep_supervision(dict.tensors.contains_key("ms_out.0.weight"));
    let model = config.init::<B>(device)?;
    let pairs = names::uniunet_pairs(&config)?;
    let (model, report) = load_pairs(
        model,
        &pairs,
        dict,
        backbone_name(encoder.preset),
        &|name| ignored_in_uniunet(name),
    )?;
    Ok((model, config, report))
}

/// The official pre-training `RecModel` of `dict` (encoder, decoder, templates) as our
/// [`BrainMvp`]. `modalities` names the templates in storage order (default: the official
/// `template_index` for 4 templates, flair t1 t1c t2, or all eight for 8).
pub fn import_rec_model<B: Backend>(
    dict: &StateDict,
    modalities: Option<Vec<Modality>>,
    device: &B::Device,
) -> Result<(BrainMvp<B>, Architecture, ImportReport)> {
    if dict.tensors.contains_key("conv1a.weight") {
        bail!(
            "{}: holds the official UNet3D, not a UniFormer (try --arch unet3d)",
            dict.source
        );
    }
    let encoder = infer_encoder(dict, UNIFORMER_IN_REC_MODEL)?;
    if encoder.in_channels != 1 {
        bail!(
            "{}: the pre-training encoder takes {} channels, BrainMVP pre-trains on 1",
            dict.source,
            encoder.in_channels
        );
    }
    let arch = encoder.preset;
    let config = BrainMvpConfig {
        arch,
        templates: template_config(dict, modalities)?,
        temperature: 1.0,
    };
    let model = config.init::<B>(device)?;
    let pairs = names::rec_model_pairs(&encoder.preset.uniformer_config(1)?);
    let (model, report) = load_pairs(
        model,
        &pairs,
        dict,
        backbone_name(encoder.preset),
        &|name| ignored_in_rec_model(name),
    )?;
    Ok((model, arch, report))
}

/// The official UNet3D pre-training `RecModel` of `dict` (`models/Unet.py`, `--use_Unet`:
/// encoder, up-sampling decoder, templates) as our [`BrainMvp`] with a UNet3D backbone of the
/// checkpoint's base width. `modalities` as for [`import_rec_model`].
pub fn import_unet_rec_model<B: Backend>(
    dict: &StateDict,
    modalities: Option<Vec<Modality>>,
    device: &B::Device,
) -> Result<(BrainMvp<B>, Unet3dConfig, ImportReport)> {
    if dict
        .tensors
        .keys()
        .any(|name| name.contains("patch_embed1."))
    {
        bail!(
            "{}: holds a UniFormer, not the official UNet3D (try --arch rec-model)",
            dict.source
        );
    }
    let stem = shape_of(dict, "conv1a.weight")?;
    let (base_width, in_channels) = (stem[0], stem[1]);
    if in_channels != 1 {
        bail!(
            "{}: the pre-training UNet3D takes {in_channels} channels, BrainMVP pre-trains on 1",
            dict.source
        );
    }
    let encoder = Unet3dConfig::official(1).with_base_width(base_width);
    encoder
        .validate()
        .map_err(|error| anyhow::anyhow!("{}: conv1a.weight {stem:?}: {error}", dict.source))?;
    let templates = template_config(dict, modalities)?;
    let decoder = UnetDecoderConfig::for_unet3d(&encoder);
    let model = BrainMvp {
        encoder: Encoder::Unet3d(encoder.init(device)?),
        decoder: Decoder::Unet(decoder.init(device)?),
        templates: templates.init(device)?,
        temperature: 1.0,
    };
    let pairs = names::unet_rec_model_pairs(&encoder);
    let backbone = format!("UNet3D, base width {base_width}");
    let (model, report) = load_pairs(model, &pairs, dict, backbone, &|name| {
        ignored_in_uniunet(name)
    })?;
    Ok((model, encoder, report))
}

/// The templates of an official `RecModel`'s `rep_template` `[modalities, x, y, z]`.
fn template_config(dict: &StateDict, modalities: Option<Vec<Modality>>) -> Result<TemplateConfig> {
    let template_shape = shape_of(dict, "rep_template")?;
    let [count, x, y, z] = template_shape[..] else {
        bail!(
            "{}: rep_template has shape {template_shape:?}, expected [modalities, x, y, z]",
            dict.source
        );
    };
    Ok(TemplateConfig {
        canvas: [x, y, z],
        modalities: template_modalities(modalities, count, &dict.source)?,
        learn: true,
        ..Default::default()
    })
}

/// How the report names a backbone.
fn backbone_name(preset: Architecture) -> String {
    preset.label().to_string()
}

/// The UniFormer encoder alone, from any official state dict holding one (a bare `UniFormer`,
/// `SSLEncoder`, `RecModel` or `UniUnet`): everything outside the encoder is listed as ignored.
pub fn import_encoder<B: Backend>(
    dict: &StateDict,
    device: &B::Device,
) -> Result<(Uniformer<B>, Architecture, ImportReport)> {
    let Some(prefix) = encoder_prefix(dict) else {
        bail!(
            "{}: no UniFormer in this state dict (no `…patch_embed1.proj.weight`)",
            dict.source
        );
    };
    let encoder = infer_encoder(dict, &prefix)?;
    let config = encoder.preset.uniformer_config(encoder.in_channels)?;
    let model = config.init::<B>(device)?;
    let pairs = names::uniformer_pairs(&config, &prefix, "");
    let outside = |name: &str| match name.starts_with(&prefix) {
        true => ignored_in_uniunet(name),
        false => Some("not part of the encoder"),
    };
    let (model, report) = load_pairs(model, &pairs, dict, backbone_name(encoder.preset), &outside)?;
    Ok((model, encoder.preset, report))
}

/// The name prefix of the UniFormer in `dict` (`encoder.uniformer.`, `encoder.`, `uniformer.` or
/// none), from where its first patch embedding sits.
pub fn encoder_prefix(dict: &StateDict) -> Option<String> {
    const FIRST: &str = "patch_embed1.proj.weight";
    let mut candidates: Vec<&String> = dict.tensors.keys().filter(|k| k.ends_with(FIRST)).collect();
    candidates.sort_by_key(|k| k.len());
    candidates
        .first()
        .map(|k| k[..k.len() - FIRST.len()].to_string())
}

/// The encoder a state dict holds: preset (by depths and widths) and input channels.
struct InferredEncoder {
    preset: Architecture,
    in_channels: usize,
}

fn infer_encoder(dict: &StateDict, prefix: &str) -> Result<InferredEncoder> {
    let mut widths = [0; 4];
    let mut depths = [0; 4];
    for stage in 0..4 {
        let embed = format!("{prefix}patch_embed{}.proj.weight", stage + 1);
        widths[stage] = shape_of(dict, &embed)?[0];
        depths[stage] = (0..)
            .take_while(|block| {
                let name = format!("{prefix}blocks{}.{block}.pos_embed.weight", stage + 1);
                dict.tensors.contains_key(&name)
            })
            .count();
    }
    let in_channels = shape_of(dict, &format!("{prefix}patch_embed1.proj.weight"))?[1];
    match names::preset_of(depths, widths) {
        Some(preset) => Ok(InferredEncoder {
            preset,
            in_channels,
        }),
        None => bail!(
            "{}: its UniFormer has depths {depths:?} and widths {widths:?}: neither UniFormer-S ([3, 4, 8, 3], [64, 128, 320, 512]) nor brainmvp's tiny preset ([1, 1, 1, 1], [8, 16, 32, 64])",
            dict.source
        ),
    }
}

fn shape_of<'a>(dict: &'a StateDict, name: &str) -> Result<&'a [usize]> {
    match dict.tensors.get(name) {
        Some(tensor) => Ok(&tensor.shape),
        None => bail!("{}: missing tensor {name}", dict.source),
    }
}

fn template_modalities(
    given: Option<Vec<Modality>>,
    count: usize,
    source: &str,
) -> Result<Vec<Modality>> {
    let modalities = match given {
        Some(list) => list,
        None if count == 4 => Modality::ALL[..4].to_vec(),
        None if count == Modality::ALL.len() => Modality::ALL.to_vec(),
        None => bail!(
            "{source}: {count} templates; name their modalities in order (--template-modalities)"
        ),
    };
    if modalities.len() != count {
        bail!(
            "{source}: {count} templates, but {} modalities were named",
            modalities.len()
        );
    }
    Ok(modalities)
}

/// Maps, checks and applies `pairs` of `dict` to `model`. `ignored` says why an official tensor
/// outside the table is left out (`None`: it is unexpected and the import is refused).
fn load_pairs<B: Backend, M: Module<B> + ModuleSnapshot<B>>(
    mut model: M,
    pairs: &[TensorPair],
    dict: &StateDict,
    backbone: String,
    ignored: &dyn Fn(&str) -> Option<&'static str>,
) -> Result<(M, ImportReport)> {
    let source = &dict.source;
    let expected: BTreeMap<&str, &TensorPair> =
        pairs.iter().map(|p| (p.official.as_str(), p)).collect();
    let mut left_out = Vec::new();
    let mut unexpected = Vec::new();
    for name in dict.tensors.keys() {
        if !expected.contains_key(name.as_str()) {
            match ignored(name) {
                Some(reason) => left_out.push((name.clone(), reason)),
                None => unexpected.push(name.clone()),
            }
        }
    }
    if let Some(first) = unexpected.first() {
        bail!(
            "{source}: unexpected tensor {first} {:?} ({} unexpected in all; the file does not hold the architecture asked for)",
            dict.tensors[first].shape,
            unexpected.len()
        );
    }
    let snapshots = mapped_snapshots(&model, pairs, dict)?;
    let loaded_values = snapshots.iter().map(|s| s.shape.num_elements()).sum();
    let loaded_tensors = snapshots.len();
    let result = model.apply(snapshots, None, None, true);
    if let Some(error) = result.errors.first() {
        bail!("{source}: {error}");
    }
    if let Some((path, _)) = result.missing.first() {
        bail!("{source}: internal: no official tensor maps to our {path}");
    }
    let report = ImportReport {
        source: source.clone(),
        unwrapping: dict.unwrapping(),
        backbone,
        loaded_tensors,
        loaded_values,
        ignored: left_out,
    };
    Ok((model, report))
}

/// Each pair's official tensor rearranged to our layout, as a snapshot at our path, after
/// checking it is present and has the shape our module needs.
fn mapped_snapshots<B: Backend, M: ModuleSnapshot<B>>(
    model: &M,
    pairs: &[TensorPair],
    dict: &StateDict,
) -> Result<Vec<TensorSnapshot>> {
    let source = &dict.source;
    let our_shapes: BTreeMap<String, Vec<usize>> = model
        .collect(None, None, true)
        .into_iter()
        .map(|s| (s.full_path(), s.shape.to_vec()))
        .collect();
    let missing: Vec<&TensorPair> = pairs
        .iter()
        .filter(|p| !dict.tensors.contains_key(&p.official))
        .collect();
    if let Some(first) = missing.first() {
        bail!(
            "{source}: missing tensor {} (for our {}; {} missing in all)",
            first.official,
            first.ours,
            missing.len()
        );
    }
    let mut snapshots = Vec::with_capacity(pairs.len());
    for pair in pairs {
        let tensor = &dict.tensors[&pair.official];
        let (shape, values) = pair.transform.apply(&tensor.shape, tensor.values.clone())?;
        let Some(needed) = our_shapes.get(&pair.ours) else {
            bail!("{source}: internal: our model has no {}", pair.ours);
        };
        if &shape != needed {
            bail!(
                "{source}: tensor {} has shape {:?}; our {} needs {needed:?} ({:?} in the official layout)",
                pair.official,
                tensor.shape,
                pair.ours,
                pair.transform.apply(needed, vec![0.0; needed.iter().product()])?.0
            );
        }
        let path = pair.ours.split('.').map(str::to_string).collect();
        let data = TensorData::new(values, shape);
        snapshots.push(TensorSnapshot::from_data(
            data,
            path,
            Vec::new(),
            ParamId::new(),
        ));
    }
    Ok(snapshots)
}

//! Turning loader batches and cached subjects into network inputs: channels in the model's
//! modality order, missing modalities filled (template or zeros), template cut-mix.

use anyhow::{bail, Result};
use brainmvp_core::cache::CacheReader;
use brainmvp_core::finetune::cutmix::{cut_mix, CutMixConfig};
use brainmvp_core::inference::segment::stack_channels;
use brainmvp_core::loader::Batch;
use brainmvp_core::rng::Rng;
use brainmvp_core::template_bank::{fill_missing, TemplateBank};
use brainmvp_core::{Modality, Volume};
use burn::tensor::{backend::Backend, Tensor, TensorData};

/// Salt of the cut-mix random streams (one stream per sample).
const CUT_MIX_SALT: u64 = 0x9E37_79B9_7F4A_7C15;

/// How training inputs are completed and mixed.
pub struct InputPlan<'a> {
    /// Channel order.
    pub modalities: &'a [Modality],
    /// Templates for missing modalities and cut-mix.
    pub templates: Option<&'a TemplateBank>,
    /// Cut-mix settings when enabled.
    pub cut_mix: Option<&'a CutMixConfig>,
    /// Seed of the cut-mix streams.
    pub seed: u64,
}

/// The input `[N, C, z, y, x]` and the label maps (x fastest, one after the other) of a batch.
pub fn batch_input<B: Backend>(
    batch: &Batch,
    reader: &CacheReader,
    plan: &InputPlan<'_>,
    device: &B::Device,
) -> Result<(Tensor<B, 5>, Vec<u8>)> {
    let size = batch.crop_size;
    let voxels = size.iter().product::<usize>();
    let mut values = Vec::with_capacity(batch.samples.len() * plan.modalities.len() * voxels);
    let mut labels = Vec::with_capacity(batch.samples.len() * voxels);
    for (index, sample) in batch.samples.iter().enumerate() {
        let entry = reader.subject(sample.subject_index)?;
        let mut images = sample.images.clone();
        for &modality in plan.modalities {
            if images.iter().any(|(m, _)| *m == modality) {
                continue;
            }
            let filled = match plan.templates {
                Some(bank) if bank.modalities().contains(&modality) => {
                    bank.crop(modality, entry.dims, sample.start, size, sample.flipped)?
                }
                _ => vec![0.0; voxels],
            };
            images.push((modality, filled));
        }
        images.retain(|(modality, _)| plan.modalities.contains(modality));
        if let (Some(bank), Some(config)) = (plan.templates, plan.cut_mix) {
            let global = batch.step * batch.samples.len() as u64 + index as u64;
            let mut rng = Rng::stream(plan.seed ^ CUT_MIX_SALT, global);
            cut_mix(
                &mut images,
                bank,
                entry.dims,
                sample.start,
                size,
                sample.flipped,
                config,
                &mut rng,
            )?;
        }
        for modality in plan.modalities {
            let (_, crop) = images
                .iter()
                .find(|(m, _)| m == modality)
                .ok_or_else(|| anyhow::anyhow!("{}: no {modality} crop", sample.subject_id))?;
            values.extend_from_slice(crop);
        }
        match &sample.label {
            Some(label) => labels.extend_from_slice(label),
            None => bail!(
                "{}: subject {} has no label map",
                reader.dir().display(),
                sample.subject_id
            ),
        }
    }
    let shape = [
        batch.samples.len(),
        plan.modalities.len(),
        size[2],
        size[1],
        size[0],
    ];
    Ok((
        Tensor::from_data(TensorData::new(values, shape), device),
        labels,
    ))
}

/// A whole cached subject as one input `[1, C, z, y, x]` (missing modalities filled), with its
/// grid.
pub fn subject_input<B: Backend>(
    reader: &CacheReader,
    subject: usize,
    modalities: &[Modality],
    templates: Option<&TemplateBank>,
    device: &B::Device,
) -> Result<(Tensor<B, 5>, Volume<f32>)> {
    let entry = reader.subject(subject)?;
    let mut images = Vec::new();
    for &modality in modalities {
        if entry.images.contains_key(&modality) {
            images.push((modality, reader.read_volume(subject, modality)?));
        }
    }
    if images.is_empty() {
        bail!(
            "{}: subject {} has none of the model's modalities",
            reader.dir().display(),
            entry.id
        );
    }
    fill_missing(&mut images, modalities, templates)?;
    let input = stack_channels::<B>(&images, modalities, device)?;
    let grid = images.swap_remove(0).1;
    Ok((input, grid))
}

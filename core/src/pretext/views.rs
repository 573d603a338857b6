//! The two masked views of a BrainMVP pre-training step.
//!
//! Every step reconstructs one modality `m` per sample from two corrupted copies of it:
//! - **view A, template distillation**: the masked blocks of `m` are replaced by the learnable
//!   template of `m` (cropped where the sample's crop lies, see [`super::templates`]);
//! - **view B, cross-modal reconstruction**: the masked blocks of `m` are replaced by the same
//!   blocks of another modality `n ≠ m` of the same subject; during the template warm-up (the first
//!   part of training) view B also uses the template, as the official code does for its first 300
//!   of 1,500 epochs.
//!
//! Series choice as the official loader: each subject offers [`ViewConfig::series_per_subject`]
//! series (a random subset of its modalities when it has more, its modalities repeated in turn when
//! it has fewer); each step draws one series slot, and slot `k` of each subject is the modality
//! reconstructed for that subject. The other modality `n` is drawn uniformly among the *distinct*
//! modalities of the subject's series other than `m`; a subject with a single modality falls back
//! to the template for view B.
//!
//! Masks are drawn afresh for every sample and view. All randomness comes from
//! `Rng::stream(seed, step)`, so a step is reproduced exactly from its number (resume).

use burn::tensor::{backend::Backend, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::masking::{BlockMask, MaskConfig};
use super::templates::ModalityTemplates;
use crate::error::{Error, Result};
use crate::modality::Modality;
use crate::rng::Rng;

/// Context named by the errors of this module.
const CONTEXT: &str = "pre-training views";

/// Salt separating the view stream from the loader's streams of the same seed.
const VIEW_SALT: u64 = 0x5649_4557_5f41_4231;

crate::config! {
    /// How the views are built.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct ViewConfig {
        /// Block masking (8³ blocks, ratio 0.8 by default).
        pub mask: MaskConfig = MaskConfig::default(),
        /// Series offered per subject (4, as the official loader).
        pub series_per_subject: usize = 4,
        /// Fraction of the steps during which view B uses the template (0.2: 300 of 1,500 epochs).
        pub template_warmup_fraction: f64 = 0.2,
    }
}

impl ViewConfig {
    /// Checks the mask, the series count (≥ 1) and the warm-up fraction (in `[0, 1]`).
    pub fn validate(&self) -> Result<()> {
        self.mask.validate()?;
        if self.series_per_subject == 0 {
            return Err(Error::new(CONTEXT, "series_per_subject must be at least 1"));
        }
        if !(0.0..=1.0).contains(&self.template_warmup_fraction) {
            return Err(Error::new(
                CONTEXT,
                format!(
                    "template_warmup_fraction {} is outside [0, 1]",
                    self.template_warmup_fraction
                ),
            ));
        }
        Ok(())
    }

    /// Whether step `step` of `total_steps` is still in the template-only warm-up.
    pub fn in_template_warmup(&self, step: u64, total_steps: u64) -> bool {
        (step as f64) < self.template_warmup_fraction * total_steps as f64
    }
}

/// One sample as the views need it: every modality's crop plus where the crop lies.
#[derive(Debug, Clone, Copy)]
pub struct ViewSource<'a> {
    /// Each present modality's crop, x fastest.
    pub images: &'a [(Modality, Vec<f32>)],
    /// Dims `[x, y, z]` of the preprocessed volume the crop was taken from.
    pub volume_dims: [usize; 3],
    /// Crop origin in that volume (may be negative where the crop is padded).
    pub crop_start: [isize; 3],
    /// Whether the crop was flipped along x, y, z.
    pub flipped: [bool; 3],
}

/// What one sample contributes to a step (drawn on the host, cheap, reproducible).
#[derive(Debug, Clone, PartialEq)]
pub struct SamplePlan {
    /// The modality reconstructed (and corrupted in both views).
    pub target: Modality,
    /// The modality filling view B's masked blocks; `None` = the template.
    pub other: Option<Modality>,
    /// View A's mask.
    pub mask_a: BlockMask,
    /// View B's mask.
    pub mask_b: BlockMask,
}

/// Draws the plan of every sample of step `step` (see the module documentation).
pub fn plan_step(
    sources: &[ViewSource<'_>],
    crop_size: [usize; 3],
    step: u64,
    seed: u64,
    config: &ViewConfig,
    cross_modal: bool,
) -> Result<Vec<SamplePlan>> {
    config.validate()?;
    let mut rng = Rng::stream(seed ^ VIEW_SALT, step);
    let slot = rng.below(config.series_per_subject);
    sources
        .iter()
        .map(|source| {
            let series = subject_series(source.images, config.series_per_subject, &mut rng)?;
            let target = series[slot];
            let mut others: Vec<Modality> = series.into_iter().filter(|&m| m != target).collect();
            others.sort();
            others.dedup();
            let drawn_other = match others.is_empty() {
                true => None,
                false => Some(others[rng.below(others.len())]),
            };
            let mask_a = BlockMask::random(&mut rng, crop_size, &config.mask)?;
            let mask_b = BlockMask::random(&mut rng, crop_size, &config.mask)?;
            Ok(SamplePlan {
                target,
                other: drawn_other.filter(|_| cross_modal),
                mask_a,
                mask_b,
            })
        })
        .collect()
}

/// The subject's series: `count` modalities, a random subset when it has more, repeated in turn
/// when it has fewer.
pub fn subject_series(
    images: &[(Modality, Vec<f32>)],
    count: usize,
    rng: &mut Rng,
) -> Result<Vec<Modality>> {
    let mut modalities: Vec<Modality> = images.iter().map(|(m, _)| *m).collect();
    if modalities.is_empty() {
        return Err(Error::new(CONTEXT, "a sample has no image"));
    }
    rng.shuffle(&mut modalities);
    Ok((0..count)
        .map(|k| modalities[k % modalities.len()])
        .collect())
}

/// The device tensors of one step, all `[N, 1, z, y, x]`.
#[derive(Debug, Clone)]
pub struct StepViews<B: Backend> {
    /// View A: template distillation.
    pub view_a: Tensor<B, 5>,
    /// View B: cross-modal reconstruction (or template during the warm-up).
    pub view_b: Tensor<B, 5>,
    /// The uncorrupted target modality.
    pub target: Tensor<B, 5>,
}

/// Host-side arrays of one view: `base` holds the kept voxels of the target and, for view B, the
/// other modality in the masked blocks; `fill` is 1 where the template fills in, else 0.
struct HostView {
    base: Vec<f32>,
    fill: Vec<f32>,
}

impl HostView {
    fn with_capacity(voxels: usize) -> Self {
        Self {
            base: Vec::with_capacity(voxels),
            fill: Vec::with_capacity(voxels),
        }
    }

    fn push(&mut self, mask: &BlockMask, target: &[f32], other: Option<&[f32]>) {
        for (index, masked) in mask.voxel_mask().into_iter().enumerate() {
            let (base, fill) = match (masked > 0.5, other) {
                (false, _) => (target[index], 0.0),
                (true, Some(other)) => (other[index], 0.0),
                (true, None) => (0.0, 1.0),
            };
            self.base.push(base);
            self.fill.push(fill);
        }
    }
}

/// Builds the two views and the target on the device: `view = base + fill · template`, so the
/// templates receive the gradient of every masked voxel they fill.
pub fn build_views<B: Backend>(
    sources: &[ViewSource<'_>],
    plans: &[SamplePlan],
    crop_size: [usize; 3],
    templates: &ModalityTemplates<B>,
    device: &B::Device,
) -> Result<StepViews<B>> {
    if sources.len() != plans.len() || sources.is_empty() {
        return Err(Error::new(CONTEXT, "one plan per sample is needed"));
    }
    let voxels: usize = crop_size.iter().product();
    let total = voxels * sources.len();
    let (mut view_a, mut view_b) = (
        HostView::with_capacity(total),
        HostView::with_capacity(total),
    );
    let mut target_values = Vec::with_capacity(total);
    let mut template_requests = Vec::with_capacity(sources.len());
    for (source, plan) in sources.iter().zip(plans) {
        if plan.mask_a.crop_size != crop_size || plan.mask_b.crop_size != crop_size {
            return Err(Error::new(
                CONTEXT,
                format!("a plan's masks were drawn for another crop size than {crop_size:?}"),
            ));
        }
        let target = image_of(source, plan.target, voxels)?;
        let other = match plan.other {
            Some(modality) => Some(image_of(source, modality, voxels)?),
            None => None,
        };
        view_a.push(&plan.mask_a, target, None);
        view_b.push(&plan.mask_b, target, other);
        target_values.extend_from_slice(target);
        let start = templates.canvas_start(source.volume_dims, source.crop_start, crop_size)?;
        template_requests.push((plan.target, start, source.flipped));
    }
    let [x, y, z] = crop_size;
    let shape = [sources.len(), 1, z, y, x];
    let upload =
        |values: Vec<f32>| Tensor::<B, 5>::from_data(TensorData::new(values, shape), device);
    let template = Tensor::cat(templates.crops(&template_requests, crop_size)?, 0);
    let fill_a = upload(view_a.fill);
    let fill_b = upload(view_b.fill);
    Ok(StepViews {
        view_a: upload(view_a.base) + fill_a * template.clone(),
        view_b: upload(view_b.base) + fill_b * template,
        target: upload(target_values),
    })
}

fn image_of<'a>(source: &ViewSource<'a>, modality: Modality, voxels: usize) -> Result<&'a [f32]> {
    let image = source
        .images
        .iter()
        .find(|(m, _)| *m == modality)
        .map(|(_, values)| values.as_slice())
        .ok_or_else(|| Error::new(CONTEXT, format!("sample lacks {}", modality.name())))?;
    if image.len() != voxels {
        return Err(Error::new(
            CONTEXT,
            format!(
                "{} crop has {} voxels, expected {voxels}",
                modality.name(),
                image.len()
            ),
        ));
    }
    Ok(image)
}

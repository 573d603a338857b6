//! Learnable modality templates, the second BrainMVP proxy ingredient: one volume per canonical
//! modality on a fixed template canvas (240×240×155 voxels at 1 mm by default), zero-initialised
//! and trained by the same optimiser as the network.
//!
//! As in the official code (`utils/ops.py` of shaohao011/BrainMVP):
//! - a template is min–max normalised over its **whole canvas** on every use,
//!   `(t − min t) / (max t − min t + 1e-9)`, then cropped;
//! - the crop sits where the sample's crop sits when the preprocessed (foreground-cropped)
//!   volume is centred in the canvas: `canvas_start = (canvas − volume) / 2 + crop_start`.
//!
//! Our loader also flips crops; the template crop is flipped along the same axes, so that the
//! template patch stays in register with the image patch. Where the centred volume is larger than
//! the canvas, or a small volume is padded around the crop, the canvas position is clamped into the
//! canvas (the official code asserts instead).

use burn::module::{Module, Param};
use burn::tensor::{backend::Backend, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::modality::Modality;
use crate::volume::Volume;

use super::template_init::CohortMeans;
pub use super::template_init::TemplateInit;

/// Context named by the errors of this module.
const CONTEXT: &str = "modality templates";

/// Added to `max − min` so that a constant (e.g. freshly zeroed) template normalises to zero.
pub const NORMALISE_EPS: f64 = 1e-9;

/// Largest canvas (voxels per modality) accepted before allocating.
pub const MAX_CANVAS_VOXELS: usize = 1 << 28;

crate::config! {
    /// Shape and modalities of the template canvas.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct TemplateConfig {
        /// Canvas size `[x, y, z]` in voxels (1 mm): 240×240×155 by default (the BraTS grid).
        pub canvas: [usize; 3] = [240, 240, 155],
        /// The modalities that own a template, in storage order.
        pub modalities: Vec<Modality> = Modality::ALL.to_vec(),
        /// Whether the optimiser learns the templates (`false` keeps them at zero: masked blocks are
        /// then filled with 0, plain masked-image reconstruction, the ablation baseline).
        pub learn: bool = true,
        /// Where the templates start: `zero` (the official code) or `cohort-mean` (each modality's
        /// mean preprocessed image of the pre-training cohort, set by the trainer before step 1).
        pub init: TemplateInit = TemplateInit::Zero,
    }
}

impl TemplateConfig {
    /// Checks the canvas (non-empty, bounded) and the modality list (non-empty, no repeats).
    pub fn validate(&self) -> Result<()> {
        let voxels = self
            .canvas
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        match voxels {
            Some(v) if v > 0 && v <= MAX_CANVAS_VOXELS => {}
            _ => {
                return Err(Error::new(
                    CONTEXT,
                    format!("canvas {:?} is empty or too large", self.canvas),
                ))
            }
        }
        let mut seen = self.modalities.clone();
        seen.sort();
        seen.dedup();
        if self.modalities.is_empty() || seen.len() != self.modalities.len() {
            return Err(Error::new(
                CONTEXT,
                "the modality list must be non-empty without repeats",
            ));
        }
        Ok(())
    }

    /// Zero-initialised templates, one `[z, y, x]` volume per modality.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<ModalityTemplates<B>> {
        self.validate()?;
        let [x, y, z] = self.canvas;
        let volumes = Tensor::zeros([self.modalities.len(), z, y, x], device);
        Ok(ModalityTemplates {
            volumes: Param::from_tensor(volumes).set_require_grad(self.learn),
            modalities: self.modalities.clone(),
            canvas: self.canvas,
        })
    }
}

/// The learnable templates: `volumes` is `[modalities, z, y, x]` (x fastest, as the crops).
#[derive(Module, Debug)]
pub struct ModalityTemplates<B: Backend> {
    /// The raw (unnormalised) template values.
    pub volumes: Param<Tensor<B, 4>>,
    /// Which modality each template belongs to.
    #[module(skip)]
    pub modalities: Vec<Modality>,
    /// Canvas size `[x, y, z]`.
    #[module(skip)]
    pub canvas: [usize; 3],
}

impl<B: Backend> ModalityTemplates<B> {
    /// Storage index of `modality`'s template, if it has one.
    pub fn index_of(&self, modality: Modality) -> Option<usize> {
        self.modalities.iter().position(|&m| m == modality)
    }

    /// The templates set to the cohort's mean images (same parameter, so an optimiser or a
    /// checkpoint still recognises it); a modality no subject has stays at zero.
    pub fn with_cohort_means(self, cohort: &CohortMeans) -> Result<Self> {
        let [_, z, y, x] = self.volumes.dims();
        if cohort.canvas != self.canvas || cohort.means.len() != self.modalities.len() {
            return Err(Error::new(
                CONTEXT,
                format!(
                    "cohort means on {:?} for {} modalities do not fit the canvas {:?} of {} templates",
                    cohort.canvas,
                    cohort.means.len(),
                    self.canvas,
                    self.modalities.len()
                ),
            ));
        }
        let values: Vec<f32> = cohort.means.concat();
        // `Param::map` takes `require_grad` from the new tensor: carry the old one's over, or
        // learnt templates would silently stop learning.
        let volumes = self.volumes.map(|current| {
            let device = current.device();
            let learnt = current.is_require_grad();
            let data = burn::tensor::TensorData::new(values, [cohort.means.len(), z, y, x]);
            Tensor::from_data(data, &device).set_require_grad(learnt)
        });
        Ok(Self { volumes, ..self })
    }

    /// Template `index` min–max normalised over the whole canvas: `[z, y, x]` in `[0, 1]`.
    pub fn normalised(&self, index: usize) -> Tensor<B, 3> {
        let [_, z, y, x] = self.volumes.dims();
        let template = self.volumes.val().narrow(0, index, 1).reshape([z, y, x]);
        let low = template.clone().min().reshape([1, 1, 1]);
        let high = template.clone().max().reshape([1, 1, 1]);
        let range = (high - low.clone()).add_scalar(NORMALISE_EPS);
        (template - low) / range
    }

    /// Where a crop at `crop_start` of a volume of `volume_dims` (all `[x, y, z]`) falls on the
    /// canvas when that volume is centred in it, clamped so the whole crop lies on the canvas.
    pub fn canvas_start(
        &self,
        volume_dims: [usize; 3],
        crop_start: [isize; 3],
        crop_size: [usize; 3],
    ) -> Result<[usize; 3]> {
        let mut start = [0usize; 3];
        for axis in 0..3 {
            let (canvas, crop) = (self.canvas[axis], crop_size[axis]);
            if crop > canvas {
                return Err(Error::new(
                    CONTEXT,
                    format!(
                        "crop {crop_size:?} is larger than the canvas {:?}",
                        self.canvas
                    ),
                ));
            }
            let shift = (canvas as isize - volume_dims[axis] as isize).div_euclid(2);
            let wanted = shift + crop_start[axis];
            start[axis] = wanted.clamp(0, (canvas - crop) as isize) as usize;
        }
        Ok(start)
    }

    /// The normalised template of `modality` cropped at `canvas_start` (`[x, y, z]`, see
    /// [`canvas_start`](Self::canvas_start)) to `crop_size`, flipped as the image crop:
    /// `[1, 1, z, y, x]`, differentiable with respect to the template.
    pub fn crop(
        &self,
        modality: Modality,
        canvas_start: [usize; 3],
        crop_size: [usize; 3],
        flipped: [bool; 3],
    ) -> Result<Tensor<B, 5>> {
        let mut patches = self.crops(&[(modality, canvas_start, flipped)], crop_size)?;
        patches
            .pop()
            .ok_or_else(|| Error::new(CONTEXT, "no crop was made"))
    }

    /// [`crop`](Self::crop) for several crops of one step: each template is normalised once (not
    /// once per crop) and cut at every request `(modality, canvas_start, flipped)`.
    pub fn crops(
        &self,
        requests: &[(Modality, [usize; 3], [bool; 3])],
        crop_size: [usize; 3],
    ) -> Result<Vec<Tensor<B, 5>>> {
        let mut normalised: Vec<Option<Tensor<B, 3>>> = vec![None; self.modalities.len()];
        let mut patches = Vec::with_capacity(requests.len());
        for &(modality, canvas_start, flipped) in requests {
            let index = self.checked_index(modality, canvas_start, crop_size)?;
            let template = normalised[index].get_or_insert_with(|| self.normalised(index));
            patches.push(crop_normalised(
                template.clone(),
                canvas_start,
                crop_size,
                flipped,
            ));
        }
        Ok(patches)
    }

    /// The storage index of `modality`'s template, after checking the crop lies on the canvas.
    fn checked_index(
        &self,
        modality: Modality,
        canvas_start: [usize; 3],
        crop_size: [usize; 3],
    ) -> Result<usize> {
        let index = self.index_of(modality).ok_or_else(|| {
            Error::new(
                CONTEXT,
                format!("no template for modality {}", modality.name()),
            )
        })?;
        for axis in 0..3 {
            let end = canvas_start[axis].checked_add(crop_size[axis]);
            if end.is_none_or(|end| end > self.canvas[axis]) {
                return Err(Error::new(
                    CONTEXT,
                    format!(
                        "crop {crop_size:?} at {canvas_start:?} leaves the canvas {:?}",
                        self.canvas
                    ),
                ));
            }
        }
        Ok(index)
    }

    /// Every template, normalised, as a 1 mm volume centred on the world origin (for NIfTI export
    /// and viewing).
    pub fn to_volumes(&self) -> Result<Vec<(Modality, Volume<f32>)>> {
        let [x, y, z] = self.canvas;
        let mut affine = crate::volume::IDENTITY;
        for (axis, dim) in [x, y, z].into_iter().enumerate() {
            affine[axis][3] = -((dim as f64 - 1.0) / 2.0);
        }
        let mut volumes = Vec::with_capacity(self.modalities.len());
        for (index, &modality) in self.modalities.iter().enumerate() {
            let data = self
                .normalised(index)
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .map_err(|err| Error::new(CONTEXT, format!("reading a template: {err:?}")))?;
            volumes.push((
                modality,
                Volume {
                    dims: [x, y, z],
                    affine,
                    data,
                },
            ));
        }
        Ok(volumes)
    }
}

/// Cuts `crop_size` at `canvas_start` (`[x, y, z]`) from a normalised `[z, y, x]` template and
/// flips it as the image crop: `[1, 1, z, y, x]`.
fn crop_normalised<B: Backend>(
    template: Tensor<B, 3>,
    canvas_start: [usize; 3],
    crop_size: [usize; 3],
    flipped: [bool; 3],
) -> Tensor<B, 5> {
    let [sx, sy, sz] = canvas_start;
    let [cx, cy, cz] = crop_size;
    let patch = template.slice([sz..sz + cz, sy..sy + cy, sx..sx + cx]);
    // Tensor axes are [z, y, x]: flip x → axis 2, y → 1, z → 0.
    let axes: Vec<isize> = [(0usize, 2isize), (1, 1), (2, 0)]
        .iter()
        .filter(|(spatial, _)| flipped[*spatial])
        .map(|&(_, tensor_axis)| tensor_axis)
        .collect();
    let patch = match axes.len() {
        0 => patch,
        1 => patch.flip([axes[0]]),
        2 => patch.flip([axes[0], axes[1]]),
        _ => patch.flip([axes[0], axes[1], axes[2]]),
    };
    patch.reshape([1, 1, cz, cy, cx])
}

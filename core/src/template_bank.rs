//! The exported modality templates as a bank of plain volumes: what fine-tuning cuts crops from
//! ([`crate::finetune::cutmix`]), and what fills a missing modality at inference and in the
//! browser's fine-tuning ([`fill_missing`]).
//!
//! The templates are the ones pre-training learned and exported (one volume per modality on the
//! template canvas, [`crate::pretext::templates`]), min–max normalised over the whole canvas as
//! pre-training uses them. A crop is cut where pre-training cuts it
//! ([`ModalityTemplates::canvas_start`](crate::pretext::templates::ModalityTemplates::canvas_start)):
//! the subject volume is centred in the canvas and the crop clamped onto the canvas. Where the crop
//! is larger than the canvas along an axis it covers the whole canvas there (placed as centred as
//! the clamping allows) and the rest is 0. Crops are flipped like the image crops of the loader.

use crate::error::{Error, Result};
use crate::modality::Modality;
use crate::pretext::templates::{MAX_CANVAS_VOXELS, NORMALISE_EPS};
use crate::volume::{Volume, IDENTITY};

/// Context named by the errors of this module.
const CONTEXT: &str = "template bank";

/// The exported modality templates, min–max normalised, all on one canvas.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateBank {
    templates: Vec<(Modality, Volume<f32>)>,
}

impl TemplateBank {
    /// A bank of `templates` (at least one, all of the same dims, one per modality), each min–max
    /// normalised over its whole canvas: `(t − min) / (max − min + 1e-9)`.
    pub fn new(templates: Vec<(Modality, Volume<f32>)>) -> Result<Self> {
        let Some((_, first)) = templates.first() else {
            return Err(Error::new(CONTEXT, "no templates were given"));
        };
        let canvas = first.dims;
        let voxels = checked_voxels(canvas)?;
        for (index, (modality, volume)) in templates.iter().enumerate() {
            if volume.dims != canvas || volume.data.len() != voxels {
                return Err(Error::new(
                    CONTEXT,
                    format!(
                        "the {modality} template has dims {:?} ({} values), the first {canvas:?}",
                        volume.dims,
                        volume.data.len()
                    ),
                ));
            }
            if templates[..index].iter().any(|(m, _)| m == modality) {
                return Err(Error::new(
                    CONTEXT,
                    format!("two templates for modality {modality}"),
                ));
            }
        }
        let templates = templates
            .into_iter()
            .map(|(modality, volume)| (modality, normalise(volume)))
            .collect();
        Ok(Self { templates })
    }

    /// The modalities that have a template, in storage order.
    pub fn modalities(&self) -> Vec<Modality> {
        self.templates.iter().map(|(m, _)| *m).collect()
    }

    /// Whether `modality` has a template.
    pub fn contains(&self, modality: Modality) -> bool {
        self.templates.iter().any(|(m, _)| *m == modality)
    }

    /// The canvas size `[x, y, z]`.
    pub fn canvas(&self) -> [usize; 3] {
        self.templates[0].1.dims
    }

    /// The normalised template of `modality`.
    pub fn template(&self, modality: Modality) -> Result<&Volume<f32>> {
        self.templates
            .iter()
            .find(|(m, _)| *m == modality)
            .map(|(_, volume)| volume)
            .ok_or_else(|| Error::new(CONTEXT, format!("no template for modality {modality}")))
    }

    /// Where a crop at `crop_start` of a volume of `volume_dims` (all `[x, y, z]`) starts on the
    /// canvas: the volume centred in the canvas, the crop clamped onto it (or, where the crop is
    /// larger than the canvas, clamped so that it covers the canvas).
    pub fn canvas_start(
        &self,
        volume_dims: [usize; 3],
        crop_start: [isize; 3],
        crop_size: [usize; 3],
    ) -> [isize; 3] {
        let canvas = self.canvas();
        let mut start = [0isize; 3];
        for axis in 0..3 {
            let room = canvas[axis] as isize - crop_size[axis] as isize;
            let shift = (canvas[axis] as isize - volume_dims[axis] as isize).div_euclid(2);
            start[axis] = (shift + crop_start[axis]).clamp(room.min(0), room.max(0));
        }
        start
    }

    /// The template crop of `modality` under the image crop at `crop_start` (`crop_size` voxels,
    /// x fastest) of a volume of `volume_dims`, flipped along the axes in `flipped` as the loader
    /// flips the image crop; 0 where the crop leaves the canvas.
    pub fn crop(
        &self,
        modality: Modality,
        volume_dims: [usize; 3],
        crop_start: [isize; 3],
        crop_size: [usize; 3],
        flipped: [bool; 3],
    ) -> Result<Vec<f32>> {
        let template = self.template(modality)?;
        let voxels = checked_voxels(crop_size)?;
        let start = self.canvas_start(volume_dims, crop_start, crop_size);
        let canvas = self.canvas();
        // Canvas index along each axis of crop position i (flipped: read from the far end).
        let source = |axis: usize, i: usize| -> Option<usize> {
            let i = if flipped[axis] {
                crop_size[axis] - 1 - i
            } else {
                i
            };
            let position = start[axis] + i as isize;
            (0..canvas[axis] as isize)
                .contains(&position)
                .then_some(position as usize)
        };
        let mut crop = Vec::with_capacity(voxels);
        for z in 0..crop_size[2] {
            let source_z = source(2, z);
            for y in 0..crop_size[1] {
                let source_y = source(1, y);
                for x in 0..crop_size[0] {
                    let value = match (source(0, x), source_y, source_z) {
                        (Some(sx), Some(sy), Some(sz)) => template.get(sx, sy, sz),
                        _ => 0.0,
                    };
                    crop.push(value);
                }
            }
        }
        Ok(crop)
    }

    /// The template of `modality` under a whole volume of `volume_dims`, centred in the canvas
    /// (0 outside the canvas), for a modality missing at inference. The affine is the identity:
    /// the caller gives the volume the grid of the images it joins.
    pub fn fill(&self, modality: Modality, volume_dims: [usize; 3]) -> Result<Volume<f32>> {
        let data = self.crop(modality, volume_dims, [0; 3], volume_dims, [false; 3])?;
        Ok(Volume {
            dims: volume_dims,
            affine: IDENTITY,
            data,
        })
    }
}

/// Voxels of `dims`, refused when 0 or above [`MAX_CANVAS_VOXELS`].
pub(crate) fn checked_voxels(dims: [usize; 3]) -> Result<usize> {
    let voxels = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    match voxels {
        Some(count) if count > 0 && count <= MAX_CANVAS_VOXELS => Ok(count),
        _ => Err(Error::new(
            CONTEXT,
            format!("size {dims:?} is empty or larger than {MAX_CANVAS_VOXELS} voxels"),
        )),
    }
}

/// Min–max normalisation over the whole volume (pre-training's formula).
fn normalise(mut volume: Volume<f32>) -> Volume<f32> {
    let (low, high) = volume
        .data
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), &v| {
            (low.min(v as f64), high.max(v as f64))
        });
    let range = high - low + NORMALISE_EPS;
    for value in &mut volume.data {
        *value = ((*value as f64 - low) / range) as f32;
    }
    volume
}

/// Completes `images` with every modality of `wanted` it lacks: the template under the volume
/// ([`TemplateBank::fill`]) when `bank` has one, else zeros, with the grid (dims and affine) of
/// the first image. Afterwards the images are in `wanted` order, followed by any image whose
/// modality is not wanted (in its previous order). Returns the filled modalities in `wanted` order.
///
/// Errors (leaving `images` as it was) when `wanted` repeats a modality, when a modality must be
/// filled but there is no image to take the grid from, or when the images have different dims.
pub fn fill_missing(
    images: &mut Vec<(Modality, Volume<f32>)>,
    wanted: &[Modality],
    bank: Option<&TemplateBank>,
) -> Result<Vec<Modality>> {
    let context = "missing modalities";
    if let Some(index) = (1..wanted.len()).find(|&i| wanted[..i].contains(&wanted[i])) {
        return Err(Error::new(
            context,
            format!("modality {} is wanted twice", wanted[index]),
        ));
    }
    let missing: Vec<Modality> = wanted
        .iter()
        .copied()
        .filter(|modality| !images.iter().any(|(m, _)| m == modality))
        .collect();
    let mut made = Vec::with_capacity(missing.len());
    for &modality in &missing {
        let Some((_, first)) = images.first() else {
            return Err(Error::new(
                context,
                format!("no image to take the grid of the missing {modality} from"),
            ));
        };
        if let Some((other, volume)) = images.iter().find(|(_, v)| v.dims != first.dims) {
            return Err(Error::new(
                context,
                format!(
                    "the {other} image has dims {:?}, not {:?}",
                    volume.dims, first.dims
                ),
            ));
        }
        let mut volume = match bank.filter(|bank| bank.contains(modality)) {
            Some(bank) => bank.fill(modality, first.dims)?,
            None => Volume::filled(first.dims, first.affine, 0.0),
        };
        volume.affine = first.affine;
        made.push((modality, volume));
    }
    let mut present = std::mem::take(images);
    for &modality in wanted {
        if let Some(position) = present.iter().position(|(m, _)| *m == modality) {
            images.push(present.remove(position));
        } else if let Some(position) = made.iter().position(|(m, _)| *m == modality) {
            images.push(made.swap_remove(position));
        }
    }
    images.append(&mut present);
    Ok(missing)
}

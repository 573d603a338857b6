//! Template channel cut-mix (`--mix-template`): during fine-tuning, [`cut_mix`] replaces some of
//! a sample's input channels by the template crop of their modality (from a
//! [`TemplateBank`], cut where pre-training cuts it), so the model learns to cope with missing
//! modalities. Filling a missing modality at inference is
//! [`fill_missing`](crate::template_bank::fill_missing).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::modality::Modality;
use crate::rng::Rng;
use crate::template_bank::{checked_voxels, TemplateBank};

/// Context named by the errors of this module.
const CONTEXT: &str = "template cut-mix";

crate::config! {
    /// Settings of the template channel cut-mix.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct CutMixConfig {
        /// Most channels replaced in one sample (never all of them).
        pub max_channels: usize = 3,
        /// Probability that a sample has any channel replaced.
        pub probability: f64 = 0.5,
    }
}

impl CutMixConfig {
    /// Checks that the probability is in `[0, 1]`.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.probability) {
            return Err(Error::new(
                CONTEXT,
                format!("probability {} is not in [0, 1]", self.probability),
            ));
        }
        Ok(())
    }
}

/// With `config.probability`, replaces between 1 and `min(max_channels, channels − 1)` randomly
/// chosen channels of one sample's crops (never all of them) by the template crop of their
/// modality ([`TemplateBank::crop`] with the crop's own placement and flips). Returns the replaced
/// modalities in channel order (empty when nothing was replaced).
///
/// The rng draws one chance, then (when replacing) the count and a shuffle of the channels.
/// Errors when a crop does not have `crop_size` voxels or a channel's modality has no template
/// (checked for every channel, replaced or not).
#[allow(clippy::too_many_arguments)]
pub fn cut_mix(
    images: &mut [(Modality, Vec<f32>)],
    bank: &TemplateBank,
    volume_dims: [usize; 3],
    crop_start: [isize; 3],
    crop_size: [usize; 3],
    flipped: [bool; 3],
    config: &CutMixConfig,
    rng: &mut Rng,
) -> Result<Vec<Modality>> {
    config.validate()?;
    let voxels = checked_voxels(crop_size)?;
    for (modality, crop) in images.iter() {
        if crop.len() != voxels {
            return Err(Error::new(
                CONTEXT,
                format!(
                    "the {modality} crop has {} values, crop size {crop_size:?} needs {voxels}",
                    crop.len()
                ),
            ));
        }
        bank.template(*modality)?;
    }
    if !rng.chance(config.probability) {
        return Ok(Vec::new());
    }
    let most = config.max_channels.min(images.len().saturating_sub(1));
    if most == 0 {
        return Ok(Vec::new());
    }
    let count = 1 + rng.below(most);
    let mut channels: Vec<usize> = (0..images.len()).collect();
    rng.shuffle(&mut channels);
    let mut chosen = channels[..count].to_vec();
    chosen.sort_unstable();
    let mut replaced = Vec::with_capacity(count);
    for channel in chosen {
        let (modality, crop) = &mut images[channel];
        *crop = bank.crop(*modality, volume_dims, crop_start, crop_size, flipped)?;
        replaced.push(*modality);
    }
    Ok(replaced)
}

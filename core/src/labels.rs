//! Label schemes of segmentation tasks: what the network's output channels mean, their training
//! targets and loss, and how outputs become a label map again.
//!
//! - [`LabelScheme::Brats`]: three sigmoid channels TC = {1, ET}, WT = {1, 2, ET}, ET = {ET} with
//!   the official Dice+BCE loss ([`crate::losses::sigmoid_dice_bce`]); outputs are decoded as the
//!   official BraTS post-processing: every voxel with WT > 0.5 is oedema (2), then TC > 0.5 necrotic
//!   core (1), then ET > 0.5 the enhancing label (4 in BraTS 2021, 3 in BraTS 2023).
//! - [`LabelScheme::Classes`]: one softmax channel per label value (background first) with the
//!   Dice+CE variant ([`crate::losses::softmax_dice_ce`]), decoded by arg-max (tissue classes, atlas
//!   regions).

use burn::tensor::activation::{sigmoid, softmax};
use burn::tensor::{backend::Backend, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::losses::{
    brats_targets, deep_supervision_loss, weighted_sigmoid_dice_bce, weighted_softmax_dice_ce,
};
use crate::metrics::{detect_enhancing_label, dice, hd95, score_brats, BratsRegion, RegionScores};
use crate::{Error, Result};

const CONTEXT: &str = "label scheme";
/// Probability from which a sigmoid channel counts as present (`>=`, as MONAI's
/// `AsDiscrete(threshold=0.5)` in the official `post_trans`).
pub const SIGMOID_THRESHOLD: f32 = 0.5;

/// What the label maps hold and how the network predicts them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LabelScheme {
    /// BraTS tumour labels (1 necrotic core, 2 oedema, 4 or 3 enhancing) as TC/WT/ET regions.
    Brats {
        /// 4 (BraTS 2021) or 3 (BraTS 2023).
        enhancing_label: u8,
    },
    /// Mutually exclusive classes; `labels[0]` is the background (usually 0).
    Classes {
        /// The label value of each output channel.
        labels: Vec<u8>,
    },
}

impl Default for LabelScheme {
    fn default() -> Self {
        Self::Brats { enhancing_label: 4 }
    }
}

/// The BraTS name of a label value (`background`, `necrotic core`, `oedema`, `enhancing
/// tumour` for `enhancing_label`), or `None` for a value BraTS does not use. The CLI, the
/// evaluation and the page all name labels through this.
pub fn brats_label_name(value: u8, enhancing_label: u8) -> Option<&'static str> {
    match value {
        0 => Some("background"),
        1 => Some("necrotic core"),
        2 => Some("oedema"),
        v if v == enhancing_label => Some("enhancing tumour"),
        _ => None,
    }
}

impl LabelScheme {
    /// What a label value means (`"oedema (2)"`), for tables and the browser's legend.
    pub fn label_name(&self, value: u8) -> String {
        match self {
            Self::Brats { enhancing_label } => match brats_label_name(value, *enhancing_label) {
                Some(name) if value > 0 => format!("{name} ({value})"),
                Some(name) => name.to_string(),
                None => format!("label {value}"),
            },
            Self::Classes { .. } => format!("label {value}"),
        }
    }

    /// The BraTS scheme whose enhancing label is found in `label_maps` (4 when none is labelled).
    pub fn detect_brats(label_maps: &[&[u8]]) -> Self {
        let enhancing_label = label_maps
            .iter()
            .find_map(|labels| detect_enhancing_label(labels))
            .unwrap_or(4);
        Self::Brats { enhancing_label }
    }

    /// A class scheme over the sorted distinct values of `label_maps` (0 always included).
    pub fn classes_of(label_maps: &[&[u8]]) -> Self {
        let mut present = [false; 256];
        present[0] = true;
        for labels in label_maps {
            labels
                .iter()
                .for_each(|&label| present[label as usize] = true);
        }
        let labels = (0..=255u8).filter(|&v| present[v as usize]).collect();
        Self::Classes { labels }
    }

    /// Checks the scheme: enhancing label 3 or 4; at least two distinct classes.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Brats { enhancing_label } if ![3, 4].contains(enhancing_label) => {
                Err(Error::new(
                    CONTEXT,
                    format!("enhancing label must be 3 or 4, got {enhancing_label}"),
                ))
            }
            Self::Classes { labels } => {
                let mut sorted = labels.clone();
                sorted.sort_unstable();
                sorted.dedup();
                if labels.len() < 2 || sorted.len() != labels.len() {
                    return Err(Error::new(
                        CONTEXT,
                        format!("classes need at least two distinct label values, got {labels:?}"),
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Number of network output channels.
    pub fn out_channels(&self) -> usize {
        match self {
            Self::Brats { .. } => BratsRegion::ALL.len(),
            Self::Classes { labels } => labels.len(),
        }
    }

    /// The regions scored by [`score`](Self::score): TC/WT/ET, or `label N` for every
    /// non-background class.
    pub fn region_names(&self) -> Vec<String> {
        match self {
            Self::Brats { .. } => BratsRegion::ALL
                .iter()
                .map(|r| r.name().to_string())
                .collect(),
            Self::Classes { labels } => labels[1..].iter().map(|l| format!("label {l}")).collect(),
        }
    }

    /// The loss of the outputs (main output first, then any deep-supervision heads, all with the
    /// same shape `[batch, channels, z, y, x]`) against `batch` label maps of `dims = [x, y, z]`,
    /// summed over the outputs.
    pub fn loss<B: Backend>(
        &self,
        outputs: &[Tensor<B, 5>],
        labels: &[u8],
        batch: usize,
        dims: [usize; 3],
    ) -> Result<Tensor<B, 1>> {
        self.weighted_loss(outputs, labels, None, batch, dims)
    }

    /// [`Self::loss`] with a weight per voxel (`weights`, laid out as `labels`): the weighted
    /// losses [`weighted_sigmoid_dice_bce`] and [`weighted_softmax_dice_ce`]; `None` is
    /// [`Self::loss`].
    pub fn weighted_loss<B: Backend>(
        &self,
        outputs: &[Tensor<B, 5>],
        labels: &[u8],
        weights: Option<&[f32]>,
        batch: usize,
        dims: [usize; 3],
    ) -> Result<Tensor<B, 1>> {
        let first = outputs
            .first()
            .ok_or_else(|| Error::new(CONTEXT, "the model gave no output"))?;
        let device = first.device();
        let shape = [batch, dims[2], dims[1], dims[0]];
        let weights = weights
            .map(|weights| {
                check_voxels(weights.len(), shape)?;
                let [batch, z, y, x] = shape;
                let data = TensorData::new(weights.to_vec(), [batch, 1, z, y, x]);
                Ok::<_, Error>(Tensor::<B, 5>::from_data(data, &device))
            })
            .transpose()?;
        match self {
            Self::Brats { enhancing_label } => {
                let targets = brats_targets::<B>(labels, batch, dims, *enhancing_label, &device)?;
                deep_supervision_loss(outputs, &targets, |output, targets| {
                    weighted_sigmoid_dice_bce(output, targets, weights.clone())
                })
            }
            Self::Classes { labels: values } => {
                let indices = self.class_indices(labels, values)?;
                check_voxels(indices.len(), shape)?;
                let classes: Tensor<B, 4, Int> =
                    Tensor::from_data(TensorData::new(indices, shape), &device);
                let mut total: Option<Tensor<B, 1>> = None;
                for (index, output) in outputs.iter().enumerate() {
                    let loss =
                        weighted_softmax_dice_ce(output.clone(), classes.clone(), weights.clone())
                            .map_err(|err| {
                                err.with_context(format!("deep supervision output {index}"))
                            })?;
                    total = Some(total.map_or(loss.clone(), |sum| sum + loss));
                }
                total.ok_or_else(|| Error::new(CONTEXT, "the model gave no output"))
            }
        }
    }

    /// Class index of every voxel; an error naming the first label value outside the scheme.
    fn class_indices(&self, labels: &[u8], values: &[u8]) -> Result<Vec<i64>> {
        let mut index_of = [-1i64; 256];
        for (index, &value) in values.iter().enumerate() {
            index_of[value as usize] = index as i64;
        }
        labels
            .iter()
            .map(|&label| match index_of[label as usize] {
                -1 => Err(Error::new(
                    CONTEXT,
                    format!("label value {label} is not one of the classes {values:?}"),
                )),
                index => Ok(index),
            })
            .collect()
    }

    /// Per-channel probabilities of logits `[N, C, z, y, x]` (sigmoid or softmax over C).
    pub fn probabilities<B: Backend>(&self, logits: Tensor<B, 5>) -> Tensor<B, 5> {
        match self {
            Self::Brats { .. } => sigmoid(logits),
            Self::Classes { .. } => softmax(logits, 1),
        }
    }

    /// The label map of one case from its probabilities, channel-major (`channels` blocks of
    /// `voxels` values, x fastest within a block, i.e. a `[C, z, y, x]` tensor's data).
    pub fn decode(&self, probabilities: &[f32], voxels: usize) -> Result<Vec<u8>> {
        let channels = self.out_channels();
        if voxels == 0 || probabilities.len() != channels * voxels {
            return Err(Error::new(
                CONTEXT,
                format!(
                    "{} probabilities for {channels} channels of {voxels} voxels",
                    probabilities.len()
                ),
            ));
        }
        let channel = |index: usize| &probabilities[index * voxels..(index + 1) * voxels];
        Ok(match self {
            Self::Brats { enhancing_label } => {
                let (core, whole, enhancing) = (channel(0), channel(1), channel(2));
                (0..voxels)
                    .map(|voxel| {
                        if enhancing[voxel] >= SIGMOID_THRESHOLD {
                            *enhancing_label
                        } else if core[voxel] >= SIGMOID_THRESHOLD {
                            1
                        } else if whole[voxel] >= SIGMOID_THRESHOLD {
                            2
                        } else {
                            0
                        }
                    })
                    .collect()
            }
            Self::Classes { labels } => (0..voxels)
                .map(|voxel| {
                    let best = (1..channels).fold(0, |best, class| {
                        match channel(class)[voxel] > channel(best)[voxel] {
                            true => class,
                            false => best,
                        }
                    });
                    labels[best]
                })
                .collect(),
        })
    }

    /// Dice and HD95 of a predicted label map against the truth for every region of
    /// [`region_names`](Self::region_names) (empty truth: Dice 1 if the prediction is empty too,
    /// else 0; HD95 `None` when undefined).
    pub fn score(
        &self,
        prediction: &[u8],
        truth: &[u8],
        dims: [usize; 3],
        spacing_mm: [f64; 3],
    ) -> Result<Vec<RegionScores>> {
        match self {
            Self::Brats { enhancing_label } => {
                Ok(score_brats(prediction, truth, dims, spacing_mm, *enhancing_label)?.to_vec())
            }
            Self::Classes { labels } => labels[1..]
                .iter()
                .map(|&label| {
                    let predicted: Vec<bool> = prediction.iter().map(|&v| v == label).collect();
                    let expected: Vec<bool> = truth.iter().map(|&v| v == label).collect();
                    Ok(RegionScores {
                        dice: dice(&predicted, &expected)?,
                        hd95: hd95(&predicted, &expected, dims, spacing_mm)?,
                    })
                })
                .collect(),
        }
    }
}

fn check_voxels(count: usize, shape: [usize; 4]) -> Result<()> {
    let expected = shape.iter().product::<usize>();
    if count != expected || expected == 0 {
        return Err(Error::new(
            CONTEXT,
            format!("{count} labels for a batch of shape {shape:?}"),
        ));
    }
    Ok(())
}

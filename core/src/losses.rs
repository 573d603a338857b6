//! Segmentation losses of the downstream fine-tuning, backend-generic.
//!
//! The BraTS loss follows the official BrainMVP downstream loss (`EDiceLoss.forward` with
//! `is_train=True` in `Downstream/loss/dice.py`): for every output channel `c`, after a sigmoid,
//!
//! `dice_c = 1 − (2·Σ p·t + 1) / (Σ p² + Σ t² + 1)` and `bce_c = mean(BCE(p, t))`,
//!
//! where the sums and the mean run over the **whole batch and all voxels of that channel**
//! (the official code slices `inputs[:, i, ...]`, so the batch is included, not per sample),
//! and the loss is `(0.7·Σ_c dice_c + 0.3·Σ_c bce_c) / C`: the channel terms are averaged.
//! The BCE is computed from the logits in the numerically stable form
//! `max(x, 0) − x·t + ln(1 + e^−|x|)`; PyTorch's `BCELoss(sigmoid(x))` equals it except that it
//! clamps `ln p` at −100, which only matters for logits beyond ±100.
//!
//! The softmax variant (tissue classes, atlas regions) uses the same form with softmax
//! probabilities against one-hot labels: `0.7·mean_c dice_c + 0.3·CE`, CE being the mean over
//! voxels of `−ln softmax(x)[label]` (one term, as cross-entropy already covers every class).
//!
//! Deep supervision sums the loss over the outputs (the finest output and the up-sampled
//! auxiliary heads) with equal weights, as the official `train_epoch` in
//! `Downstream/trainer.py` (`loss += loss_func(preds[p], labels, is_train=True)`). Its optional
//! `0.1·MSE` feature term of the `use_cl` mode is not part of these losses.

use burn::tensor::activation::{log_softmax, sigmoid, softmax};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};

use crate::metrics::BratsRegion;
use crate::{Error, Result};

/// Weight of the Dice term.
pub const DICE_WEIGHT: f64 = 0.7;
/// Weight of the (binary) cross-entropy term.
pub const CROSS_ENTROPY_WEIGHT: f64 = 0.3;
/// The smoothing constant added to the numerator and the denominator of the soft Dice.
pub const DICE_SMOOTH: f64 = 1.0;

/// `Σ values` or, with voxel weights (broadcast over the channel axis), `Σ w·values`.
fn weighted_sum<B: Backend, const D: usize>(
    values: Tensor<B, D>,
    weights: Option<&Tensor<B, D>>,
) -> Tensor<B, 1> {
    match weights {
        Some(weights) => values.mul(weights.clone()).sum(),
        None => values.sum(),
    }
}

/// The soft Dice term `1 − (2·Σ w·p·t + 1) / (Σ w·p² + Σ w·t² + 1)` of one channel, sums over
/// every element of `probabilities` and `targets` (batch included); `w` is 1 without weights.
fn soft_dice_term<B: Backend, const D: usize>(
    probabilities: Tensor<B, D>,
    targets: Tensor<B, D>,
    weights: Option<&Tensor<B, D>>,
) -> Tensor<B, 1> {
    let intersection = weighted_sum(probabilities.clone().mul(targets.clone()), weights);
    let denominator = weighted_sum(probabilities.powi_scalar(2), weights)
        + weighted_sum(targets.powi_scalar(2), weights);
    let dice = intersection
        .mul_scalar(2.0)
        .add_scalar(DICE_SMOOTH)
        .div(denominator.add_scalar(DICE_SMOOTH));
    dice.neg().add_scalar(1.0)
}

/// Mean binary cross-entropy between `sigmoid(logits)` and `targets`, from the logits; with
/// weights the weighted mean `Σ w·bce / Σ w` (0 when every weight is 0).
fn bce_with_logits<B: Backend, const D: usize>(
    logits: Tensor<B, D>,
    targets: Tensor<B, D>,
    weights: Option<&Tensor<B, D>>,
) -> Tensor<B, 1> {
    let positive_part = logits.clone().clamp_min(0.0);
    let softplus_tail = logits.clone().abs().neg().exp().log1p();
    let terms = positive_part - logits.mul(targets) + softplus_tail;
    match weights {
        Some(weights) => {
            let total = weights.clone().sum().clamp_min(f32::MIN_POSITIVE);
            terms.mul(weights.clone()).sum().div(total)
        }
        None => terms.mean(),
    }
}

fn check_same_shape(logits: [usize; 5], targets: [usize; 5], what: &str) -> Result<()> {
    if logits != targets {
        return Err(Error::new(
            what,
            format!("logits have shape {logits:?} but targets have shape {targets:?}"),
        ));
    }
    if logits.contains(&0) {
        return Err(Error::new(
            what,
            format!("empty tensor of shape {logits:?}"),
        ));
    }
    Ok(())
}

/// The official BraTS downstream loss: per channel after a sigmoid,
/// `0.7·(1 − (2I+1)/(Σp²+Σt²+1)) + 0.3·BCE`, averaged over the channels (see the module doc).
///
/// `logits` and `targets` are `[batch, channels, z, y, x]`; targets are 0/1 (e.g. from
/// [`brats_targets`]). Returns a one-element tensor; an error when the shapes differ or are empty.
pub fn sigmoid_dice_bce<B: Backend>(
    logits: Tensor<B, 5>,
    targets: Tensor<B, 5>,
) -> Result<Tensor<B, 1>> {
    weighted_sigmoid_dice_bce(logits, targets, None)
}

/// [`sigmoid_dice_bce`] with a weight per voxel, `weights` `[batch, 1, z, y, x]` (the same for
/// every channel): every sum of the Dice term and the BCE's mean are weighted (`Σ w·…`, the BCE
/// divided by `Σ w`). Weights of 1 give [`sigmoid_dice_bce`]; voxels of weight 0 do not count.
pub fn weighted_sigmoid_dice_bce<B: Backend>(
    logits: Tensor<B, 5>,
    targets: Tensor<B, 5>,
    weights: Option<Tensor<B, 5>>,
) -> Result<Tensor<B, 1>> {
    let shape = logits.dims();
    check_same_shape(shape, targets.dims(), "sigmoid Dice+BCE loss")?;
    if let Some(weights) = &weights {
        let expected = [shape[0], 1, shape[2], shape[3], shape[4]];
        check_same_shape(expected, weights.dims(), "sigmoid Dice+BCE loss weights")?;
    }
    let channels = shape[1];
    let probabilities = sigmoid(logits.clone());
    let mut total: Option<Tensor<B, 1>> = None;
    for channel in 0..channels {
        let channel_logits = logits.clone().narrow(1, channel, 1);
        let channel_probabilities = probabilities.clone().narrow(1, channel, 1);
        let channel_targets = targets.clone().narrow(1, channel, 1);
        let dice = soft_dice_term(
            channel_probabilities,
            channel_targets.clone(),
            weights.as_ref(),
        );
        let bce = bce_with_logits(channel_logits, channel_targets, weights.as_ref());
        let term = dice.mul_scalar(DICE_WEIGHT) + bce.mul_scalar(CROSS_ENTROPY_WEIGHT);
        total = Some(match total {
            Some(sum) => sum + term,
            None => term,
        });
    }
    let total = total.ok_or_else(|| Error::new("sigmoid Dice+BCE loss", "no channels"))?;
    Ok(total.div_scalar(channels as f64))
}

/// The softmax/one-hot variant for other label sets:
/// `0.7·mean_c(1 − (2I_c+1)/(Σp_c²+Σt_c²+1)) + 0.3·CE`.
///
/// `logits` are `[batch, classes, z, y, x]`, `labels` are class indices `[batch, z, y, x]`.
/// The class count is the logits' channel count; a label outside `0..classes` has an all-zero
/// one-hot row (it only contributes to the Dice denominators through the predictions), so
/// validate labels beforehand. Sums run over the batch as in [`sigmoid_dice_bce`].
pub fn softmax_dice_ce<B: Backend>(
    logits: Tensor<B, 5>,
    labels: Tensor<B, 4, Int>,
) -> Result<Tensor<B, 1>> {
    weighted_softmax_dice_ce(logits, labels, None)
}

/// [`softmax_dice_ce`] with a weight per voxel, `weights` `[batch, 1, z, y, x]`: the Dice sums
/// are weighted and the cross-entropy is `Σ w·(−ln p) / Σ w`.
pub fn weighted_softmax_dice_ce<B: Backend>(
    logits: Tensor<B, 5>,
    labels: Tensor<B, 4, Int>,
    weights: Option<Tensor<B, 5>>,
) -> Result<Tensor<B, 1>> {
    let shape = logits.dims();
    let [batch, classes, depth, height, width] = shape;
    let expected = [batch, 1, depth, height, width];
    let labels = labels.unsqueeze_dim::<5>(1);
    check_same_shape(expected, labels.dims(), "softmax Dice+CE loss")?;
    if let Some(weights) = &weights {
        check_same_shape(expected, weights.dims(), "softmax Dice+CE loss weights")?;
    }
    let one_hot = one_hot_channels(labels, classes);
    let probabilities = softmax(logits.clone(), 1);
    let mut dice_sum: Option<Tensor<B, 1>> = None;
    for class in 0..classes {
        let dice = soft_dice_term(
            probabilities.clone().narrow(1, class, 1),
            one_hot.clone().narrow(1, class, 1),
            weights.as_ref(),
        );
        dice_sum = Some(match dice_sum {
            Some(sum) => sum + dice,
            None => dice,
        });
    }
    let dice_sum = dice_sum.ok_or_else(|| Error::new("softmax Dice+CE loss", "no classes"))?;
    let log_likelihood = log_softmax(logits, 1).mul(one_hot);
    let cross_entropy = match &weights {
        Some(weights) => {
            let total = weights.clone().sum().clamp_min(f32::MIN_POSITIVE);
            weighted_sum(log_likelihood.sum_dim(1), Some(weights))
                .neg()
                .div(total)
        }
        None => {
            let voxels = (batch * depth * height * width) as f64;
            log_likelihood.sum().neg().div_scalar(voxels)
        }
    };
    Ok(dice_sum.mul_scalar(DICE_WEIGHT / classes as f64)
        + cross_entropy.mul_scalar(CROSS_ENTROPY_WEIGHT))
}

/// One-hot float channels `[batch, classes, z, y, x]` of labels `[batch, 1, z, y, x]`.
fn one_hot_channels<B: Backend>(labels: Tensor<B, 5, Int>, classes: usize) -> Tensor<B, 5> {
    let channels = (0..classes)
        .map(|class| labels.clone().equal_elem(class as i64).float())
        .collect::<Vec<_>>();
    Tensor::cat(channels, 1)
}

/// A loss summed over deep-supervision outputs: `Σ_k loss_fn(outputs[k], targets)`.
///
/// Every output must already have the targets' shape (the auxiliary heads are up-sampled by
/// the model). An error when `outputs` is empty or when `loss_fn` fails.
pub fn deep_supervision_loss<B, F>(
    outputs: &[Tensor<B, 5>],
    targets: &Tensor<B, 5>,
    mut loss_fn: F,
) -> Result<Tensor<B, 1>>
where
    B: Backend,
    F: FnMut(Tensor<B, 5>, Tensor<B, 5>) -> Result<Tensor<B, 1>>,
{
    let mut total: Option<Tensor<B, 1>> = None;
    for (index, output) in outputs.iter().enumerate() {
        let loss = loss_fn(output.clone(), targets.clone())
            .map_err(|err| err.with_context(format!("deep supervision output {index}")))?;
        total = Some(match total {
            Some(sum) => sum + loss,
            None => loss,
        });
    }
    total.ok_or_else(|| Error::new("deep supervision loss", "no outputs"))
}

/// The three BraTS channel targets `[batch, 3, z, y, x]` in the order of
/// [`BratsRegion::ALL`]: TC = {1, ET}, WT = {1, 2, ET}, ET = {ET}, as 0/1 floats.
///
/// `labels` holds `batch` label maps of `dims = [x, y, z]` voxels each, one after the other, x
/// fastest (the [`crate::Volume`] layout). `enhancing_label` is 4 (BraTS 2021) or 3 (BraTS 2023;
/// see [`crate::metrics::detect_enhancing_label`]). An error when the length does not match.
pub fn brats_targets<B: Backend>(
    labels: &[u8],
    batch: usize,
    dims: [usize; 3],
    enhancing_label: u8,
    device: &B::Device,
) -> Result<Tensor<B, 5>> {
    let voxels = dims
        .iter()
        .try_fold(1usize, |product, &extent| product.checked_mul(extent))
        .and_then(|per_case| per_case.checked_mul(batch))
        .ok_or_else(|| Error::new("BraTS targets", format!("size overflow for {dims:?}")))?;
    if voxels != labels.len() || voxels == 0 {
        return Err(Error::new(
            "BraTS targets",
            format!(
                "{} labels for {batch} case(s) of {dims:?} voxels (expected {voxels}, non-empty)",
                labels.len()
            ),
        ));
    }
    let per_case = voxels / batch;
    let mut values = Vec::with_capacity(voxels * BratsRegion::ALL.len());
    for case in labels.chunks_exact(per_case) {
        for region in BratsRegion::ALL {
            values.extend(
                case.iter()
                    .map(|&label| f32::from(u8::from(region.contains(label, enhancing_label)))),
            );
        }
    }
    let shape = [batch, BratsRegion::ALL.len(), dims[2], dims[1], dims[0]];
    Ok(Tensor::from_data(TensorData::new(values, shape), device))
}

//! Modality-aware contrastive loss, one of the BrainMVP proxy tasks.
//!
//! The deepest feature map of each of the two views (`[N, C, D, H, W]`, 512·6³ for the
//! UniFormer-S at 96³) is flattened per sample, each row is L2-normalised, and the logits
//! `⟨z_B,i, z_A,j⟩ / τ` form an `[N, N]` matrix whose diagonal holds the positive pairs; the
//! other samples of the batch are the negatives.
//!
//! Following the official `Contrast_Loss` (`losses/loss.py` of shaohao011/BrainMVP):
//! - rows are normalised as `torch.nn.functional.normalize` does, `x / max(‖x‖₂, 1e-12)`;
//! - the loss is the **mean** of the two directions, `(CE(logits, I) + CE(logitsᵀ, I)) / 2`,
//!   each cross-entropy itself averaged over the batch.
//!
//! The temperature defaults to 1.0, as this project was asked to (the official class default is
//! 0.1; the training script passes the value explicitly).

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

/// Smallest norm used as divisor when normalising a row (as `F.normalize`'s default `eps`).
pub const NORM_EPS: f64 = 1e-12;

crate::config! {
    /// Settings of the contrastive proxy task.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct ContrastiveConfig {
        /// Temperature τ dividing the cosine-similarity logits.
        pub temperature: f64 = 1.0,
    }
}

impl ContrastiveConfig {
    /// The default config (as burn's `Config::new`).
    pub fn new() -> Self {
        Self::default()
    }
}

impl ContrastiveConfig {
    /// The loss of `view_a` against `view_b` at this configuration's temperature.
    pub fn loss<B: Backend>(&self, view_a: Tensor<B, 5>, view_b: Tensor<B, 5>) -> Tensor<B, 1> {
        contrastive_loss(view_a, view_b, self.temperature)
    }
}

/// Flattens a feature map `[N, C, D, H, W]` to `[N, C·D·H·W]` and L2-normalises every row,
/// dividing by `max(‖row‖₂, NORM_EPS)` so that an all-zero row stays zero instead of NaN.
pub fn flatten_normalised<B: Backend>(features: Tensor<B, 5>) -> Tensor<B, 2> {
    let [samples, channels, depth, height, width] = features.dims();
    let rows = features.reshape([samples, channels * depth * height * width]);
    let norms = (rows.clone() * rows.clone())
        .sum_dim(1)
        .sqrt()
        .clamp_min(NORM_EPS);
    rows / norms
}

/// Mean over rows of the cross-entropy of each row of `logits` against its diagonal entry.
fn diagonal_cross_entropy<B: Backend>(logits: Tensor<B, 2>) -> Tensor<B, 1> {
    shifted_diagonal_cross_entropy(logits, 0)
}

/// Mean over rows of the cross-entropy of row `i` of `logits` against column `offset + i`.
fn shifted_diagonal_cross_entropy<B: Backend>(logits: Tensor<B, 2>, offset: usize) -> Tensor<B, 1> {
    let [samples, _] = logits.dims();
    let device = logits.device();
    let columns = offset as i64..(offset + samples) as i64;
    let targets = Tensor::<B, 1, Int>::arange(columns, &device).reshape([samples, 1]);
    let log_probabilities = log_softmax(logits, 1);
    log_probabilities.gather(1, targets).mean().neg()
}

/// Where the negatives of other devices come from: `gather(rows)` returns the `[n, d]` rows of
/// every device stacked in rank order (`[n·P, d]`, this device's own rows keeping their graph) and
/// the index of this device's first row (`rank·n`).
pub trait NegativeGather<B: Backend> {
    /// Every device's rows and this device's offset among them.
    fn gather(&self, rows: Tensor<B, 2>) -> crate::Result<(Tensor<B, 2>, usize)>;
}

/// [`contrastive_loss`] with the samples of every device as negatives: the local rows of view B
/// against the gathered rows of view A (positive at `offset + i`), and the local rows of view A
/// against the gathered rows of view B, averaged. With one device it equals [`contrastive_loss`].
pub fn contrastive_loss_gathered<B: Backend>(
    view_a: Tensor<B, 5>,
    view_b: Tensor<B, 5>,
    temperature: f64,
    negatives: &dyn NegativeGather<B>,
) -> crate::Result<Tensor<B, 1>> {
    if view_a.dims() != view_b.dims() {
        return Err(crate::Error::new(
            "contrastive loss",
            "the two views must have the same shape",
        ));
    }
    let rows_a = flatten_normalised(view_a);
    let rows_b = flatten_normalised(view_b);
    let (all_a, offset) = negatives.gather(rows_a.clone())?;
    let (all_b, _) = negatives.gather(rows_b.clone())?;
    let b_to_a =
        shifted_diagonal_cross_entropy(rows_b.matmul(all_a.transpose()) / temperature, offset);
    let a_to_b =
        shifted_diagonal_cross_entropy(rows_a.matmul(all_b.transpose()) / temperature, offset);
    Ok((b_to_a + a_to_b) / 2.0)
}

/// Symmetric InfoNCE loss between two views' feature maps (`[N, C, D, H, W]` each, same shape).
///
/// `logits = z_b · z_aᵀ / temperature` (`[N, N]`, row `i` = sample `i` of view B against every
/// sample of view A); targets are the diagonal; the result (shape `[1]`) is the mean of the
/// row-wise and the column-wise cross-entropies, as the official code. A batch of one sample
/// gives exactly 0. Differentiable on any autodiff backend.
///
/// # Panics
/// If the two views differ in shape (a programming error: both come from the same encoder).
pub fn contrastive_loss<B: Backend>(
    view_a: Tensor<B, 5>,
    view_b: Tensor<B, 5>,
    temperature: f64,
) -> Tensor<B, 1> {
    assert_eq!(
        view_a.dims(),
        view_b.dims(),
        "contrastive_loss: the two views must have the same shape"
    );
    let rows_a = flatten_normalised(view_a);
    let rows_b = flatten_normalised(view_b);
    let logits = rows_b.matmul(rows_a.transpose()) / temperature;
    let b_to_a = diagonal_cross_entropy(logits.clone());
    let a_to_b = diagonal_cross_entropy(logits.transpose());
    (b_to_a + a_to_b) / 2.0
}

//! Multi-head self-attention `softmax(Q·Kᵀ/√d)·V` straight from the joint `qkv` projection
//! (`[N, L, 3C]`, laid out `[3][heads][head_dim]` along the last axis, as the UniFormer's
//! `Attention` splits it) to the mixed tokens `[N, L, C]`.
//!
//! burn composes attention from a batched matmul, a softmax and another matmul, and its
//! autodiff keeps the `[N, heads, L, L]` probabilities for the backward pass (358 MB per block
//! for six 96³ crops at stage 3, eight blocks). Here each (sample, head) is one task that goes
//! through blocks of query rows: scores, softmax and output for a block at a time, keeping only
//! the output and one log-sum-exp per row. The backward pass recomputes each block's
//! probabilities from the log-sum-exp (as FlashAttention does). The `Q`, `K`, `V` matrices are
//! strided views into `qkv`: no head is copied out.

use super::activation::exp_shifted;
use super::gemm::{gemm, MatMut, MatRef};
use super::parallel::{self, SharedOut};

/// Query rows per block.
const QUERY_BLOCK: usize = 64;

/// Sizes of one attention: `[N, L, 3C]` in, `[N, L, C]` out, `heads · head_dim = C`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    /// Samples.
    pub batch: usize,
    /// Tokens.
    pub tokens: usize,
    /// Heads.
    pub heads: usize,
    /// Channels per head.
    pub head_dim: usize,
}

impl AttentionShape {
    fn channels(&self) -> usize {
        self.heads * self.head_dim
    }

    fn scale(&self) -> f32 {
        (self.head_dim as f32).powf(-0.5)
    }

    /// `(sample, head)` tasks.
    fn tasks(&self) -> Vec<(usize, usize)> {
        (0..self.batch)
            .flat_map(|sample| (0..self.heads).map(move |head| (sample, head)))
            .collect()
    }

    /// The `L × d` matrix `part` (0 = Q, 1 = K, 2 = V) of `(sample, head)` inside `qkv`.
    fn qkv_view<'a>(
        &self,
        qkv: &'a [f32],
        (sample, head): (usize, usize),
        part: usize,
        rows: (usize, usize),
    ) -> MatRef<'a> {
        let width = 3 * self.channels();
        let offset = sample * self.tokens * width
            + part * self.channels()
            + head * self.head_dim
            + rows.0 * width;
        MatRef::new(qkv, offset, [rows.1, self.head_dim], [width, 1])
    }

    /// The `rows × d` block of `(sample, head)` inside a `[N, L, C]` tensor.
    fn token_view<'a>(
        &self,
        tokens: &'a [f32],
        (sample, head): (usize, usize),
        rows: (usize, usize),
    ) -> MatRef<'a> {
        let offset = (sample * self.tokens + rows.0) * self.channels() + head * self.head_dim;
        MatRef::new(
            tokens,
            offset,
            [rows.1, self.head_dim],
            [self.channels(), 1],
        )
    }

    /// Query blocks `(first row, rows)`.
    fn blocks(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.tokens)
            .step_by(QUERY_BLOCK)
            .map(|first| (first, QUERY_BLOCK.min(self.tokens - first)))
    }
}

/// Writes `block` (`rows × d`, row-major) into rows `[first, first + rows)` of head `head` of
/// sample `sample` of a `[N, L, width]` buffer, at column `column`.
fn write_rows(
    target: &SharedOut,
    block: &[f32],
    shape: &AttentionShape,
    (sample, width, column): (usize, usize, usize),
    (first, rows): (usize, usize),
) {
    for row in 0..rows {
        let start = (sample * shape.tokens + first + row) * width + column;
        // SAFETY: each task owns its head's columns of every row it writes.
        let dst = unsafe { target.part(start, shape.head_dim) };
        dst.copy_from_slice(&block[row * shape.head_dim..][..shape.head_dim]);
    }
}

/// The scores of one query block, turned into probabilities in place: `e^(s·scale − lse)` with
/// the log-sum-exp of each row (computed here when `lse` is empty, else given).
fn block_probabilities(
    scores: &mut [f32],
    tokens: usize,
    scale: f32,
    lse: &mut [f32],
    given: bool,
) {
    for (row, values) in scores.chunks_exact_mut(tokens).enumerate() {
        values.iter_mut().for_each(|v| *v *= scale);
        if given {
            exp_shifted(values, lse[row]);
        } else {
            let max = values.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            let sum = exp_shifted(values, max);
            values.iter_mut().for_each(|v| *v /= sum);
            lse[row] = max + sum.ln();
        }
    }
}

/// `(output [N, L, C], log-sum-exp [N, heads, L])`.
pub fn forward(shape: &AttentionShape, qkv: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (tokens, channels) = (shape.tokens, shape.channels());
    let mut out = vec![0.0f32; shape.batch * tokens * channels];
    let mut lse = vec![0.0f32; shape.batch * shape.heads * tokens];
    let (target, lse_target) = (SharedOut::new(&mut out), SharedOut::new(&mut lse));
    parallel::for_each(shape.tasks(), |task| {
        let mut scores = vec![0.0f32; QUERY_BLOCK * tokens];
        let mut block = vec![0.0f32; QUERY_BLOCK * shape.head_dim];
        // SAFETY: each task owns the log-sum-exp row of its (sample, head).
        let task_lse = unsafe { lse_target.part((task.0 * shape.heads + task.1) * tokens, tokens) };
        for (first, rows) in shape.blocks() {
            let scores = &mut scores[..rows * tokens];
            let query = shape.qkv_view(qkv, task, 0, (first, rows));
            let keys = shape.qkv_view(qkv, task, 1, (0, tokens));
            gemm(
                MatMut::rows(scores, rows, tokens),
                query,
                keys.t(),
                false,
                false,
            );
            block_probabilities(
                scores,
                tokens,
                shape.scale(),
                &mut task_lse[first..first + rows],
                false,
            );
            let values = shape.qkv_view(qkv, task, 2, (0, tokens));
            let block = &mut block[..rows * shape.head_dim];
            gemm(
                MatMut::rows(block, rows, shape.head_dim),
                MatRef::rows(scores, rows, tokens),
                values,
                false,
                false,
            );
            write_rows(
                &target,
                block,
                shape,
                (task.0, channels, task.1 * shape.head_dim),
                (first, rows),
            );
        }
    });
    (out, lse)
}

/// The gradient of `qkv` (`[N, L, 3C]`) from the output gradient, the output and the
/// log-sum-exp of [`forward`].
pub fn backward(
    shape: &AttentionShape,
    qkv: &[f32],
    out: &[f32],
    lse: &[f32],
    grad: &[f32],
) -> Vec<f32> {
    let (tokens, channels, dim) = (shape.tokens, shape.channels(), shape.head_dim);
    let mut qkv_grad = vec![0.0f32; qkv.len()];
    let target = SharedOut::new(&mut qkv_grad);
    parallel::for_each(shape.tasks(), |task| {
        let task_lse = &lse[(task.0 * shape.heads + task.1) * tokens..][..tokens];
        // D_i = Σ_j dO_ij · O_ij for every query row.
        let grad_dot: Vec<f32> = (0..tokens)
            .map(|row| {
                let at = (task.0 * tokens + row) * channels + task.1 * dim;
                out[at..at + dim]
                    .iter()
                    .zip(&grad[at..at + dim])
                    .map(|(o, g)| o * g)
                    .sum()
            })
            .collect();
        let (mut key_grad, mut value_grad) =
            (vec![0.0f32; tokens * dim], vec![0.0f32; tokens * dim]);
        let mut probabilities = vec![0.0f32; QUERY_BLOCK * tokens];
        let mut score_grad = vec![0.0f32; QUERY_BLOCK * tokens];
        let mut query_grad = vec![0.0f32; QUERY_BLOCK * dim];
        let keys = shape.qkv_view(qkv, task, 1, (0, tokens));
        let values = shape.qkv_view(qkv, task, 2, (0, tokens));
        for (first, rows) in shape.blocks() {
            let query = shape.qkv_view(qkv, task, 0, (first, rows));
            let block_grad = shape.token_view(grad, task, (first, rows));
            let p = &mut probabilities[..rows * tokens];
            gemm(MatMut::rows(p, rows, tokens), query, keys.t(), false, false);
            let mut block_lse = task_lse[first..first + rows].to_vec();
            block_probabilities(p, tokens, shape.scale(), &mut block_lse, true);
            // dV += Pᵀ·dO; dP = dO·Vᵀ; dS = P ∘ (dP − D)·scale; dQ = dS·K; dK += dSᵀ·Q.
            gemm(
                MatMut::rows(&mut value_grad, tokens, dim),
                MatRef::rows(p, rows, tokens).t(),
                block_grad,
                true,
                false,
            );
            let ds = &mut score_grad[..rows * tokens];
            gemm(
                MatMut::rows(ds, rows, tokens),
                block_grad,
                values.t(),
                false,
                false,
            );
            for (row, (ds_row, p_row)) in ds
                .chunks_exact_mut(tokens)
                .zip(p.chunks_exact(tokens))
                .enumerate()
            {
                let d = grad_dot[first + row];
                ds_row
                    .iter_mut()
                    .zip(p_row)
                    .for_each(|(s, &pv)| *s = pv * (*s - d) * shape.scale());
            }
            let dq = &mut query_grad[..rows * dim];
            gemm(
                MatMut::rows(dq, rows, dim),
                MatRef::rows(ds, rows, tokens),
                keys,
                false,
                false,
            );
            write_rows(
                &target,
                dq,
                shape,
                (task.0, 3 * channels, task.1 * dim),
                (first, rows),
            );
            gemm(
                MatMut::rows(&mut key_grad, tokens, dim),
                MatRef::rows(ds, rows, tokens).t(),
                query,
                true,
                false,
            );
        }
        let all = (0, tokens);
        write_rows(
            &target,
            &key_grad,
            shape,
            (task.0, 3 * channels, channels + task.1 * dim),
            all,
        );
        write_rows(
            &target,
            &value_grad,
            shape,
            (task.0, 3 * channels, 2 * channels + task.1 * dim),
            all,
        );
    });
    qkv_grad
}

//! Normalisations over `[N, C, V]` (`V` voxels per channel), in one or two passes over memory:
//!
//! - instance normalisation without affine parameters (MONAI's `UnetResBlock` norms): per
//!   sample and channel, over its voxels. burn runs it as a group norm with one group per
//!   channel, in several passes with temporaries;
//! - layer normalisation over the channels of each voxel (the patch embeddings' LayerNorm).
//!   Through burn it needs the channels last: two full transposed copies around the norm
//!   (0.85 s at `[1, 64, 96³]`).
//!
//! Both use the biased variance and `1/√(var + eps)`, as PyTorch and burn do. Statistics are
//! summed in `f64`.

use super::parallel::{self, SharedOut};

/// Voxels per block of the channel layer norm.
const VOXEL_BLOCK: usize = 512;

/// `(mean, 1/√(var + eps))` of `values`.
fn moments(values: &[f32], eps: f64) -> (f32, f32) {
    let count = values.len().max(1) as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / count;
    let var = values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / count;
    (mean as f32, (1.0 / (var + eps).sqrt()) as f32)
}

/// Instance normalisation of `x` (`[N·C, V]` rows of `volume` values).
pub fn instance_norm(x: &[f32], voxels: usize, eps: f64) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    let target = SharedOut::new(&mut out);
    parallel::for_each((0..x.len() / voxels.max(1)).collect(), |row| {
        let values = &x[row * voxels..][..voxels];
        let (mean, rstd) = moments(values, eps);
        // SAFETY: each task writes its own row.
        let dst = unsafe { target.part(row * voxels, voxels) };
        dst.iter_mut()
            .zip(values)
            .for_each(|(o, &v)| *o = (v - mean) * rstd);
    });
    out
}

/// The input gradient of [`instance_norm`]: `rstd·(g − mean(g) − x̂·mean(g·x̂))` per row.
pub fn instance_norm_backward(x: &[f32], grad: &[f32], voxels: usize, eps: f64) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    let target = SharedOut::new(&mut out);
    parallel::for_each((0..x.len() / voxels.max(1)).collect(), |row| {
        let values = &x[row * voxels..][..voxels];
        let grads = &grad[row * voxels..][..voxels];
        let (mean, rstd) = moments(values, eps);
        let normalised = |v: f32| (v - mean) * rstd;
        let count = voxels as f64;
        let grad_mean = grads.iter().map(|&g| g as f64).sum::<f64>() / count;
        let grad_dot = values
            .iter()
            .zip(grads)
            .map(|(&v, &g)| (g * normalised(v)) as f64)
            .sum::<f64>()
            / count;
        let (grad_mean, grad_dot) = (grad_mean as f32, grad_dot as f32);
        // SAFETY: each task writes its own row.
        let dst = unsafe { target.part(row * voxels, voxels) };
        for ((o, &v), &g) in dst.iter_mut().zip(values).zip(grads) {
            *o = rstd * (g - grad_mean - normalised(v) * grad_dot);
        }
    });
    out
}

/// Per voxel of one block: mean and `1/√(var + eps)` over the channels of `item` (`[C, V]`),
/// voxels `[start, start + len)`.
fn channel_moments(
    item: &[f32],
    channels: usize,
    voxels: usize,
    (start, len): (usize, usize),
    eps: f64,
) -> (Vec<f32>, Vec<f32>) {
    let mut sum = vec![0.0f64; len];
    for channel in 0..channels {
        let row = &item[channel * voxels + start..][..len];
        sum.iter_mut().zip(row).for_each(|(s, &v)| *s += v as f64);
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / channels as f64).collect();
    let mut squares = vec![0.0f64; len];
    for channel in 0..channels {
        let row = &item[channel * voxels + start..][..len];
        for ((s, &v), m) in squares.iter_mut().zip(row).zip(&mean) {
            *s += (v as f64 - m).powi(2);
        }
    }
    let rstd = squares
        .iter()
        .map(|s| (1.0 / (s / channels as f64 + eps).sqrt()) as f32)
        .collect();
    (mean.into_iter().map(|m| m as f32).collect(), rstd)
}

/// Blocks `(sample, first voxel, voxels)` covering `[N, ·, V]`.
fn voxel_blocks(batch: usize, voxels: usize) -> Vec<(usize, usize, usize)> {
    (0..batch)
        .flat_map(|sample| {
            (0..voxels)
                .step_by(VOXEL_BLOCK)
                .map(move |start| (sample, start, VOXEL_BLOCK.min(voxels - start)))
        })
        .collect()
}

/// Layer normalisation over the channels of `x` (`[N, C, V]`), scaled by `gamma` and shifted by
/// `beta` (`[C]` each).
pub fn channel_layer_norm(
    x: &[f32],
    [batch, channels, voxels]: [usize; 3],
    gamma: &[f32],
    beta: Option<&[f32]>,
    eps: f64,
) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    let target = SharedOut::new(&mut out);
    let item_len = channels * voxels;
    parallel::for_each(voxel_blocks(batch, voxels), |(sample, start, len)| {
        let item = &x[sample * item_len..][..item_len];
        let (mean, rstd) = channel_moments(item, channels, voxels, (start, len), eps);
        for channel in 0..channels {
            let (scale, shift) = (gamma[channel], beta.map_or(0.0, |b| b[channel]));
            let row = &item[channel * voxels + start..][..len];
            // SAFETY: each task writes its own voxels of every channel of its sample.
            let dst = unsafe { target.part(sample * item_len + channel * voxels + start, len) };
            for (((o, &v), m), r) in dst.iter_mut().zip(row).zip(&mean).zip(&rstd) {
                *o = (v - m) * r * scale + shift;
            }
        }
    });
    out
}

/// Gradients of [`channel_layer_norm`]: `(input, gamma, beta)`.
pub fn channel_layer_norm_backward(
    x: &[f32],
    grad: &[f32],
    [batch, channels, voxels]: [usize; 3],
    gamma: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut input_grad = vec![0.0f32; x.len()];
    let target = SharedOut::new(&mut input_grad);
    let item_len = channels * voxels;
    let sums = parallel::sum(
        voxel_blocks(batch, voxels),
        2 * channels,
        |(sample, start, len), sums| {
            let item = &x[sample * item_len..][..item_len];
            let grad_item = &grad[sample * item_len..][..item_len];
            let (mean, rstd) = channel_moments(item, channels, voxels, (start, len), eps);
            let rows = |channel: usize| {
                let at = channel * voxels + start;
                (&item[at..at + len], &grad_item[at..at + len])
            };
            // Per voxel: a = mean_c(g·γ), b = mean_c(g·γ·x̂).
            let (mut a, mut b) = (vec![0.0f32; len], vec![0.0f32; len]);
            for channel in 0..channels {
                let (row, grad_row) = rows(channel);
                let (mut gamma_sum, mut beta_sum) = (0.0f64, 0.0f64);
                for i in 0..len {
                    let normalised = (row[i] - mean[i]) * rstd[i];
                    a[i] += grad_row[i] * gamma[channel];
                    b[i] += grad_row[i] * gamma[channel] * normalised;
                    gamma_sum += (grad_row[i] * normalised) as f64;
                    beta_sum += grad_row[i] as f64;
                }
                sums[channel] += gamma_sum as f32;
                sums[channels + channel] += beta_sum as f32;
            }
            for (channel, &scale) in gamma.iter().enumerate().take(channels) {
                let (row, grad_row) = rows(channel);
                // SAFETY: each task writes its own voxels of every channel of its sample.
                let dst = unsafe { target.part(sample * item_len + channel * voxels + start, len) };
                for i in 0..len {
                    let normalised = (row[i] - mean[i]) * rstd[i];
                    let scaled = grad_row[i] * scale;
                    dst[i] = rstd[i]
                        * (scaled - a[i] / channels as f32 - normalised * b[i] / channels as f32);
                }
            }
        },
    );
    let (gamma_grad, beta_grad) = sums.split_at(channels);
    (input_grad, gamma_grad.to_vec(), beta_grad.to_vec())
}

/// Per channel of `x` (`[N, C, V]`): mean and biased variance over samples and voxels.
fn batch_moments(x: &[f32], [batch, channels, voxels]: [usize; 3], channel: usize) -> (f64, f64) {
    let rows =
        || (0..batch).map(move |sample| &x[(sample * channels + channel) * voxels..][..voxels]);
    let count = (batch * voxels).max(1) as f64;
    let mean = rows().flatten().map(|&v| v as f64).sum::<f64>() / count;
    let var = rows()
        .flatten()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / count;
    (mean, var)
}

/// Batch normalisation of `x` (`[N, C, V]`) with the batch statistics, scaled by `gamma` and
/// shifted by `beta`: `(output, mean, biased variance)` (the statistics per channel, for the
/// running averages).
pub fn batch_norm(
    x: &[f32],
    dims: [usize; 3],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let [batch, channels, voxels] = dims;
    let mut out = vec![0.0f32; x.len()];
    let mut stats = vec![0.0f32; 2 * channels];
    let target = SharedOut::new(&mut out);
    let stats_target = SharedOut::new(&mut stats);
    parallel::for_each((0..channels).collect(), |channel| {
        let (mean, var) = batch_moments(x, dims, channel);
        let scale = (gamma[channel] as f64 / (var + eps).sqrt()) as f32;
        let shift = (beta[channel] as f64 - mean * scale as f64) as f32;
        for sample in 0..batch {
            let start = (sample * channels + channel) * voxels;
            // SAFETY: each task writes its own channel of every sample.
            let dst = unsafe { target.part(start, voxels) };
            dst.iter_mut()
                .zip(&x[start..start + voxels])
                .for_each(|(o, &v)| *o = v * scale + shift);
        }
        // SAFETY: each task writes its own channel's statistics.
        unsafe {
            stats_target.part(channel, 1)[0] = mean as f32;
            stats_target.part(channels + channel, 1)[0] = var as f32;
        }
    });
    let var = stats.split_off(channels);
    (out, stats, var)
}

/// Gradients of [`batch_norm`]: `(input, gamma, beta)`.
pub fn batch_norm_backward(
    x: &[f32],
    grad: &[f32],
    dims: [usize; 3],
    gamma: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let [batch, channels, voxels] = dims;
    let mut input_grad = vec![0.0f32; x.len()];
    let mut sums = vec![0.0f32; 2 * channels];
    let target = SharedOut::new(&mut input_grad);
    let sums_target = SharedOut::new(&mut sums);
    let count = (batch * voxels).max(1) as f64;
    parallel::for_each((0..channels).collect(), |channel| {
        let (mean, var) = batch_moments(x, dims, channel);
        let rstd = 1.0 / (var + eps).sqrt();
        let rows = |sample: usize| {
            (sample * channels + channel) * voxels..(sample * channels + channel + 1) * voxels
        };
        let (mut grad_sum, mut grad_dot) = (0.0f64, 0.0f64);
        for sample in 0..batch {
            for (&v, &g) in x[rows(sample)].iter().zip(&grad[rows(sample)]) {
                grad_sum += g as f64;
                grad_dot += g as f64 * (v as f64 - mean) * rstd;
            }
        }
        let scale = (gamma[channel] as f64 * rstd) as f32;
        let (grad_mean, dot_mean) = ((grad_sum / count) as f32, (grad_dot / count) as f32);
        let (mean, rstd) = (mean as f32, rstd as f32);
        for sample in 0..batch {
            // SAFETY: each task writes its own channel of every sample.
            let dst = unsafe { target.part(rows(sample).start, voxels) };
            for ((o, &v), &g) in dst
                .iter_mut()
                .zip(&x[rows(sample)])
                .zip(&grad[rows(sample)])
            {
                *o = scale * (g - grad_mean - (v - mean) * rstd * dot_mean);
            }
        }
        // SAFETY: each task writes its own channel's sums.
        unsafe {
            sums_target.part(channel, 1)[0] = grad_dot as f32;
            sums_target.part(channels + channel, 1)[0] = grad_sum as f32;
        }
    });
    let beta_grad = sums.split_off(channels);
    (input_grad, sums, beta_grad)
}

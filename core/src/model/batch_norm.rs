//! Batch normalisation with PyTorch's semantics (`nn.BatchNorm3d`), as the official UniFormer
//! uses it in its convolutional blocks and on its last stage.
//!
//! burn's `BatchNorm` updates the running variance with the *biased* batch variance; PyTorch
//! uses the unbiased one (`n / (n − 1)` times larger, `n` = batch × voxels per channel). The
//! golden test against the official code found the difference (a factor 2 on a 2-voxel stage-4
//! map; 1.0008 on UniFormer-S's 6³ × 6 map at 96³). The fields are burn's, in burn's order, so
//! records and `.bmvp` files written with burn's module load unchanged.

use burn::module::{Initializer, Module, Param, RunningState};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use std::cell::Cell;

use crate::kernels::batch_norm_training;

thread_local! {
    static RUNNING_STATISTICS_IN_TRAINING: Cell<bool> = const { Cell::new(false) };
}

/// Run `work` with every [`BatchNorm`] on this thread normalising with its running statistics
/// even on an autodiff backend, and leaving them unchanged (PyTorch's `eval()` BatchNorm inside a
/// training step): fine-tuning on a few crops of one case (teaching from corrections) then
/// cannot drag the statistics the whole model relies on towards those crops. Gradients still
/// reach γ, β and the input.
pub fn with_running_statistics<R>(work: impl FnOnce() -> R) -> R {
    let before = RUNNING_STATISTICS_IN_TRAINING.with(|flag| flag.replace(true));
    let result = work();
    RUNNING_STATISTICS_IN_TRAINING.with(|flag| flag.set(before));
    result
}

crate::config! {
    /// [`BatchNorm`] configuration (PyTorch's defaults: eps 1e-5, momentum 0.1).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct BatchNormConfig {
        /// Channels.
        pub num_features: usize = 64,
        /// Added to the variance before the square root.
        pub epsilon: f64 = 1e-5,
        /// Weight of the new batch statistics in the running averages.
        pub momentum: f64 = 0.1,
    }
}

impl BatchNormConfig {
    /// This config with `num_features` given and every other field at its default.
    pub fn new(num_features: usize) -> Self {
        Self {
            num_features,
            ..Self::default()
        }
    }
}

impl BatchNormConfig {
    /// γ = 1, β = 0, running mean 0 and variance 1, as PyTorch initialises them.
    pub fn init<B: Backend>(&self, device: &B::Device) -> BatchNorm<B> {
        let features = [self.num_features];
        BatchNorm {
            gamma: Initializer::Ones.init(features, device),
            beta: Initializer::Zeros.init(features, device),
            running_mean: RunningState::new(Tensor::zeros(features, device)),
            running_var: RunningState::new(Tensor::ones(features, device)),
            momentum: self.momentum,
            epsilon: self.epsilon,
        }
    }
}

/// Batch normalisation over `[N, C, ...]`: batch statistics (and running-average updates) on
/// an autodiff backend, the running statistics otherwise.
#[derive(Module, Debug)]
pub struct BatchNorm<B: Backend> {
    /// Scale γ.
    pub gamma: Param<Tensor<B, 1>>,
    /// Shift β.
    pub beta: Param<Tensor<B, 1>>,
    /// Running mean.
    pub running_mean: RunningState<Tensor<B, 1>>,
    /// Running (unbiased) variance.
    pub running_var: RunningState<Tensor<B, 1>>,
    /// Weight of the batch statistics in the running averages.
    pub momentum: f64,
    /// Added to the variance before the square root.
    pub epsilon: f64,
}

impl<B: Backend> BatchNorm<B> {
    /// Normalises `input` `[N, C, ...]` (rank ≥ 2) per channel.
    pub fn forward<const D: usize>(&self, input: Tensor<B, D>) -> Tensor<B, D> {
        let device = input.device();
        let channels = input.dims()[1];
        let mut channel_shape = [1; D];
        channel_shape[1] = channels;
        let frozen = RUNNING_STATISTICS_IN_TRAINING.with(Cell::get);
        if frozen || !B::ad_enabled(&device) {
            let mean = self.running_mean.value().to_device(&device);
            let var = self.running_var.value().to_device(&device);
            return self.normalise(
                input,
                mean.reshape(channel_shape),
                var.reshape(channel_shape),
            );
        }
        let per_channel: usize = input.dims().iter().skip(2).product::<usize>() * input.dims()[0];
        let unbiased = per_channel as f64 / (per_channel.max(2) - 1) as f64;
        let gamma = self.gamma.val();
        let input = match batch_norm_training(input, gamma, self.beta.val(), self.epsilon) {
            Ok((output, statistics)) => {
                self.update_running(statistics.mean, statistics.var.mul_scalar(unbiased));
                return output;
            }
            Err(input) => input,
        };
        let rows = |x: Tensor<B, D>| x.swap_dims(0, 1).reshape([channels, per_channel]);
        let mean = rows(input.clone()).mean_dim(1).reshape(channel_shape);
        let var = rows(input.clone().sub(mean.clone()).square())
            .mean_dim(1)
            .reshape(channel_shape);
        self.update_running(
            mean.clone().detach().reshape([channels]),
            var.clone()
                .detach()
                .reshape([channels])
                .mul_scalar(unbiased),
        );
        self.normalise(input, mean, var)
    }

    /// `running ← (1 − momentum)·running + momentum·batch` for the mean and the unbiased
    /// variance.
    fn update_running(&self, mean: Tensor<B, 1>, unbiased_var: Tensor<B, 1>) {
        for (running, batch) in [
            (&self.running_mean, mean),
            (&self.running_var, unbiased_var),
        ] {
            let old = running.value_sync().to_device(&batch.device());
            let new = batch.detach().mul_scalar(self.momentum);
            running.update(old.mul_scalar(1.0 - self.momentum).add(new).detach());
        }
    }

    /// `(input − mean) / √(var + eps) · γ + β`, applied as one scale and one shift per channel
    /// (two passes over the input instead of four).
    fn normalise<const D: usize>(
        &self,
        input: Tensor<B, D>,
        mean: Tensor<B, D>,
        var: Tensor<B, D>,
    ) -> Tensor<B, D> {
        let mut channel_shape = [1; D];
        channel_shape[1] = input.dims()[1];
        let scale = var
            .add_scalar(self.epsilon)
            .sqrt()
            .recip()
            .mul(self.gamma.val().reshape(channel_shape));
        let shift = self
            .beta
            .val()
            .reshape(channel_shape)
            .sub(mean.mul(scale.clone()));
        input.mul(scale).add(shift)
    }
}

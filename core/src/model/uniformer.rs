//! The UniFormer-S 3D encoder of BrainMVP: four stages (two convolutional, two self-attention),
//! each opened by a strided patch embedding, for a total stride of 16.
//!
//! The stage outputs (strides 2, 4, 8 and 16) feed the UNETR-style decoder. The input layout is
//! `[N, C, D, H, W]`; the official PyTorch model permutes its `[N, C, H, W, D]` input to this
//! layout itself, here the caller supplies it directly.

use super::batch_norm::{BatchNorm, BatchNormConfig};
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::cblock::CBlock;
use super::patch_embed::PatchEmbed;
use super::sablock::SABlock;
use crate::error::Error;

/// Total down-sampling factor of the encoder (four stride-2 patch embeddings).
pub const TOTAL_STRIDE: usize = 16;

/// Largest attention score tensor (`N · heads · L²` elements) a forward pass may need
/// before [`Uniformer::try_forward`] refuses the input (2³¹ f32 scores = 8 GiB).
pub const MAX_ATTENTION_SCORES: usize = 1 << 31;

crate::config! {
    /// Configuration of a [`Uniformer`] encoder.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct UniformerConfig {
        /// Number of input channels (modalities).
        pub in_channels: usize = 1,
        /// Number of blocks per stage (stages 1-2 convolutional, 3-4 self-attention).
        pub depths: [usize; 4] = [3, 4, 8, 3],
        /// Channels of each stage.
        pub widths: [usize; 4] = [64, 128, 320, 512],
        /// Channels per attention head (heads = width / head_dim in stages 3-4).
        pub head_dim: usize = 64,
        /// MLP hidden size as a multiple of the stage width.
        pub mlp_ratio: f64 = 4.0,
        /// Whether the qkv projection has a bias.
        pub qkv_bias: bool = true,
    }
}

impl UniformerConfig {
    /// This config with `in_channels` given and every other field at its default.
    pub fn new(in_channels: usize) -> Self {
        Self {
            in_channels,
            ..Self::default()
        }
    }
}

impl UniformerConfig {
    /// UniFormer-S, as pre-trained by BrainMVP: depths [3,4,8,3], widths [64,128,320,512],
    /// head_dim 64 (22,038,464 parameters with one input channel).
    pub fn small(in_channels: usize) -> Self {
        Self::new(in_channels)
    }

    /// A tiny variant for CPU tests and the browser: depths [1,1,1,1], widths [8,16,32,64],
    /// head_dim 8.
    pub fn tiny(in_channels: usize) -> Self {
        Self::new(in_channels)
            .with_depths([1, 1, 1, 1])
            .with_widths([8, 16, 32, 64])
            .with_head_dim(8)
    }

    /// Checks that the configuration describes a buildable model.
    pub fn validate(&self) -> crate::Result<()> {
        let fail = |cause: String| Err(Error::new("uniformer config", cause));
        if self.in_channels == 0 || self.widths.contains(&0) {
            return fail("channel counts must be positive".into());
        }
        if self.head_dim == 0 {
            return fail("head_dim must be positive".into());
        }
        for width in &self.widths[2..] {
            if width % self.head_dim != 0 {
                return fail(format!(
                    "attention width {width} is not a multiple of head_dim {}",
                    self.head_dim
                ));
            }
        }
        if !(self.mlp_ratio.is_finite() && self.mlp_ratio > 0.0 && self.mlp_ratio <= 64.0) {
            return fail(format!("mlp_ratio {} is not in (0, 64]", self.mlp_ratio));
        }
        Ok(())
    }

    /// Builds the encoder on `device` after [validating](Self::validate) the configuration.
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::Result<Uniformer<B>> {
        self.validate()?;
        let hidden = |width: usize| (width as f64 * self.mlp_ratio) as usize;
        let conv_stage = |stage: usize| -> Vec<CBlock<B>> {
            let width = self.widths[stage];
            (0..self.depths[stage])
                .map(|_| CBlock::new(width, hidden(width), device))
                .collect()
        };
        let attention_stage = |stage: usize| -> Vec<SABlock<B>> {
            let width = self.widths[stage];
            let heads = width / self.head_dim;
            (0..self.depths[stage])
                .map(|_| SABlock::new(width, heads, hidden(width), self.qkv_bias, device))
                .collect()
        };
        let mut previous = self.in_channels;
        let mut patch_embeds = Vec::with_capacity(4);
        for &width in &self.widths {
            patch_embeds.push(PatchEmbed::new(previous, width, device));
            previous = width;
        }
        Ok(Uniformer {
            patch_embeds,
            stage1: conv_stage(0),
            stage2: conv_stage(1),
            stage3: attention_stage(2),
            stage4: attention_stage(3),
            norm: BatchNormConfig::new(self.widths[3]).init(device),
            in_channels: self.in_channels,
            heads: [
                self.widths[2] / self.head_dim,
                self.widths[3] / self.head_dim,
            ],
        })
    }
}

/// The UniFormer 3D encoder. Build it with [`UniformerConfig::init`].
#[derive(Module, Debug)]
pub struct Uniformer<B: Backend> {
    /// The four patch embeddings, one opening each stage.
    pub patch_embeds: Vec<PatchEmbed<B>>,
    /// Stage 1 convolutional blocks (stride 2).
    pub stage1: Vec<CBlock<B>>,
    /// Stage 2 convolutional blocks (stride 4).
    pub stage2: Vec<CBlock<B>>,
    /// Stage 3 self-attention blocks (stride 8).
    pub stage3: Vec<SABlock<B>>,
    /// Stage 4 self-attention blocks (stride 16).
    pub stage4: Vec<SABlock<B>>,
    /// BatchNorm on the last stage's output.
    pub norm: BatchNorm<B>,
    /// Expected number of input channels.
    pub in_channels: usize,
    /// Attention heads of stages 3 and 4.
    pub heads: [usize; 2],
}

impl<B: Backend> Uniformer<B> {
    /// Checks an input shape `[N, C, D, H, W]`: `C` must be the configured channel count, every
    /// spatial size a positive multiple of 16, and the attention memory bounded.
    pub fn check_input(&self, dims: [usize; 5]) -> crate::Result<()> {
        let [batch, _, depth, height, width] = dims;
        let fail = |cause: String| Err(Error::new("uniformer input", cause));
        super::check_channels_and_stride("uniformer input", dims, self.in_channels, TOTAL_STRIDE)?;
        let tokens = (depth / 8)
            .checked_mul(height / 8)
            .and_then(|t| t.checked_mul(width / 8));
        let scores = tokens
            .and_then(|t| t.checked_mul(t))
            .and_then(|t| t.checked_mul(batch * self.heads[0]));
        match scores {
            Some(count) if count <= MAX_ATTENTION_SCORES => Ok(()),
            _ => fail(format!(
                "shape {dims:?} would need more than {MAX_ATTENTION_SCORES} attention scores"
            )),
        }
    }

    /// Learnable parameters (what PyTorch's `parameters()` counts): burn's
    /// [`num_params`](Module::num_params) also counts the BatchNorm running mean and variance,
    /// which are buffers, not parameters; this subtracts them.
    pub fn num_learnable_params(&self) -> usize {
        let block_norms = self.stage1.iter().chain(&self.stage2);
        let norms = block_norms
            .flat_map(|block| [&block.norm1, &block.norm2])
            .chain([&self.norm]);
        let running_stats: usize = norms.map(|norm| 2 * norm.gamma.val().dims()[0]).sum();
        self.num_params() - running_stats
    }

    /// [`forward`](Self::forward) after [`check_input`](Self::check_input).
    pub fn try_forward(&self, input: Tensor<B, 5>) -> crate::Result<[Tensor<B, 5>; 4]> {
        self.check_input(input.dims())?;
        Ok(self.forward(input))
    }

    /// Encodes `[N, C, D, H, W]` into the four stage outputs
    /// `[N, widths[i], D/2^(i+1), H/2^(i+1), W/2^(i+1)]`; the last one is batch-normalised.
    ///
    /// The input must satisfy [`check_input`](Self::check_input) (use
    /// [`try_forward`](Self::try_forward) on unchecked input).
    pub fn forward(&self, input: Tensor<B, 5>) -> [Tensor<B, 5>; 4] {
        let mut x = self.patch_embeds[0].forward(input);
        for block in &self.stage1 {
            x = block.forward(x);
        }
        let stage1 = x;
        let mut x = self.patch_embeds[1].forward(stage1.clone());
        for block in &self.stage2 {
            x = block.forward(x);
        }
        let stage2 = x;
        let mut x = self.patch_embeds[2].forward(stage2.clone());
        for block in &self.stage3 {
            x = block.forward(x);
        }
        let stage3 = x;
        let mut x = self.patch_embeds[3].forward(stage3.clone());
        for block in &self.stage4 {
            x = block.forward(x);
        }
        let stage4 = self.norm.forward(x);
        [stage1, stage2, stage3, stage4]
    }
}

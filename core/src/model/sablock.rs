//! The self-attention block of UniFormer stages 3 and 4 ("SABlock"): global multi-head
//! self-attention over all voxels of the feature map.

use crate::kernels::{attention_qkv, conv3d_module, gelu, token_layer_norm};
use burn::module::Module;
use burn::nn::conv::Conv3d;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::cblock::depthwise_conv;

/// LayerNorm epsilon of the attention blocks (the official model uses 1e-6).
pub const BLOCK_NORM_EPS: f64 = 1e-6;

/// Multi-head self-attention: one `C → 3C` qkv projection, scaled dot product per head
/// (scale `head_dim^-0.5`), output projection `C → C`.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// Joint query/key/value projection, `C → 3C`.
    pub qkv: Linear<B>,
    /// Output projection, `C → C`.
    pub proj: Linear<B>,
    /// Number of heads (`C / head_dim`).
    pub num_heads: usize,
}

impl<B: Backend> Attention<B> {
    /// Attention over `channels` split into `num_heads` heads; `qkv_bias` adds a bias to qkv.
    pub fn new(channels: usize, num_heads: usize, qkv_bias: bool, device: &B::Device) -> Self {
        Self {
            qkv: LinearConfig::new(channels, 3 * channels)
                .with_bias(qkv_bias)
                .init(device),
            proj: LinearConfig::new(channels, channels).init(device),
            num_heads,
        }
    }

    /// `[N, L, C] → [N, L, C]`.
    pub fn forward(&self, tokens: Tensor<B, 3>) -> Tensor<B, 3> {
        let qkv = self.qkv.forward(tokens);
        let mixed = attention_qkv(qkv, self.num_heads, |qkv| self.mix(qkv));
        self.proj.forward(mixed)
    }

    /// `softmax(Q·Kᵀ/√d)·V` per head from `qkv` (`[N, L, 3C]`) in burn's operations (what
    /// [`attention_qkv`] runs on backends without the CPU kernel).
    fn mix(&self, qkv: Tensor<B, 3>) -> Tensor<B, 3> {
        let [batch, length, width] = qkv.dims();
        let channels = width / 3;
        let head_dim = channels / self.num_heads;
        let qkv = qkv.reshape([batch, length, 3, self.num_heads, head_dim]);
        let part = |index: usize| -> Tensor<B, 4> {
            qkv.clone()
                .narrow(2, index, 1)
                .reshape([batch, length, self.num_heads, head_dim])
                .swap_dims(1, 2)
        };
        let (query, key, value) = (part(0), part(1), part(2));
        let scale = (head_dim as f64).powf(-0.5);
        let scores = query.matmul(key.swap_dims(2, 3)).mul_scalar(scale);
        let weights = softmax(scores, 3);
        weights
            .matmul(value)
            .swap_dims(1, 2)
            .reshape([batch, length, channels])
    }
}

/// The token MLP: Linear `C → hidden`, GELU, Linear `hidden → C`.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// Expansion, `C → hidden`.
    pub fc1: Linear<B>,
    /// Projection back, `hidden → C`.
    pub fc2: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    /// An MLP on `channels` with `hidden` features in between.
    pub fn new(channels: usize, hidden: usize, device: &B::Device) -> Self {
        Self {
            fc1: LinearConfig::new(channels, hidden).init(device),
            fc2: LinearConfig::new(hidden, channels).init(device),
        }
    }

    /// `[N, L, C] → [N, L, C]`.
    pub fn forward(&self, tokens: Tensor<B, 3>) -> Tensor<B, 3> {
        self.fc2.forward(gelu(self.fc1.forward(tokens)))
    }
}

/// `x += DW3(x)`; tokens `t = flatten(x)`; `t += Attn(LN(t))`; `t += Mlp(LN(t))`; reshape back.
#[derive(Module, Debug)]
pub struct SABlock<B: Backend> {
    /// Depthwise 3³ convolution: the conditional position encoding.
    pub pos_embed: Conv3d<B>,
    /// LayerNorm before attention.
    pub norm1: LayerNorm<B>,
    /// Multi-head self-attention.
    pub attn: Attention<B>,
    /// LayerNorm before the MLP.
    pub norm2: LayerNorm<B>,
    /// The token MLP.
    pub mlp: Mlp<B>,
}

impl<B: Backend> SABlock<B> {
    /// A block on `channels` with `num_heads` heads and an MLP of `mlp_hidden` features.
    pub fn new(
        channels: usize,
        num_heads: usize,
        mlp_hidden: usize,
        qkv_bias: bool,
        device: &B::Device,
    ) -> Self {
        let norm = || LayerNormConfig::new(channels).with_epsilon(BLOCK_NORM_EPS);
        Self {
            pos_embed: depthwise_conv(channels, 3, device),
            norm1: norm().init(device),
            attn: Attention::new(channels, num_heads, qkv_bias, device),
            norm2: norm().init(device),
            mlp: Mlp::new(channels, mlp_hidden, device),
        }
    }

    /// `[N, C, D, H, W] → [N, C, D, H, W]`.
    pub fn forward(&self, input: Tensor<B, 5>) -> Tensor<B, 5> {
        let x = input.clone() + conv3d_module(&self.pos_embed, input);
        let [batch, channels, depth, height, width] = x.dims();
        let tokens: Tensor<B, 3> = x
            .reshape([batch, channels, depth * height * width])
            .swap_dims(1, 2);
        let normalised = token_layer_norm(&self.norm1, tokens.clone(), BLOCK_NORM_EPS);
        let tokens = tokens + self.attn.forward(normalised);
        let normalised = token_layer_norm(&self.norm2, tokens.clone(), BLOCK_NORM_EPS);
        let tokens = tokens + self.mlp.forward(normalised);
        tokens
            .swap_dims(1, 2)
            .reshape([batch, channels, depth, height, width])
    }
}

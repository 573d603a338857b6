//! The convolutional block of UniFormer stages 1 and 2 ("CBlock"): local token mixing with a
//! depthwise 5³ convolution instead of attention.

use crate::kernels::{conv3d_module, gelu_conv};
use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::PaddingConfig3d;

use super::batch_norm::{BatchNorm, BatchNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use super::weight_init::official_conv3d;

/// A depthwise convolution over `channels` with a cubic window of `kernel_size` voxels a side and "same" padding (odd sizes),
/// initialised as the official code ([`official_conv3d`]).
pub fn depthwise_conv<B: Backend>(
    channels: usize,
    kernel_size: usize,
    device: &B::Device,
) -> Conv3d<B> {
    let pad = kernel_size / 2;
    let config = Conv3dConfig::new([channels, channels], [kernel_size; 3])
        .with_groups(channels)
        .with_padding(PaddingConfig3d::Explicit(pad, pad, pad));
    official_conv3d(config, device)
}

/// A 1×1×1 convolution (with bias), `in_channels → out_channels`.
pub fn pointwise_conv<B: Backend>(
    in_channels: usize,
    out_channels: usize,
    device: &B::Device,
) -> Conv3d<B> {
    official_conv3d(
        Conv3dConfig::new([in_channels, out_channels], [1, 1, 1]),
        device,
    )
}

/// The convolutional MLP: 1³ conv `C → hidden`, GELU, 1³ conv `hidden → C`.
#[derive(Module, Debug)]
pub struct ConvMlp<B: Backend> {
    /// Expansion, `C → hidden`.
    pub fc1: Conv3d<B>,
    /// Projection back, `hidden → C`.
    pub fc2: Conv3d<B>,
}

impl<B: Backend> ConvMlp<B> {
    /// A convolutional MLP on `channels` with `hidden` channels in between.
    pub fn new(channels: usize, hidden: usize, device: &B::Device) -> Self {
        Self {
            fc1: pointwise_conv(channels, hidden, device),
            fc2: pointwise_conv(hidden, channels, device),
        }
    }

    /// `[N, C, D, H, W] → [N, C, D, H, W]`.
    pub fn forward(&self, input: Tensor<B, 5>) -> Tensor<B, 5> {
        gelu_conv(conv3d_module(&self.fc1, input), &self.fc2)
    }
}

/// `x += DW3(x)`; `x += Conv1(DW5(Conv1(BN(x))))`; `x += CMlp(BN(x))`.
#[derive(Module, Debug)]
pub struct CBlock<B: Backend> {
    /// Depthwise 3³ convolution: the conditional position encoding.
    pub pos_embed: Conv3d<B>,
    /// BatchNorm before the token mixing.
    pub norm1: BatchNorm<B>,
    /// 1³ convolution before the depthwise 5³ mixing.
    pub conv1: Conv3d<B>,
    /// Depthwise 5³ convolution: the local "attention".
    pub attn: Conv3d<B>,
    /// 1³ convolution after the mixing.
    pub conv2: Conv3d<B>,
    /// BatchNorm before the MLP.
    pub norm2: BatchNorm<B>,
    /// The convolutional MLP.
    pub mlp: ConvMlp<B>,
}

impl<B: Backend> CBlock<B> {
    /// A block on `channels` with an MLP of `mlp_hidden` channels.
    pub fn new(channels: usize, mlp_hidden: usize, device: &B::Device) -> Self {
        Self {
            pos_embed: depthwise_conv(channels, 3, device),
            norm1: BatchNormConfig::new(channels).init(device),
            conv1: pointwise_conv(channels, channels, device),
            attn: depthwise_conv(channels, 5, device),
            conv2: pointwise_conv(channels, channels, device),
            norm2: BatchNormConfig::new(channels).init(device),
            mlp: ConvMlp::new(channels, mlp_hidden, device),
        }
    }

    /// `[N, C, D, H, W] → [N, C, D, H, W]`.
    pub fn forward(&self, input: Tensor<B, 5>) -> Tensor<B, 5> {
        let x = input.clone() + conv3d_module(&self.pos_embed, input);
        let mixed = conv3d_module(&self.conv1, self.norm1.forward(x.clone()));
        let x = x + conv3d_module(&self.conv2, conv3d_module(&self.attn, mixed));
        x.clone() + self.mlp.forward(self.norm2.forward(x))
    }
}

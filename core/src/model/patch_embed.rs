//! Patch embedding of a UniFormer stage: a strided 2×2×2 convolution followed by a LayerNorm
//! over the channels.

use crate::kernels::{channel_layer_norm, conv3d_module, LAYER_NORM_EPS};
use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// Halves each spatial size (kernel 2, stride 2, with bias) and normalises the channels of every
/// voxel with a LayerNorm (eps 1e-5, PyTorch's default).
#[derive(Module, Debug)]
pub struct PatchEmbed<B: Backend> {
    /// The strided 2³ convolution, `in_channels → out_channels`.
    pub proj: Conv3d<B>,
    /// LayerNorm over the channels of each voxel.
    pub norm: LayerNorm<B>,
}

impl<B: Backend> PatchEmbed<B> {
    /// A patch embedding from `in_channels` to `out_channels`.
    pub fn new(in_channels: usize, out_channels: usize, device: &B::Device) -> Self {
        let config =
            Conv3dConfig::new([in_channels, out_channels], [2, 2, 2]).with_stride([2, 2, 2]);
        let proj = super::weight_init::official_conv3d(config, device);
        let norm = LayerNormConfig::new(out_channels)
            .with_epsilon(LAYER_NORM_EPS)
            .init(device);
        Self { proj, norm }
    }

    /// `[N, C_in, D, H, W] → [N, C_out, D/2, H/2, W/2]`.
    pub fn forward(&self, input: Tensor<B, 5>) -> Tensor<B, 5> {
        let projected = conv3d_module(&self.proj, input);
        channel_layer_norm(&self.norm, projected)
    }
}

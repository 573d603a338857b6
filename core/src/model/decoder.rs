//! The reconstruction decoders of BrainMVP pre-training: they map the encoder's deepest feature
//! map (only that one, no skip connections, "for better representation learning") back to a
//! full-resolution volume.
//!
//! - [`PretrainDecoder`], paired with the UniFormer encoder (official `UniSegDecoder` of
//!   `models/Uniformer.py`): a chain of transposed 2³ convolutions (stride 2, no bias) and a
//!   1×1×1 convolution. Nothing sits between the layers (no norm, no activation), so the whole
//!   decoder is one linear map.
//! - [`UnetDecoder`], paired with the [UNet3D](super::unet3d) encoder (official `RecModel.decoder`
//!   of `models/Unet.py`): per level a 1×1×1 convolution halving the channels, nearest-neighbour
//!   ×2 up-sampling and a [`ResBlock`], then a 1×1×1 convolution.

use crate::kernels::{conv3d_module, conv_transpose3d_module};
use burn::module::{Initializer, Module};
use burn::nn::conv::{Conv3d, Conv3dConfig, ConvTranspose3d, ConvTranspose3dConfig};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use super::unet3d::{ResBlock, Unet3dConfig};
use super::uniformer::UniformerConfig;
use crate::error::Error;

/// Largest activation (elements) a decoder forward pass may produce before `try_forward`
/// refuses the input (2³² f32 = 16 GiB).
pub const MAX_DECODER_ELEMENTS: u64 = 1 << 32;

/// Largest channel count a decoder layer may have.
pub const MAX_DECODER_WIDTH: usize = 4096;

/// Most ×2 up-sampling stages a decoder may have (a factor of 64).
pub const MAX_DECODER_STAGES: usize = 6;

crate::config! {
    /// Configuration of a [`PretrainDecoder`].
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct PretrainDecoderConfig {
        /// Channels of the encoder's deepest feature map (512 for UniFormer-S).
        pub in_channels: usize = 512,
        /// Output channels of the transposed convolutions, one ×2 up-sampling each.
        pub widths: Vec<usize> = vec![320, 128, 64, 64],
        /// Channels of the reconstruction (official: the encoder's input channels, 1 in BrainMVP).
        pub out_channels: usize = 1,
    }
}

impl PretrainDecoderConfig {
    /// This config with `in_channels` given and every other field at its default.
    pub fn new(in_channels: usize) -> Self {
        Self {
            in_channels,
            ..Self::default()
        }
    }
}

impl PretrainDecoderConfig {
    /// The official decoder after UniFormer-S: 512 → 320 → 128 → 64 → 64 → 1
    /// (1,736,769 parameters).
    pub fn uniformer_small() -> Self {
        Self::for_uniformer(&UniformerConfig::small(1))
    }

    /// The decoder after the [`tiny`](UniformerConfig::tiny) UniFormer: 64 → 32 → 16 → 8 → 8 → 1.
    pub fn uniformer_tiny() -> Self {
        Self::for_uniformer(&UniformerConfig::tiny(1))
    }

    /// The official pattern for any UniFormer encoder with stage widths `[w0, w1, w2, w3]`:
    /// `w3 → w2 → w1 → w0 → w0 → 1` (four ×2 stages undo the stride 16).
    pub fn for_uniformer(encoder: &UniformerConfig) -> Self {
        let [w0, w1, w2, w3] = encoder.widths;
        Self::new(w3).with_widths(vec![w2, w1, w0, w0])
    }

    /// The same transposed-convolution decoder after a UNet3D encoder (three ×2 stages for its
    /// stride 8): `w3 → w2 → w1 → w0 → 1`. Not the official pairing, which is [`UnetDecoder`].
    pub fn for_unet3d(encoder: &Unet3dConfig) -> Self {
        let [w0, w1, w2, w3] = encoder.widths();
        Self::new(w3).with_widths(vec![w2, w1, w0])
    }

    /// Checks that the configuration describes a buildable decoder.
    pub fn validate(&self) -> crate::Result<()> {
        validate_widths(
            "pretrain decoder config",
            self.in_channels,
            &self.widths,
            self.out_channels,
        )
    }

    /// Builds the decoder on `device` after [validating](Self::validate) the configuration.
    ///
    /// The transposed convolutions keep PyTorch's default initialisation (the official code only
    /// re-initialises `nn.Conv3d`), which is burn's default too; the final 1×1×1 convolution is
    /// Kaiming-normal (fan-out, ReLU gain √2) with zero bias, as the official `_init_weights`.
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::Result<PretrainDecoder<B>> {
        self.validate()?;
        let mut previous = self.in_channels;
        let mut upsamples = Vec::with_capacity(self.widths.len());
        for &width in &self.widths {
            let up = ConvTranspose3dConfig::new([previous, width], [2, 2, 2])
                .with_stride([2, 2, 2])
                .with_bias(false)
                .init(device);
            upsamples.push(up);
            previous = width;
        }
        let mut head = Conv3dConfig::new([previous, self.out_channels], [1, 1, 1])
            .with_initializer(Initializer::KaimingNormal {
                gain: core::f64::consts::SQRT_2,
                fan_out_only: true,
            })
            .init(device);
        head.bias = Some(Initializer::Zeros.init([self.out_channels], device));
        Ok(PretrainDecoder {
            upsamples,
            head,
            in_channels: self.in_channels,
        })
    }
}

/// The transposed-convolution reconstruction decoder. Build it with
/// [`PretrainDecoderConfig::init`].
///
/// The official forward permutes the deepest map from `[N, C, D, H, W]` back to the
/// `[N, C, H, W, D]` layout of its input before decoding; here the input is already
/// `[N, C, D, H, W]` and the output keeps that layout, so no permutation is needed.
#[derive(Module, Debug)]
pub struct PretrainDecoder<B: Backend> {
    /// Transposed 2³ convolutions, stride 2, without bias (official `decoder5`-`decoder2`
    /// `.transp_conv`; the rest of those MONAI blocks is never called and is left out).
    pub upsamples: Vec<ConvTranspose3d<B>>,
    /// 1×1×1 convolution with bias to the output channels (official `out_1`).
    pub head: Conv3d<B>,
    /// Expected channels of the input feature map.
    pub in_channels: usize,
}

impl<B: Backend> PretrainDecoder<B> {
    /// Up-sampling factor of each spatial axis (`2^stages`).
    pub fn upsampling(&self) -> usize {
        1 << self.upsamples.len()
    }

    /// Learnable parameters (no BatchNorm here, so burn's [`num_params`](Module::num_params)).
    pub fn num_learnable_params(&self) -> usize {
        self.num_params()
    }

    /// Checks an input shape `[N, C, d, h, w]`: `C` the configured channels, positive sizes,
    /// and the largest activation bounded.
    pub fn check_input(&self, dims: [usize; 5]) -> crate::Result<()> {
        let widths: Vec<usize> = self.upsamples.iter().map(|up| up.channels[1]).collect();
        check_decoder_input("pretrain decoder input", dims, self.in_channels, &widths)
    }

    /// [`forward`](Self::forward) after [`check_input`](Self::check_input).
    pub fn try_forward(&self, features: Tensor<B, 5>) -> crate::Result<Tensor<B, 5>> {
        self.check_input(features.dims())?;
        Ok(self.forward(features))
    }

    /// `[N, in_channels, d, h, w] → [N, out_channels, d·s, h·s, w·s]` with
    /// `s = `[`upsampling`](Self::upsampling)`()` (16 for the UniFormer presets).
    pub fn forward(&self, features: Tensor<B, 5>) -> Tensor<B, 5> {
        let upsampled = self
            .upsamples
            .iter()
            .fold(features, |x, up| conv_transpose3d_module(up, x));
        conv3d_module(&self.head, upsampled)
    }
}

crate::config! {
    /// Configuration of a [`UnetDecoder`].
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct UnetDecoderConfig {
        /// Channels of the encoder's deepest feature map (256 for the official UNet3D).
        pub in_channels: usize = 256,
        /// Channels after each up-sampling stage.
        pub widths: Vec<usize> = vec![128, 64, 32],
        /// Channels of the reconstruction.
        pub out_channels: usize = 1,
        /// GroupNorm groups of the residual blocks.
        pub groups: usize = 8,
    }
}

impl UnetDecoderConfig {
    /// This config with `in_channels` given and every other field at its default.
    pub fn new(in_channels: usize) -> Self {
        Self {
            in_channels,
            ..Self::default()
        }
    }
}

impl UnetDecoderConfig {
    /// The official decoder after the official UNet3D: 256 → 128 → 64 → 32 → 1
    /// (1,205,825 parameters).
    pub fn official() -> Self {
        Self::for_unet3d(&Unet3dConfig::official(1))
    }

    /// The official pattern for any UNet3D encoder with level widths `[w0, w1, w2, w3]`:
    /// `w3 → w2 → w1 → w0 → 1`, with the encoder's GroupNorm groups.
    pub fn for_unet3d(encoder: &Unet3dConfig) -> Self {
        let [w0, w1, w2, w3] = encoder.widths();
        Self::new(w3)
            .with_widths(vec![w2, w1, w0])
            .with_groups(encoder.groups)
    }

    /// Checks that the configuration describes a buildable decoder.
    pub fn validate(&self) -> crate::Result<()> {
        let context = "unet decoder config";
        validate_widths(context, self.in_channels, &self.widths, self.out_channels)?;
        if self.groups == 0 || self.widths.iter().any(|width| width % self.groups != 0) {
            return Err(Error::new(
                context,
                format!(
                    "widths {:?} are not all multiples of {} groups",
                    self.widths, self.groups
                ),
            ));
        }
        Ok(())
    }

    /// Builds the decoder on `device` after [validating](Self::validate) the configuration
    /// (PyTorch's default initialisation, as the official UNet, which is burn's default).
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::Result<UnetDecoder<B>> {
        self.validate()?;
        let mut previous = self.in_channels;
        let mut stages = Vec::with_capacity(self.widths.len());
        for &width in &self.widths {
            stages.push(UnetUpStage {
                reduce: Conv3dConfig::new([previous, width], [1, 1, 1]).init(device),
                block: ResBlock::new(width, self.groups, device),
            });
            previous = width;
        }
        let head = Conv3dConfig::new([previous, self.out_channels], [1, 1, 1]).init(device);
        Ok(UnetDecoder {
            stages,
            head,
            in_channels: self.in_channels,
        })
    }
}

/// One up-sampling stage of the [`UnetDecoder`]: `ResBlock(upsample×2(Conv1(x)))`.
#[derive(Module, Debug)]
pub struct UnetUpStage<B: Backend> {
    /// 1×1×1 convolution with bias changing the channels (official `up*conva`).
    pub reduce: Conv3d<B>,
    /// Residual block after the up-sampling (official `up*convb`).
    pub block: ResBlock<B>,
}

impl<B: Backend> UnetUpStage<B> {
    /// `[N, C_in, d, h, w] → [N, C_out, 2d, 2h, 2w]`.
    pub fn forward(&self, input: Tensor<B, 5>) -> Tensor<B, 5> {
        self.block
            .forward(upsample_nearest2(conv3d_module(&self.reduce, input)))
    }
}

/// The reconstruction decoder of the official UNet3D pre-training. Build it with
/// [`UnetDecoderConfig::init`].
#[derive(Module, Debug)]
pub struct UnetDecoder<B: Backend> {
    /// The up-sampling stages (official `up4*`, `up3*`, `up2*`; their skip concatenations are
    /// commented out in the official pre-training code and absent here too).
    pub stages: Vec<UnetUpStage<B>>,
    /// 1×1×1 convolution with bias to the output channels (official `up1conv`).
    pub head: Conv3d<B>,
    /// Expected channels of the input feature map.
    pub in_channels: usize,
}

impl<B: Backend> UnetDecoder<B> {
    /// Up-sampling factor of each spatial axis (`2^stages`).
    pub fn upsampling(&self) -> usize {
        1 << self.stages.len()
    }

    /// Learnable parameters (no BatchNorm here, so burn's [`num_params`](Module::num_params)).
    pub fn num_learnable_params(&self) -> usize {
        self.num_params()
    }

    /// Checks an input shape `[N, C, d, h, w]`: `C` the configured channels, positive sizes,
    /// and the largest activation bounded.
    pub fn check_input(&self, dims: [usize; 5]) -> crate::Result<()> {
        let widths: Vec<usize> = self
            .stages
            .iter()
            .map(|stage| stage.reduce.weight.dims()[0])
            .collect();
        check_decoder_input("unet decoder input", dims, self.in_channels, &widths)
    }

    /// [`forward`](Self::forward) after [`check_input`](Self::check_input).
    pub fn try_forward(&self, features: Tensor<B, 5>) -> crate::Result<Tensor<B, 5>> {
        self.check_input(features.dims())?;
        Ok(self.forward(features))
    }

    /// `[N, in_channels, d, h, w] → [N, out_channels, d·s, h·s, w·s]` with
    /// `s = `[`upsampling`](Self::upsampling)`()` (8 for the official decoder).
    pub fn forward(&self, features: Tensor<B, 5>) -> Tensor<B, 5> {
        let upsampled = self
            .stages
            .iter()
            .fold(features, |x, stage| stage.forward(x));
        conv3d_module(&self.head, upsampled)
    }
}

/// Nearest-neighbour ×2 up-sampling of the three spatial axes of `[N, C, D, H, W]`
/// (PyTorch's `nn.Upsample(scale_factor=2)`): output voxel `(z, y, x)` is input `(z/2, y/2, x/2)`.
pub fn upsample_nearest2<B: Backend>(input: Tensor<B, 5>) -> Tensor<B, 5> {
    let [batch, channels, depth, height, width] = input.dims();
    input
        .reshape([batch, channels, depth, 1, height, 1, width, 1])
        .expand([batch, channels, depth, 2, height, 2, width, 2])
        .reshape([batch, channels, 2 * depth, 2 * height, 2 * width])
}

/// Shared configuration checks: positive, bounded channel counts and stage count.
fn validate_widths(
    context: &str,
    in_channels: usize,
    widths: &[usize],
    out_channels: usize,
) -> crate::Result<()> {
    if widths.is_empty() || widths.len() > MAX_DECODER_STAGES {
        return Err(Error::new(
            context,
            format!(
                "{} up-sampling stages, expected 1 to {MAX_DECODER_STAGES}",
                widths.len()
            ),
        ));
    }
    let channels = widths.iter().chain([&in_channels, &out_channels]);
    if channels.clone().any(|&c| c == 0 || c > MAX_DECODER_WIDTH) {
        return Err(Error::new(
            context,
            format!(
                "channels (in {in_channels}, widths {widths:?}, out {out_channels}) must be in 1..={MAX_DECODER_WIDTH}"
            ),
        ));
    }
    Ok(())
}

/// Shared input checks: channel count, positive sizes, and every stage's output bounded.
fn check_decoder_input(
    context: &str,
    dims: [usize; 5],
    in_channels: usize,
    widths: &[usize],
) -> crate::Result<()> {
    let [batch, channels, depth, height, width] = dims;
    if channels != in_channels {
        return Err(Error::new(
            context,
            format!("{channels} channels, the decoder expects {in_channels}"),
        ));
    }
    if [batch, depth, height, width].contains(&0) {
        return Err(Error::new(
            context,
            format!("shape {dims:?}: every size must be positive"),
        ));
    }
    let mut voxels = Some(batch)
        .and_then(|n| n.checked_mul(depth))
        .and_then(|n| n.checked_mul(height))
        .and_then(|n| n.checked_mul(width));
    for &stage_width in widths {
        voxels = voxels.and_then(|n| n.checked_mul(8));
        let elements = voxels.and_then(|n| n.checked_mul(stage_width));
        if !matches!(elements, Some(count) if count as u64 <= MAX_DECODER_ELEMENTS) {
            return Err(Error::new(
                context,
                format!(
                    "shape {dims:?} would need activations of more than {MAX_DECODER_ELEMENTS} elements"
                ),
            ));
        }
    }
    Ok(())
}

//! The UNet3D encoder: BrainMVP's second, purely convolutional backbone (`--use_Unet` in the
//! official code, `models/Unet.py`).
//!
//! A 3³ stem convolution, then four resolution levels of pre-activation residual blocks
//! ([`ResBlock`]: GroupNorm–ReLU–Conv3³ twice, plus the input), the levels joined by stride-2 3³
//! convolutions that double the channels. With the official sizes (base width 32, blocks
//! `[1, 2, 2, 4]`) the channels go 32 → 64 → 128 → 256 and the deepest map, after four
//! 256-channel blocks, has stride 8 (96³ → 12³).
//!
//! The input layout is `[N, C, D, H, W]`, as for the [UniFormer](super::uniformer) encoder.
//! Parameters start as PyTorch's defaults (the official UNet applies no custom initialisation),
//! which are also burn's defaults: Kaiming-uniform with gain 1/√3 for weights and biases,
//! GroupNorm scale 1 and shift 0.

use crate::kernels::conv3d_module;
use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, PaddingConfig3d};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Total down-sampling factor of the encoder (three stride-2 convolutions).
pub const UNET_TOTAL_STRIDE: usize = 8;

/// Largest activation (`N · base_width · D · H · W` elements, the full-resolution level) a
/// forward pass may need before [`Unet3d::try_forward`] refuses the input (2³² f32 = 16 GiB).
pub const MAX_ACTIVATION_ELEMENTS: u64 = 1 << 32;

/// Largest channel count a level may have (keeps a mistyped width from allocating gigabytes).
pub const MAX_UNET_WIDTH: usize = 4096;

crate::config! {
    /// Configuration of a [`Unet3d`] encoder.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct Unet3dConfig {
        /// Number of input channels (modalities).
        pub in_channels: usize = 1,
        /// Channels of the full-resolution level; level `i` has `base_width · 2^i`.
        pub base_width: usize = 32,
        /// Residual blocks per level (official: `conv1b`; `conv2a-b`; `conv3a-b`; `conv4a-d`).
        pub depths: [usize; 4] = [1, 2, 2, 4],
        /// GroupNorm groups (every level width must be a multiple of it).
        pub groups: usize = 8,
    }
}

impl Unet3dConfig {
    /// This config with `in_channels` given and every other field at its default.
    pub fn new(in_channels: usize) -> Self {
        Self {
            in_channels,
            ..Self::default()
        }
    }
}

impl Unet3dConfig {
    /// The official BrainMVP UNet3D: base width 32, blocks `[1, 2, 2, 4]`, GroupNorm(8)
    /// (17,594,112 parameters with one input channel).
    pub fn official(in_channels: usize) -> Self {
        Self::new(in_channels)
    }

    /// A tiny variant for CPU tests and the browser: base width 8, one block per level.
    pub fn tiny(in_channels: usize) -> Self {
        Self::new(in_channels)
            .with_base_width(8)
            .with_depths([1, 1, 1, 1])
    }

    /// Channels of the four levels: `base_width · [1, 2, 4, 8]`.
    pub fn widths(&self) -> [usize; 4] {
        [1, 2, 4, 8].map(|factor| self.base_width.saturating_mul(factor))
    }

    /// Checks that the configuration describes a buildable model.
    pub fn validate(&self) -> crate::Result<()> {
        let fail = |cause: String| Err(Error::new("unet3d config", cause));
        if self.in_channels == 0 || self.base_width == 0 || self.groups == 0 {
            return fail("in_channels, base_width and groups must be positive".into());
        }
        if self.in_channels > MAX_UNET_WIDTH || self.widths()[3] > MAX_UNET_WIDTH {
            return fail(format!(
                "channel counts above {MAX_UNET_WIDTH} (in {}, deepest {})",
                self.in_channels,
                self.widths()[3]
            ));
        }
        if self.base_width % self.groups != 0 {
            return fail(format!(
                "base width {} is not a multiple of {} groups",
                self.base_width, self.groups
            ));
        }
        Ok(())
    }

    /// Builds the encoder on `device` after [validating](Self::validate) the configuration.
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::Result<Unet3d<B>> {
        self.validate()?;
        let widths = self.widths();
        let stem = Conv3dConfig::new([self.in_channels, widths[0]], [3, 3, 3])
            .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
            .init(device);
        let downs = widths
            .windows(2)
            .map(|pair| down_conv(pair[0], pair[1], device))
            .collect();
        let levels = widths
            .iter()
            .zip(&self.depths)
            .map(|(&width, &depth)| {
                (0..depth)
                    .map(|_| ResBlock::new(width, self.groups, device))
                    .collect()
            })
            .collect();
        Ok(Unet3d {
            stem,
            downs,
            levels,
            in_channels: self.in_channels,
            base_width: self.base_width,
        })
    }
}

/// The stride-2 3³ convolution (padding 1) between two levels, `in_channels → out_channels`.
fn down_conv<B: Backend>(in_channels: usize, out_channels: usize, device: &B::Device) -> Conv3d<B> {
    Conv3dConfig::new([in_channels, out_channels], [3, 3, 3])
        .with_stride([2, 2, 2])
        .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
        .init(device)
}

/// The pre-activation residual block of the official UNet (`BasicBlock`):
/// `x + Conv3(ReLU(GN(Conv3(ReLU(GN(x))))))`, channels unchanged.
#[derive(Module, Debug)]
pub struct ResBlock<B: Backend> {
    /// GroupNorm before the first convolution.
    pub norm1: GroupNorm<B>,
    /// First 3³ convolution (padding 1, with bias).
    pub conv1: Conv3d<B>,
    /// GroupNorm before the second convolution.
    pub norm2: GroupNorm<B>,
    /// Second 3³ convolution (padding 1, with bias); zeroing it makes the block the identity.
    pub conv2: Conv3d<B>,
}

impl<B: Backend> ResBlock<B> {
    /// A block on `channels` normalised in `groups` groups (`channels` a multiple of `groups`).
    pub fn new(channels: usize, groups: usize, device: &B::Device) -> Self {
        let conv = || {
            Conv3dConfig::new([channels, channels], [3, 3, 3])
                .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
                .init(device)
        };
        Self {
            norm1: GroupNormConfig::new(groups, channels).init(device),
            conv1: conv(),
            norm2: GroupNormConfig::new(groups, channels).init(device),
            conv2: conv(),
        }
    }

    /// `[N, C, D, H, W] → [N, C, D, H, W]`.
    pub fn forward(&self, input: Tensor<B, 5>) -> Tensor<B, 5> {
        let x = conv3d_module(&self.conv1, relu(self.norm1.forward(input.clone())));
        let x = conv3d_module(&self.conv2, relu(self.norm2.forward(x)));
        x + input
    }
}

/// The UNet3D encoder. Build it with [`Unet3dConfig::init`].
#[derive(Module, Debug)]
pub struct Unet3d<B: Backend> {
    /// 3³ stem convolution, `in_channels → widths[0]` (official `conv1a`).
    pub stem: Conv3d<B>,
    /// The three stride-2 convolutions between levels (official `ds1`-`ds3`).
    pub downs: Vec<Conv3d<B>>,
    /// The residual blocks of each of the four levels.
    pub levels: Vec<Vec<ResBlock<B>>>,
    /// Expected number of input channels.
    pub in_channels: usize,
    /// Channels of the full-resolution level.
    pub base_width: usize,
}

impl<B: Backend> Unet3d<B> {
    /// Checks an input shape `[N, C, D, H, W]`: `C` must be the configured channel count, every
    /// spatial size a positive multiple of 8, and the full-resolution activation bounded.
    pub fn check_input(&self, dims: [usize; 5]) -> crate::Result<()> {
        let [batch, _, depth, height, width] = dims;
        let fail = |cause: String| Err(Error::new("unet3d input", cause));
        super::check_channels_and_stride(
            "unet3d input",
            dims,
            self.in_channels,
            UNET_TOTAL_STRIDE,
        )?;
        let elements = [self.base_width, depth, height, width]
            .iter()
            .try_fold(batch, |acc, &size| acc.checked_mul(size));
        match elements {
            Some(count) if count as u64 <= MAX_ACTIVATION_ELEMENTS => Ok(()),
            _ => fail(format!(
                "shape {dims:?} would need activations of more than {MAX_ACTIVATION_ELEMENTS} elements"
            )),
        }
    }

    /// Learnable parameters. The UNet has no BatchNorm, so this equals burn's
    /// [`num_params`](Module::num_params); it exists for symmetry with
    /// [`Uniformer::num_learnable_params`](super::uniformer::Uniformer::num_learnable_params).
    pub fn num_learnable_params(&self) -> usize {
        self.num_params()
    }

    /// [`forward`](Self::forward) after [`check_input`](Self::check_input).
    pub fn try_forward(&self, input: Tensor<B, 5>) -> crate::Result<[Tensor<B, 5>; 4]> {
        self.check_input(input.dims())?;
        Ok(self.forward(input))
    }

    /// Encodes `[N, C, D, H, W]` into the four features the official encoder returns
    /// (`[c1d, c2d, c3d, c4d]`): the outputs of the three down-sampling convolutions
    /// `[N, widths[i+1], D/2^(i+1), H/2^(i+1), W/2^(i+1)]` (taken *before* the next level's
    /// blocks), and last the deepest map `[N, widths[3], D/8, H/8, W/8]` after the deepest
    /// level's blocks. Pre-training uses only the last one (reconstruction and contrast).
    ///
    /// The input must satisfy [`check_input`](Self::check_input) (use
    /// [`try_forward`](Self::try_forward) on unchecked input).
    pub fn forward(&self, input: Tensor<B, 5>) -> [Tensor<B, 5>; 4] {
        let level1 = self.run_level(0, conv3d_module(&self.stem, input));
        let c1d = conv3d_module(&self.downs[0], level1);
        let level2 = self.run_level(1, c1d.clone());
        let c2d = conv3d_module(&self.downs[1], level2);
        let level3 = self.run_level(2, c2d.clone());
        let c3d = conv3d_module(&self.downs[2], level3);
        let c4d = self.run_level(3, c3d.clone());
        [c1d, c2d, c3d, c4d]
    }

    /// Runs the residual blocks of `level` (0-3) on `input`.
    fn run_level(&self, level: usize, input: Tensor<B, 5>) -> Tensor<B, 5> {
        self.levels[level]
            .iter()
            .fold(input, |x, block| block.forward(x))
    }

    /// Only the deepest feature map `[N, widths[3], D/8, H/8, W/8]`.
    pub fn forward_deepest(&self, input: Tensor<B, 5>) -> Tensor<B, 5> {
        let [_, _, _, deepest] = self.forward(input);
        deepest
    }
}

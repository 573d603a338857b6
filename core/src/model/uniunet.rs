//! UniUnet, BrainMVP's downstream segmentation model (official `Downstream/model/Uni_unet.py`):
//! the [UniFormer](super::uniformer) encoder with the modalities stacked as input channels and a
//! UNETR-style decoder with skip connections.
//!
//! Decoder (widths `[w0, w1, w2, w3]` of the encoder stages, `[64, 128, 320, 512]` for
//! UniFormer-S), in the official names:
//! - `decoder5`-`decoder2`: four [`UnetrUpBlock`]s `w3 → w2 → w1 → w0 → w0`, each a transposed
//!   2³ convolution (stride 2, no bias), the concatenation of the skip, and a [`UnetResBlock`];
//!   the skips are the stage maps 3, 2, 1 and, at full resolution, `proj1`;
//! - `proj1`: a 3³ convolution (stride 1, padding 1, with bias) of the raw input to `w0`
//!   channels followed by a LayerNorm over the channels;
//! - `out`: a 1×1×1 convolution with bias to the output channels;
//! - `ms_out` (deep supervision, training only): 1×1×1 convolutions on the two finest decoder
//!   levels below full resolution (`decoder3`, stride 2, and `decoder4`, stride 4), up-sampled
//!   trilinearly (official `align_corners=True`) to the full size.
//!
//! Inputs are `[N, C, D, H, W]` with `D, H, W` multiples of 16; the official model permutes its
//! `[N, C, H, W, D]` input itself, here the caller supplies `[N, C, D, H, W]` directly.

use crate::kernels::{conv3d_module, conv_transpose3d_module, instance_norm, LAYER_NORM_EPS};
use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig, ConvTranspose3d, ConvTranspose3dConfig};
use burn::nn::{InstanceNorm, InstanceNormConfig, LayerNormConfig, PaddingConfig3d};
use burn::tensor::activation::leaky_relu;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::architecture::Architecture;
use super::patch_embed::PatchEmbed;
use super::uniformer::{Uniformer, UniformerConfig, TOTAL_STRIDE};
use super::weight_init::official_conv3d;
use crate::error::Error;

/// Negative slope of MONAI's LeakyReLU in the residual blocks.
pub const LEAKY_SLOPE: f64 = 0.01;

/// Largest activation (elements) of the full-resolution decoder level (the concatenation of
/// `2·w0` channels) a forward pass may produce before `try_forward` refuses the input
/// (2³² f32 = 16 GiB).
pub const MAX_UNIUNET_ELEMENTS: u64 = 1 << 32;

/// Largest number of output channels (classes) a UniUnet may have.
pub const MAX_OUT_CHANNELS: usize = 1024;

crate::config! {
    /// Configuration of a [`UniUnet`].
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct UniUnetConfig {
        /// Input channels (number of modalities stacked as channels).
        pub in_channels: usize = 4,
        /// Output channels (3 for the BraTS regions TC, WT, ET).
        pub out_channels: usize = 3,
        /// Encoder: `uniformer-s` (the official model) or `uniformer-tiny`.
        pub encoder: Architecture = Architecture::UniformerS,
        /// Whether [`UniUnet::try_forward`] also returns the two deep-supervision outputs.
        pub deep_supervision: bool = false,
    }
}

impl UniUnetConfig {
    /// This config with `in_channels`, `out_channels` given and every other field at its default.
    pub fn new(in_channels: usize, out_channels: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            ..Self::default()
        }
    }
}

impl UniUnetConfig {
    /// The official model: 4 modalities, 3 regions, UniFormer-S, no deep supervision
    /// (34,323,011 parameters).
    pub fn official() -> Self {
        Self::new(4, 3)
    }

    /// The encoder configuration this model uses (refused for a UNet3D encoder).
    pub fn encoder_config(&self) -> crate::Result<UniformerConfig> {
        self.encoder
            .uniformer_config(self.in_channels)
            .map_err(|err| err.with_context("uniunet config"))
    }

    /// Checks that the configuration describes a buildable model.
    pub fn validate(&self) -> crate::Result<()> {
        self.encoder_config()?
            .validate()
            .map_err(|err| err.with_context("uniunet config"))?;
        if self.out_channels == 0 || self.out_channels > MAX_OUT_CHANNELS {
            return Err(Error::new(
                "uniunet config",
                format!(
                    "{} output channels, expected 1 to {MAX_OUT_CHANNELS}",
                    self.out_channels
                ),
            ));
        }
        Ok(())
    }

    /// Builds the model on `device` after [validating](Self::validate) the configuration.
    ///
    /// Initialisation as the official code: the encoder as [`UniformerConfig::init`]; every
    /// `nn.Conv3d` of the decoder Kaiming-normal (fan-out) with zero bias (`_init_weights`);
    /// the transposed convolutions and the deep-supervision heads keep PyTorch's default, which
    /// is burn's default.
    pub fn init<B: Backend>(&self, device: &B::Device) -> crate::Result<UniUnet<B>> {
        self.validate()?;
        let encoder_config = self.encoder_config()?;
        let encoder = encoder_config.init(device)?;
        let [w0, w1, w2, w3] = encoder_config.widths;
        let input_conv = official_conv3d(
            Conv3dConfig::new([self.in_channels, w0], [3, 3, 3])
                .with_padding(PaddingConfig3d::Explicit(1, 1, 1)),
            device,
        );
        let input_proj = PatchEmbed {
            proj: input_conv,
            norm: LayerNormConfig::new(w0)
                .with_epsilon(LAYER_NORM_EPS)
                .init(device),
        };
        let up_blocks = [(w3, w2), (w2, w1), (w1, w0), (w0, w0)]
            .into_iter()
            .map(|(from, to)| UnetrUpBlock::new(from, to, device))
            .collect();
        let head = official_conv3d(
            Conv3dConfig::new([w0, self.out_channels], [1, 1, 1]),
            device,
        );
        let deep_heads = if self.deep_supervision {
            [w0, w1]
                .into_iter()
                .map(|width| Conv3dConfig::new([width, self.out_channels], [1, 1, 1]).init(device))
                .collect()
        } else {
            Vec::new()
        };
        Ok(UniUnet {
            encoder,
            input_proj,
            up_blocks,
            head,
            deep_heads,
            in_channels: self.in_channels,
        })
    }
}

/// MONAI's `UnetResBlock` (stride 1): `lrelu(norm2(conv2(lrelu(norm1(conv1(x))))) + r)` with
/// 3³ convolutions without bias (padding 1), InstanceNorm without affine (eps 1e-5) and
/// LeakyReLU 0.01; the residual `r` is `x` when the channels agree, else
/// `norm3(conv3(x))` with a 1×1×1 convolution without bias.
#[derive(Module, Debug)]
pub struct UnetResBlock<B: Backend> {
    /// First 3³ convolution, `in → out`.
    pub conv1: Conv3d<B>,
    /// Second 3³ convolution, `out → out`.
    pub conv2: Conv3d<B>,
    /// InstanceNorm after `conv1`.
    pub norm1: InstanceNorm<B>,
    /// InstanceNorm after `conv2`.
    pub norm2: InstanceNorm<B>,
    /// 1×1×1 projection of the residual when the channel count changes.
    pub conv3: Option<Conv3d<B>>,
    /// InstanceNorm of the projected residual.
    pub norm3: Option<InstanceNorm<B>>,
}

impl<B: Backend> UnetResBlock<B> {
    /// A residual block from `in_channels` to `out_channels` (official initialisation).
    pub fn new(in_channels: usize, out_channels: usize, device: &B::Device) -> Self {
        let conv = |from: usize, kernel_size: usize| {
            let padding = kernel_size / 2;
            let config = Conv3dConfig::new([from, out_channels], [kernel_size; 3])
                .with_padding(PaddingConfig3d::Explicit(padding, padding, padding))
                .with_bias(false);
            official_conv3d(config, device)
        };
        let norm = || {
            InstanceNormConfig::new(out_channels)
                .with_affine(false)
                .init(device)
        };
        let project = in_channels != out_channels;
        Self {
            conv1: conv(in_channels, 3),
            conv2: conv(out_channels, 3),
            norm1: norm(),
            norm2: norm(),
            conv3: project.then(|| conv(in_channels, 1)),
            norm3: project.then(norm),
        }
    }

    /// `[N, in, D, H, W] → [N, out, D, H, W]`.
    pub fn forward(&self, input: Tensor<B, 5>) -> Tensor<B, 5> {
        let hidden = leaky_relu(
            instance_norm(&self.norm1, conv3d_module(&self.conv1, input.clone())),
            LEAKY_SLOPE,
        );
        let out = instance_norm(&self.norm2, conv3d_module(&self.conv2, hidden));
        let residual = match (&self.conv3, &self.norm3) {
            (Some(conv), Some(norm)) => instance_norm(norm, conv3d_module(conv, input)),
            _ => input,
        };
        leaky_relu(out + residual, LEAKY_SLOPE)
    }
}

/// MONAI's `UnetrUpBlock` (residual variant): a transposed 2³ convolution (stride 2, no bias)
/// from `in` to `out` channels, the skip concatenated after it (`[up, skip]`), and a
/// [`UnetResBlock`] from `2·out` to `out` channels.
#[derive(Module, Debug)]
pub struct UnetrUpBlock<B: Backend> {
    /// The ×2 up-sampling.
    pub transp_conv: ConvTranspose3d<B>,
    /// The residual block after the concatenation.
    pub conv_block: UnetResBlock<B>,
}

impl<B: Backend> UnetrUpBlock<B> {
    /// An up-block from `in_channels` to `out_channels` (the skip must have `out_channels`).
    pub fn new(in_channels: usize, out_channels: usize, device: &B::Device) -> Self {
        let transp_conv = ConvTranspose3dConfig::new([in_channels, out_channels], [2, 2, 2])
            .with_stride([2, 2, 2])
            .with_bias(false)
            .init(device);
        Self {
            transp_conv,
            conv_block: UnetResBlock::new(2 * out_channels, out_channels, device),
        }
    }

    /// `[N, in, d, h, w]` and skip `[N, out, 2d, 2h, 2w]` → `[N, out, 2d, 2h, 2w]`.
    pub fn forward(&self, input: Tensor<B, 5>, skip: Tensor<B, 5>) -> Tensor<B, 5> {
        let upsampled = conv_transpose3d_module(&self.transp_conv, input);
        self.conv_block
            .forward(Tensor::cat(vec![upsampled, skip], 1))
    }
}

/// The UniUnet segmentation model. Build it with [`UniUnetConfig::init`].
#[derive(Module, Debug)]
pub struct UniUnet<B: Backend> {
    /// The UniFormer encoder (official `encoder`).
    pub encoder: Uniformer<B>,
    /// 3³ convolution + channel LayerNorm of the raw input, the full-resolution skip
    /// (official `decoder.proj1`).
    pub input_proj: PatchEmbed<B>,
    /// The four up-blocks, deepest first (official `decoder5`, `decoder4`, `decoder3`,
    /// `decoder2`).
    pub up_blocks: Vec<UnetrUpBlock<B>>,
    /// 1×1×1 output convolution with bias (official `decoder.out`).
    pub head: Conv3d<B>,
    /// Deep-supervision heads (official `ms_out` reversed): on the stride-2 level, then on the
    /// stride-4 level; empty without deep supervision.
    pub deep_heads: Vec<Conv3d<B>>,
    /// Expected input channels.
    pub in_channels: usize,
}

impl<B: Backend> UniUnet<B> {
    /// Learnable parameters (PyTorch's `parameters()`): burn's [`num_params`](Module::num_params)
    /// less the encoder's BatchNorm running statistics.
    pub fn num_learnable_params(&self) -> usize {
        let encoder_buffers = self.encoder.num_params() - self.encoder.num_learnable_params();
        self.num_params() - encoder_buffers
    }

    /// Whether [`try_forward`](Self::try_forward) returns deep-supervision outputs.
    pub fn deep_supervision(&self) -> bool {
        !self.deep_heads.is_empty()
    }

    /// Checks an input shape `[N, C, D, H, W]`: `C` the configured channels, `N` positive,
    /// `D, H, W` positive multiples of 16, and the attention and decoder memory bounded.
    pub fn check_input(&self, dims: [usize; 5]) -> crate::Result<()> {
        let context = "uniunet input";
        super::check_channels_and_stride(context, dims, self.in_channels, TOTAL_STRIDE)?;
        self.encoder
            .check_input(dims)
            .map_err(|err| err.with_context(context))?;
        let [batch, _, depth, height, width] = dims;
        let concat_channels = 2 * self.input_proj.proj.weight.dims()[0];
        let elements = [depth, height, width, concat_channels]
            .iter()
            .try_fold(batch as u64, |acc, &size| acc.checked_mul(size as u64));
        match elements {
            Some(count) if count <= MAX_UNIUNET_ELEMENTS => Ok(()),
            _ => Err(Error::new(
                context,
                format!(
                    "shape {dims:?} would need activations of more than {MAX_UNIUNET_ELEMENTS} elements"
                ),
            )),
        }
    }

    /// [`forward`](Self::forward) after [`check_input`](Self::check_input).
    pub fn try_forward(&self, input: Tensor<B, 5>) -> crate::Result<Vec<Tensor<B, 5>>> {
        self.check_input(input.dims())?;
        Ok(self.forward(input))
    }

    /// [`forward_inference`](Self::forward_inference) after [`check_input`](Self::check_input).
    pub fn try_forward_inference(&self, input: Tensor<B, 5>) -> crate::Result<Tensor<B, 5>> {
        self.check_input(input.dims())?;
        Ok(self.forward_inference(input))
    }

    /// The training forward pass: `[N, C, D, H, W]` → the main logits
    /// `[N, out_channels, D, H, W]` first, then, with deep supervision, the stride-2 head and the
    /// stride-4 head, each up-sampled trilinearly to `D, H, W` (official order: the reverse).
    ///
    /// The input must satisfy [`check_input`](Self::check_input).
    pub fn forward(&self, input: Tensor<B, 5>) -> Vec<Tensor<B, 5>> {
        let levels = self.decode(input);
        let full = self.up_blocks[3].forward(levels.stride2.clone(), levels.skip);
        let mut outputs = vec![conv3d_module(&self.head, full)];
        let deep_levels = [(levels.stride2, 2), (levels.stride4, 4)];
        for (head, (level, scale)) in self.deep_heads.iter().zip(deep_levels) {
            outputs.push(upsample_trilinear(conv3d_module(head, level), scale, true));
        }
        outputs
    }

    /// The inference forward pass: the main logits `[N, out_channels, D, H, W]` only.
    ///
    /// The input must satisfy [`check_input`](Self::check_input).
    pub fn forward_inference(&self, input: Tensor<B, 5>) -> Tensor<B, 5> {
        let levels = self.decode(input);
        let full = self.up_blocks[3].forward(levels.stride2, levels.skip);
        conv3d_module(&self.head, full)
    }

    /// The encoder, the full-resolution skip and the three deepest up-blocks.
    fn decode(&self, input: Tensor<B, 5>) -> DecoderLevels<B> {
        let [stage1, stage2, stage3, stage4] = self.encoder.forward(input.clone());
        let stride8 = self.up_blocks[0].forward(stage4, stage3);
        let stride4 = self.up_blocks[1].forward(stride8, stage2);
        let stride2 = self.up_blocks[2].forward(stride4.clone(), stage1);
        let skip = self.input_proj.forward(input);
        DecoderLevels {
            stride2,
            stride4,
            skip,
        }
    }
}

/// Intermediate decoder maps of one forward pass.
struct DecoderLevels<B: Backend> {
    /// Output of `decoder3` (`w0` channels, stride 2).
    stride2: Tensor<B, 5>,
    /// Output of `decoder4` (`w1` channels, stride 4).
    stride4: Tensor<B, 5>,
    /// `proj1` of the raw input (`w0` channels, full resolution).
    skip: Tensor<B, 5>,
}

/// Trilinear up-sampling of the three spatial axes of `[N, C, D, H, W]` by an integer `scale`,
/// as PyTorch's `nn.Upsample(scale_factor=scale, mode="trilinear", align_corners=...)`:
/// separable linear interpolation along each axis. Output index `o` samples the input at
/// `o·(n−1)/(n·scale−1)` with `align_corners`, else at `max((o+½)/scale − ½, 0)`.
pub fn upsample_trilinear<B: Backend>(
    input: Tensor<B, 5>,
    scale: usize,
    align_corners: bool,
) -> Tensor<B, 5> {
    (2..5).fold(input, |x, axis| {
        upsample_axis(x, axis, scale, align_corners)
    })
}

/// Linear up-sampling of one axis of `[N, C, D, H, W]` by `scale`.
fn upsample_axis<B: Backend>(
    input: Tensor<B, 5>,
    axis: usize,
    scale: usize,
    align_corners: bool,
) -> Tensor<B, 5> {
    let size = input.dims()[axis];
    let out_size = size * scale;
    let (lower, upper, weights) = linear_taps(size, out_size, align_corners);
    let device = input.device();
    let index =
        |taps: Vec<i64>| Tensor::<B, 1, Int>::from_data(TensorData::from(taps.as_slice()), &device);
    let mut weight_shape = [1; 5];
    weight_shape[axis] = out_size;
    let upper_weight = Tensor::<B, 1>::from_data(TensorData::from(weights.as_slice()), &device)
        .reshape(weight_shape);
    let below = input.clone().select(axis, index(lower));
    let above = input.select(axis, index(upper));
    below.clone() + (above - below) * upper_weight
}

/// For each output index: the lower and upper input index and the weight of the upper one.
fn linear_taps(
    size: usize,
    out_size: usize,
    align_corners: bool,
) -> (Vec<i64>, Vec<i64>, Vec<f32>) {
    let last = size.saturating_sub(1);
    let mut lower = Vec::with_capacity(out_size);
    let mut upper = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for out_index in 0..out_size {
        let source = if align_corners {
            if out_size > 1 {
                out_index as f64 * last as f64 / (out_size - 1) as f64
            } else {
                0.0
            }
        } else {
            let ratio = size as f64 / out_size as f64;
            ((out_index as f64 + 0.5) * ratio - 0.5).max(0.0)
        };
        let below = (source.floor() as usize).min(last);
        let above = (below + 1).min(last);
        lower.push(below as i64);
        upper.push(above as i64);
        weights.push((source - below as f64) as f32);
    }
    (lower, upper, weights)
}

//! UniUnet: the official parameter count, output shapes with and without deep supervision,
//! the residual block (InstanceNorm statistics, identity shortcut), trilinear up-sampling against
//! PyTorch's formulas, and input errors.

use crate::support::{device, B};
use brainmvp_core::model::uniunet::{upsample_trilinear, UnetResBlock};
use brainmvp_core::model::{Architecture, UniUnet, UniUnetConfig};
use burn::module::Param;
use burn::tensor::{Distribution, Tensor, TensorData};

fn tiny(deep_supervision: bool) -> UniUnet<B> {
    UniUnetConfig::new(4, 3)
        .with_encoder(Architecture::UniformerTiny)
        .with_deep_supervision(deep_supervision)
        .init(&device())
        .unwrap()
}

/// Parameters of the official decoder (`UniSegDecoder(segmentation=True)` of
/// `Downstream/model/Uni_unet.py` with MONAI's blocks), written out layer by layer for encoder
/// widths `[w0, w1, w2, w3]`, `inputs` modalities and `outputs` classes:
/// - `UnetrUpBlock(i → o)`: transposed 2³ conv without bias `8·i·o`; `UnetResBlock(2o → o)`:
///   conv1 3³ `27·2o·o`, conv2 3³ `27·o·o`, conv3 1³ `2o·o` (MONAI convs have no bias), three
///   InstanceNorms without affine (0);
/// - `proj1`: 3³ conv with bias `27·inputs·w0 + w0`, LayerNorm `2·w0`;
/// - `out`: 1³ conv with bias `w0·outputs + outputs`;
/// - `ms_out` (deep supervision): 1³ convs with bias on `w1` (decoder4) and `w0` (decoder3).
fn official_decoder_params(
    widths: [usize; 4],
    inputs: usize,
    outputs: usize,
    deep_supervision: bool,
) -> usize {
    let [w0, w1, w2, w3] = widths;
    let up_block = |i: usize, o: usize| 8 * i * o + 27 * 2 * o * o + 27 * o * o + 2 * o * o;
    let ups = up_block(w3, w2) + up_block(w2, w1) + up_block(w1, w0) + up_block(w0, w0);
    let proj1 = 27 * inputs * w0 + w0 + 2 * w0;
    let out = w0 * outputs + outputs;
    let deep = if deep_supervision {
        (w1 + 1) * outputs + (w0 + 1) * outputs
    } else {
        0
    };
    ups + proj1 + out + deep
}

#[test]
fn official_model_has_the_derived_parameter_count() {
    // Encoder: uniformer_small(in_chans=1) has 22,038,464 parameters (core/tests/integration/uniformer.rs);
    // 4 channels add 3·(2³·64) = 1,536 weights to patch_embed1: 22,040,000.
    let encoder = 22_038_464 + 3 * 8 * 64;
    // Decoder: 9,809,920 + 1,687,552 + 405,504 + 372,736 (up-blocks) + 7,104 (proj1) + 195 (out).
    let decoder = official_decoder_params([64, 128, 320, 512], 4, 3, false);
    assert_eq!(decoder, 12_283_011);
    // 34,323,011 ≈ the 34.3 M the official UniUnet is quoted at.
    assert_eq!(encoder + decoder, 34_323_011);

    let model: UniUnet<B> = UniUnetConfig::official().init(&device()).unwrap();
    assert_eq!(model.num_learnable_params(), 34_323_011);
    assert!(!model.deep_supervision());
    // Deep supervision adds the two ms_out heads: (128+1)·3 + (64+1)·3 = 582.
    let model: UniUnet<B> = UniUnetConfig::official()
        .with_deep_supervision(true)
        .init(&device())
        .unwrap();
    assert_eq!(model.num_learnable_params(), 34_323_011 + 582);
}

#[test]
fn tiny_model_decoder_follows_the_official_pattern() {
    let model = tiny(true);
    let encoder = model.encoder.num_learnable_params();
    let decoder = official_decoder_params([8, 16, 32, 64], 4, 3, true);
    assert_eq!(model.num_learnable_params(), encoder + decoder);
}

#[test]
fn tiny_outputs_have_full_resolution_with_deep_supervision() {
    let model = tiny(true);
    let input = Tensor::<B, 5>::random(
        [2, 4, 32, 32, 32],
        Distribution::Normal(0.0, 1.0),
        &device(),
    );
    let outputs = model.try_forward(input.clone()).unwrap();
    assert_eq!(outputs.len(), 3);
    for output in &outputs {
        assert_eq!(output.dims(), [2, 3, 32, 32, 32]);
        let values = output.to_data().to_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| v.is_finite()));
    }
    // The main output is the inference output.
    let inference = model.try_forward_inference(input).unwrap();
    let difference: f32 = (inference - outputs[0].clone()).abs().max().into_scalar();
    assert!(difference < 1e-5, "main output differs by {difference}");
}

#[test]
fn deep_supervision_outputs_are_smooth_upsamplings() {
    // The stride-4 head is up-sampled ×4 trilinearly: along every axis the output is piecewise
    // linear, so second differences vanish inside each interval of 4 (align_corners: intervals
    // of (32-1)/(8-1) output voxels, so check linearity on the first three output voxels).
    let model = tiny(true);
    let input = Tensor::<B, 5>::random(
        [1, 4, 32, 32, 32],
        Distribution::Normal(0.0, 1.0),
        &device(),
    );
    let outputs = model.forward(input);
    let coarse = outputs[2].clone();
    let line = coarse
        .slice([0..1, 0..1, 0..3, 0..1, 0..1])
        .to_data()
        .to_vec::<f32>()
        .unwrap();
    assert!((line[0] - 2.0 * line[1] + line[2]).abs() < 1e-4, "{line:?}");
}

#[test]
fn small_preset_forward_at_32() {
    let model: UniUnet<B> = UniUnetConfig::official().init(&device()).unwrap();
    let input = Tensor::<B, 5>::random(
        [1, 4, 32, 32, 32],
        Distribution::Normal(0.0, 1.0),
        &device(),
    );
    let outputs = model.try_forward(input).unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].dims(), [1, 3, 32, 32, 32]);
}

#[test]
fn residual_block_instance_norm_is_per_sample_and_channel() {
    // With conv2 zeroed, norm2 gives 0 and the block is lrelu(norm3(conv3(x))); with conv3 set
    // to a channel selection the projected residual is the instance-normalised input channel.
    let device = device();
    let mut block = UnetResBlock::<B>::new(3, 2, &device);
    let conv2 = block.conv2.weight.val();
    block.conv2.weight = Param::from_tensor(conv2.zeros_like());
    let select = TensorData::new(vec![1.0f32, 0.0, 0.0, 0.0, 0.0, 1.0], [2, 3, 1, 1, 1]);
    block.conv3.as_mut().unwrap().weight = Param::from_tensor(Tensor::from_data(select, &device));
    let input = Tensor::<B, 5>::random([2, 3, 6, 5, 4], Distribution::Normal(0.0, 1.0), &device);
    let scales = Tensor::<B, 1>::from_floats([3.0, 0.5], &device).reshape([2, 1, 1, 1, 1]);
    let input = input * scales + 7.0;
    // leaky_relu is invertible: x = y for y ≥ 0, y / 0.01 below.
    let output = block.forward(input);
    let positive = output.clone().clamp_min(0.0);
    let negative = output.clamp_max(0.0) / 0.01;
    let normalised = (positive + negative).reshape([2, 2, 120]);
    let mean = normalised.clone().mean_dim(2);
    let variance = (normalised - mean.clone()).powi_scalar(2).mean_dim(2);
    let mean = mean.to_data().to_vec::<f32>().unwrap();
    let variance = variance.to_data().to_vec::<f32>().unwrap();
    for (m, v) in mean.iter().zip(&variance) {
        assert!(m.abs() < 1e-4, "mean {m}");
        // Biased variance, eps 1e-5 as PyTorch: var/(var+eps) ≈ 1.
        assert!((v - 1.0).abs() < 1e-3, "variance {v}");
    }
}

#[test]
fn residual_block_keeps_the_identity_shortcut_when_channels_agree() {
    let device = device();
    let mut block = UnetResBlock::<B>::new(4, 4, &device);
    assert!(block.conv3.is_none() && block.norm3.is_none());
    let conv2 = block.conv2.weight.val();
    block.conv2.weight = Param::from_tensor(conv2.zeros_like());
    let input = Tensor::<B, 5>::random([1, 4, 4, 4, 4], Distribution::Normal(0.0, 1.0), &device);
    let expected = burn::tensor::activation::leaky_relu(input.clone(), 0.01);
    let difference: f32 = (block.forward(input) - expected).abs().max().into_scalar();
    assert!(difference < 1e-6);
}

#[test]
fn trilinear_upsampling_matches_pytorch() {
    let device = device();
    let line = |values: Vec<f32>| {
        let len = values.len();
        Tensor::<B, 5>::from_data(TensorData::new(values, [1, 1, len, 1, 1]), &device)
    };
    let values = |tensor: Tensor<B, 5>| tensor.to_data().to_vec::<f32>().unwrap();
    let close = |got: Vec<f32>, want: &[f32]| {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    };
    // F.interpolate([0, 1], scale_factor=2, mode="linear", align_corners=False/True).
    let up = upsample_trilinear(line(vec![0.0, 1.0]), 2, false);
    assert_eq!(up.dims(), [1, 1, 4, 2, 2]);
    close(
        values(up.slice([0..1, 0..1, 0..4, 0..1, 0..1])),
        &[0.0, 0.25, 0.75, 1.0],
    );
    let up = upsample_trilinear(line(vec![0.0, 1.0]), 2, true);
    close(
        values(up.slice([0..1, 0..1, 0..4, 0..1, 0..1])),
        &[0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0],
    );
    // ×4 of [0, 4] without corners: src = (o+0.5)/4-0.5 clamped at 0.
    let up = upsample_trilinear(line(vec![0.0, 4.0]), 4, false);
    let want = [0.0, 0.0, 0.5, 1.5, 2.5, 3.5, 4.0, 4.0];
    close(values(up.slice([0..1, 0..1, 0..8, 0..1, 0..1])), &want);
    // A separable linear function is reproduced exactly with align_corners.
    let ramp = Tensor::<B, 1, burn::tensor::Int>::arange(0..8, &device)
        .float()
        .reshape([1, 1, 2, 2, 2]);
    let up = upsample_trilinear(ramp, 4, true);
    let coordinate = |axis: usize| {
        let mut shape = [1; 5];
        shape[axis] = 8;
        Tensor::<B, 1, burn::tensor::Int>::arange(0..8, &device)
            .float()
            .reshape(shape)
            / 7.0
    };
    // The ramp is 4·z + 2·y + x on the 2³ grid; up-sampled, z, y, x run over o/7.
    let expected = coordinate(2) * 4.0 + coordinate(3) * 2.0 + coordinate(4);
    let difference: f32 = (up - expected).abs().max().into_scalar();
    assert!(difference < 1e-5);
}

#[test]
fn bad_inputs_and_configs_are_errors() {
    let model = tiny(false);
    let cases = [
        [1, 3, 32, 32, 32],
        [1, 4, 32, 24, 32],
        [0, 4, 32, 32, 32],
        [1, 4, 0, 32, 32],
    ];
    for dims in cases {
        let err = model.check_input(dims).unwrap_err();
        assert_eq!(err.context, "uniunet input", "{dims:?}");
    }
    let err = model.check_input([1, 4, 4096, 4096, 4096]).unwrap_err();
    assert_eq!(err.context, "uniunet input");
    assert!(model.check_input([1, 4, 16, 32, 48]).is_ok());
    let input = Tensor::<B, 5>::zeros([1, 4, 20, 32, 32], &device());
    assert!(model.try_forward(input.clone()).is_err());
    assert!(model.try_forward_inference(input).is_err());

    let err = UniUnetConfig::new(4, 0).init::<B>(&device()).unwrap_err();
    assert_eq!(err.context, "uniunet config");
    let err = UniUnetConfig::new(0, 3).init::<B>(&device()).unwrap_err();
    assert_eq!(err.context, "uniunet config");
}

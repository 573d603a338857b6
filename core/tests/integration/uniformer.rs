//! UniFormer encoder: parameter count of the official UniFormer-S, stage output shapes, input
//! checks, and the attention / channel-norm building blocks against direct computations.

use crate::support::{device, B};
use brainmvp_core::kernels::channel_layer_norm;
use brainmvp_core::model::sablock::Attention;
use brainmvp_core::model::{Uniformer, UniformerConfig};
use burn::module::Module;
use burn::nn::LayerNormConfig;
use burn::tensor::{Distribution, Tensor};

/// Parameters of the model as written out layer by layer (weights + biases, norm scale + shift).
fn analytic_params(config: &UniformerConfig) -> usize {
    let hidden = |c: usize| (c as f64 * config.mlp_ratio) as usize;
    let conv_block = |c: usize| {
        let pos = 27 * c + c;
        let norms = 2 * (2 * c);
        let pointwise = 2 * (c * c + c);
        let depthwise5 = 125 * c + c;
        let mlp = (c * hidden(c) + hidden(c)) + (hidden(c) * c + c);
        pos + norms + pointwise + depthwise5 + mlp
    };
    let attention_block = |c: usize| {
        let pos = 27 * c + c;
        let norms = 2 * (2 * c);
        let qkv = c * 3 * c + 3 * c;
        let proj = c * c + c;
        let mlp = (c * hidden(c) + hidden(c)) + (hidden(c) * c + c);
        pos + norms + qkv + proj + mlp
    };
    let mut total = 0;
    let mut previous = config.in_channels;
    for (stage, (&depth, &width)) in config.depths.iter().zip(&config.widths).enumerate() {
        total += previous * 8 * width + width + 2 * width;
        let block = if stage < 2 {
            conv_block(width)
        } else {
            attention_block(width)
        };
        total += depth * block;
        previous = width;
    }
    total + 2 * config.widths[3]
}

#[test]
fn small_preset_has_the_official_parameter_count() {
    let config = UniformerConfig::small(1);
    let model: Uniformer<B> = config.init(&device()).unwrap();
    // 22,038,464: the official uniformer_small(in_chans=1) of shaohao011/BrainMVP.
    assert_eq!(model.num_learnable_params(), 22_038_464);
    // burn also counts the BatchNorm running mean/var: 2 x (3·2·64 + 4·2·128 + 512) = 3,840.
    assert_eq!(model.num_params(), 22_038_464 + 3_840);
    assert_eq!(model.heads, [5, 8]);
}

#[test]
fn parameter_count_follows_the_layers_for_other_configs() {
    for config in [
        UniformerConfig::tiny(1),
        UniformerConfig::tiny(4),
        UniformerConfig::small(4),
        UniformerConfig::tiny(2)
            .with_depths([2, 1, 3, 2])
            .with_mlp_ratio(3.0),
    ] {
        let model: Uniformer<B> = config.init(&device()).unwrap();
        assert_eq!(
            model.num_learnable_params(),
            analytic_params(&config),
            "{config:?}"
        );
    }
}

fn assert_stage_shapes(model: &Uniformer<B>, widths: [usize; 4], batch: usize, channels: usize) {
    assert_stage_shapes_at(model, widths, batch, channels, 32);
}

fn assert_stage_shapes_at(
    model: &Uniformer<B>,
    widths: [usize; 4],
    batch: usize,
    channels: usize,
    edge: usize,
) {
    let input = Tensor::<B, 5>::random(
        [batch, channels, edge, edge, edge],
        Distribution::Normal(0.0, 1.0),
        &device(),
    );
    let stages = model.try_forward(input).unwrap();
    for (index, stage) in stages.into_iter().enumerate() {
        let side = edge >> (index + 1);
        assert_eq!(stage.dims(), [batch, widths[index], side, side, side]);
        let values = stage.into_data().to_vec::<f32>().unwrap();
        assert!(values.iter().all(|v| v.is_finite()), "stage {index}");
    }
}

#[test]
fn tiny_preset_stage_shapes_at_32_cubed() {
    let config = UniformerConfig::tiny(2);
    let model: Uniformer<B> = config.init(&device()).unwrap();
    assert_stage_shapes(&model, [8, 16, 32, 64], 2, 2);
}

#[test]
fn small_preset_stage_shapes_at_32_cubed() {
    let model: Uniformer<B> = UniformerConfig::small(1).init(&device()).unwrap();
    assert_stage_shapes(&model, [64, 128, 320, 512], 1, 1);
}

#[test]
fn presets_give_48_24_12_6_at_the_official_96_cubed_crop() {
    let small: Uniformer<B> = UniformerConfig::small(1).init(&device()).unwrap();
    assert_stage_shapes_at(&small, [64, 128, 320, 512], 1, 1, 96);
    let tiny: Uniformer<B> = UniformerConfig::tiny(4).init(&device()).unwrap();
    assert_stage_shapes_at(&tiny, [8, 16, 32, 64], 1, 4, 96);
}

#[test]
fn invalid_inputs_and_configs_are_errors() {
    let model: Uniformer<B> = UniformerConfig::tiny(2).init(&device()).unwrap();
    assert!(model.check_input([1, 2, 32, 48, 16]).is_ok());
    let wrong_channels = model.check_input([1, 1, 32, 32, 32]).unwrap_err();
    assert!(wrong_channels.to_string().contains("channels"));
    assert!(model.check_input([1, 2, 32, 24, 32]).is_err());
    assert!(model.check_input([0, 2, 32, 32, 32]).is_err());
    assert!(model.check_input([1, 2, 0, 32, 32]).is_err());
    assert!(model.check_input([1, 2, 4096, 4096, 4096]).is_err());
    let tiny_input = Tensor::<B, 5>::zeros([1, 2, 16, 16, 8], &device());
    assert!(model.try_forward(tiny_input).is_err());

    let bad_heads = UniformerConfig::small(1).with_head_dim(48);
    assert!(bad_heads.init::<B>(&device()).is_err());
    assert!(UniformerConfig::small(0).validate().is_err());
    assert!(UniformerConfig::tiny(1)
        .with_mlp_ratio(0.0)
        .validate()
        .is_err());
}

#[test]
fn attention_on_one_token_is_the_projected_value() {
    // With a single token the softmax weight is 1: output = proj(v), v = last third of qkv.
    let channels = 16;
    let attention = Attention::<B>::new(channels, 4, true, &device());
    let tokens =
        Tensor::<B, 3>::random([3, 1, channels], Distribution::Normal(0.0, 1.0), &device());
    let qkv = attention.qkv.forward(tokens.clone());
    let value = qkv.narrow(2, 2 * channels, channels);
    let expected = attention
        .proj
        .forward(value)
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let got = attention
        .forward(tokens)
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    for (a, b) in got.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn attention_is_permutation_equivariant_over_tokens() {
    let channels = 16;
    let length = 5;
    let attention = Attention::<B>::new(channels, 2, true, &device());
    let tokens = Tensor::<B, 3>::random(
        [2, length, channels],
        Distribution::Normal(0.0, 1.0),
        &device(),
    );
    let order = [3, 0, 4, 1, 2];
    let index = Tensor::<B, 1, burn::tensor::Int>::from_ints(order, &device());
    let permuted_then_attended = attention.forward(tokens.clone().select(1, index.clone()));
    let attended_then_permuted = attention.forward(tokens).select(1, index);
    let a = permuted_then_attended.into_data().to_vec::<f32>().unwrap();
    let b = attended_then_permuted.into_data().to_vec::<f32>().unwrap();
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

#[test]
fn channel_layer_norm_normalises_each_voxel_over_channels() {
    let channels = 6;
    let norm = LayerNormConfig::new(channels).init::<B>(&device());
    let input = Tensor::<B, 5>::random(
        [2, channels, 3, 2, 4],
        Distribution::Normal(3.0, 2.0),
        &device(),
    );
    let output = channel_layer_norm(&norm, input);
    assert_eq!(output.dims(), [2, channels, 3, 2, 4]);
    let mean = output
        .clone()
        .mean_dim(1)
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    let variance = output.var_bias(1).into_data().to_vec::<f32>().unwrap();
    assert!(mean.iter().all(|m| m.abs() < 1e-4));
    assert!(variance.iter().all(|v| (v - 1.0).abs() < 1e-2));
}

fn zero_conv(conv: &mut burn::nn::conv::Conv3d<B>) {
    conv.weight = burn::module::Param::from_tensor(conv.weight.val().zeros_like());
    if let Some(bias) = conv.bias.take() {
        conv.bias = Some(burn::module::Param::from_tensor(bias.val().zeros_like()));
    }
}

fn zero_linear(linear: &mut burn::nn::Linear<B>) {
    linear.weight = burn::module::Param::from_tensor(linear.weight.val().zeros_like());
    if let Some(bias) = linear.bias.take() {
        linear.bias = Some(burn::module::Param::from_tensor(bias.val().zeros_like()));
    }
}

fn max_abs_difference(a: Tensor<B, 5>, b: Tensor<B, 5>) -> f32 {
    (a - b).abs().max().into_scalar()
}

#[test]
fn blocks_are_residual_branches_around_the_input() {
    // Zeroing the last layer of every branch must leave the input unchanged; zeroing only the
    // position encoding must not (the mixing and MLP branches still contribute).
    use brainmvp_core::model::cblock::CBlock;
    use brainmvp_core::model::sablock::SABlock;
    let input = Tensor::<B, 5>::random([1, 8, 4, 4, 4], Distribution::Normal(0.0, 1.0), &device());

    let mut conv_block = CBlock::<B>::new(8, 32, &device());
    zero_conv(&mut conv_block.pos_embed);
    let changed = conv_block.forward(input.clone());
    assert!(max_abs_difference(changed, input.clone()) > 1e-3);
    zero_conv(&mut conv_block.conv2);
    zero_conv(&mut conv_block.mlp.fc2);
    let same = conv_block.forward(input.clone());
    assert!(max_abs_difference(same, input.clone()) < 1e-6);

    let mut attention_block = SABlock::<B>::new(8, 2, 32, true, &device());
    zero_conv(&mut attention_block.pos_embed);
    let changed = attention_block.forward(input.clone());
    assert!(max_abs_difference(changed, input.clone()) > 1e-3);
    zero_linear(&mut attention_block.attn.proj);
    zero_linear(&mut attention_block.mlp.fc2);
    let same = attention_block.forward(input.clone());
    assert!(max_abs_difference(same, input) < 1e-6);
}

/// Sample standard deviation and the largest |bias| of a Conv3d.
fn weight_std_and_bias(conv: &burn::nn::conv::Conv3d<B>) -> (f64, f32) {
    let weights: Vec<f32> = conv.weight.val().into_data().into_vec().unwrap();
    let mean = weights.iter().map(|&w| w as f64).sum::<f64>() / weights.len() as f64;
    let variance = weights
        .iter()
        .map(|&w| (w as f64 - mean).powi(2))
        .sum::<f64>()
        / weights.len() as f64;
    let bias: Vec<f32> = conv
        .bias
        .as_ref()
        .unwrap()
        .val()
        .into_data()
        .into_vec()
        .unwrap();
    let largest_bias = bias.iter().fold(0.0f32, |m, &b| m.max(b.abs()));
    (variance.sqrt(), largest_bias)
}

#[test]
fn convolutions_are_kaiming_normal_fan_out_with_zero_bias_as_pytorch() {
    let model = UniformerConfig::small(1).init::<B>(&device()).unwrap();
    // PyTorch's fan_out = out_channels · k³ (not divided by the groups): √(2 / fan_out).
    let cases = [
        (&model.patch_embeds[2].proj, (2.0f64 / (320.0 * 8.0)).sqrt()),
        (&model.stage1[0].pos_embed, (2.0f64 / (64.0 * 27.0)).sqrt()),
        (&model.stage2[0].attn, (2.0f64 / (128.0 * 125.0)).sqrt()),
        (&model.stage2[0].conv1, (2.0f64 / 128.0).sqrt()),
    ];
    for (index, (conv, expected)) in cases.into_iter().enumerate() {
        let (std, largest_bias) = weight_std_and_bias(conv);
        assert!(
            (std / expected - 1.0).abs() < 0.05,
            "conv {index}: std {std} vs {expected}"
        );
        assert_eq!(largest_bias, 0.0, "conv {index}");
    }
}

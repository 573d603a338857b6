//! Pre-training decoders: output shapes after each encoder, parameter counts against the layer
//! formulas, linearity and locality of the transposed-convolution decoder, the nearest
//! up-sampling, and the input / config checks.

use crate::support::{device, B};
use brainmvp_core::model::decoder::upsample_nearest2;
use brainmvp_core::model::{
    PretrainDecoder, PretrainDecoderConfig, Unet3d, Unet3dConfig, UnetDecoder, UnetDecoderConfig,
    Uniformer, UniformerConfig,
};
use burn::tensor::{Distribution, Tensor, TensorData};

fn random(dims: [usize; 5]) -> Tensor<B, 5> {
    Tensor::random(dims, Distribution::Normal(0.0, 1.0), &device())
}

fn max_abs(tensor: Tensor<B, 5>) -> f32 {
    tensor.abs().max().into_scalar()
}

/// Σ cin·cout·8 over the bias-free transposed 2³ convs, plus the 1×1×1 head with bias.
fn transposed_params(config: &PretrainDecoderConfig) -> usize {
    let mut previous = config.in_channels;
    let mut total = 0;
    for &width in &config.widths {
        total += previous * width * 8;
        previous = width;
    }
    total + previous * config.out_channels + config.out_channels
}

/// Per stage a 1×1×1 conv with bias and a residual block (two GroupNorms, two 3³ convs),
/// then the 1×1×1 head with bias.
fn unet_decoder_params(config: &UnetDecoderConfig) -> usize {
    let mut previous = config.in_channels;
    let mut total = 0;
    for &width in &config.widths {
        total += previous * width + width;
        total += 2 * (2 * width) + 2 * (27 * width * width + width);
        previous = width;
    }
    total + previous * config.out_channels + config.out_channels
}

#[test]
fn uniformer_small_decoder_maps_2_cubed_to_32_cubed() {
    let config = PretrainDecoderConfig::uniformer_small();
    assert_eq!(config.in_channels, 512);
    assert_eq!(config.widths, vec![320, 128, 64, 64]);
    let decoder: PretrainDecoder<B> = config.init(&device()).unwrap();
    assert_eq!(decoder.upsampling(), 16);
    let output = decoder.try_forward(random([1, 512, 2, 2, 2])).unwrap();
    assert_eq!(output.dims(), [1, 1, 32, 32, 32]);
    // 512·320·8 + 320·128·8 + 128·64·8 + 64·64·8 + 64·1 + 1
    assert_eq!(transposed_params(&config), 1_736_769);
    assert_eq!(decoder.num_learnable_params(), 1_736_769);
}

#[test]
fn tiny_decoder_maps_2_cubed_to_32_cubed() {
    let config = PretrainDecoderConfig::uniformer_tiny();
    assert_eq!(config.in_channels, UniformerConfig::tiny(1).widths[3]);
    assert_eq!(config.widths, vec![32, 16, 8, 8]);
    let decoder: PretrainDecoder<B> = config.init(&device()).unwrap();
    let output = decoder.try_forward(random([1, 64, 2, 2, 2])).unwrap();
    assert_eq!(output.dims(), [1, 1, 32, 32, 32]);
    assert_eq!(decoder.num_learnable_params(), transposed_params(&config));
}

#[test]
fn decoder_parameter_count_follows_the_formula_for_other_configs() {
    for config in [
        PretrainDecoderConfig::new(7)
            .with_widths(vec![5, 3])
            .with_out_channels(2),
        PretrainDecoderConfig::for_unet3d(&Unet3dConfig::official(1)),
        PretrainDecoderConfig::for_uniformer(&UniformerConfig::small(4)),
    ] {
        let decoder: PretrainDecoder<B> = config.init(&device()).unwrap();
        assert_eq!(
            decoder.num_learnable_params(),
            transposed_params(&config),
            "{config:?}"
        );
    }
}

#[test]
fn transposed_decoder_is_linear_with_zero_bias() {
    // No norm, no activation, bias-free transposed convs and a zero-initialised head bias.
    let decoder: PretrainDecoder<B> = PretrainDecoderConfig::uniformer_tiny()
        .init(&device())
        .unwrap();
    let zero = decoder.forward(Tensor::zeros([1, 64, 1, 2, 1], &device()));
    assert_eq!(max_abs(zero), 0.0);
    let a = random([1, 64, 1, 2, 1]);
    let b = random([1, 64, 1, 2, 1]);
    let sum = decoder.forward(a.clone() + b.clone());
    let parts = decoder.forward(a.clone()) + decoder.forward(b);
    let scale = max_abs(sum.clone());
    assert!(scale > 0.0);
    assert!(max_abs(sum - parts) <= 1e-4 * scale);
    let scaled = decoder.forward(a.clone() * 3.0) - decoder.forward(a) * 3.0;
    assert!(max_abs(scaled) <= 1e-4 * scale);
}

#[test]
fn each_input_voxel_decodes_into_its_own_16_cubed_block() {
    // Stride-2 kernel-2 transposed convs do not overlap: voxel (0,1,0) of a 2³ map reaches only
    // output block z 0..16, y 16..32, x 0..16.
    let decoder: PretrainDecoder<B> = PretrainDecoderConfig::uniformer_tiny()
        .init(&device())
        .unwrap();
    let mut values = vec![0.0f32; 64 * 8];
    for channel in 0..64 {
        values[channel * 8 + 2] = 1.0 + channel as f32 / 64.0; // (z 0, y 1, x 0)
    }
    let input = Tensor::<B, 5>::from_data(TensorData::new(values, [1, 64, 2, 2, 2]), &device());
    let output = decoder.forward(input);
    let inside = output.clone().slice([0..1, 0..1, 0..16, 16..32, 0..16]);
    assert!(max_abs(inside) > 0.0);
    // Everything outside the block is exactly zero (the block itself blanked out).
    let block = [0..1, 0..1, 0..16, 16..32, 0..16];
    let outside = output.slice_assign(block, Tensor::zeros([1, 1, 16, 16, 16], &device()));
    assert_eq!(max_abs(outside), 0.0, "something leaked out of the block");
}

#[test]
fn uniformer_encoder_and_decoder_reconstruct_the_input_size() {
    let encoder: Uniformer<B> = UniformerConfig::tiny(1).init(&device()).unwrap();
    let decoder: PretrainDecoder<B> = PretrainDecoderConfig::uniformer_tiny()
        .init(&device())
        .unwrap();
    let [_, _, _, deepest] = encoder.try_forward(random([2, 1, 32, 16, 48])).unwrap();
    assert_eq!(
        decoder.try_forward(deepest).unwrap().dims(),
        [2, 1, 32, 16, 48]
    );
}

#[test]
fn official_unet_decoder_maps_4_cubed_to_32_cubed() {
    let config = UnetDecoderConfig::official();
    assert_eq!(config.in_channels, 256);
    assert_eq!(config.widths, vec![128, 64, 32]);
    let decoder: UnetDecoder<B> = config.init(&device()).unwrap();
    assert_eq!(decoder.upsampling(), 8);
    let output = decoder.try_forward(random([1, 256, 4, 4, 4])).unwrap();
    assert_eq!(output.dims(), [1, 1, 32, 32, 32]);
    assert_eq!(unet_decoder_params(&config), 1_205_825);
    assert_eq!(decoder.num_learnable_params(), 1_205_825);
}

#[test]
fn unet_encoder_and_decoder_reconstruct_the_input_size() {
    let encoder_config = Unet3dConfig::tiny(1);
    let encoder: Unet3d<B> = encoder_config.init(&device()).unwrap();
    let config = UnetDecoderConfig::for_unet3d(&encoder_config);
    let decoder: UnetDecoder<B> = config.init(&device()).unwrap();
    assert_eq!(decoder.num_learnable_params(), unet_decoder_params(&config));
    let deepest = encoder.forward_deepest(random([1, 1, 16, 24, 16]));
    assert_eq!(
        decoder.try_forward(deepest.clone()).unwrap().dims(),
        [1, 1, 16, 24, 16]
    );
    let transposed: PretrainDecoder<B> = PretrainDecoderConfig::for_unet3d(&encoder_config)
        .init(&device())
        .unwrap();
    assert_eq!(
        transposed.try_forward(deepest).unwrap().dims(),
        [1, 1, 16, 24, 16]
    );
}

#[test]
fn nearest_upsampling_copies_each_voxel_into_a_2_cubed_block() {
    let dims = [2, 3, 2, 3, 4];
    let count: usize = dims.iter().product();
    let values: Vec<f32> = (0..count).map(|i| i as f32).collect();
    let input = Tensor::<B, 5>::from_data(TensorData::new(values.clone(), dims), &device());
    let output = upsample_nearest2(input);
    assert_eq!(output.dims(), [2, 3, 4, 6, 8]);
    let got = output.into_data().to_vec::<f32>().unwrap();
    let [_, _, d, h, w] = dims;
    let mut index = 0;
    for plane in 0..6 {
        for z in 0..2 * d {
            for y in 0..2 * h {
                for x in 0..2 * w {
                    let source = ((plane * d + z / 2) * h + y / 2) * w + x / 2;
                    assert_eq!(got[index], values[source], "plane {plane} ({z},{y},{x})");
                    index += 1;
                }
            }
        }
    }
}

#[test]
fn inputs_the_decoders_cannot_take_are_errors() {
    let transposed: PretrainDecoder<B> = PretrainDecoderConfig::uniformer_tiny()
        .init(&device())
        .unwrap();
    let unet: UnetDecoder<B> = UnetDecoderConfig::for_unet3d(&Unet3dConfig::tiny(1))
        .init(&device())
        .unwrap();
    for dims in [
        [1, 63, 2, 2, 2],
        [0, 64, 2, 2, 2],
        [1, 64, 2, 0, 2],
        [8, 64, 64, 64, 64],
        [usize::MAX, 64, 2, 2, 2],
    ] {
        let err = transposed.check_input(dims).unwrap_err();
        assert!(
            err.to_string().starts_with("pretrain decoder input: "),
            "{err}"
        );
        let err = unet.check_input(dims).unwrap_err();
        assert!(err.to_string().starts_with("unet decoder input: "), "{err}");
    }
    assert!(transposed.try_forward(random([1, 8, 2, 2, 2])).is_err());
}

#[test]
fn configs_that_cannot_be_built_are_errors() {
    let transposed = [
        PretrainDecoderConfig::new(0),
        PretrainDecoderConfig::new(8).with_widths(vec![]),
        PretrainDecoderConfig::new(8).with_widths(vec![4, 0]),
        PretrainDecoderConfig::new(8).with_widths(vec![4; 7]),
        PretrainDecoderConfig::new(8).with_out_channels(0),
        PretrainDecoderConfig::new(1 << 20),
    ];
    for config in transposed {
        let err = config.init::<B>(&device()).unwrap_err();
        assert!(
            err.to_string().starts_with("pretrain decoder config: "),
            "{err}"
        );
    }
    for config in [
        UnetDecoderConfig::new(16).with_widths(vec![12]), // not a multiple of 8 groups
        UnetDecoderConfig::new(16).with_groups(0),
        UnetDecoderConfig::new(16).with_widths(vec![]),
    ] {
        let err = config.init::<B>(&device()).unwrap_err();
        assert!(
            err.to_string().starts_with("unet decoder config: "),
            "{err}"
        );
    }
}

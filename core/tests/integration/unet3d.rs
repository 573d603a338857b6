//! UNet3D encoder: parameter count against the layer-by-layer formula, the four feature shapes,
//! the official feature semantics, the residual block, and the input / config checks.

use crate::support::{device, B};
use brainmvp_core::model::unet3d::ResBlock;
use brainmvp_core::model::{Unet3d, Unet3dConfig};
use burn::module::{Module, Param};
use burn::tensor::{Distribution, Tensor};

/// Parameters written out layer by layer: a 3³ conv `cin → cout` has `27·cin·cout + cout`;
/// a residual block on `c` has two GroupNorms (`2c` each) and two 3³ convs `c → c`.
fn analytic_params(config: &Unet3dConfig) -> usize {
    let conv3 = |cin: usize, cout: usize| 27 * cin * cout + cout;
    let block = |c: usize| 2 * (2 * c) + 2 * conv3(c, c);
    let widths = config.widths();
    let stem = conv3(config.in_channels, widths[0]);
    let downs: usize = widths.windows(2).map(|w| conv3(w[0], w[1])).sum();
    let blocks: usize = widths
        .iter()
        .zip(&config.depths)
        .map(|(&width, &depth)| depth * block(width))
        .sum();
    stem + downs + blocks
}

fn random(dims: [usize; 5]) -> Tensor<B, 5> {
    Tensor::random(dims, Distribution::Normal(0.0, 1.0), &device())
}

fn max_abs_diff(a: Tensor<B, 5>, b: Tensor<B, 5>) -> f32 {
    (a - b).abs().max().into_scalar()
}

#[test]
fn official_model_has_the_analytic_parameter_count() {
    let config = Unet3dConfig::official(1);
    let model: Unet3d<B> = config.init(&device()).unwrap();
    assert_eq!(config.widths(), [32, 64, 128, 256]);
    assert_eq!(analytic_params(&config), 17_594_112);
    assert_eq!(model.num_learnable_params(), 17_594_112);
    assert_eq!(model.num_params(), model.num_learnable_params());
}

#[test]
fn parameter_count_follows_the_layers_for_other_configs() {
    for config in [
        Unet3dConfig::tiny(1),
        Unet3dConfig::tiny(4),
        Unet3dConfig::official(4),
        Unet3dConfig::new(2)
            .with_base_width(12)
            .with_groups(4)
            .with_depths([0, 3, 1, 2]),
    ] {
        let model: Unet3d<B> = config.init(&device()).unwrap();
        assert_eq!(
            model.num_learnable_params(),
            analytic_params(&config),
            "{config:?}"
        );
    }
}

#[test]
fn official_features_have_the_documented_shapes_at_32() {
    let model: Unet3d<B> = Unet3dConfig::official(1).init(&device()).unwrap();
    let features = model.try_forward(random([1, 1, 32, 32, 32])).unwrap();
    let shapes = features.map(|f| f.dims());
    assert_eq!(
        shapes,
        [
            [1, 64, 16, 16, 16],
            [1, 128, 8, 8, 8],
            [1, 256, 4, 4, 4],
            [1, 256, 4, 4, 4]
        ]
    );
}

#[test]
fn tiny_features_follow_each_axis_of_a_non_cubic_input() {
    let model: Unet3d<B> = Unet3dConfig::tiny(2).init(&device()).unwrap();
    let input = random([2, 2, 16, 24, 40]);
    let shapes = model.try_forward(input.clone()).unwrap().map(|f| f.dims());
    assert_eq!(
        shapes,
        [
            [2, 16, 8, 12, 20],
            [2, 32, 4, 6, 10],
            [2, 64, 2, 3, 5],
            [2, 64, 2, 3, 5]
        ]
    );
    assert_eq!(model.forward_deepest(input).dims(), [2, 64, 2, 3, 5]);
}

#[test]
fn deepest_map_is_the_last_level_blocks_applied_to_the_third_feature() {
    // The official encoder returns the third down-sampling's output *before* the deepest blocks.
    let model: Unet3d<B> = Unet3dConfig::tiny(1)
        .with_depths([1, 1, 1, 2])
        .init(&device())
        .unwrap();
    let [_, _, c3d, c4d] = model.forward(random([1, 1, 16, 16, 16]));
    let by_hand = model.levels[3]
        .iter()
        .fold(c3d.clone(), |x, block| block.forward(x));
    assert_eq!(max_abs_diff(by_hand, c4d.clone()), 0.0);
    assert!(
        max_abs_diff(c3d, c4d) > 1e-3,
        "the deepest blocks changed nothing"
    );
}

#[test]
fn residual_block_is_the_identity_when_its_last_conv_is_zero() {
    let block: ResBlock<B> = ResBlock::new(16, 8, &device());
    let input = random([2, 16, 4, 6, 8]);
    let changed = block.forward(input.clone());
    assert!(max_abs_diff(changed, input.clone()) > 1e-3);

    let mut zeroed = block;
    let weight_dims = zeroed.conv2.weight.dims();
    zeroed.conv2.weight = Param::from_tensor(Tensor::zeros(weight_dims, &device()));
    zeroed.conv2.bias = Some(Param::from_tensor(Tensor::zeros([16], &device())));
    assert_eq!(max_abs_diff(zeroed.forward(input.clone()), input), 0.0);
}

#[test]
fn residual_block_adds_the_branch_to_its_input() {
    // Pre-activation: out = x + conv2(relu(gn2(conv1(relu(gn1(x)))))), computed here by hand.
    let block: ResBlock<B> = ResBlock::new(8, 8, &device());
    let input = random([1, 8, 4, 4, 4]);
    let branch = burn::tensor::activation::relu(block.norm1.forward(input.clone()));
    let branch = block.conv1.forward(branch);
    let branch = burn::tensor::activation::relu(block.norm2.forward(branch));
    let expected = block.conv2.forward(branch) + input.clone();
    assert!(max_abs_diff(block.forward(input), expected) < 1e-5);
}

#[test]
fn inputs_the_model_cannot_take_are_errors() {
    let model: Unet3d<B> = Unet3dConfig::tiny(2).init(&device()).unwrap();
    for dims in [
        [1, 1, 16, 16, 16],        // wrong channels
        [1, 2, 16, 12, 16],        // 12 is not a multiple of 8
        [0, 2, 16, 16, 16],        // empty batch
        [1, 2, 0, 16, 16],         // empty axis
        [64, 2, 1024, 1024, 1024], // absurd activation size
        [usize::MAX, 2, 8, 8, 8],  // overflow
    ] {
        let err = model.check_input(dims).unwrap_err();
        assert!(err.to_string().starts_with("unet3d input: "), "{err}");
    }
    assert!(model.try_forward(random([1, 1, 8, 8, 8])).is_err());
    assert!(model.check_input([3, 2, 8, 16, 24]).is_ok());
}

#[test]
fn configs_that_cannot_be_built_are_errors() {
    for config in [
        Unet3dConfig::new(0),
        Unet3dConfig::new(1).with_base_width(0),
        Unet3dConfig::new(1).with_groups(0),
        Unet3dConfig::new(1).with_base_width(12), // not a multiple of 8 groups
        Unet3dConfig::new(1).with_base_width(1 << 20),
    ] {
        let err = config.init::<B>(&device()).unwrap_err();
        assert!(err.to_string().starts_with("unet3d config: "), "{err}");
    }
}

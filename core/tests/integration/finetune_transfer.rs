//! Loading a pre-trained encoder: every tensor equals the pre-trained one after the transfer, except
//! the first patch embedding when the channel counts differ (then it equals the target's); the
//! running statistics travel too; another preset is refused; the counts add up.

use crate::support::B;
use brainmvp_core::finetune::transfer::{parameter_shapes, transfer_encoder, FirstEmbedding};
use brainmvp_core::model::{Uniformer, UniformerConfig};
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use std::collections::BTreeMap;

/// Every float tensor of a module, by dotted path.
struct ValueCollector {
    path: Vec<String>,
    values: BTreeMap<String, Vec<f32>>,
}

impl<Bk: Backend> ModuleVisitor<Bk> for ValueCollector {
    fn enter_module(&mut self, name: &str, _: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _: &str, _: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Bk, D>>) {
        let values = param.val().into_data().convert::<f32>().to_vec().unwrap();
        self.values.insert(self.path.join("."), values);
    }
}

fn values(encoder: &Uniformer<B>) -> BTreeMap<String, Vec<f32>> {
    let mut collector = ValueCollector {
        path: Vec::new(),
        values: BTreeMap::new(),
    };
    encoder.visit(&mut collector);
    collector.values
}

fn tiny(in_channels: usize) -> Uniformer<B> {
    UniformerConfig::tiny(in_channels)
        .init(&Default::default())
        .unwrap()
}

/// Adds 0.25 to every float tensor (parameters and running statistics).
struct Shift;

impl<Bk: Backend> ModuleMapper<Bk> for Shift {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<Bk, D>>) -> Param<Tensor<Bk, D>> {
        param.map(|tensor| tensor.add_scalar(0.25))
    }
}

/// A "pre-trained" encoder: freshly initialised, then every tensor shifted, so that even the
/// constant-initialised ones (LayerNorm beta, BatchNorm running mean) differ from a fresh model.
fn pretrained_tiny(in_channels: usize) -> Uniformer<B> {
    tiny(in_channels).map(&mut Shift)
}

#[test]
fn channel_change_keeps_the_fresh_first_embedding_and_loads_the_rest() {
    let (target, pretrained) = (tiny(4), pretrained_tiny(1));
    let (target_values, pretrained_values) = (values(&target), values(&pretrained));
    let (encoder, report) = transfer_encoder(target, pretrained, FirstEmbedding::Fresh).unwrap();
    assert_eq!(encoder.in_channels, 4);
    let result = values(&encoder);
    assert_eq!(result.len(), pretrained_values.len());
    let mut checked_first = 0;
    for (path, tensor) in &result {
        if path.starts_with("patch_embeds.0.proj.") {
            assert_eq!(
                tensor, &target_values[path],
                "{path} must stay the target's"
            );
            checked_first += 1;
        } else {
            assert_eq!(tensor, &pretrained_values[path], "{path} must be loaded");
            assert_ne!(
                tensor, &target_values[path],
                "{path} must differ from the target"
            );
        }
    }
    // Only the convolution's weight and bias (the official code deletes just those two); the
    // embedding's LayerNorm is pre-trained.
    assert_eq!(checked_first, 2, "conv weight and bias");
    assert!(result["norm.running_mean"].iter().all(|&v| v == 0.25));
    assert_eq!(
        report.reinitialised,
        vec!["patch_embeds.0.proj".to_string()]
    );
    assert_eq!(
        report.loaded,
        [
            "patch_embeds.0.norm",
            "patch_embeds.1",
            "patch_embeds.2",
            "patch_embeds.3",
            "stage1",
            "stage2",
            "stage3",
            "stage4",
            "norm"
        ]
    );
    // The first embedding's convolution of the tiny model: 2³·4·8 weights + 8 biases.
    assert_eq!(report.reinitialised_params, 8 * 4 * 8 + 8);
    assert_eq!(
        report.loaded_params + report.reinitialised_params,
        encoder.num_learnable_params()
    );
    let summary = report.summary();
    assert!(summary.contains("re-initialised patch_embeds.0.proj (1 → 4 input channels"));
    assert!(summary.starts_with("loaded "), "{summary}");
    // The transferred encoder runs on 4 channels.
    let output = encoder.try_forward(Tensor::zeros([1, 4, 16, 16, 16], &Default::default()));
    assert_eq!(output.unwrap()[3].dims(), [1, 64, 1, 1, 1]);
}

#[test]
fn equal_channels_load_everything() {
    let (target, pretrained) = (tiny(2), pretrained_tiny(2));
    let pretrained_values = values(&pretrained);
    let (encoder, report) = transfer_encoder(target, pretrained, FirstEmbedding::Fresh).unwrap();
    assert_eq!(values(&encoder), pretrained_values);
    assert!(report.reinitialised.is_empty());
    assert_eq!(report.reinitialised_params, 0);
    assert_eq!(report.loaded_params, encoder.num_learnable_params());
    assert!(report.summary().contains("nothing re-initialised"));
}

#[test]
fn another_preset_is_refused_with_one_line() {
    let device = Default::default();
    let small: Uniformer<B> = UniformerConfig::small(4).init(&device).unwrap();
    let err = transfer_encoder(small, pretrained_tiny(1), FirstEmbedding::Fresh).unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("pre-trained encoder: "), "{message}");
    assert!(!message.contains('\n'));
    assert!(message.contains("another architecture"), "{message}");
    // Same depths, other widths: the first differing shape is named.
    let wider: Uniformer<B> = UniformerConfig::tiny(1)
        .with_widths([16, 16, 32, 64])
        .init(&device)
        .unwrap();
    let err = transfer_encoder(wider, tiny(1), FirstEmbedding::Fresh)
        .unwrap_err()
        .to_string();
    assert!(err.contains("shape"), "{err}");
}

#[test]
fn shapes_are_listed_by_path() {
    let shapes = parameter_shapes::<B, _>(&tiny(3));
    assert_eq!(shapes["patch_embeds.0.proj.weight"], vec![8, 3, 2, 2, 2]);
    assert_eq!(shapes["norm.running_var"], vec![64]);
    let learnable: usize = shapes
        .iter()
        .filter(|(path, _)| !path.contains("running_"))
        .map(|(_, shape)| shape.iter().product::<usize>())
        .sum();
    assert_eq!(learnable, tiny(3).num_learnable_params());
}

#[test]
fn an_inflated_first_embedding_computes_on_identical_channels_what_the_pretrained_one_did_on_one() {
    let pretrained = pretrained_tiny(1);
    let device = Default::default();
    let single = Tensor::<B, 5>::random(
        [1, 1, 16, 16, 16],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let expected = pretrained.forward(single.clone());
    let (encoder, report) =
        transfer_encoder(tiny(4), pretrained.clone(), FirstEmbedding::Inflate).unwrap();
    assert!(report.inflated && report.reinitialised.is_empty());
    assert_eq!(report.loaded_params, encoder.num_learnable_params());
    assert!(
        report.summary().contains("inflated"),
        "{}",
        report.summary()
    );
    let stacked = single.repeat_dim(1, 4);
    // f32 rounding only: the stacked sum of four w/4 products runs in another order than the one
    // product, and four stages (layer norms, attention) carry it to ~2e-5 of the scale; a wrong
    // inflation is off by the order of the scale itself.
    for (stage, (ours, theirs)) in encoder.forward(stacked).iter().zip(&expected).enumerate() {
        let difference = (ours.clone() - theirs.clone()).abs().max().into_scalar();
        let scale = theirs.clone().abs().max().into_scalar();
        assert!(
            difference <= 1e-4 * scale,
            "stage {stage}: max difference {difference}, scale {scale}"
        );
    }
    // The kernel of each channel is the pre-trained one / 4, the bias the pre-trained one.
    let pretrained_values = values(&pretrained);
    let inflated = values(&encoder);
    let kernel = &pretrained_values["patch_embeds.0.proj.weight"];
    let per_out = kernel.len() / 8;
    let first_out: Vec<f32> = inflated["patch_embeds.0.proj.weight"][..4 * per_out].to_vec();
    for channel in 0..4 {
        for (index, value) in first_out[channel * per_out..(channel + 1) * per_out]
            .iter()
            .enumerate()
        {
            assert!((value - kernel[index] / 4.0).abs() < 1e-7);
        }
    }
    assert_eq!(
        inflated["patch_embeds.0.proj.bias"],
        pretrained_values["patch_embeds.0.proj.bias"]
    );
}

#[test]
fn inflating_needs_a_single_channel_pretrained_encoder() {
    let err = transfer_encoder(tiny(4), pretrained_tiny(2), FirstEmbedding::Inflate)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot inflate a first embedding of 2 input channels to 4"),
        "{err}"
    );
    // Equal channels: nothing to inflate, everything loaded.
    let (_, report) =
        transfer_encoder(tiny(2), pretrained_tiny(2), FirstEmbedding::Inflate).unwrap();
    assert!(!report.inflated);
}

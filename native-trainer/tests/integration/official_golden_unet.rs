//! Golden tests of the UNet3D backbone against the official BrainMVP PyTorch code
//! (`models/Unet.py::RecModel`, pre-training with `--use_Unet`).
//!
//! `tests/reference/make_golden.py` built the official class at base width 8 (its smallest: the
//! GroupNorm has 8 groups; blocks per level fixed at [1, 2, 2, 4]) and saved the checkpoint
//! `unet_rec_model.pt` and its outputs. The checkpoint goes through our importer and every output
//! is compared with the official one (tolerance in `common/golden.rs`). The UNet does not permute
//! its input, so its features have the volume layout.

use brainmvp_core::model::{Unet3d, Unet3dConfig};
use brainmvp_core::official::layout::{Transform, VOLUME_AXES};
use brainmvp_core::pretrain::model::{Decoder, Encoder};
use brainmvp_core::pretrain::LossWeights;
use brainmvp_trainer::checkpoint::CheckpointRecorder;
use brainmvp_trainer::torch::import::{import_rec_model, import_unet_rec_model};
use brainmvp_trainer::torch::read::{read_state_dict, StateDict};
use burn::backend::{Autodiff, Flex};
use burn::module::Module;
use burn::tensor::{Tensor, TensorData};

use crate::support::golden::*;

type B = Flex;
type AB = Autodiff<Flex>;

/// Official template `[X, Y, Z]` ↔ ours `[Z, Y, X]`.
const TEMPLATE_VOLUME_AXES: [usize; 3] = [2, 1, 0];

#[test]
fn unet_features_reconstruction_and_template_match_the_official_model() {
    let golden = golden();
    let dict = read_state_dict(&fixture("unet_rec_model.pt")).unwrap();
    assert_eq!(dict.nested_under.as_deref(), Some("state_dict"));
    assert!(dict.ddp_prefix);
    let (model, config, report) = import_unet_rec_model::<B>(&dict, None, &Default::default())
        .unwrap_or_else(|error| panic!("{error}"));
    eprintln!("{}", report.summary());
    let base_width = meta()["unet_base_width"].as_u64().unwrap() as usize;
    assert_eq!(config.base_width, base_width);
    assert_eq!(report.loaded_tensors, dict.tensors.len(), "nothing ignored");
    let Encoder::Unet3d(encoder) = &model.encoder else {
        panic!("not a UNet3D")
    };
    let input = tensor::<B, 5>(&golden, "unet.input", Some(&VOLUME_AXES));
    let features = encoder.forward(input);
    for (index, feature) in features.iter().enumerate() {
        let name = format!("unet.feature{}", index + 1);
        let expected = official(&golden, &name);
        assert_matches(&name, feature.clone(), &expected, Some(&VOLUME_AXES));
    }
    let Decoder::Unet(decoder) = &model.decoder else {
        panic!("not the UNet decoder")
    };
    let reconstruction = decoder.forward(features[3].clone());
    let expected = official(&golden, "unet.rec.output");
    assert_matches(
        "unet.rec.output",
        reconstruction,
        &expected,
        Some(&VOLUME_AXES),
    );
    let expected = official(&golden, "unet.template.normalised2");
    let normalised = model.templates.normalised(2);
    let axes = Some(&TEMPLATE_VOLUME_AXES[..]);
    assert_matches("unet.template.normalised2", normalised, &expected, axes);
}

#[test]
fn unet_pretraining_loss_and_gradients_match_the_official_step() {
    let golden = golden();
    let dict = read_state_dict(&fixture("unet_rec_model.pt")).unwrap();
    let (model, _, _) = import_unet_rec_model::<AB>(&dict, None, &Default::default()).unwrap();
    let views = step_views::<AB>(&golden, "unet.loss.");
    let losses = model.losses(views, &LossWeights::default()).unwrap();
    let terms = loss_terms(&losses);
    let expected = official(&golden, "unet.loss.terms");
    assert_matches("unet.loss.terms [total, A, B, CL]", terms, &expected, None);
    let gradients = losses.total.backward();
    let (Encoder::Unet3d(encoder), Decoder::Unet(decoder)) = (&model.encoder, &model.decoder)
    else {
        panic!("not the UNet3D pre-training network")
    };
    let kernel_axes = Transform::DecoderConvWeight.axes(5).unwrap();
    let kernels: [(&str, Tensor<AB, 5>); 3] = [
        ("unet.grad.conv1a.weight", encoder.stem.weight.val()),
        ("unet.grad.ds1.weight", encoder.downs[0].weight.val()),
        (
            "unet.grad.up2convb.conv2.weight",
            decoder.stages[2].block.conv2.weight.val(),
        ),
    ];
    for (name, weight) in kernels {
        let grad = weight.grad(&gradients).unwrap();
        check_gradient(&golden, name, grad, kernel_axes.as_deref());
    }
    let vectors: [(&str, Tensor<AB, 1>); 2] = [
        (
            "unet.grad.conv4d.gn2.weight",
            encoder.levels[3][3].norm2.gamma.as_ref().unwrap().val(),
        ),
        (
            "unet.grad.up1conv.bias",
            decoder.head.bias.as_ref().unwrap().val(),
        ),
    ];
    for (name, parameter) in vectors {
        let grad = parameter.grad(&gradients).unwrap();
        check_gradient(&golden, name, grad, None);
    }
}

/// Compares a gradient with the official one; at full size (where the fixture holds the official
/// float64 result too) with the float64 one, as close as the official f32 result is: the early
/// layers' gradients sum 2 × 64³ voxels through GroupNorm and PyTorch's own f32 result is ~2e-3
/// off its float64 one for conv1a.
fn check_gradient<const D: usize>(
    golden: &StateDict,
    name: &str,
    grad: Tensor<B, D>,
    axes: Option<&[usize]>,
) {
    let expected = official(golden, name);
    match golden.tensors.get(&format!("{name}.f64")) {
        Some(reference64) => {
            assert_as_close_to_f64_as_official(name, grad, &expected, reference64, axes);
        }
        None => {
            assert_matches(name, grad, &expected, axes);
        }
    }
}

#[test]
fn a_uniformer_checkpoint_is_not_taken_for_a_unet_nor_the_other_way_round() {
    let device = Default::default();
    let uniformer = read_state_dict(&committed("rec_model.pt")).unwrap();
    let error = import_unet_rec_model::<B>(&uniformer, None, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("rec_model.pt: holds a UniFormer"), "{error}");
    assert!(error.contains("--arch rec-model"), "{error}");
    let unet = read_state_dict(&committed("unet_rec_model.pt")).unwrap();
    let error = import_rec_model::<B>(&unet, None, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains("unet_rec_model.pt: holds the official UNet3D"),
        "{error}"
    );
    let mut truncated = unet.clone();
    truncated.tensors.remove("conv4d.gn2.bias");
    let error = import_unet_rec_model::<B>(&truncated, None, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("missing tensor conv4d.gn2.bias"), "{error}");
    assert!(!error.contains('\n'), "one line: {error}");
}

#[test]
fn an_imported_unet_checkpoint_is_an_export_folder_with_its_encoder_and_templates() {
    let dir = crate::support::scratch("unet-export");
    let export = dir.join("export");
    let output = brainmvp_ok(&[
        "import".as_ref(),
        "--torch".as_ref(),
        committed("unet_rec_model.pt").as_os_str(),
        "--arch".as_ref(),
        "unet3d".as_ref(),
        "--out".as_ref(),
        export.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("UNet3D, base width 8"), "{stdout}");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(export.join("encoder.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["backbone"], "unet3d");
    assert_eq!(manifest["config"]["base_width"], 8);
    let config: Unet3dConfig = serde_json::from_value(manifest["config"].clone()).unwrap();
    let encoder: Unet3d<B> = config
        .init::<B>(&Default::default())
        .unwrap()
        .load_file(
            export.join("encoder.mpk"),
            &CheckpointRecorder::new(),
            &Default::default(),
        )
        .unwrap();
    let golden = read_state_dict(&committed("golden.safetensors")).unwrap();
    let input = tensor::<B, 5>(&golden, "unet.input", Some(&VOLUME_AXES));
    let deepest = encoder.forward_deepest(input);
    let expected = official(&golden, "unet.feature4");
    assert_matches(
        "exported unet feature4",
        deepest,
        &expected,
        Some(&VOLUME_AXES),
    );
    let template = brainmvp_core::nifti::read_path(&export.join("templates/t1c.nii.gz")).unwrap();
    let [x, y, z] = template.volume.dims;
    let ours = Tensor::<B, 3>::from_data(
        TensorData::new(template.volume.data, [z, y, x]),
        &Default::default(),
    );
    let expected = official(&golden, "unet.template.normalised2");
    let axes = Some(&TEMPLATE_VOLUME_AXES[..]);
    assert_matches("exported t1c template", ours, &expected, axes);
}

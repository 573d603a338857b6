//! Golden tests against the official BrainMVP PyTorch code.
//!
//! `tests/reference/make_golden.py` ran the official classes (small configuration: brainmvp's
//! tiny UniFormer preset) and saved their checkpoints and outputs under
//! `tests/reference/fixtures/`. Here the checkpoints go through our importer and every output
//! of ours is compared with the official one: max |ours − official| ≤ 1e-5 · max |official|
//! (the parity target is 1e-4; the runs here reach about 1e-6).
//! Inputs are stored as f16 values that f32 holds exactly, so both sides saw the same numbers.

use brainmvp_core::inference::{sliding_window, Blend, SlidingWindowConfig};
use brainmvp_core::official::layout::{Transform, ENCODER_STAGE_AXES, VOLUME_AXES};
use brainmvp_core::pretext::contrastive::contrastive_loss;
use brainmvp_core::pretrain::model::{Decoder, Encoder};
use brainmvp_core::pretrain::LossWeights;
use brainmvp_trainer::torch::import::{import_encoder, import_rec_model, import_uniunet};
use brainmvp_trainer::torch::read::{read_state_dict, StateTensor};
use brainmvp_trainer::torch::write::{uniunet_state_dict, write_safetensors, OfficialTensor};
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;
use std::collections::BTreeMap;
use std::path::PathBuf;

type B = Flex;
type AB = Autodiff<Flex>;

use crate::support::golden::*;

#[test]
fn pretraining_encoder_stages_and_reconstruction_match_the_official_model() {
    check_pretraining_forward::<B>(RELATIVE_TOLERANCE);
}

/// The body of the test above on any backend, on its default device, within `tolerance` relative
/// (also run on wgpu: `wgpu_lavapipe`).
pub(crate) fn check_pretraining_forward<Bk: Backend>(tolerance: f32) {
    let golden = golden();
    let dict = read_state_dict(&fixture("rec_model.pt")).unwrap();
    assert_eq!(dict.nested_under.as_deref(), Some("state_dict"));
    assert!(dict.ddp_prefix);
    let device = Default::default();
    let (model, _, report) = import_rec_model::<Bk>(&dict, None, &device).unwrap();
    eprintln!("{}", report.summary());
    let Encoder::Uniformer(encoder) = &model.encoder else {
        panic!("not a UniFormer")
    };
    let input = tensor::<Bk, 5>(&golden, "encoder.input", Some(&VOLUME_AXES));
    let stages = encoder.forward(input);
    for (index, stage) in stages.iter().enumerate() {
        let name = format!("encoder.eval.stage{}", index + 1);
        assert_matches_within(
            tolerance,
            &name,
            stage.clone(),
            &official(&golden, &name),
            Some(&ENCODER_STAGE_AXES),
        );
    }
    let Decoder::Linear(decoder) = &model.decoder else {
        panic!("not the linear decoder")
    };
    let reconstruction = decoder.forward(stages[3].clone());
    let expected = official(&golden, "rec.eval.output");
    assert_matches_within(
        tolerance,
        "rec.eval.output",
        reconstruction,
        &expected,
        Some(&VOLUME_AXES),
    );
}

#[test]
fn template_normalisation_and_crop_match_the_official_formula() {
    let golden = golden();
    let dict = read_state_dict(&fixture("rec_model.pt")).unwrap();
    let (model, _, _) = import_rec_model::<B>(&dict, None, &Default::default()).unwrap();
    let crop = &meta()["template_crop"];
    let index = crop["index"].as_u64().unwrap() as usize;
    let [x0, y0, z0] = meta_usizes(&crop["start_xyz"])[..] else {
        panic!("template_crop.start_xyz")
    };
    let [x, y, z] = meta_usizes(&crop["size_xyz"])[..] else {
        panic!("template_crop.size_xyz")
    };
    let normalised = model.templates.normalised(index);
    let crop = normalised
        .narrow(0, z0, z)
        .narrow(1, y0, y)
        .narrow(2, x0, x);
    let expected = official(&golden, "template.normalised_crop");
    assert_matches(
        "template.normalised_crop",
        crop,
        &expected,
        Some(&[2, 1, 0]),
    );
}

#[test]
fn contrastive_loss_matches_the_official_loss() {
    let golden = golden();
    let features_a = tensor::<B, 5>(&golden, "contrastive.features_a", None);
    let features_b = tensor::<B, 5>(&golden, "contrastive.features_b", None);
    let loss = contrastive_loss(features_a, features_b, 1.0);
    assert_matches(
        "contrastive.loss",
        loss,
        &official(&golden, "contrastive.loss"),
        None,
    );
}

#[test]
fn pretraining_loss_and_gradients_in_training_mode_match_the_official_step() {
    check_pretraining_step::<AB>(RELATIVE_TOLERANCE);
}

/// The body of the test above on any autodiff backend, on its default device (also run on wgpu).
pub(crate) fn check_pretraining_step<Bk: AutodiffBackend>(tolerance: f32) {
    let golden = golden();
    let dict = read_state_dict(&fixture("rec_model.pt")).unwrap();
    let (model, _, _) = import_rec_model::<Bk>(&dict, None, &Default::default()).unwrap();
    let views = step_views::<Bk>(&golden, "loss.");
    let losses = model.losses(views, &LossWeights::default()).unwrap();
    let terms = loss_terms(&losses);
    assert_matches_within(
        tolerance,
        "loss.terms [total, A, B, CL]",
        terms,
        &official(&golden, "loss.terms"),
        None,
    );
    let gradients = losses.total.backward();
    let Encoder::Uniformer(encoder) = &model.encoder else {
        panic!("not a UniFormer")
    };
    let Decoder::Linear(decoder) = &model.decoder else {
        panic!("not the linear decoder")
    };
    let checks: [(&str, Tensor<Bk, 5>, Transform); 2] = [
        (
            "grad.patch_embed1",
            encoder.patch_embeds[0].proj.weight.val(),
            Transform::EncoderConvWeight,
        ),
        (
            "grad.decoder5",
            decoder.upsamples[0].weight.val(),
            Transform::DecoderConvWeight,
        ),
    ];
    for (name, weight, transform) in checks {
        let grad = weight.grad(&gradients).unwrap();
        assert_matches_within(
            tolerance,
            name,
            grad,
            &official(&golden, name),
            transform.axes(5).unwrap().as_deref(),
        );
    }
    let qkv = encoder.stage3[0]
        .attn
        .qkv
        .weight
        .val()
        .grad(&gradients)
        .unwrap();
    assert_matches_within(
        tolerance,
        "grad.blocks3_qkv",
        qkv,
        &official(&golden, "grad.blocks3_qkv"),
        Some(&[1, 0]),
    );
}

#[test]
fn uniunet_forward_deep_supervision_and_sliding_window_match_the_official_model() {
    check_uniunet_forward::<B>(RELATIVE_TOLERANCE);
}

/// The body of the test above on any backend, on its default device (also run on wgpu).
pub(crate) fn check_uniunet_forward<Bk: Backend>(tolerance: f32) {
    let golden = golden();
    let dict = read_state_dict(&fixture("uniunet.pt")).unwrap();
    let (model, config, report) = import_uniunet::<Bk>(&dict, &Default::default()).unwrap();
    eprintln!("{}", report.summary());
    assert!(config.deep_supervision && config.in_channels == 4 && config.out_channels == 3);
    let input = tensor::<Bk, 5>(&golden, "uniunet.input", Some(&VOLUME_AXES));
    let output = model.forward_inference(input);
    let expected = official(&golden, "uniunet.eval.output");
    assert_matches_within(
        tolerance,
        "uniunet.eval.output",
        output,
        &expected,
        Some(&VOLUME_AXES),
    );

    let window_input = tensor::<Bk, 5>(&golden, "window.input", Some(&VOLUME_AXES));
    let roi = meta()["sliding_window"]["roi"].as_u64().unwrap() as usize;
    let window = SlidingWindowConfig {
        roi: [roi; 3],
        overlap: 0.5,
        blend: Blend::Constant,
        batch: 1,
    };
    let blended =
        sliding_window(window_input, &window, |w| Ok(model.forward_inference(w))).unwrap();
    let expected = official(&golden, "window.output");
    assert_matches_within(
        tolerance,
        "window.output",
        blended,
        &expected,
        Some(&VOLUME_AXES),
    );
}

#[test]
fn uniunet_training_mode_outputs_match_the_official_deep_supervision_heads() {
    check_uniunet_training::<AB>(RELATIVE_TOLERANCE);
}

/// The body of the test above on any autodiff backend, on its default device (also run on wgpu).
pub(crate) fn check_uniunet_training<Bk: AutodiffBackend>(tolerance: f32) {
    let golden = golden();
    let dict = read_state_dict(&fixture("uniunet.pt")).unwrap();
    let (model, _, _) = import_uniunet::<Bk>(&dict, &Default::default()).unwrap();
    let input = tensor::<Bk, 5>(&golden, "uniunet.input", Some(&VOLUME_AXES));
    let outputs = model.forward(input);
    let names = [
        "uniunet.train.output",
        "uniunet.train.deep_stride2",
        "uniunet.train.deep_stride4",
    ];
    assert_eq!(outputs.len(), names.len());
    for (output, name) in outputs.into_iter().zip(names) {
        assert_matches_within(
            tolerance,
            name,
            output,
            &official(&golden, name),
            Some(&VOLUME_AXES),
        );
    }
    let norms = [
        ("encoder_norm", &model.encoder.norm),
        ("blocks1_norm1", &model.encoder.stage1[0].norm1),
    ];
    for (name, norm) in norms {
        let mean = format!("uniunet.train.{name}.running_mean");
        assert_matches_within(
            tolerance,
            &mean,
            norm.running_mean.value_sync(),
            &official(&golden, &mean),
            None,
        );
        let var = format!("uniunet.train.{name}.running_var");
        assert_matches_within(
            tolerance,
            &var,
            norm.running_var.value_sync(),
            &official(&golden, &var),
            None,
        );
    }
}

#[test]
fn exported_state_dict_equals_the_imported_official_one() {
    let dict = read_state_dict(&fixture("uniunet.pt")).unwrap();
    let (model, config, _) = import_uniunet::<B>(&dict, &Default::default()).unwrap();
    let exported = uniunet_state_dict(&model, &config).unwrap();
    let dir = crate::support::scratch("export");
    let path = dir.join("uniunet.safetensors");
    write_safetensors(&path, &exported, Default::default()).unwrap();
    let back = read_state_dict(&path).unwrap();
    let names =
        |tensors: &BTreeMap<String, StateTensor>| tensors.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&back.tensors),
        names(&dict.tensors),
        "same names as the official file"
    );
    for (name, original) in &dict.tensors {
        match &exported[name] {
            OfficialTensor::StepCounter => assert!(name.ends_with("num_batches_tracked")),
            OfficialTensor::Float(..) => assert_eq!(&back.tensors[name], original, "{name}"),
        }
    }
}

#[test]
fn the_encoder_alone_comes_out_of_either_official_checkpoint() {
    let golden = golden();
    for file in ["rec_model.pt", "uniunet.pt"] {
        let dict = read_state_dict(&fixture(file)).unwrap();
        let (encoder, _, report) = import_encoder::<B>(&dict, &Default::default()).unwrap();
        assert!(report
            .ignored
            .iter()
            .any(|(_, why)| *why == "not part of the encoder"));
        if file == "rec_model.pt" {
            let input = tensor::<B, 5>(&golden, "encoder.input", Some(&VOLUME_AXES));
            let [_, _, _, deepest] = encoder.forward(input);
            let expected = official(&golden, "encoder.eval.stage4");
            assert_matches(
                "encoder-only stage4",
                deepest,
                &expected,
                Some(&ENCODER_STAGE_AXES),
            );
        }
    }
}

#[test]
fn a_wrong_checkpoint_is_refused_in_one_line_naming_the_file_and_tensor() {
    let device = Default::default();
    let uniunet = read_state_dict(&committed("uniunet.pt")).unwrap();
    let err = import_rec_model::<B>(&uniunet, None, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("uniunet.pt: missing tensor") && !err.contains('\n'),
        "{err}"
    );

    let mut missing = uniunet.clone();
    missing
        .tensors
        .remove("decoder.decoder3.conv_block.conv2.conv.weight");
    let err = import_uniunet::<B>(&missing, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("missing tensor decoder.decoder3.conv_block.conv2.conv.weight"),
        "{err}"
    );

    let mut extra = uniunet.clone();
    let bias = extra.tensors["decoder.out.conv.conv.bias"].clone();
    extra.tensors.insert("decoder.extra_head.bias".into(), bias);
    let err = import_uniunet::<B>(&extra, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("unexpected tensor decoder.extra_head.bias"),
        "{err}"
    );

    let mut misshaped = uniunet.clone();
    let qkv = misshaped
        .tensors
        .get_mut("encoder.blocks4.0.attn.qkv.weight")
        .unwrap();
    qkv.shape = vec![qkv.shape[1], qkv.shape[0]];
    let err = import_uniunet::<B>(&misshaped, &device)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("encoder.blocks4.0.attn.qkv.weight has shape [64, 192]"),
        "{err}"
    );

    let dir = crate::support::scratch("broken");
    let truncated = dir.join("truncated.pt");
    let bytes = std::fs::read(committed("uniunet.pt")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let err = read_state_dict(&truncated).err().unwrap().to_string();
    assert!(err.contains("truncated.pt") && !err.contains('\n'), "{err}");
    let err = read_state_dict(&dir.join("absent.pt"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("absent.pt: no such file"), "{err}");
}

#[test]
fn an_imported_official_uniunet_segments_raw_files_and_exports_back_to_torch() {
    let dir = crate::support::scratch("cli");
    let model = dir.join("official.bmvp");
    let output = brainmvp_ok(&[
        "import".as_ref(),
        "--torch".as_ref(),
        committed("uniunet.pt").as_os_str(),
        "--arch".as_ref(),
        "uniunet".as_ref(),
        "--roi".as_ref(),
        "32".as_ref(),
        "--out".as_ref(),
        model.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("loaded 114 tensors"), "{stdout}");

    let templates = crate::support::shared_mri().join("icbm152-2mm");
    let cohort = dir.join("cohort");
    brainmvp_ok(&[
        "synth".as_ref(),
        "--subjects".as_ref(),
        "1".as_ref(),
        "--seed".as_ref(),
        "3".as_ref(),
        "--spacing-mm".as_ref(),
        "2".as_ref(),
        "--out".as_ref(),
        cohort.as_os_str(),
        "--templates".as_ref(),
        templates.as_os_str(),
    ]);
    let labels = dir.join("seg.nii.gz");
    let mut args: Vec<std::ffi::OsString> =
        vec!["segment".into(), "--model".into(), model.clone().into()];
    for (flag, suffix) in [
        ("--t1", "_t1.nii.gz"),
        ("--t1c", "_t1ce.nii.gz"),
        ("--t2", "_t2.nii.gz"),
        ("--flair", "_flair.nii.gz"),
    ] {
        args.push(flag.into());
        args.push(find(&cohort, suffix).into());
    }
    args.extend(["--out".into(), labels.clone().into()]);
    brainmvp_ok(&args.iter().map(|a| a.as_os_str()).collect::<Vec<_>>());
    let t1 = brainmvp_core::nifti::read_path(&find(&cohort, "_t1.nii.gz")).unwrap();
    let segmentation = brainmvp_core::nifti::read_path(&labels).unwrap();
    assert_eq!(
        segmentation.volume.dims, t1.volume.dims,
        "label map on the input grid"
    );

    let exported = dir.join("back.safetensors");
    brainmvp_ok(&[
        "export".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--torch".as_ref(),
        "--out".as_ref(),
        exported.as_os_str(),
    ]);
    let original = read_state_dict(&committed("uniunet.pt")).unwrap();
    let back = read_state_dict(&exported).unwrap();
    assert_eq!(back.tensors.len(), original.tensors.len());
    for (name, tensor) in &original.tensors {
        if !name.ends_with("num_batches_tracked") {
            assert_eq!(&back.tensors[name], tensor, "{name}");
        }
    }
}

#[test]
fn an_imported_pretraining_checkpoint_is_an_export_folder_finetune_can_start_from() {
    let dir = crate::support::scratch("rec-export");
    let export = dir.join("export");
    brainmvp_ok(&[
        "import".as_ref(),
        "--torch".as_ref(),
        committed("rec_model.pt").as_os_str(),
        "--arch".as_ref(),
        "rec-model".as_ref(),
        "--out".as_ref(),
        export.as_os_str(),
    ]);
    for name in [
        "encoder.mpk",
        "encoder.json",
        "import.json",
        "templates/t1.nii.gz",
        "templates/flair.nii.gz",
    ] {
        assert!(export.join(name).is_file(), "{name}");
    }
    let golden = read_state_dict(&committed("golden.safetensors")).unwrap();
    let (_, encoder) = brainmvp_trainer::pretrain::pretrained::load_pretrained_encoder::<B>(
        &export,
        &Default::default(),
    )
    .unwrap();
    let input = tensor::<B, 5>(&golden, "encoder.input", Some(&VOLUME_AXES));
    let [_, _, _, deepest] = encoder.forward(input);
    let expected = official(&golden, "encoder.eval.stage4");
    assert_matches(
        "export-folder encoder stage4",
        deepest,
        &expected,
        Some(&ENCODER_STAGE_AXES),
    );
}

/// `export --torch --untrained uniformer-s`: the official UniUnet's trainable parameter count (measured
/// with torch: 34,323,593 for `UniUnet(in_channels=4, out_channels=3, multi_scale=True)`), the
/// same file for the same seed, and an f16 import of half the size that segments like the f32 one.
#[test]
fn an_untrained_official_size_uniunet_has_the_official_parameter_count_and_imports_as_f16() {
    let dir = crate::support::scratch("untrained");
    let write = |name: &str, preset: &str, seed: &str| {
        let path = dir.join(name);
        brainmvp_ok(&[
            "export".as_ref(),
            "--torch".as_ref(),
            "--untrained".as_ref(),
            preset.as_ref(),
            "--seed".as_ref(),
            seed.as_ref(),
            "--out".as_ref(),
            path.as_os_str(),
        ]);
        path
    };
    let small = read_state_dict(&write("small.safetensors", "uniformer-s", "42")).unwrap();
    let trainable: usize = small
        .tensors
        .iter()
        .filter(|(name, _)| !name.contains("running_") && !name.ends_with("num_batches_tracked"))
        .map(|(_, tensor)| tensor.values.len())
        .sum();
    assert_eq!(trainable, 34_323_593);

    let tiny = write("tiny.safetensors", "uniformer-tiny", "7");
    let again = write("tiny-again.safetensors", "uniformer-tiny", "7");
    let other = write("tiny-other.safetensors", "uniformer-tiny", "8");
    let tensors = |path: &PathBuf| read_state_dict(path).unwrap().tensors;
    assert_eq!(
        tensors(&tiny),
        tensors(&again),
        "one seed, one set of weights"
    );
    assert_ne!(
        tensors(&tiny),
        tensors(&other),
        "another seed, other weights"
    );

    let import = |out: &str, half: bool| {
        let path = dir.join(out);
        let mut args = vec![
            "import".as_ref(),
            "--torch".as_ref(),
            tiny.as_os_str(),
            "--arch".as_ref(),
            "uniunet".as_ref(),
            "--roi".as_ref(),
            "32".as_ref(),
            "--out".as_ref(),
            path.as_os_str(),
        ];
        if half {
            args.push("--f16".as_ref());
        }
        brainmvp_ok(&args);
        let bytes = std::fs::read(&path).unwrap();
        brainmvp_core::bmvp::BmvpModel::from_bytes(&bytes, out).unwrap()
    };
    let full = import("tiny-f32.bmvp", false);
    let half = import("tiny-f16.bmvp", true);
    assert_eq!(half.precision, brainmvp_core::bmvp::WeightPrecision::F16);
    assert_eq!(half.weight_values(), full.weight_values());
    for (a, b) in half.tensors.iter().zip(&full.tensors) {
        for (x, y) in a.values.iter().zip(&b.values) {
            assert!((x - y).abs() <= 1e-3 * y.abs().max(1e-2), "{x} vs {y}");
        }
    }
}

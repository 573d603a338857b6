//! The official state-dict names of every tensor of our models, with the layout change of each.
//!
//! For a given configuration the tables list every tensor of the official class
//! (`models/uniformer_blocks.py::UniFormer`, `models/Uniformer.py::RecModel`,
//! `models/Unet.py::RecModel`, `Downstream/model/Uni_unet.py::UniUnet`) that our model holds, its burn path (`.`-joined module
//! path, enum variants left out) and how its axes change ([`Transform`]). Import and export both
//! read these tables, so the two directions cannot disagree. Tensors of the official classes that
//! our models do not hold are named by [`ignored_in_uniunet`] and [`ignored_in_rec_model`].

use super::layout::Transform;
use crate::model::{Architecture, Unet3dConfig, UniUnetConfig, UniformerConfig};

/// One tensor: its official name, our burn path, and the layout change between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorPair {
    /// Name in the official state dict (no `module.` prefix).
    pub official: String,
    /// Path in our burn module.
    pub ours: String,
    /// How the values are rearranged between the two.
    pub transform: Transform,
}

impl TensorPair {
    fn new(official: String, ours: String, transform: Transform) -> Self {
        Self {
            official,
            ours,
            transform,
        }
    }
}

/// The official decoder blocks in the order our `up_blocks` / `upsamples` hold them
/// (deepest first).
pub const DECODER_BLOCKS: [&str; 4] = ["decoder5", "decoder4", "decoder3", "decoder2"];

/// Where the official UniFormer sits in each class's state dict.
pub const UNIFORMER_IN_REC_MODEL: &str = "encoder.uniformer.";
/// Where the official UniFormer sits in `UniUnet`'s state dict.
pub const UNIFORMER_IN_UNIUNET: &str = "encoder.";

/// A norm's parameters and buffers: PyTorch `weight`/`bias` are burn's `gamma`/`beta`.
fn norm(pairs: &mut Vec<TensorPair>, official: &str, ours: &str, batch_norm: bool) {
    let mut leaves = vec![("weight", "gamma"), ("bias", "beta")];
    if batch_norm {
        leaves.extend([
            ("running_mean", "running_mean"),
            ("running_var", "running_var"),
        ]);
    }
    for (from, to) in leaves {
        pairs.push(TensorPair::new(
            format!("{official}.{from}"),
            format!("{ours}.{to}"),
            Transform::Copy,
        ));
    }
}

/// A convolution's `weight` (with `conv_weight`'s layout change) and, when it has one, its `bias`.
fn conv(
    pairs: &mut Vec<TensorPair>,
    official: &str,
    ours: &str,
    conv_weight: Transform,
    bias: bool,
) {
    pairs.push(TensorPair::new(
        format!("{official}.weight"),
        format!("{ours}.weight"),
        conv_weight,
    ));
    if bias {
        pairs.push(TensorPair::new(
            format!("{official}.bias"),
            format!("{ours}.bias"),
            Transform::Copy,
        ));
    }
}

/// A `nn.Linear` (weight transposed) with its bias when `bias`.
fn linear(pairs: &mut Vec<TensorPair>, official: &str, ours: &str, bias: bool) {
    conv(pairs, official, ours, Transform::Linear, bias);
}

/// Every tensor of a UniFormer encoder of `config`; official names start with `official_prefix`
/// and our paths with `our_prefix`.
pub fn uniformer_pairs(
    config: &UniformerConfig,
    official_prefix: &str,
    our_prefix: &str,
) -> Vec<TensorPair> {
    let conv_weight = Transform::EncoderConvWeight;
    let mut pairs = Vec::new();
    for stage in 0..4 {
        let official = format!("{official_prefix}patch_embed{}", stage + 1);
        let ours = format!("{our_prefix}patch_embeds.{stage}");
        conv(
            &mut pairs,
            &format!("{official}.proj"),
            &format!("{ours}.proj"),
            conv_weight,
            true,
        );
        norm(
            &mut pairs,
            &format!("{official}.norm"),
            &format!("{ours}.norm"),
            false,
        );
        for block in 0..config.depths[stage] {
            let official = format!("{official_prefix}blocks{}.{block}", stage + 1);
            let ours = format!("{our_prefix}stage{}.{block}", stage + 1);
            conv(
                &mut pairs,
                &format!("{official}.pos_embed"),
                &format!("{ours}.pos_embed"),
                conv_weight,
                true,
            );
            match stage < 2 {
                true => conv_block(&mut pairs, &official, &ours),
                false => attention_block(&mut pairs, &official, &ours, config.qkv_bias),
            }
        }
    }
    norm(
        &mut pairs,
        &format!("{official_prefix}norm"),
        &format!("{our_prefix}norm"),
        true,
    );
    pairs
}

/// The rest of a `CBlock` (after `pos_embed`).
fn conv_block(pairs: &mut Vec<TensorPair>, official: &str, ours: &str) {
    for name in ["conv1", "attn", "conv2", "mlp.fc1", "mlp.fc2"] {
        let (from, to) = (format!("{official}.{name}"), format!("{ours}.{name}"));
        conv(pairs, &from, &to, Transform::EncoderConvWeight, true);
    }
    for name in ["norm1", "norm2"] {
        norm(
            pairs,
            &format!("{official}.{name}"),
            &format!("{ours}.{name}"),
            true,
        );
    }
}

/// The rest of an `SABlock` (after `pos_embed`).
fn attention_block(pairs: &mut Vec<TensorPair>, official: &str, ours: &str, qkv_bias: bool) {
    for name in ["norm1", "norm2"] {
        norm(
            pairs,
            &format!("{official}.{name}"),
            &format!("{ours}.{name}"),
            false,
        );
    }
    linear(
        pairs,
        &format!("{official}.attn.qkv"),
        &format!("{ours}.attn.qkv"),
        qkv_bias,
    );
    for name in ["attn.proj", "mlp.fc1", "mlp.fc2"] {
        linear(
            pairs,
            &format!("{official}.{name}"),
            &format!("{ours}.{name}"),
            true,
        );
    }
}

/// Every tensor of the official `UniUnet` that our [`UniUnet`](crate::model::UniUnet) of
/// `config` holds (`ms_out` only with deep supervision).
pub fn uniunet_pairs(config: &UniUnetConfig) -> crate::Result<Vec<TensorPair>> {
    let mut pairs = uniformer_pairs(&config.encoder_config()?, UNIFORMER_IN_UNIUNET, "encoder.");
    let conv_weight = Transform::DecoderConvWeight;
    for (index, block) in DECODER_BLOCKS.iter().enumerate() {
        let official = format!("decoder.{block}");
        let ours = format!("up_blocks.{index}");
        conv(
            &mut pairs,
            &format!("{official}.transp_conv.conv"),
            &format!("{ours}.transp_conv"),
            conv_weight,
            false,
        );
        // MONAI's UnetResBlock: conv3 (the 1×1×1 projection) exists when in ≠ out channels,
        // which every UnetrUpBlock has (it concatenates the skip); InstanceNorm has no weights.
        for conv_name in ["conv1", "conv2", "conv3"] {
            let from = format!("{official}.conv_block.{conv_name}.conv");
            conv(
                &mut pairs,
                &from,
                &format!("{ours}.conv_block.{conv_name}"),
                conv_weight,
                false,
            );
        }
    }
    // proj1 runs on the encoder's permuted input, so its weight has the encoder's layout.
    conv(
        &mut pairs,
        "decoder.proj1.proj",
        "input_proj.proj",
        Transform::EncoderConvWeight,
        true,
    );
    norm(&mut pairs, "decoder.proj1.norm", "input_proj.norm", false);
    conv(
        &mut pairs,
        "decoder.out.conv.conv",
        "head",
        conv_weight,
        true,
    );
    if config.deep_supervision {
        // Official ms_out[0] reads the stride-4 level, ms_out[1] the stride-2 level; ours hold
        // them the other way round (deep_heads[0] at stride 2).
        conv(&mut pairs, "ms_out.0", "deep_heads.1", conv_weight, true);
        conv(&mut pairs, "ms_out.1", "deep_heads.0", conv_weight, true);
    }
    Ok(pairs)
}

/// Every tensor of the official pre-training `RecModel` that our
/// [`BrainMvp`](crate::pretrain::BrainMvp) holds: the encoder, the transposed convolutions and
/// output convolution of the decoder, and the templates.
pub fn rec_model_pairs(encoder: &UniformerConfig) -> Vec<TensorPair> {
    let mut pairs = uniformer_pairs(encoder, UNIFORMER_IN_REC_MODEL, "encoder.");
    for (index, block) in DECODER_BLOCKS.iter().enumerate() {
        let official = format!("decoder.{block}.transp_conv.conv");
        let ours = format!("decoder.upsamples.{index}");
        conv(
            &mut pairs,
            &official,
            &ours,
            Transform::DecoderConvWeight,
            false,
        );
    }
    conv(
        &mut pairs,
        "decoder.out_1.conv.conv",
        "decoder.head",
        Transform::DecoderConvWeight,
        true,
    );
    pairs.push(TensorPair::new(
        "rep_template".into(),
        "templates.volumes".into(),
        Transform::Template,
    ));
    pairs
}

/// The official UNet3D's residual blocks per level (`conv1b`; `conv2a-b`; `conv3a-b`;
/// `conv4a-d`): the official class has these depths whatever its width.
pub const UNET_LEVEL_BLOCKS: [&[&str]; 4] = [
    &["conv1b"],
    &["conv2a", "conv2b"],
    &["conv3a", "conv3b"],
    &["conv4a", "conv4b", "conv4c", "conv4d"],
];

/// The official UNet3D pre-training decoder's stages in our order: (1×1×1 conv, residual block).
pub const UNET_DECODER_STAGES: [(&str, &str); 3] = [
    ("up4conva", "up4convb"),
    ("up3conva", "up3convb"),
    ("up2conva", "up2convb"),
];

/// A `BasicBlock` of the official UNet (GroupNorm `gn1`/`gn2`, convolutions `conv1`/`conv2`) as
/// our [`ResBlock`](crate::model::unet3d::ResBlock).
fn unet_block(pairs: &mut Vec<TensorPair>, official: &str, ours: &str) {
    for (from, to) in [("gn1", "norm1"), ("gn2", "norm2")] {
        let (from, to) = (format!("{official}.{from}"), format!("{ours}.{to}"));
        norm(pairs, &from, &to, false);
    }
    for name in ["conv1", "conv2"] {
        let (from, to) = (format!("{official}.{name}"), format!("{ours}.{name}"));
        conv(pairs, &from, &to, Transform::DecoderConvWeight, true);
    }
}

/// Every tensor of the official UNet3D pre-training `RecModel` (`models/Unet.py`, `--use_Unet`)
/// that our [`BrainMvp`](crate::pretrain::BrainMvp) with a UNet3D of `encoder` holds. The UNet
/// does not permute its input, so all its convolutions run over `(X, Y, Z)`
/// ([`Transform::DecoderConvWeight`]). `encoder.depths` must be the official `[1, 2, 2, 4]`.
pub fn unet_rec_model_pairs(encoder: &Unet3dConfig) -> Vec<TensorPair> {
    let conv_weight = Transform::DecoderConvWeight;
    let mut pairs = Vec::new();
    conv(&mut pairs, "conv1a", "encoder.stem", conv_weight, true);
    for (level, blocks) in UNET_LEVEL_BLOCKS.iter().enumerate() {
        if level > 0 {
            let ours = format!("encoder.downs.{}", level - 1);
            conv(&mut pairs, &format!("ds{level}"), &ours, conv_weight, true);
        }
        for (index, block) in blocks.iter().take(encoder.depths[level]).enumerate() {
            unet_block(
                &mut pairs,
                block,
                &format!("encoder.levels.{level}.{index}"),
            );
        }
    }
    for (index, (reduce, block)) in UNET_DECODER_STAGES.iter().enumerate() {
        let ours = format!("decoder.stages.{index}");
        conv(
            &mut pairs,
            reduce,
            &format!("{ours}.reduce"),
            conv_weight,
            true,
        );
        unet_block(&mut pairs, block, &format!("{ours}.block"));
    }
    conv(&mut pairs, "up1conv", "decoder.head", conv_weight, true);
    pairs.push(TensorPair::new(
        "rep_template".into(),
        "templates.volumes".into(),
        Transform::Template,
    ));
    pairs
}

/// Why BatchNorm's step counter is not imported.
const STEP_COUNTER: &str = "BatchNorm step counter (burn keeps none; momentum 0.1 does not use it)";

/// Why an official `UniUnet` (or `UniFormer`) tensor that no table lists is left out on purpose
/// (`None`: it is unexpected).
pub fn ignored_in_uniunet(official: &str) -> Option<&'static str> {
    official
        .ends_with("num_batches_tracked")
        .then_some(STEP_COUNTER)
}

/// Why an official `RecModel` tensor that no table lists is left out on purpose (`None`: it is
/// unexpected): the step counters, and the parts of its decoder that its forward never uses.
pub fn ignored_in_rec_model(official: &str) -> Option<&'static str> {
    if let Some(reason) = ignored_in_uniunet(official) {
        return Some(reason);
    }
    let unused_in_pretraining = official.starts_with("decoder.proj1.")
        || DECODER_BLOCKS
            .iter()
            .any(|block| official.starts_with(&format!("decoder.{block}.conv_block.")));
    unused_in_pretraining.then_some(
        "built by the official pre-training decoder but never used by its forward (no skips)",
    )
}

/// The encoder preset whose depths and widths are `depths`/`widths` (head_dim, MLP ratio and
/// qkv bias are the preset's).
pub fn preset_of(depths: [usize; 4], widths: [usize; 4]) -> Option<Architecture> {
    Architecture::UNIFORMERS.into_iter().find(|preset| {
        preset
            .uniformer_config(1)
            .is_ok_and(|config| config.depths == depths && config.widths == widths)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn names_are_unique_on_both_sides() {
        let config = UniUnetConfig::official().with_deep_supervision(true);
        let pairs = uniunet_pairs(&config).unwrap();
        let official: BTreeSet<_> = pairs.iter().map(|p| p.official.as_str()).collect();
        let ours: BTreeSet<_> = pairs.iter().map(|p| p.ours.as_str()).collect();
        assert_eq!(official.len(), pairs.len());
        assert_eq!(ours.len(), pairs.len());
    }

    #[test]
    fn later_blocks_keep_their_index_and_block_type() {
        let pairs = uniformer_pairs(&UniformerConfig::small(1), "encoder.uniformer.", "encoder.");
        let find = |name: &str| pairs.iter().find(|p| p.official == name).cloned();
        let qkv = find("encoder.uniformer.blocks3.7.attn.qkv.weight").unwrap();
        assert_eq!(qkv.ours, "encoder.stage3.7.attn.qkv.weight");
        assert_eq!(qkv.transform, Transform::Linear);
        let bn = find("encoder.uniformer.blocks2.3.norm2.running_var").unwrap();
        assert_eq!(bn.ours, "encoder.stage2.3.norm2.running_var");
        assert!(find("encoder.uniformer.blocks3.8.attn.qkv.weight").is_none());
        assert!(find("encoder.uniformer.blocks1.0.attn.qkv.weight").is_none());
    }

    #[test]
    fn unused_pretraining_decoder_parts_are_ignored_and_nothing_else() {
        assert!(ignored_in_rec_model("decoder.decoder4.conv_block.conv1.conv.weight").is_some());
        assert!(ignored_in_rec_model("decoder.proj1.norm.weight").is_some());
        assert!(ignored_in_rec_model("encoder.uniformer.norm.num_batches_tracked").is_some());
        assert!(ignored_in_rec_model("decoder.decoder4.transp_conv.conv.weight").is_none());
        assert!(ignored_in_rec_model("head.weight").is_none());
        // UniUnet uses proj1 and the conv blocks.
        assert!(ignored_in_uniunet("decoder.proj1.norm.weight").is_none());
        assert!(ignored_in_uniunet("decoder.decoder4.conv_block.conv1.conv.weight").is_none());
    }

    #[test]
    fn unet_rec_model_names_cover_every_block_once() {
        let pairs = unet_rec_model_pairs(&Unet3dConfig::official(1));
        let find = |name: &str| pairs.iter().find(|p| p.official == name).cloned();
        assert_eq!(
            find("conv4d.gn2.weight").unwrap().ours,
            "encoder.levels.3.3.norm2.gamma"
        );
        assert_eq!(find("ds3.weight").unwrap().ours, "encoder.downs.2.weight");
        assert_eq!(
            find("up2convb.conv1.bias").unwrap().ours,
            "decoder.stages.2.block.conv1.bias"
        );
        assert_eq!(
            find("up4conva.weight").unwrap().transform,
            Transform::DecoderConvWeight
        );
        // 1 stem + 3 downs + 3 reduces + head: weight and bias; 9 + 3 blocks of 8 tensors.
        assert_eq!(pairs.len(), 2 * 8 + 8 * 12 + 1);
        let ours: BTreeSet<_> = pairs.iter().map(|p| p.ours.as_str()).collect();
        assert_eq!(ours.len(), pairs.len());
    }

    #[test]
    fn presets_are_recognised_by_depths_and_widths() {
        assert_eq!(
            preset_of([3, 4, 8, 3], [64, 128, 320, 512]),
            Some(Architecture::UniformerS)
        );
        assert_eq!(
            preset_of([1, 1, 1, 1], [8, 16, 32, 64]),
            Some(Architecture::UniformerTiny)
        );
        assert_eq!(preset_of([3, 4, 8, 3], [8, 16, 32, 64]), None);
    }
}

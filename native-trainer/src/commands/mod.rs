//! One file per verb: argument struct (clap) and a `run` that calls into `brainmvp-core`.

pub mod bench;
pub mod bench_kernels;
pub mod demo;
pub mod evaluate;
pub mod experiment;
pub mod export;
pub mod finetune;
pub mod import;
pub mod info;
pub mod prepare;
pub mod pretrain;
pub mod segment;
pub mod serve;
pub mod summary;
pub mod synth;

/// `small` (UniFormer-S) or `tiny`: the encoder preset named on the command line.
pub(crate) fn parse_encoder(name: &str) -> Result<brainmvp_core::model::EncoderPreset, String> {
    use brainmvp_core::model::EncoderPreset;
    match name {
        "small" => Ok(EncoderPreset::Small),
        "tiny" => Ok(EncoderPreset::Tiny),
        _ => Err(format!("{name:?}: expected small or tiny")),
    }
}

//! `brainmvp segment --model DIR --t1 A --t1c B --t2 C --flair D --out seg.nii.gz`: the whole
//! pipeline on raw NIfTI files (any modality may be absent: the model's template, or zeros, fills
//! it); the label map is written on the input's own grid and affine.

use anyhow::{bail, Context};
use brainmvp_core::inference::label_convention;
use brainmvp_core::inference::segment::InferenceOptions;
use brainmvp_core::postprocess::PostprocessConfig;
use brainmvp_core::Modality;
use burn::tensor::backend::AutodiffBackend;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::backend::DeviceSpec;

#[derive(clap::Args)]
pub struct SegmentArgs {
    /// Model folder written by `brainmvp finetune` (`<out>/model`).
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub t1: Option<PathBuf>,
    #[arg(long)]
    pub t1c: Option<PathBuf>,
    #[arg(long)]
    pub t2: Option<PathBuf>,
    #[arg(long)]
    pub flair: Option<PathBuf>,
    /// Other modalities as `MODALITY=PATH` (e.g. `pd=case_pd.nii.gz`).
    #[arg(long = "image")]
    pub images: Vec<String>,
    /// Output label map (`.nii.gz`).
    #[arg(long)]
    pub out: PathBuf,
    /// `cpu`, `cuda[:i]`, `wgpu[:i|integrated|cpu]`.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Test-time mirroring: average over the 8 mirrorings of the axes (8 × the windows).
    #[arg(long)]
    pub mirror: bool,
    /// The recommended post-processing: components under 0.1 ml removed, enclosed core holes
    /// filled as necrotic core (BraTS labels only).
    #[arg(long)]
    pub clean: bool,
    /// Remove tumour components under this volume (ml); core and enhancing components under it
    /// become the enclosing region's label. Overrides `--clean`'s 0.1.
    #[arg(long)]
    pub min_component_ml: Option<f64>,
    /// Keep only the largest tumour component.
    #[arg(long)]
    pub keep_largest: bool,
    /// Label background and oedema enclosed by the tumour core as necrotic core.
    #[arg(long)]
    pub fill_core_holes: bool,
    /// The enhancing tumour's value in the written map: `auto` (3 for BraTS 2023 file names
    /// t1n/t1c/t2w/t2f, 4 for BraTS 2021 ones, else the model's own), `model`, `3` or `4`.
    #[arg(long, value_enum, default_value = "auto")]
    pub enhancing_label: EnhancingLabelArg,
}

/// `--enhancing-label` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EnhancingLabelArg {
    Auto,
    Model,
    #[value(name = "3")]
    Brats2023,
    #[value(name = "4")]
    Brats2021,
}

impl EnhancingLabelArg {
    /// The label to write (`None`: the model's own) and why, for the input `paths`.
    pub fn resolve(self, paths: &[(Modality, PathBuf)]) -> (Option<u8>, &'static str) {
        match self {
            Self::Model => (None, "the model's own convention"),
            Self::Brats2023 => (
                Some(label_convention::BRATS2023_ENHANCING),
                "--enhancing-label 3",
            ),
            Self::Brats2021 => (
                Some(label_convention::BRATS2021_ENHANCING),
                "--enhancing-label 4",
            ),
            Self::Auto => {
                let names = paths.iter().filter_map(|(_, path)| path.to_str());
                match label_convention::enhancing_label_from_names(names) {
                    Some((label, reason)) => (Some(label), reason),
                    None => (None, "the model's own convention (file names do not say)"),
                }
            }
        }
    }
}

impl SegmentArgs {
    /// Mirroring and post-processing as the flags say.
    pub fn inference_options(&self) -> InferenceOptions {
        let mut postprocess = match self.clean {
            true => PostprocessConfig::recommended(),
            false => PostprocessConfig::default(),
        };
        if let Some(min_ml) = self.min_component_ml {
            postprocess.min_component_ml = min_ml;
        }
        postprocess.keep_largest |= self.keep_largest;
        postprocess.fill_core_holes |= self.fill_core_holes;
        InferenceOptions {
            mirror: self.mirror,
            postprocess,
            enhancing_label: None,
        }
    }
}

/// The given images as (modality, path).
fn image_paths(args: &SegmentArgs) -> anyhow::Result<Vec<(Modality, PathBuf)>> {
    let mut paths: Vec<(Modality, PathBuf)> = [
        (Modality::T1, &args.t1),
        (Modality::T1c, &args.t1c),
        (Modality::T2, &args.t2),
        (Modality::Flair, &args.flair),
    ]
    .into_iter()
    .filter_map(|(modality, path)| path.clone().map(|path| (modality, path)))
    .collect();
    for item in &args.images {
        let Some((token, path)) = item.split_once('=') else {
            bail!("--image {item:?}: expected MODALITY=PATH");
        };
        let modality = Modality::from_token(token)
            .with_context(|| format!("--image {item:?}: unknown modality {token:?}"))?;
        if paths.iter().any(|(m, _)| *m == modality) {
            bail!("--image {item:?}: {modality} given twice");
        }
        paths.push((modality, PathBuf::from(path)));
    }
    if paths.is_empty() {
        bail!("no image given (use --t1/--t1c/--t2/--flair or --image MODALITY=PATH)");
    }
    Ok(paths)
}

pub fn run(args: SegmentArgs) -> anyhow::Result<ExitCode> {
    let paths = image_paths(&args)?;
    let mut options = args.inference_options();
    options.postprocess.validate()?;
    let (enhancing_label, reason) = args.enhancing_label.resolve(&paths);
    options.enhancing_label = enhancing_label;
    if let Some(label) = enhancing_label {
        println!("{}", label_convention::describe(label, reason));
    }
    let spec = DeviceSpec::parse(&args.device)?;
    crate::with_autodiff_backend!(spec, |B, devices| {
        crate::segment::segment_files::<<B as AutodiffBackend>::InnerBackend>(
            &args.model,
            &paths,
            &args.out,
            &options,
            &devices.into_iter().next().unwrap_or_default(),
        )?
    });
    Ok(ExitCode::SUCCESS)
}

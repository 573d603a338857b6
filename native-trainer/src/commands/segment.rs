//! `brainmvp segment --model DIR --t1 A --t1c B --t2 C --flair D --out seg.nii.gz`: the whole
//! pipeline on raw NIfTI files (any modality may be absent: the model's template, or zeros, fills
//! it); the label map is written on the input's own grid and affine.

use anyhow::{bail, Context};
use brainmvp_core::finetune::labels::LabelScheme;
use brainmvp_core::inference::segment::{measure_labels, InferenceOptions, Segmenter};
use brainmvp_core::postprocess::PostprocessConfig;
use brainmvp_core::Modality;
use burn::tensor::backend::AutodiffBackend;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crate::backend::DeviceSpec;
use crate::model_folder::load_segmenter;

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
    /// `cpu`, `cuda[:i]`, `wgpu[:i]`.
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
    let options = args.inference_options();
    options.postprocess.validate()?;
    let spec = DeviceSpec::parse(&args.device)?;
    crate::with_autodiff_backend!(spec, |B, devices| {
        segment_files::<<B as AutodiffBackend>::InnerBackend>(
            &args.model,
            &paths,
            &args.out,
            &options,
            &devices.into_iter().next().unwrap_or_default(),
        )?
    });
    Ok(ExitCode::SUCCESS)
}

/// Reads the images, segments them with the model folder `model` and writes `out`.
pub fn segment_files<B: burn::tensor::backend::Backend>(
    model: &Path,
    paths: &[(Modality, PathBuf)],
    out: &Path,
    options: &InferenceOptions,
    device: &B::Device,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let loaded = load_segmenter::<B>(model, device)?;
    let mut images = Vec::with_capacity(paths.len());
    for (modality, path) in paths {
        let image = brainmvp_core::nifti::read_path(path)?;
        for warning in &image.warnings {
            log::warn!("{}: {warning}", path.display());
        }
        images.push((*modality, image.volume));
    }
    let id = paths[0].1.display().to_string();
    let progress = indicatif::ProgressBar::new(0);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40.cyan/blue} {pos}/{len} windows  {elapsed_precise}  ETA {eta}",
        )
        .context("progress bar template")?,
    );
    let segmenter = Segmenter {
        model: &loaded.model,
        manifest: &loaded.manifest,
        templates: loaded.templates.as_ref(),
    };
    let segmentation = segmenter.segment(&id, images, options, device, |done, total| {
        progress.set_length(total as u64);
        progress.set_position(done as u64);
    })?;
    progress.finish_and_clear();
    brainmvp_core::nifti::write_u8(out, &segmentation.labels)?;
    for modality in &segmentation.filled {
        let source = match loaded
            .templates
            .as_ref()
            .is_some_and(|t| t.modalities().contains(modality))
        {
            true => "its template",
            false => "zeros",
        };
        println!("missing {modality}: filled with {source}");
    }
    for modality in &segmentation.ignored {
        println!("{modality}: not used by this model");
    }
    if options.mirror {
        println!("test-time mirroring: mean over 8 mirrorings");
    }
    if let Some(report) = &segmentation.postprocessed {
        println!(
            "post-processing: {} voxels removed, {} core → oedema, {} enhancing → core, {} enclosed voxels → core",
            report.removed, report.core_to_oedema, report.enhancing_to_core, report.holes_filled
        );
    }
    print_volumes(&segmentation.labels, &loaded.manifest.labels);
    println!(
        "wrote {} ({:?} voxels, the input's grid) in {:.1} s",
        out.display(),
        segmentation.labels.dims,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Volume of every non-zero label in millilitres.
fn print_volumes(labels: &brainmvp_core::Volume<u8>, scheme: &LabelScheme) {
    for volume in measure_labels(labels, scheme) {
        println!(
            "label {}: {} voxels, {:.2} ml ({})",
            volume.label, volume.voxels, volume.ml, volume.name
        );
    }
}

//! `brainmvp segment`'s job: raw NIfTI files in, the label map out on the input's grid, with a
//! progress bar over the windows and a report of what was filled, ignored and post-processed
//! and of each label's volume (used by the verb and by `demo`). Input that does not look
//! BraTS-preprocessed is warned about first (`input check:` lines on stderr).

use anyhow::Context;
use brainmvp_core::inference::input_check::check_input;
use brainmvp_core::inference::segment::{measure_labels, InferenceOptions, Segmenter};
use brainmvp_core::labels::LabelScheme;
use brainmvp_core::Modality;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::model_folder::{load_segmenter, LoadedSegmenter};

/// Reads the images, segments them with the model folder `model` and writes `out`.
pub fn segment_files<B: burn::tensor::backend::Backend>(
    model: &Path,
    paths: &[(Modality, PathBuf)],
    out: &Path,
    options: &InferenceOptions,
    device: &B::Device,
) -> anyhow::Result<()> {
    let loaded = load_segmenter::<B>(model, device)?;
    segment_loaded(&loaded, paths, out, options, device)
}

/// [`segment_files`] with a model already loaded (several cases, one load).
pub fn segment_loaded<B: burn::tensor::backend::Backend>(
    loaded: &LoadedSegmenter<B>,
    paths: &[(Modality, PathBuf)],
    out: &Path,
    options: &InferenceOptions,
    device: &B::Device,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut images = Vec::with_capacity(paths.len());
    for (modality, path) in paths {
        let image = brainmvp_core::nifti::read_path(path)?;
        for warning in &image.warnings {
            log::warn!("{}: {warning}", path.display());
        }
        images.push((*modality, image.volume));
    }
    warn_about_input(&images);
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
    brainmvp_core::nifti::write_u8(out, &segmentation.label_map)?;
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
    print_label_measures(&segmentation.label_map, &segmentation.scheme);
    println!(
        "wrote {} ({:?} voxels, the input's grid) in {:.1} s",
        out.display(),
        segmentation.label_map.dims,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Says, one `input check:` warning a line, why the images do not look BraTS-preprocessed
/// (skull on, thick slices, sequences on different grids) and what the label map is then worth;
/// segmentation goes on.
fn warn_about_input(images: &[(Modality, brainmvp_core::Volume<f32>)]) {
    for finding in check_input(images) {
        log::warn!("input check: {}", finding.message);
    }
}

/// Volume of every non-zero label in millilitres.
fn print_label_measures(labels: &brainmvp_core::Volume<u8>, scheme: &LabelScheme) {
    for volume in measure_labels(labels, scheme) {
        println!(
            "label {}: {} voxels, {:.2} ml ({})",
            volume.label, volume.voxels, volume.ml, volume.name
        );
    }
}

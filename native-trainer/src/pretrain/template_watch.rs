//! Watching the modality templates learn: Pearson's r of each normalised template with the
//! cohort's mean image of its modality (logged as `template_r_<modality>` in `metrics.jsonl`,
//! plotted in `templates.png`), and an axial mid-slice strip per checkpoint
//! (`templates/step-<step>.png`: the templates on the top row, the cohort means below).
//!
//! The cohort mean is taken over at most [`MEAN_SUBJECTS`] subjects spread evenly over the cache,
//! so that a cohort of thousands of scans is not read twice before the first step. With
//! `[model.templates] init = "cohort-mean"` the same means are the templates' starting values.

use anyhow::{Context, Result};
use brainmvp_core::cache::CacheReader;
use brainmvp_core::pretext::template_init::{cohort_means, template_correlation, CohortMeans};
use brainmvp_core::pretext::templates::{ModalityTemplates, TemplateConfig};
use burn::tensor::backend::Backend;
use std::path::Path;

use crate::report::plot::encode_png_image;
use brainmvp_core::fs::write_atomic;

/// Most subjects averaged into the cohort means.
pub const MEAN_SUBJECTS: usize = 64;

/// The cohort means over at most [`MEAN_SUBJECTS`] evenly spread subjects of `reader`.
pub fn sampled_cohort_means(reader: &CacheReader, config: &TemplateConfig) -> Result<CohortMeans> {
    cohort_means(reader, config, MEAN_SUBJECTS)
        .with_context(|| format!("{}: the cohort's mean images", reader.dir().display()))
}

/// Every normalised template as host values (`[z, y, x]`, x fastest).
pub fn normalised_values<B: Backend>(templates: &ModalityTemplates<B>) -> Result<Vec<Vec<f32>>> {
    (0..templates.modalities.len())
        .map(|index| {
            templates
                .normalised(index)
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .map_err(|err| anyhow::anyhow!("reading template {index}: {err:?}"))
        })
        .collect()
}

/// `("template_r_<modality>", r)` for every template whose modality the cohort has.
pub fn template_correlations<B: Backend>(
    templates: &ModalityTemplates<B>,
    values: &[Vec<f32>],
    cohort: &CohortMeans,
) -> Vec<(String, f64)> {
    templates
        .modalities
        .iter()
        .zip(values.iter().zip(&cohort.means))
        .filter(|(_, (_, mean))| mean.iter().any(|&v| v != 0.0))
        .map(|(modality, (template, mean))| {
            let r = template_correlation(template, mean, &cohort.coverage);
            (format!("template_r_{}", modality.name()), r)
        })
        .collect()
}

/// Writes the axial mid-slice strip of the templates (top) and the cohort means (bottom).
pub fn write_template_slices<B: Backend>(
    templates: &ModalityTemplates<B>,
    values: &[Vec<f32>],
    cohort: &CohortMeans,
    path: &Path,
) -> Result<()> {
    let [width, height, depth] = templates.canvas;
    let slice = depth / 2 * width * height;
    let columns = values.len();
    let mut pixels = vec![0u8; columns * width * 2 * height];
    let rows: [&[Vec<f32>]; 2] = [values, &cohort.means];
    for (row, volumes) in rows.iter().enumerate() {
        for (column, volume) in volumes.iter().enumerate() {
            let plane = &volume[slice..slice + width * height];
            let high = plane.iter().copied().fold(f32::MIN, f32::max).max(1e-12);
            let low = plane.iter().copied().fold(f32::MAX, f32::min).min(high);
            for y in 0..height {
                // Image rows run top to bottom; anterior (high y) at the top.
                let out_row = row * height + (height - 1 - y);
                for x in 0..width {
                    let value = (plane[y * width + x] - low) / (high - low).max(1e-12);
                    let out = out_row * columns * width + column * width + x;
                    pixels[out] = (value.clamp(0.0, 1.0) * 255.0).round() as u8;
                }
            }
        }
    }
    let (image_width, image_height) = ((columns * width) as u32, (2 * height) as u32);
    let png = encode_png_image(
        &pixels,
        image_width,
        image_height,
        png::ColorType::Grayscale,
    )?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    write_atomic(path, |file| file.write_all(&png))?;
    Ok(())
}

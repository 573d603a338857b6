//! Crops as tensors: training batches with their classes, the centred crop of every subject
//! classified, and the predictions written as CSV.

use anyhow::{Context, Result};
use brainmvp_core::cache::CacheReader;
use brainmvp_core::fs::write_atomic;
use brainmvp_core::loader::Batch;
use brainmvp_core::model::classifier::Classifier;
use brainmvp_core::Modality;
use burn::tensor::activation::softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use std::fmt::Write as _;
use std::path::Path;

use super::*;

/// Appends the channels of one crop in `modalities` order (zeros for a missing one).
fn push_channels(
    values: &mut Vec<f32>,
    images: &[(Modality, Vec<f32>)],
    modalities: &[Modality],
    voxels: usize,
) {
    for modality in modalities {
        match images.iter().find(|(m, _)| m == modality) {
            Some((_, crop)) => values.extend_from_slice(crop),
            None => values.extend(std::iter::repeat_n(0.0, voxels)),
        }
    }
}

/// The input `[N, C, z, y, x]` and class indices `[N]` of a training batch drawn from the
/// subset reader over `order` (cache subject indices).
pub(super) fn training_batch<B: Backend>(
    batch: &Batch,
    order: &[usize],
    subject_class: &[usize],
    modalities: &[Modality],
    device: &B::Device,
) -> Result<(Tensor<B, 5>, Tensor<B, 1, Int>)> {
    let size = batch.crop_size;
    let voxels = size.iter().product::<usize>();
    let mut values = Vec::with_capacity(batch.samples.len() * modalities.len() * voxels);
    let mut targets = Vec::with_capacity(batch.samples.len());
    for sample in &batch.samples {
        let subject = order
            .get(sample.subject_index)
            .with_context(|| format!("sample of unknown subject #{}", sample.subject_index))?;
        targets.push(subject_class[*subject] as i64);
        push_channels(&mut values, &sample.images, modalities, voxels);
    }
    let count = batch.samples.len();
    let shape = [count, modalities.len(), size[2], size[1], size[0]];
    let input = Tensor::from_data(TensorData::new(values, shape), device);
    let targets = Tensor::from_data(TensorData::new(targets, [count]), device);
    Ok((input, targets))
}

/// Start of the crop of `size` centred in `dims` (negative where the crop is larger: padded
/// equally, the extra voxel after, as the loader).
pub fn centred_start(dims: [usize; 3], size: [usize; 3]) -> [isize; 3] {
    let mut start = [0isize; 3];
    for axis in 0..3 {
        start[axis] = match dims[axis] >= size[axis] {
            true => ((dims[axis] - size[axis]) / 2) as isize,
            false => -(((size[axis] - dims[axis]) / 2) as isize),
        };
    }
    start
}

/// Classifies the centred crop of every subject of `subjects` (cache indices of `reader`).
pub fn predict_subjects<B: Backend>(
    model: &Classifier<B>,
    manifest: &ClassifierManifest,
    reader: &CacheReader,
    subjects: &[usize],
    subject_class: &[usize],
    device: &B::Device,
) -> Result<Vec<Prediction>> {
    let size = manifest.crop_size;
    let voxels = size.iter().product::<usize>();
    let mut predictions = Vec::with_capacity(subjects.len());
    for &subject in subjects {
        let entry = reader.subject(subject)?;
        let start = centred_start(entry.dims, size);
        let mut images = Vec::new();
        for &modality in &manifest.modalities {
            if entry.images.contains_key(&modality) {
                images.push((modality, reader.read_crop(subject, modality, start, size)?));
            }
        }
        let mut values = Vec::with_capacity(manifest.modalities.len() * voxels);
        push_channels(&mut values, &images, &manifest.modalities, voxels);
        let shape = [1, manifest.modalities.len(), size[2], size[1], size[0]];
        let input = Tensor::<B, 5>::from_data(TensorData::new(values, shape), device);
        let probabilities = softmax(model.try_forward(input)?, 1)
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|err| anyhow::anyhow!("reading the class probabilities: {err:?}"))?;
        predictions.push(Prediction {
            id: entry.id.clone(),
            truth: *subject_class
                .get(subject)
                .context("subject without a class")?,
            probabilities: probabilities.into_iter().map(f64::from).collect(),
        });
    }
    Ok(predictions)
}

/// Writes `id,truth,predicted,p_<class>...` (one row per prediction).
pub fn write_predictions(
    path: &Path,
    predictions: &[Prediction],
    classes: &[String],
) -> Result<()> {
    let mut text = String::from("id,truth,predicted");
    for class in classes {
        text.push(',');
        text.push_str(&csv_field(&format!("p_{class}")));
    }
    text.push('\n');
    let name = |index: usize| classes.get(index).map_or("?", String::as_str);
    for prediction in predictions {
        let row = [
            &prediction.id,
            name(prediction.truth),
            name(prediction.predicted()),
        ];
        let fields: Vec<String> = row.iter().map(|field| csv_field(field)).collect();
        text.push_str(&fields.join(","));
        for probability in &prediction.probabilities {
            let _ = write!(text, ",{probability:.6}");
        }
        text.push('\n');
    }
    write_atomic(path, |file| file.write_all(text.as_bytes()))?;
    Ok(())
}

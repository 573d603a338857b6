//! A fine-tuned segmentation model as users hand it around, and the full inference pipeline of
//! one case: raw NIfTI volumes in, a label map on the input's own grid and affine out. The same
//! code runs in the CLI (`brainmvp segment`) and in the browser.
//!
//! A model folder holds `model.json` ([`SegmenterManifest`]), `model.mpk` (the [`UniUnet`]'s burn
//! record, named MessagePack) and, when the model was fine-tuned with templates,
//! `templates/<modality>.nii.gz` (used for missing modalities).

use burn::tensor::{backend::Backend, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::sliding_window::SlidingWindowConfig;
use super::window_jobs::{decode_probabilities, WindowJobs};
use crate::labels::LabelScheme;
use crate::model::{UniUnet, UniUnetConfig};
use crate::postprocess::{postprocess_brats, PostprocessConfig, PostprocessReport};
use crate::preprocess::{preprocess_images, GridRecord, PreprocessConfig};
use crate::template_bank::{fill_missing, TemplateBank};
use crate::{Error, Modality, Result, Volume};

/// The `format` of `model.json`.
pub const SEGMENTER_FORMAT: &str = "brainmvp-segmenter";
/// The current manifest version.
pub const SEGMENTER_VERSION: u32 = 1;
/// File names inside a model folder.
pub const MODEL_MANIFEST_FILE: &str = "model.json";
/// The weights inside a model folder.
pub const WEIGHTS_FILE: &str = "model.mpk";
/// The templates folder inside a model folder.
pub const TEMPLATES_DIR: &str = "templates";

/// `model.json`: everything needed to run a fine-tuned segmentation model on raw images.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmenterManifest {
    /// Always [`SEGMENTER_FORMAT`].
    pub format: String,
    /// Manifest version ([`SEGMENTER_VERSION`]).
    pub version: u32,
    /// The network.
    pub model: UniUnetConfig,
    /// The modality of each input channel, in order.
    pub modalities: Vec<Modality>,
    /// What the output channels mean.
    pub labels: LabelScheme,
    /// Preprocessing applied to the raw images (as at training).
    pub preprocess: PreprocessConfig,
    /// Sliding-window inference settings.
    pub window: SlidingWindowConfig,
    /// Modalities whose template ships in `templates/`.
    #[serde(default)]
    pub templates: Vec<Modality>,
    /// Where the encoder came from (`scratch` or the pre-trained export's path).
    #[serde(default)]
    pub init: String,
    /// brainmvp version that wrote it.
    #[serde(default)]
    pub brainmvp_version: String,
}

impl SegmenterManifest {
    /// Parses `model.json` text; `name` (a path) goes into errors.
    pub fn from_json(text: &str, name: &str) -> Result<Self> {
        let manifest: Self = serde_json::from_str(text)
            .map_err(|err| Error::new(name, format!("not a brainmvp model manifest: {err}")))?;
        if manifest.format != SEGMENTER_FORMAT || manifest.version != SEGMENTER_VERSION {
            return Err(Error::new(
                name,
                format!(
                    "format {} v{}, expected {SEGMENTER_FORMAT} v{SEGMENTER_VERSION}",
                    manifest.format, manifest.version
                ),
            ));
        }
        manifest.validate().map_err(|err| err.with_context(name))?;
        Ok(manifest)
    }

    /// Consistency: channels = modalities, outputs = label scheme, valid settings.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.labels.validate()?;
        self.window.validate()?;
        self.preprocess.validate()?;
        let fail = |cause: String| Err(Error::new("model manifest", cause));
        if self.modalities.len() != self.model.in_channels {
            return fail(format!(
                "{} modalities for {} input channels",
                self.modalities.len(),
                self.model.in_channels
            ));
        }
        if self.labels.out_channels() != self.model.out_channels {
            return fail(format!(
                "label scheme needs {} outputs, the model has {}",
                self.labels.out_channels(),
                self.model.out_channels
            ));
        }
        Ok(())
    }
}

/// The result of [`Segmenter::segment`].
#[derive(Debug, Clone)]
pub struct Segmentation {
    /// The label map on the input images' own grid and affine.
    pub label_map: Volume<u8>,
    /// Modalities the model wanted but the case lacked, filled by templates (or zeros).
    pub filled: Vec<Modality>,
    /// Given modalities the model does not use.
    pub ignored: Vec<Modality>,
    /// What post-processing changed (`None`: it did not run).
    pub postprocessed: Option<PostprocessReport>,
    /// The label scheme of [`Segmentation::label_map`] (the model's, with the enhancing label of
    /// [`InferenceOptions::enhancing_label`]).
    pub scheme: LabelScheme,
}

/// Stacks `images` in `order` as one input `[1, C, z, y, x]`; every volume must have the first
/// one's dims.
pub fn stack_channels<B: Backend>(
    images: &[(Modality, Volume<f32>)],
    order: &[Modality],
    device: &B::Device,
) -> Result<Tensor<B, 5>> {
    let first = images
        .first()
        .ok_or_else(|| Error::new("model input", "no image"))?;
    let dims = first.1.dims;
    let mut values = Vec::with_capacity(first.1.data.len() * order.len());
    for modality in order {
        let (_, volume) = images
            .iter()
            .find(|(m, _)| m == modality)
            .ok_or_else(|| Error::new("model input", format!("no {modality} image")))?;
        if volume.dims != dims || volume.data.len() != volume.voxel_count() {
            return Err(Error::new(
                "model input",
                format!("{modality} has dims {:?}, expected {dims:?}", volume.dims),
            ));
        }
        values.extend_from_slice(&volume.data);
    }
    let shape = [1, order.len(), dims[2], dims[1], dims[0]];
    Ok(Tensor::from_data(TensorData::new(values, shape), device))
}

crate::config! {
    /// How a case is segmented beyond the model's own window settings: test-time mirroring and
    /// post-processing of the label map (both off by default).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
    pub struct InferenceOptions {
        /// Average the class probabilities over the 8 mirrorings of the three axes (nnU-Net's
        /// test-time mirroring); runs 8 × the windows.
        pub mirror: bool = false,
        /// Post-processing of the BraTS label map ([`crate::postprocess`]).
        pub postprocess: PostprocessConfig = PostprocessConfig::default(),
        /// Write the enhancing tumour as this label (3: BraTS 2023, 4: BraTS 2021) instead of the
        /// model's own ([`super::label_convention`]); `None` keeps the model's.
        pub enhancing_label: Option<u8> = None,
    }
}

/// Sliding-window prediction of one preprocessed case `[1, C, z, y, x]`: the label map, x
/// fastest, on the same grid; with `mirror`, averaged over the 8 mirrorings.
/// `on_window(done, total)` reports progress over all windows. (The page runs the same
/// [`WindowJobs`] awaited on WebGPU, or spread over a pool of Web Workers on the CPU.)
pub fn predict_labels<B: Backend>(
    model: &UniUnet<B>,
    scheme: &LabelScheme,
    window: &SlidingWindowConfig,
    input: Tensor<B, 5>,
    mirror: bool,
    on_window: impl FnMut(usize, usize),
) -> Result<Vec<u8>> {
    let [_, _, depth, height, width] = input.dims();
    let mut jobs = WindowJobs::new(input, window, scheme, mirror)?;
    jobs.run_all(|batch| model.try_forward_inference(batch), on_window)?;
    decode_probabilities(scheme, jobs.finish()?.into_data(), depth * height * width)
}

/// One case preprocessed as at training and stacked as the network's input; [`Self::finish`]
/// turns the predicted label map back into the input's grid.
pub struct PreparedCase<B: Backend> {
    /// `[1, C, z, y, x]` in the manifest's modality order.
    pub input: Tensor<B, 5>,
    /// The preprocessed channels (missing ones filled), on the network's grid.
    pub channels: Vec<(Modality, Volume<f32>)>,
    /// Modalities the model wanted but the case lacked, filled by templates (or zeros).
    pub filled: Vec<Modality>,
    /// Given modalities the model does not use.
    pub ignored: Vec<Modality>,
    record: GridRecord,
}

impl<B: Backend> PreparedCase<B> {
    /// Preprocesses the raw `images` as at training and fills missing modalities from
    /// `templates` (zeros without). `id` names the case in errors.
    pub fn new(
        manifest: &SegmenterManifest,
        id: &str,
        images: Vec<(Modality, Volume<f32>)>,
        templates: Option<&TemplateBank>,
        device: &B::Device,
    ) -> Result<Self> {
        let (used, ignored): (Vec<_>, Vec<_>) = images
            .into_iter()
            .partition(|(modality, _)| manifest.modalities.contains(modality));
        let ignored = ignored.into_iter().map(|(modality, _)| modality).collect();
        if used.is_empty() {
            let wanted: Vec<&str> = manifest.modalities.iter().map(|m| m.name()).collect();
            let cause = format!(
                "none of the model's modalities ({}) given",
                wanted.join(", ")
            );
            return Err(Error::new(id, cause));
        }
        let mut subject = preprocess_images(id, used, None, &manifest.preprocess)?;
        let filled = fill_missing(&mut subject.images, &manifest.modalities, templates)?;
        let input = stack_channels::<B>(&subject.images, &manifest.modalities, device)?;
        Ok(Self {
            input,
            channels: subject.images,
            filled,
            ignored,
            record: subject.record,
        })
    }

    /// A preprocessed channel (e.g. a template-filled, synthetic one) put back on the input's
    /// grid, for display beside the real images.
    pub fn channel_on_input_grid(&self, modality: Modality) -> Result<Volume<f32>> {
        let (_, volume) = self
            .channels
            .iter()
            .find(|(m, _)| *m == modality)
            .ok_or_else(|| Error::new("model input", format!("no {modality} channel")))?;
        self.record.restore(volume)
    }

    /// The label map `predicted` (on the network's grid, x fastest) back on the input's grid,
    /// post-processed as `options` say when the labels are BraTS tumour labels, with the
    /// enhancing label `options` ask for.
    pub fn finish(
        &self,
        predicted: Vec<u8>,
        scheme: &LabelScheme,
        options: &InferenceOptions,
    ) -> Result<Segmentation> {
        let postprocess = &options.postprocess;
        let grid = &self.channels[0].1;
        let cropped = Volume {
            dims: grid.dims,
            affine: grid.affine,
            data: predicted,
        };
        let mut restored = self.record.restore(&cropped)?;
        let postprocessed = match (scheme, postprocess.is_active()) {
            (LabelScheme::Brats { enhancing_label }, true) => Some(postprocess_brats(
                &mut restored,
                *enhancing_label,
                postprocess,
            )?),
            _ => None,
        };
        let mut segmentation = Segmentation {
            label_map: restored,
            filled: self.filled.clone(),
            ignored: self.ignored.clone(),
            postprocessed,
            scheme: scheme.clone(),
        };
        if let Some(wanted) = options.enhancing_label {
            segmentation.scheme =
                super::label_convention::convert(&mut segmentation, scheme, wanted);
        }
        Ok(segmentation)
    }
}

/// A loaded segmentation model: the network, its manifest and its templates.
pub struct Segmenter<'a, B: Backend> {
    pub model: &'a UniUnet<B>,
    pub manifest: &'a SegmenterManifest,
    /// Filled in for missing modalities (zeros without).
    pub templates: Option<&'a TemplateBank>,
}

impl<B: Backend> Segmenter<'_, B> {
    /// The whole pipeline on one case: preprocess the raw `images` as at training, fill missing
    /// modalities from the templates, predict by sliding window (mirrored when `options` say so),
    /// put the label map back on the input's grid and post-process it. `id` names the case in
    /// errors.
    pub fn segment(
        &self,
        id: &str,
        images: Vec<(Modality, Volume<f32>)>,
        options: &InferenceOptions,
        device: &B::Device,
        on_window: impl FnMut(usize, usize),
    ) -> Result<Segmentation> {
        let manifest = self.manifest;
        let case = PreparedCase::<B>::new(manifest, id, images, self.templates, device)?;
        let input = case.input.clone();
        let predicted = predict_labels(
            self.model,
            &manifest.labels,
            &manifest.window,
            input,
            options.mirror,
            on_window,
        )
        .map_err(|err| err.with_context(id))?;
        case.finish(predicted, &manifest.labels, options)
    }
}

/// The volume of one label in a label map.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelMeasure {
    /// The label value.
    pub label: u8,
    /// What it means under the model's scheme.
    pub name: String,
    /// Voxels carrying it.
    pub voxels: usize,
    /// Their volume in millilitres (from the map's own voxel size).
    pub ml: f64,
}

/// The volume of every non-zero label present in `labels`, in label order.
pub fn measure_labels(labels: &Volume<u8>, scheme: &LabelScheme) -> Vec<LabelMeasure> {
    let voxel_ml = labels.spacing().iter().product::<f64>() / 1000.0;
    let mut counts = [0usize; 256];
    labels
        .data
        .iter()
        .for_each(|&label| counts[label as usize] += 1);
    (1..=255u8)
        .filter(|&label| counts[label as usize] > 0)
        .map(|label| LabelMeasure {
            label,
            name: scheme.label_name(label),
            voxels: counts[label as usize],
            ml: counts[label as usize] as f64 * voxel_ml,
        })
        .collect()
}

/// Builds the network of `manifest` (fresh weights; load the record onto it).
pub fn build_model<B: Backend>(
    manifest: &SegmenterManifest,
    device: &B::Device,
) -> Result<UniUnet<B>> {
    UniUnetConfig::init(&manifest.model, device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Architecture;
    use burn::backend::Flex;

    type B = Flex;

    /// Labels of `input` `[1, 1, 16, 16, 16]` with one window covering it all.
    fn labels_of(model: &UniUnet<B>, input: Tensor<B, 5>, mirror: bool) -> Vec<u8> {
        let window = SlidingWindowConfig {
            roi: [16; 3],
            ..Default::default()
        };
        let scheme = LabelScheme::default();
        predict_labels(model, &scheme, &window, input, mirror, |_, _| {}).unwrap()
    }

    fn flip_x(labels: &[u8]) -> Vec<u8> {
        labels
            .chunks(16)
            .flat_map(|row| row.iter().rev().copied())
            .collect()
    }

    /// With mirroring the prediction is the mean over all 8 mirrorings, so mirroring the input
    /// mirrors the label map (up to f32 summation order); progress counts 8 × the windows.
    #[test]
    fn mirrored_prediction_commutes_with_mirroring_the_input() {
        let device = Default::default();
        let model = UniUnetConfig::new(1, 3)
            .with_encoder(Architecture::UniformerTiny)
            .init::<B>(&device)
            .unwrap();
        let values: Vec<f32> = (0..16 * 16 * 16)
            .map(|i| ((i as f32 * 0.37).sin() + (i as f32 * 0.011).cos()) * 2.0)
            .collect();
        let input = Tensor::<B, 5>::from_data(TensorData::new(values, [1, 1, 16, 16, 16]), &device);
        let mirrored_input = input.clone().flip([4]);
        let plain = labels_of(&model, input.clone(), true);
        let of_mirrored = labels_of(&model, mirrored_input, true);
        let expected = flip_x(&plain);
        let same = expected
            .iter()
            .zip(&of_mirrored)
            .filter(|(a, b)| a == b)
            .count();
        assert!(
            same as f64 >= 0.999 * expected.len() as f64,
            "{same} of {} voxels",
            expected.len()
        );
        assert!(
            plain.iter().any(|&l| l != 0),
            "an all-background map proves nothing"
        );
        let mut progress = Vec::new();
        let window = SlidingWindowConfig {
            roi: [16; 3],
            ..Default::default()
        };
        predict_labels(
            &model,
            &LabelScheme::default(),
            &window,
            input,
            true,
            |done, total| progress.push((done, total)),
        )
        .unwrap();
        assert_eq!(progress.last(), Some(&(8, 8)));
    }
}

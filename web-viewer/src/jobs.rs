//! The work the page's Web Worker does, backend-generic so that the host tests run it on the CPU
//! exactly as the browser runs it on WebGPU: segment one case with a `.bmvp` model, fine-tune a
//! model on a few labelled cases, and hand out its templates. Everything the page gets back is
//! NIfTI bytes (on the input's own grid and affine) or plain numbers; every failure is one
//! [`JobError`] (one line naming the file), turned into a JavaScript error only at the wasm edge.

use brainmvp_core::bmvp::{BmvpModel, WeightPrecision};
use brainmvp_core::correction::TeachingFocus;
use brainmvp_core::finetune::few_shot::{FewShotSet, FewShotTrainer, LabelledCase};
use brainmvp_core::inference::input_check::check_input;
use brainmvp_core::inference::segment::{
    measure_labels, InferenceOptions, LabelMeasure, PreparedCase,
};
use brainmvp_core::inference::window_jobs::{decode_probabilities, read_failed, WindowJobs};
use brainmvp_core::inference::{window_count, SlidingWindowConfig};
use brainmvp_core::model::footprint::{MemoryLimits, WindowFootprint};
use brainmvp_core::nifti;
use brainmvp_core::postprocess::PostprocessReport;
use brainmvp_core::{Modality, Volume};
use burn::tensor::backend::{AutodiffBackend, Backend};
use std::fmt;

/// Why a job failed: the one error type of the worker's jobs.
#[derive(Debug, Clone, PartialEq)]
pub enum JobError {
    /// An input, model or setting the job cannot use (one line naming it).
    Input(brainmvp_core::Error),
    /// The model's single window does not fit the backend's memory: the figures.
    DoesNotFit(String),
}

/// The result of a job.
pub type JobResult<T> = Result<T, JobError>;

impl JobError {
    /// A failure about `context` (a file name; empty for none).
    pub fn new(context: impl Into<String>, cause: impl Into<String>) -> Self {
        Self::Input(brainmvp_core::Error::new(context, cause))
    }
}

impl From<brainmvp_core::Error> for JobError {
    fn from(err: brainmvp_core::Error) -> Self {
        Self::Input(err)
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Input(err) => write!(f, "{err}"),
            Self::DoesNotFit(why) => write!(f, "{DOES_NOT_FIT}: {why}"),
        }
    }
}

impl std::error::Error for JobError {}

/// One file handed to the worker.
#[derive(Debug, Clone)]
pub struct InputFile {
    /// The file name (goes into errors).
    pub name: String,
    /// The modality the user assigned.
    pub modality: Modality,
    /// The `.nii` or `.nii.gz` bytes.
    pub bytes: Vec<u8>,
}

/// What a segmentation gives the page.
#[derive(Debug, Clone)]
pub struct SegmentOutcome {
    /// The label map as `.nii.gz`, on the first input's grid and affine.
    pub nifti: Vec<u8>,
    /// Every non-zero label's volume.
    pub label_measures: Vec<LabelMeasure>,
    /// Sliding windows run.
    pub windows: usize,
    /// Modalities the model wanted but the case lacked, with the synthetic (template-filled)
    /// channel on the input grid as `.nii.gz`, for display marked as synthetic.
    pub synthetic: Vec<(Modality, Vec<u8>)>,
    /// Given modalities the model does not use.
    pub ignored: Vec<Modality>,
    /// What post-processing changed (`None`: it did not run).
    pub postprocessed: Option<PostprocessReport>,
    /// Why the input does not look BraTS-preprocessed, one line each, the last a summary
    /// (empty when it does; see [`brainmvp_core::inference::input_check`]).
    pub input_warnings: Vec<String>,
    /// The memory estimate of the window batch that ran.
    pub footprint: WindowFootprint,
}

/// Decodes one NIfTI file as the viewer does ([`crate::render::decode_nifti`]: one size limit,
/// the first volume of a 4D file).
pub fn decode_image(name: &str, bytes: &[u8]) -> JobResult<Volume<f32>> {
    Ok(crate::render::decode_nifti(bytes, name)?.volume)
}

/// Decodes the images of one case.
pub fn decode_case(files: &[InputFile]) -> JobResult<Vec<(Modality, Volume<f32>)>> {
    if files.is_empty() {
        return Err(JobError::new("", "no image given"));
    }
    let mut images: Vec<(Modality, Volume<f32>)> = Vec::with_capacity(files.len());
    for file in files {
        if images
            .iter()
            .any(|(modality, _)| *modality == file.modality)
        {
            let cause = format!("a second {} image", file.modality);
            return Err(JobError::new(file.name.clone(), cause));
        }
        images.push((file.modality, decode_image(&file.name, &file.bytes)?));
    }
    Ok(images)
}

/// Reads a `.bmvp` model.
pub fn read_model(name: &str, bytes: &[u8]) -> JobResult<BmvpModel> {
    Ok(BmvpModel::from_bytes(bytes, name)?)
}

/// How a refusal for want of memory starts.
pub const DOES_NOT_FIT: &str = "the model does not fit";

/// What the page shows about a model before it runs: what it is and the memory one window
/// needs.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// The encoder as people name it: `UniFormer-S` (the official size) or `UniFormer tiny`.
    pub encoder: &'static str,
    /// How the weights are stored (`f16` or `f32`).
    pub precision: &'static str,
    /// The memory of one window (batch 1) at the model's sliding-window size.
    pub footprint: WindowFootprint,
    /// Modalities the model takes, in channel order.
    pub modalities: Vec<Modality>,
    /// Modalities it can synthesise from templates when missing.
    pub templates: Vec<Modality>,
    /// The preprocessing it runs on raw images (`pretraining` or `official-downstream`).
    pub preprocess: &'static str,
}

/// Describes `bmvp` (see [`ModelInfo`]).
pub fn model_info(bmvp: &BmvpModel) -> ModelInfo {
    let manifest = &bmvp.manifest;
    ModelInfo {
        encoder: manifest.model.encoder.label(),
        precision: match bmvp.precision {
            WeightPrecision::F16 => "f16",
            WeightPrecision::F32 => "f32",
        },
        footprint: WindowFootprint::estimate(
            &manifest.model,
            manifest.window.roi,
            1,
            bmvp.weight_values(),
        ),
        modalities: manifest.modalities.clone(),
        templates: bmvp.templates.iter().map(|(m, _)| *m).collect(),
        preprocess: manifest.preprocess.pipeline.name(),
    }
}

/// The memory a case of `voxels` (on the model's grid) holds while it is segmented besides the
/// network: its input channels and the blended class sums and weights, in `f32`.
fn case_bytes(bmvp: &BmvpModel, voxels: usize) -> u64 {
    let model = &bmvp.manifest.model;
    (model.in_channels as u64 + 3 * model.out_channels as u64) * voxels as u64 * 4
}

/// One case on its way through a segmentation: preprocessed, its model calls (window batches
/// × mirrorings, [`WindowJobs`]) handed out and taken back — on this thread by [`segment`], or
/// by a pool of Web Workers in the page (`crate::window_pool`) — then finished into a
/// [`SegmentOutcome`].
pub struct SegmentationJob<B: Backend> {
    id: String,
    case: PreparedCase<B>,
    /// The model calls and the sums they feed.
    pub windows: WindowJobs<B>,
    footprint: WindowFootprint,
    input_warnings: Vec<String>,
}

impl<B: Backend> SegmentationJob<B> {
    /// Decodes and preprocesses the case and plans its windows: as many per model call as fit
    /// `limits`; a model whose single window does not fit is refused before its weights load.
    pub fn begin(
        bmvp: &BmvpModel,
        files: &[InputFile],
        options: &InferenceOptions,
        limits: &MemoryLimits,
        device: &B::Device,
    ) -> JobResult<Self> {
        let images = decode_case(files)?;
        let input_warnings = check_input(&images)
            .into_iter()
            .map(|finding| finding.message)
            .collect();
        let id = files.first().map_or("case", |file| file.name.as_str());
        let templates = bmvp.template_bank()?;
        let manifest = &bmvp.manifest;
        let case = PreparedCase::<B>::new(manifest, id, images, templates.as_ref(), device)?;
        let [_, _, depth, height, width] = case.input.dims();
        let footprint = bmvp
            .fitting_window(&limits.after(case_bytes(bmvp, depth * height * width)))
            .map_err(JobError::DoesNotFit)?;
        let windows_needed = window_count([depth, height, width], &manifest.window);
        let footprint = WindowFootprint::estimate(
            &manifest.model,
            manifest.window.roi,
            footprint.batch.min(windows_needed.max(1)),
            footprint.weight_values,
        );
        let window = SlidingWindowConfig {
            batch: footprint.batch,
            ..manifest.window.clone()
        };
        let windows = WindowJobs::new(
            case.input.clone(),
            &window,
            &manifest.labels,
            options.mirror,
        )
        .map_err(|e| e.with_context(id))?;
        Ok(Self {
            id: id.to_string(),
            case,
            windows,
            footprint,
            input_warnings,
        })
    }

    /// The memory estimate of one model call (its batch of windows).
    pub fn footprint(&self) -> &WindowFootprint {
        &self.footprint
    }

    /// The label map from the blended windows, back on the input's grid and post-processed as
    /// `options` say, with what the page shows beside it.
    pub async fn finish(
        self,
        bmvp: &BmvpModel,
        options: &InferenceOptions,
    ) -> JobResult<SegmentOutcome> {
        let labels = &bmvp.manifest.labels;
        let [_, _, depth, height, width] = self.case.input.dims();
        let windows = self.windows.windows_total();
        let id = self.id.as_str();
        let probabilities = self.windows.finish().map_err(|e| e.with_context(id))?;
        let data = probabilities.into_data_async().await.map_err(read_failed)?;
        let predicted = decode_probabilities(labels, data, depth * height * width)?;
        let segmentation = self.case.finish(predicted, labels, options)?;
        let mut synthetic = Vec::with_capacity(segmentation.filled.len());
        for &modality in &segmentation.filled {
            let volume = self.case.channel_on_input_grid(modality)?;
            synthetic.push((modality, nifti::encode_f32(&volume, true)?));
        }
        Ok(SegmentOutcome {
            nifti: nifti::encode_u8(&segmentation.label_map, true)?,
            label_measures: measure_labels(&segmentation.label_map, &segmentation.scheme),
            windows,
            synthetic,
            ignored: segmentation.ignored,
            postprocessed: segmentation.postprocessed,
            input_warnings: self.input_warnings,
            footprint: self.footprint,
        })
    }
}

/// Segments one case with `bmvp` on `device` on this thread, mirrored and post-processed as
/// `options` say; `on_window(done, total)` after each batch (see [`SegmentationJob::begin`] for
/// the memory rules).
pub async fn segment<B: Backend>(
    bmvp: &BmvpModel,
    files: &[InputFile],
    options: &InferenceOptions,
    limits: &MemoryLimits,
    device: &B::Device,
    on_window: impl FnMut(usize, usize),
) -> JobResult<SegmentOutcome> {
    let mut job = SegmentationJob::<B>::begin(bmvp, files, options, limits, device)?;
    let model = bmvp.load_model::<B>(device)?;
    job.windows
        .run_all_async(|batch| model.try_forward_inference(batch), on_window)
        .await
        .map_err(|e| e.with_context(&job.id))?;
    job.finish(bmvp, options).await
}

/// One labelled case handed to the worker: its images and its label map.
#[derive(Debug, Clone)]
pub struct LabelledFiles {
    /// The images.
    pub images: Vec<InputFile>,
    /// The label map's file name and bytes.
    pub label: (String, Vec<u8>),
    /// Teaching from corrections: a NIfTI of [`brainmvp_core::correction::WeightClass`] values
    /// on the label map's grid (name and bytes).
    pub weight_classes: Option<(String, Vec<u8>)>,
}

/// Settings of an in-browser fine-tuning run.
#[derive(Debug, Clone, Copy)]
pub struct FinetuneSettings {
    /// Adam steps (at most; the page may stop earlier).
    pub steps: usize,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// Crops per step.
    pub batch: usize,
    /// Seed of the crops.
    pub seed: u64,
    /// How cases with weight classes weigh their voxels.
    pub focus: TeachingFocus,
}

/// What a fine-tuning run gives back.
#[derive(Debug, Clone)]
pub struct FinetuneOutcome {
    /// The fine-tuned model as a `.bmvp` (the input's precision; loadable by the CLI).
    pub model: Vec<u8>,
    /// The loss of every step taken.
    pub losses: Vec<f32>,
}

/// Fine-tunes `bmvp` on `cases`. After each step `on_step(step, loss)` is awaited; it returns
/// `false` to stop early (the page's Stop button).
pub async fn finetune<B, F, Fut>(
    bmvp: &BmvpModel,
    cases: &[LabelledFiles],
    settings: FinetuneSettings,
    device: &B::Device,
    mut on_step: F,
) -> JobResult<FinetuneOutcome>
where
    B: AutodiffBackend,
    F: FnMut(usize, f32) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let manifest = &bmvp.manifest;
    let templates = bmvp.template_bank()?;
    let labelled = cases
        .iter()
        .map(|case| {
            let (label_name, label_bytes) = &case.label;
            let weight_classes = case
                .weight_classes
                .as_ref()
                .map(|(name, bytes)| decode_image(name, bytes))
                .transpose()?;
            Ok(LabelledCase {
                id: label_name.clone(),
                images: decode_case(&case.images)?,
                label: decode_image(label_name, label_bytes)?,
                weight_classes,
            })
        })
        .collect::<JobResult<Vec<_>>>()?;
    let set = FewShotSet::new(manifest, labelled, templates.as_ref())?.with_focus(settings.focus);
    let model = bmvp.load_model::<B>(device)?;
    let mut trainer = FewShotTrainer::new(model, manifest, set, settings.batch, settings.seed);
    let mut losses = Vec::with_capacity(settings.steps);
    for step in 1..=settings.steps {
        let loss = trainer
            .step(settings.learning_rate)?
            .into_scalar_async()
            .await
            .map_err(|e| JobError::new(format!("fine-tuning step {step}"), format!("{e:?}")))?;
        let loss: f32 = num_traits_to_f32(loss);
        if !loss.is_finite() {
            return Err(JobError::new(
                format!("fine-tuning step {step}"),
                "the loss is not finite; lower the learning rate",
            ));
        }
        losses.push(loss);
        if !on_step(step, loss).await {
            break;
        }
    }
    let tuned = BmvpModel::from_model_async(
        manifest,
        &trainer.model(),
        bmvp.precision,
        bmvp.templates.clone(),
    )
    .await?;
    Ok(FinetuneOutcome {
        model: tuned.to_bytes()?,
        losses,
    })
}

fn num_traits_to_f32<E: burn::tensor::ElementConversion>(value: E) -> f32 {
    value.elem::<f32>()
}

/// The model's templates as `.nii.gz` (on the model's training grid), for the templates view.
pub fn templates(bmvp: &BmvpModel) -> JobResult<Vec<(Modality, Vec<u8>)>> {
    bmvp.templates
        .iter()
        .map(|(modality, volume)| Ok((*modality, nifti::encode_f32(volume, true)?)))
        .collect()
}

/// What the page's benchmark times: a model, one input window and the window's memory estimate.
pub type BenchSetup<B> = (
    brainmvp_core::model::UniUnet<B>,
    burn::tensor::Tensor<B, 5>,
    WindowFootprint,
);

/// A randomly initialised UniUnet of `preset` (`uniformer-tiny` or `uniformer-s`) with 4 input
/// channels and 3 outputs, one `[1, 4, roi, roi, roi]` input, and its memory estimate.
pub fn bench_setup<B: Backend>(
    preset: &str,
    roi: usize,
    device: &B::Device,
) -> JobResult<BenchSetup<B>> {
    use brainmvp_core::model::{Architecture, UniUnetConfig};
    let encoder = Architecture::from_name(preset).map_err(|cause| JobError::new("bench", cause))?;
    if !(32..=160).contains(&roi) || roi % 32 != 0 {
        let cause = "use a multiple of 32 from 32 to 160";
        return Err(JobError::new(format!("window {roi}"), cause));
    }
    let config = UniUnetConfig::new(4, 3).with_encoder(encoder);
    let model = config.init::<B>(device)?;
    let values = burn::module::Module::num_params(&model) as u64;
    let footprint = WindowFootprint::estimate(&config, [roi; 3], 1, values);
    let input = burn::tensor::Tensor::random(
        [1, 4, roi, roi, roi],
        burn::tensor::Distribution::Uniform(0.0, 1.0),
        device,
    );
    Ok((model, input, footprint))
}

/// One window through `model`, awaited until its output is read back (so a timer around it
/// measures the whole computation on an asynchronous backend).
pub async fn bench_window<B: Backend>(
    model: &brainmvp_core::model::UniUnet<B>,
    input: burn::tensor::Tensor<B, 5>,
) -> JobResult<f32> {
    let output = model.try_forward_inference(input)?;
    let sum = output
        .sum()
        .into_scalar_async()
        .await
        .map_err(|e| JobError::new("bench window", format!("{e:?}")))?;
    Ok(num_traits_to_f32(sum))
}

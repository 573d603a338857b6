//! The work the page's Web Worker does, backend-generic so that the host tests run it on the CPU
//! exactly as the browser runs it on WebGPU: segment one case with a `.bmvp` model, fine-tune a
//! model on a few labelled cases, and hand out its templates. Everything the page gets back is
//! NIfTI bytes (on the input's own grid and affine) or plain numbers; every failure is one line
//! naming the file.

use brainmvp_core::finetune::export::ModelBundle;
use brainmvp_core::finetune::few_shot::{FewShotSet, FewShotTrainer, LabelledCase};
use brainmvp_core::finetune::segment::{
    label_volumes, InferenceOptions, LabelVolume, PreparedCase,
};
use brainmvp_core::nifti;
use brainmvp_core::postprocess::PostprocessReport;
use brainmvp_core::{Modality, Volume};
use burn::tensor::backend::{AutodiffBackend, Backend};

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
    pub volumes: Vec<LabelVolume>,
    /// Sliding windows run.
    pub windows: usize,
    /// Modalities the model wanted but the case lacked, with the synthetic (template-filled)
    /// channel on the input grid as `.nii.gz`, for display marked as synthetic.
    pub synthetic: Vec<(Modality, Vec<u8>)>,
    /// Given modalities the model does not use.
    pub ignored: Vec<Modality>,
    /// What post-processing changed (`None`: it did not run).
    pub postprocessed: Option<PostprocessReport>,
}

/// Decodes one NIfTI file as the viewer does ([`crate::render::decode_nifti`]: one size limit,
/// the first volume of a 4D file).
pub fn decode_image(name: &str, bytes: &[u8]) -> Result<Volume<f32>, String> {
    crate::render::decode_nifti(bytes, name)
        .map(|image| image.volume)
        .map_err(|e| e.to_string())
}

/// Decodes the images of one case.
pub fn decode_case(files: &[InputFile]) -> Result<Vec<(Modality, Volume<f32>)>, String> {
    if files.is_empty() {
        return Err("no image given".to_string());
    }
    let mut images: Vec<(Modality, Volume<f32>)> = Vec::with_capacity(files.len());
    for file in files {
        if images
            .iter()
            .any(|(modality, _)| *modality == file.modality)
        {
            return Err(format!("{}: a second {} image", file.name, file.modality));
        }
        images.push((file.modality, decode_image(&file.name, &file.bytes)?));
    }
    Ok(images)
}

/// Reads a `.bmvp` model.
pub fn read_model(name: &str, bytes: &[u8]) -> Result<ModelBundle, String> {
    ModelBundle::from_bytes(bytes, name).map_err(|e| e.to_string())
}

/// Segments one case with `bundle` on `device`, mirrored and post-processed as `options` say;
/// `on_window(done, total)` after each batch.
pub async fn segment<B: Backend>(
    bundle: &ModelBundle,
    files: &[InputFile],
    options: &InferenceOptions,
    device: &B::Device,
    mut on_window: impl FnMut(usize, usize),
) -> Result<SegmentOutcome, String> {
    let images = decode_case(files)?;
    let id = files.first().map_or("case", |file| file.name.as_str());
    let model = bundle.load_model::<B>(device).map_err(|e| e.to_string())?;
    let templates = bundle.template_bank().map_err(|e| e.to_string())?;
    let manifest = &bundle.manifest;
    let case = PreparedCase::<B>::new(manifest, id, images, templates.as_ref(), device)
        .map_err(|e| e.to_string())?;
    let mut windows = 0;
    let predicted = brainmvp_core::finetune::segment::predict_labels_async(
        &model,
        &manifest.labels,
        &manifest.window,
        case.input.clone(),
        options.mirror,
        |done, total| {
            windows = total;
            on_window(done, total)
        },
    )
    .await
    .map_err(|e| e.with_context(id).to_string())?;
    let segmentation = case
        .finish(predicted, &manifest.labels, &options.postprocess)
        .map_err(|e| e.to_string())?;
    let mut synthetic = Vec::with_capacity(segmentation.filled.len());
    for &modality in &segmentation.filled {
        let volume = case
            .channel_on_input_grid(modality)
            .map_err(|e| e.to_string())?;
        synthetic.push((modality, encode(nifti::encode_f32(&volume, true))?));
    }
    Ok(SegmentOutcome {
        nifti: encode(nifti::encode_u8(&segmentation.labels, true))?,
        volumes: label_volumes(&segmentation.labels, &manifest.labels),
        windows,
        synthetic,
        ignored: segmentation.ignored,
        postprocessed: segmentation.postprocessed,
    })
}

fn encode(bytes: brainmvp_core::Result<Vec<u8>>) -> Result<Vec<u8>, String> {
    bytes.map_err(|e| e.to_string())
}

/// One labelled case handed to the worker: its images and its label map.
#[derive(Debug, Clone)]
pub struct LabelledFiles {
    /// The images.
    pub images: Vec<InputFile>,
    /// The label map's file name and bytes.
    pub label: (String, Vec<u8>),
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
}

/// What a fine-tuning run gives back.
#[derive(Debug, Clone)]
pub struct FinetuneOutcome {
    /// The fine-tuned model as a `.bmvp` (the input's precision; loadable by the CLI).
    pub model: Vec<u8>,
    /// The loss of every step taken.
    pub losses: Vec<f32>,
}

/// Fine-tunes `bundle` on `cases`. After each step `on_step(step, loss)` is awaited; it returns
/// `false` to stop early (the page's Stop button).
pub async fn finetune<B, F, Fut>(
    bundle: &ModelBundle,
    cases: &[LabelledFiles],
    settings: FinetuneSettings,
    device: &B::Device,
    mut on_step: F,
) -> Result<FinetuneOutcome, String>
where
    B: AutodiffBackend,
    F: FnMut(usize, f32) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let manifest = &bundle.manifest;
    let templates = bundle.template_bank().map_err(|e| e.to_string())?;
    let labelled = cases
        .iter()
        .map(|case| {
            let (label_name, label_bytes) = &case.label;
            Ok(LabelledCase {
                id: label_name.clone(),
                images: decode_case(&case.images)?,
                label: decode_image(label_name, label_bytes)?,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let set = FewShotSet::new(manifest, labelled, templates.as_ref()).map_err(|e| e.to_string())?;
    let model = bundle.load_model::<B>(device).map_err(|e| e.to_string())?;
    let mut trainer = FewShotTrainer::new(model, manifest, set, settings.batch, settings.seed);
    let mut losses = Vec::with_capacity(settings.steps);
    for step in 1..=settings.steps {
        let loss = trainer
            .step(settings.learning_rate)
            .map_err(|e| e.to_string())?
            .into_scalar_async()
            .await
            .map_err(|e| format!("fine-tuning step {step}: {e:?}"))?;
        let loss: f32 = num_traits_to_f32(loss);
        if !loss.is_finite() {
            return Err(format!(
                "fine-tuning step {step}: the loss is not finite; lower the learning rate"
            ));
        }
        losses.push(loss);
        if !on_step(step, loss).await {
            break;
        }
    }
    let tuned = ModelBundle::from_model_async(
        manifest,
        &trainer.model(),
        bundle.precision,
        bundle.templates.clone(),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(FinetuneOutcome {
        model: tuned.to_bytes().map_err(|e| e.to_string())?,
        losses,
    })
}

fn num_traits_to_f32<E: burn::tensor::ElementConversion>(value: E) -> f32 {
    value.elem::<f32>()
}

/// The model's templates as `.nii.gz` (on the model's training grid), for the templates view.
pub fn templates(bundle: &ModelBundle) -> Result<Vec<(Modality, Vec<u8>)>, String> {
    bundle
        .templates
        .iter()
        .map(|(modality, volume)| Ok((*modality, encode(nifti::encode_f32(volume, true))?)))
        .collect()
}

/// A randomly initialised UniUnet of `preset` (`tiny` or `small`, i.e. UniFormer-S) with 4 input
/// channels and 3 outputs, and one `[1, 4, roi, roi, roi]` input: what the page's benchmark times.
pub fn bench_setup<B: Backend>(
    preset: &str,
    roi: usize,
    device: &B::Device,
) -> Result<(brainmvp_core::model::UniUnet<B>, burn::tensor::Tensor<B, 5>), String> {
    use brainmvp_core::model::{EncoderPreset, UniUnetConfig};
    let encoder = match preset {
        "tiny" => EncoderPreset::Tiny,
        "small" | "full" => EncoderPreset::Small,
        other => return Err(format!("unknown model preset {other:?} (tiny or small)")),
    };
    if !(32..=160).contains(&roi) || roi % 32 != 0 {
        return Err(format!("window {roi}: use a multiple of 32 from 32 to 160"));
    }
    let model = UniUnetConfig::new(4, 3)
        .with_encoder(encoder)
        .init::<B>(device)
        .map_err(|e| e.to_string())?;
    let input = burn::tensor::Tensor::random(
        [1, 4, roi, roi, roi],
        burn::tensor::Distribution::Uniform(0.0, 1.0),
        device,
    );
    Ok((model, input))
}

/// One window through `model`, awaited until its output is read back (so a timer around it
/// measures the whole computation on an asynchronous backend).
pub async fn bench_window<B: Backend>(
    model: &brainmvp_core::model::UniUnet<B>,
    input: burn::tensor::Tensor<B, 5>,
) -> Result<f32, String> {
    let output = model
        .try_forward_inference(input)
        .map_err(|e| e.to_string())?;
    let sum = output
        .sum()
        .into_scalar_async()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(num_traits_to_f32(sum))
}

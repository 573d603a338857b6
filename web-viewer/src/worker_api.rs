//! What `www/worker.js` (a module Web Worker) calls: the [`crate::jobs`] on burn's WebGPU backend
//! when the worker found an adapter, else on the CPU backend (flex), with JS objects in and out.
//! Errors reach the page as one-line messages.

use std::cell::Cell;

use brainmvp_core::bmvp::BmvpModel;
use brainmvp_core::correction::weights::TEACHING_BATCH;
use brainmvp_core::correction::TeachingFocus;
use brainmvp_core::inference::label_convention;
use brainmvp_core::inference::segment::InferenceOptions;
use brainmvp_core::model::footprint::{MemoryLimits, WindowFootprint};
use brainmvp_core::postprocess::PostprocessConfig;
use brainmvp_core::Modality;
use burn::backend::wgpu::{graphics::WebGpu, init_setup_async, RuntimeOptions, WgpuDevice};
use burn::backend::{Autodiff, Flex};
use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::jobs::{self, FinetuneSettings, InputFile, JobError, JobResult, LabelledFiles};

thread_local! {
    /// Whether burn's WebGPU runtime has been set up in this worker (once, with the adapter's
    /// own limits: the WebGPU default 128 MiB storage binding is too small for 3D volumes).
    static WEBGPU_READY: Cell<bool> = const { Cell::new(false) };
}

async fn webgpu_device() -> WgpuDevice {
    let device = WgpuDevice::default();
    if !WEBGPU_READY.with(Cell::get) {
        init_setup_async::<WebGpu>(&device, RuntimeOptions::default()).await;
        WEBGPU_READY.with(|ready| ready.set(true));
    }
    device
}

/// A message field the worker got wrong (a page bug, not a user's file).
fn message_error(cause: String) -> JobError {
    JobError::new("worker message", cause)
}

fn field(object: &JsValue, name: &str) -> JobResult<JsValue> {
    Reflect::get(object, &JsValue::from_str(name))
        .map_err(|_| message_error(format!("no field {name}")))
}

fn string_field(object: &JsValue, name: &str) -> JobResult<String> {
    field(object, name)?
        .as_string()
        .ok_or_else(|| message_error(format!("field {name} is not a string")))
}

fn bytes_field(object: &JsValue, name: &str) -> JobResult<Vec<u8>> {
    let value = field(object, name)?;
    if value.is_instance_of::<js_sys::ArrayBuffer>() {
        return Ok(Uint8Array::new(&value).to_vec());
    }
    value
        .dyn_into::<Uint8Array>()
        .map(|array| array.to_vec())
        .map_err(|_| message_error(format!("field {name} is not bytes")))
}

/// `[{name, modality, bytes}]` → input files.
fn input_files(files: &JsValue) -> JobResult<Vec<InputFile>> {
    let array: &Array = files
        .dyn_ref()
        .ok_or_else(|| message_error("the files are not an array".into()))?;
    array
        .iter()
        .map(|file| {
            let name = string_field(&file, "name")?;
            let token = string_field(&file, "modality")?;
            let modality = Modality::from_token(&token).ok_or_else(|| {
                JobError::new(name.clone(), format!("unknown modality {token:?}"))
            })?;
            Ok(InputFile {
                name,
                modality,
                bytes: bytes_field(&file, "bytes")?,
            })
        })
        .collect()
}

pub(crate) fn set(object: &Object, name: &str, value: impl Into<JsValue>) {
    // Setting a property on a plain object cannot fail.
    let _ = Reflect::set(object, &JsValue::from_str(name), &value.into());
}

/// The one place an error becomes a JavaScript one (its one line is the message).
pub(crate) fn error(err: impl std::fmt::Display) -> JsError {
    JsError::new(&err.to_string())
}

/// Runs the job `$job` (a future) with `$B` bound to burn's WebGPU backend (the worker's
/// adapter, set up once) or to the CPU backend (flex), and `$device` to that backend's device;
/// evaluates to `(the job's result, "WebGPU" or "CPU")`. The one place the worker chooses.
macro_rules! on_backend {
    ($use_webgpu:expr, |$B:ident, $device:ident| $job:expr) => {
        if $use_webgpu {
            type $B = burn::backend::WebGpu;
            let $device = webgpu_device().await;
            ($job.await, "WebGPU")
        } else {
            type $B = Flex;
            let $device: burn::tensor::Device<Flex> = Default::default();
            ($job.await, "CPU")
        }
    };
}

/// wasm32's linear memory: 4 GiB at most, everything the CPU path holds included.
const WASM32_MEMORY_BYTES: u64 = 4 << 30;

/// The memory a segmentation may use: on WebGPU the adapter's buffer limits (`gpu_limits`:
/// `{maxBufferSize, maxStorageBufferBindingSize}`, which burn requests for its device); on the
/// CPU the 4 GiB of wasm32 less the model file, its decoded weights and the input files.
fn job_limits(
    use_webgpu: bool,
    gpu_limits: &JsValue,
    bmvp: &BmvpModel,
    held_bytes: u64,
) -> MemoryLimits {
    if use_webgpu {
        let limit = |name: &str| {
            field(gpu_limits, name)
                .ok()
                .and_then(|value| value.as_f64())
                .map(|bytes| bytes as u64)
        };
        let smallest = [limit("maxBufferSize"), limit("maxStorageBufferBindingSize")]
            .into_iter()
            .flatten()
            .min();
        return MemoryLimits {
            max_buffer_bytes: smallest,
            max_total_bytes: None,
        };
    }
    MemoryLimits {
        max_buffer_bytes: None,
        max_total_bytes: Some(WASM32_MEMORY_BYTES),
    }
    .after(held_bytes + 4 * bmvp.weight_values())
}

/// What the page shows about a model: `{encoder, precision, preprocess, values, fileBytes, roi,
/// weightBytes, activationBytes, largestBufferBytes, summary, modalities, templates}` (memory
/// for one window at the model's sliding-window size; `summary` one line in words).
#[wasm_bindgen]
pub fn worker_model_info(model_name: String, model: Vec<u8>) -> Result<JsValue, JsError> {
    let bmvp = jobs::read_model(&model_name, &model).map_err(error)?;
    let info = jobs::model_info(&bmvp);
    let footprint = &info.footprint;
    let result = Object::new();
    set(&result, "encoder", info.encoder);
    set(&result, "precision", info.precision);
    set(&result, "preprocess", info.preprocess);
    set(&result, "values", footprint.weight_values as f64);
    set(&result, "fileBytes", model.len() as f64);
    set(&result, "roi", footprint.roi[0] as f64);
    set(&result, "weightBytes", footprint.weight_bytes as f64);
    set(
        &result,
        "activationBytes",
        footprint.peak_activation_bytes as f64,
    );
    set(
        &result,
        "largestBufferBytes",
        footprint.largest_tensor_bytes as f64,
    );
    set(&result, "summary", footprint.summary());
    let names =
        |list: &[Modality]| -> Array { list.iter().map(|m| JsValue::from_str(m.name())).collect() };
    set(&result, "modalities", names(&info.modalities));
    set(&result, "templates", names(&info.templates));
    Ok(result.into())
}

/// A segmentation request from the page: the model, the files, the memory the job may use and
/// the options (mirroring, clean-up, the enhancing label by the files' names).
pub(crate) struct SegmentRequest {
    pub(crate) bmvp: BmvpModel,
    pub(crate) files: Vec<InputFile>,
    pub(crate) limits: MemoryLimits,
    pub(crate) options: InferenceOptions,
    convention: Option<(u8, &'static str)>,
}

impl SegmentRequest {
    /// Reads the request; `settings`: `{mirror, clean, gpuLimits}` (see [`job_limits`]).
    pub(crate) fn parse(
        model_name: &str,
        model: &[u8],
        files: &JsValue,
        use_webgpu: bool,
        settings: &JsValue,
    ) -> Result<Self, JsError> {
        let bmvp = jobs::read_model(model_name, model).map_err(error)?;
        let files = input_files(files).map_err(error)?;
        let held = model.len() as u64 + files.iter().map(|f| f.bytes.len() as u64).sum::<u64>();
        let gpu_limits = field(settings, "gpuLimits").unwrap_or(JsValue::NULL);
        let limits = job_limits(use_webgpu, &gpu_limits, &bmvp, held);
        let switch = |name: &str| field(settings, name).is_ok_and(|value| value.is_truthy());
        let convention = label_convention::enhancing_label_from_names(
            files.iter().map(|file| file.name.as_str()),
        );
        let options = InferenceOptions {
            mirror: switch("mirror"),
            postprocess: match switch("clean") {
                true => PostprocessConfig::recommended(),
                false => PostprocessConfig::default(),
            },
            enhancing_label: convention.map(|(label, _)| label),
        };
        Ok(Self {
            bmvp,
            files,
            limits,
            options,
            convention,
        })
    }

    /// A job's error as the page shows it: a refusal for memory names the model and backend.
    pub(crate) fn refusal(model_name: &str, backend: &str, why: JobError) -> JsError {
        match why {
            JobError::DoesNotFit(_) => error(format!("{model_name} on {backend}: {why}")),
            JobError::Input(_) => error(why),
        }
    }

    /// The page's result object for `outcome` (see [`worker_segment`]).
    pub(crate) fn result(&self, outcome: &jobs::SegmentOutcome, backend: &str) -> Object {
        let result = Object::new();
        set(&result, "nifti", Uint8Array::from(outcome.nifti.as_slice()));
        let measures = Array::new();
        for measure in &outcome.label_measures {
            let row = Object::new();
            set(&row, "label", measure.label);
            set(&row, "name", measure.name.as_str());
            set(&row, "voxels", measure.voxels as f64);
            set(&row, "ml", measure.ml);
            measures.push(&row);
        }
        set(&result, "volumes", measures);
        set(&result, "windows", outcome.windows as f64);
        set(&result, "backend", backend);
        set(&result, "synthetic", modality_volumes(&outcome.synthetic));
        let names = |list: &[Modality]| -> Array {
            list.iter().map(|m| JsValue::from_str(m.name())).collect()
        };
        set(&result, "ignored", names(&outcome.ignored));
        set(&result, "mirrored", self.options.mirror);
        set(&result, "windowBatch", outcome.footprint.batch as f64);
        set(&result, "memory", outcome.footprint.summary());
        let postprocessed = outcome.postprocessed.map_or(JsValue::NULL, |report| {
            let row = Object::new();
            set(&row, "removed", report.removed as f64);
            set(&row, "coreToOedema", report.core_to_oedema as f64);
            set(&row, "enhancingToCore", report.enhancing_to_core as f64);
            set(&row, "holesFilled", report.holes_filled as f64);
            row.into()
        });
        set(&result, "postprocessed", postprocessed);
        let lines =
            |list: &[String]| -> Array { list.iter().map(|l| JsValue::from_str(l)).collect() };
        set(&result, "inputWarnings", lines(&outcome.input_warnings));
        let convention_line = self
            .convention
            .map(|(label, reason)| label_convention::describe(label, reason));
        set(
            &result,
            "labelConvention",
            convention_line.map_or(JsValue::NULL, |line| JsValue::from_str(&line)),
        );
        result
    }
}

/// Segments one case on this worker's thread. `files`: `[{name, modality, bytes}]`;
/// `settings`: `{mirror, clean, gpuLimits}` (test-time mirroring, the recommended
/// post-processing, and the WebGPU adapter's limits, see [`job_limits`]: a model that does not
/// fit is refused); `on_progress(done, total)` after each batch of windows. Resolves to
/// `{nifti, volumes: [{label, name, voxels, ml}], windows, backend, synthetic: [{modality,
/// nifti}], ignored: [modality], mirrored, windowBatch, memory, postprocessed: {removed,
/// coreToOedema, enhancingToCore, holesFilled} | null, inputWarnings: [line], labelConvention}`
/// (`inputWarnings`: why the images do not look BraTS-preprocessed, the last line a summary;
/// empty when they do). The CPU path with several cores uses [`crate::window_pool`] instead.
#[wasm_bindgen]
pub async fn worker_segment(
    model_name: String,
    model: Vec<u8>,
    files: JsValue,
    use_webgpu: bool,
    settings: JsValue,
    on_progress: Function,
) -> Result<JsValue, JsError> {
    let request = SegmentRequest::parse(&model_name, &model, &files, use_webgpu, &settings)?;
    let report = |done: usize, total: usize| {
        let _ = on_progress.call2(&JsValue::NULL, &done.into(), &total.into());
    };
    let (bmvp, files, options) = (&request.bmvp, &request.files, &request.options);
    let (outcome, backend) = on_backend!(use_webgpu, |B, device| {
        jobs::segment::<B>(bmvp, files, options, &request.limits, &device, report)
    });
    let outcome = outcome.map_err(|why| SegmentRequest::refusal(&model_name, backend, why))?;
    Ok(request.result(&outcome, backend).into())
}

fn modality_volumes(volumes: &[(Modality, Vec<u8>)]) -> Array {
    volumes
        .iter()
        .map(|(modality, bytes)| {
            let entry = Object::new();
            set(&entry, "modality", modality.name());
            set(&entry, "nifti", Uint8Array::from(bytes.as_slice()));
            JsValue::from(entry)
        })
        .collect()
}

/// `[{images: [{name, modality, bytes}], label: {name, bytes}, weights?: {name, bytes}}]` →
/// labelled cases (`weights`: the weight classes of a teaching case).
fn labelled_cases(cases: &JsValue) -> JobResult<Vec<LabelledFiles>> {
    let array: &Array = cases
        .dyn_ref()
        .ok_or_else(|| message_error("the cases are not an array".into()))?;
    array
        .iter()
        .map(|case| {
            let label = field(&case, "label")?;
            let weights = field(&case, "weights")?;
            let weight_classes = if weights.is_undefined() || weights.is_null() {
                None
            } else {
                Some((
                    string_field(&weights, "name")?,
                    bytes_field(&weights, "bytes")?,
                ))
            };
            Ok(LabelledFiles {
                images: input_files(&field(&case, "images")?)?,
                label: (string_field(&label, "name")?, bytes_field(&label, "bytes")?),
                weight_classes,
            })
        })
        .collect()
}

/// Fine-tunes the model on labelled cases (teaching from corrections when they carry weight
/// classes, weighted as `focus` says: `corrected-slices`, `up-weighted`, or empty for the
/// default). `on_step(step, loss)` returns a Promise of `true` to go on, `false` to stop.
/// Resolves to `{model: Uint8Array (.bmvp), losses: [..], backend}`.
#[wasm_bindgen]
#[allow(clippy::too_many_arguments)]
pub async fn worker_finetune(
    model_name: String,
    model: Vec<u8>,
    cases: JsValue,
    steps: u32,
    learning_rate: f64,
    focus: String,
    use_webgpu: bool,
    on_step: Function,
) -> Result<JsValue, JsError> {
    let bmvp = jobs::read_model(&model_name, &model).map_err(error)?;
    let cases = labelled_cases(&cases).map_err(error)?;
    let focus = match focus.as_str() {
        "" => TeachingFocus::default(),
        name => TeachingFocus::from_name(name).ok_or_else(|| {
            error(format!(
                "teaching focus {name:?} is not corrected-slices or up-weighted"
            ))
        })?,
    };
    let teaching = cases.iter().any(|case| case.weight_classes.is_some());
    let settings = FinetuneSettings {
        steps: steps as usize,
        learning_rate,
        batch: if teaching { TEACHING_BATCH } else { 1 },
        seed: 1,
        focus,
    };
    let step = |step: usize, loss: f32| {
        let answer = on_step.call2(&JsValue::NULL, &step.into(), &loss.into());
        async move {
            let Ok(answer) = answer else { return false };
            match answer.dyn_into::<Promise>() {
                Ok(promise) => JsFuture::from(promise)
                    .await
                    .ok()
                    .and_then(|value| value.as_bool())
                    .unwrap_or(false),
                Err(value) => value.as_bool().unwrap_or(false),
            }
        }
    };
    let (outcome, backend) = on_backend!(use_webgpu, |B, device| {
        jobs::finetune::<Autodiff<B>, _, _>(&bmvp, &cases, settings, &device, step)
    });
    let outcome = outcome.map_err(error)?;
    let result = Object::new();
    set(&result, "model", Uint8Array::from(outcome.model.as_slice()));
    let losses: Array = outcome.losses.iter().map(|&l| JsValue::from(l)).collect();
    set(&result, "losses", losses);
    set(&result, "backend", backend);
    Ok(result.into())
}

/// The model's learned modality templates: `[{modality, nifti}]`.
#[wasm_bindgen]
pub fn worker_templates(model_name: String, model: Vec<u8>) -> Result<JsValue, JsError> {
    let bmvp = jobs::read_model(&model_name, &model).map_err(error)?;
    let templates = jobs::templates(&bmvp).map_err(error)?;
    Ok(modality_volumes(&templates).into())
}

/// Milliseconds per `roi`³ window of a randomly initialised UniUnet (`tiny` or `small`) with 4
/// channels: one warm-up window, then the mean of `repeats`. `kernels: false` times the CPU
/// backend with burn's own operations instead of `brainmvp_core::kernels` (for before/after
/// figures; WebGPU never uses them). Resolves to `{msPerWindow, backend, kernels,
/// estimatedBytes, memory}` (the memory estimate of one window, in bytes and in words).
#[wasm_bindgen]
pub async fn worker_bench(
    preset: String,
    roi: u32,
    repeats: u32,
    use_webgpu: bool,
    kernels: bool,
) -> Result<JsValue, JsError> {
    brainmvp_core::kernels::set_enabled(kernels);
    let (timing, backend) = on_backend!(use_webgpu, |B, device| {
        time_windows::<B>(&preset, roi, repeats, &device)
    });
    brainmvp_core::kernels::set_enabled(true);
    let (ms, footprint) = timing.map_err(error)?;
    let result = Object::new();
    set(&result, "msPerWindow", ms);
    set(&result, "backend", backend);
    set(&result, "kernels", kernels && !use_webgpu);
    set(&result, "estimatedBytes", footprint.total_bytes() as f64);
    set(&result, "memory", footprint.summary());
    Ok(result.into())
}

async fn time_windows<B: burn::tensor::backend::Backend>(
    preset: &str,
    roi: u32,
    repeats: u32,
    device: &B::Device,
) -> JobResult<(f64, WindowFootprint)> {
    let (model, input, footprint) = jobs::bench_setup::<B>(preset, roi as usize, device)?;
    jobs::bench_window(&model, input.clone()).await?;
    let started = js_sys::Date::now();
    for _ in 0..repeats.max(1) {
        jobs::bench_window(&model, input.clone()).await?;
    }
    let ms = (js_sys::Date::now() - started) / f64::from(repeats.max(1));
    Ok((ms, footprint))
}

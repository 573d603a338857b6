//! The page's CPU path on several cores: one segmentation spread over a pool of Web Workers
//! without shared memory. The coordinating worker (`www/worker.js`) holds a
//! [`PooledSegmentation`]: the preprocessed case and the sums its windows feed. It hands each
//! model call's input windows to a pool worker (`www/window-worker.js`), which holds its own copy
//! of the network as a [`WindowModel`] and sends the output back; the coordinator takes the
//! outputs back in job order, so the label map is the one `brainmvp segment` and the one-worker
//! path give (`brainmvp_core::inference::window_jobs`).

use brainmvp_core::model::UniUnet;
use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use js_sys::{Float32Array, Object, Uint32Array};
use wasm_bindgen::prelude::*;

use crate::jobs::{self, SegmentationJob};
use crate::worker_api::{error, set, SegmentRequest};

/// The CPU backend's device (flex has one).
fn cpu() -> burn::tensor::Device<Flex> {
    Default::default()
}

/// A `[d0, …, d4]` shape from the page, checked against the values it describes.
fn shape_of(shape: &[u32], values: usize, what: &str) -> Result<[usize; 5], JsError> {
    let dims: [usize; 5] = match shape {
        [a, b, c, d, e] => [*a, *b, *c, *d, *e].map(|dim| dim as usize),
        _ => return Err(error(format!("{what}: shape {shape:?} is not 5-D"))),
    };
    if dims.iter().product::<usize>() != values {
        let cause = format!("{what}: shape {dims:?} does not hold {values} values");
        return Err(error(cause));
    }
    Ok(dims)
}

/// `{values: Float32Array, shape: Uint32Array}` of a tensor.
fn tensor_message(tensor: Tensor<Flex, 5>) -> Result<JsValue, JsError> {
    let shape: Vec<u32> = tensor.dims().iter().map(|&dim| dim as u32).collect();
    let values = tensor
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|err| error(format!("window values: {err:?}")))?;
    let message = Object::new();
    set(&message, "values", Float32Array::from(values.as_slice()));
    set(&message, "shape", Uint32Array::from(shape.as_slice()));
    Ok(message.into())
}

/// One segmentation on the CPU whose model calls run elsewhere (see the module docs).
#[wasm_bindgen]
pub struct PooledSegmentation {
    model_name: String,
    request: SegmentRequest,
    job: SegmentationJob<Flex>,
}

#[wasm_bindgen]
impl PooledSegmentation {
    /// Reads the model and the files and preprocesses the case, as `worker_segment` on the CPU
    /// (`settings`: `{mirror, clean}`); refuses a model whose window batch does not fit.
    #[wasm_bindgen(constructor)]
    pub fn new(
        model_name: String,
        model: Vec<u8>,
        files: JsValue,
        settings: JsValue,
    ) -> Result<PooledSegmentation, JsError> {
        let request = SegmentRequest::parse(&model_name, &model, &files, false, &settings)?;
        let job = SegmentationJob::begin(
            &request.bmvp,
            &request.files,
            &request.options,
            &request.limits,
            &cpu(),
        )
        .map_err(|why| SegmentRequest::refusal(&model_name, "CPU", why))?;
        Ok(Self {
            model_name,
            request,
            job,
        })
    }

    /// Model calls in all.
    #[wasm_bindgen(js_name = jobCount)]
    pub fn job_count(&self) -> usize {
        self.job.windows.len()
    }

    /// Windows in all (8 × a pass with mirroring).
    #[wasm_bindgen(js_name = windowsTotal)]
    pub fn windows_total(&self) -> usize {
        self.job.windows.windows_total()
    }

    /// Windows whose outputs are in.
    #[wasm_bindgen(js_name = windowsDone)]
    pub fn windows_done(&self) -> usize {
        self.job.windows.windows_done()
    }

    /// The memory one pool worker needs for a model call: the network's weights and one window
    /// batch's activations, in bytes (the footprint estimate).
    #[wasm_bindgen(js_name = workerBytes)]
    pub fn worker_bytes(&self) -> f64 {
        self.job.footprint().total_bytes() as f64
    }

    /// The estimate in words, for the page.
    #[wasm_bindgen(js_name = memorySummary)]
    pub fn memory_summary(&self) -> String {
        self.job.footprint().summary()
    }

    /// The input of model call `job`: `{values: Float32Array, shape: Uint32Array}`.
    #[wasm_bindgen(js_name = jobInput)]
    pub fn job_input(&mut self, job: usize) -> Result<JsValue, JsError> {
        tensor_message(self.job.windows.input(job).map_err(error)?)
    }

    /// Takes the output of model call `job`, which must be the next one in order.
    pub fn accept(&mut self, job: usize, values: Vec<f32>, shape: Vec<u32>) -> Result<(), JsError> {
        let dims = shape_of(&shape, values.len(), "window output")?;
        let predicted = Tensor::from_data(TensorData::new(values, dims), &cpu());
        self.job.windows.accept(job, predicted).map_err(error)
    }

    /// The label map and everything the page shows with it (the object `worker_segment`
    /// resolves to), once every call is in.
    pub async fn finish(self) -> Result<JsValue, JsError> {
        let Self {
            model_name,
            request,
            job,
        } = self;
        let outcome = job
            .finish(&request.bmvp, &request.options)
            .await
            .map_err(|why| SegmentRequest::refusal(&model_name, "CPU", why))?;
        Ok(request.result(&outcome, "CPU").into())
    }
}

/// A pool worker's copy of the network, on the CPU.
#[wasm_bindgen]
pub struct WindowModel {
    model: UniUnet<Flex>,
}

#[wasm_bindgen]
impl WindowModel {
    /// Loads the network of a `.bmvp` model.
    #[wasm_bindgen(constructor)]
    pub fn new(model_name: String, model: Vec<u8>) -> Result<WindowModel, JsError> {
        let bmvp = jobs::read_model(&model_name, &model).map_err(error)?;
        let model = bmvp.load_model::<Flex>(&cpu()).map_err(error)?;
        Ok(Self { model })
    }

    /// One model call: input windows `values` of `shape` `[n, C_in, rz, ry, rx]` → `{values,
    /// shape}` of the output `[n, C_out, rz, ry, rx]`.
    pub fn forward(&self, values: Vec<f32>, shape: Vec<u32>) -> Result<JsValue, JsError> {
        let dims = shape_of(&shape, values.len(), "window input")?;
        let input = Tensor::from_data(TensorData::new(values, dims), &cpu());
        tensor_message(self.model.try_forward_inference(input).map_err(error)?)
    }
}

//! Ask the browser for a WebGPU adapter and describe it: vendor, architecture, device,
//! description and the buffer limits it supports.
//!
//! web-sys only exposes the WebGPU objects behind `--cfg=web_sys_unstable_apis`, so the few
//! members needed here are bound directly.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen]
extern "C" {
    /// `navigator.gpu`.
    type Gpu;
    #[wasm_bindgen(method, js_name = requestAdapter)]
    fn request_adapter(this: &Gpu) -> js_sys::Promise;

    /// A `GPUAdapter`.
    type GpuAdapter;
    #[wasm_bindgen(method, getter)]
    fn info(this: &GpuAdapter) -> GpuAdapterInfo;
    #[wasm_bindgen(method, getter)]
    fn limits(this: &GpuAdapter) -> GpuSupportedLimits;

    /// A `GPUAdapterInfo`.
    type GpuAdapterInfo;
    #[wasm_bindgen(method, getter)]
    fn vendor(this: &GpuAdapterInfo) -> String;
    #[wasm_bindgen(method, getter)]
    fn architecture(this: &GpuAdapterInfo) -> String;
    #[wasm_bindgen(method, getter)]
    fn device(this: &GpuAdapterInfo) -> String;
    #[wasm_bindgen(method, getter)]
    fn description(this: &GpuAdapterInfo) -> String;
    #[wasm_bindgen(method, getter, js_name = isFallbackAdapter)]
    fn is_fallback_adapter(this: &GpuAdapterInfo) -> Option<bool>;

    /// A `GPUSupportedLimits`.
    type GpuSupportedLimits;
    #[wasm_bindgen(method, getter, js_name = maxStorageBufferBindingSize)]
    fn max_storage_buffer_binding_size(this: &GpuSupportedLimits) -> f64;
    #[wasm_bindgen(method, getter, js_name = maxBufferSize)]
    fn max_buffer_size(this: &GpuSupportedLimits) -> f64;
}

/// What the browser says about its WebGPU adapter.
#[derive(Debug, Clone)]
pub struct AdapterReport {
    pub vendor: String,
    pub architecture: String,
    pub device: String,
    pub description: String,
    /// `None` where the browser does not report `isFallbackAdapter`.
    pub is_fallback: Option<bool>,
    /// The adapter's `maxStorageBufferBindingSize` in bytes.
    pub max_storage_buffer_binding_size: f64,
    /// The adapter's `maxBufferSize` in bytes.
    pub max_buffer_size: f64,
}

impl AdapterReport {
    /// One line for the page, e.g.
    /// `WebGPU adapter: vendor "google", architecture "swiftshader", device "", description "…"`.
    pub fn summary(&self) -> String {
        let fallback = match self.is_fallback {
            Some(true) => ", fallback adapter",
            _ => "",
        };
        format!(
            "WebGPU adapter: vendor \"{}\", architecture \"{}\", device \"{}\", description \"{}\"{fallback}",
            self.vendor, self.architecture, self.device, self.description
        )
    }
}

/// Request the browser's default adapter; `Err` holds why WebGPU cannot be used.
pub async fn probe_adapter() -> Result<AdapterReport, String> {
    let window = web_sys::window().ok_or("no window object")?;
    let gpu = js_sys::Reflect::get(&window.navigator(), &JsValue::from_str("gpu"))
        .map_err(|err| format!("reading navigator.gpu failed: {err:?}"))?;
    if gpu.is_undefined() || gpu.is_null() {
        let reason = if window.is_secure_context() {
            "navigator.gpu is missing (this browser has WebGPU off or does not support it)"
        } else {
            "navigator.gpu is missing (the page is not a secure context: serve it over https or localhost)"
        };
        return Err(reason.to_string());
    }
    let adapter = JsFuture::from(gpu.unchecked_into::<Gpu>().request_adapter())
        .await
        .map_err(|err| format!("requestAdapter() failed: {err:?}"))?;
    if adapter.is_undefined() || adapter.is_null() {
        return Err("requestAdapter() found no adapter".to_string());
    }
    let adapter = adapter.unchecked_into::<GpuAdapter>();
    let info = adapter.info();
    let limits = adapter.limits();
    Ok(AdapterReport {
        vendor: info.vendor(),
        architecture: info.architecture(),
        device: info.device(),
        description: info.description(),
        is_fallback: info.is_fallback_adapter(),
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size(),
        max_buffer_size: limits.max_buffer_size(),
    })
}

//! The page's entry point: report the version, prove the core library works, find the WebGPU
//! adapter, initialise burn on it with the adapter's limits and run a checked computation;
//! without WebGPU, say why and run the same check on burn's CPU backend (flex).

use burn::backend::wgpu::{graphics::WebGpu, init_setup_async, RuntimeOptions, WgpuDevice};
use wasm_bindgen::prelude::*;

use crate::compute_check::run_matmul_check;
use crate::core_link;
use crate::gpu_probe::{probe_adapter, AdapterReport};
use crate::page::{install_panic_hook, Page, STATE_DONE, STATE_FAILED, STATE_RUNNING};

/// The size every WebGPU device gets unless it asks for more.
const WEBGPU_DEFAULT_STORAGE_BINDING: u64 = 128 << 20;

/// Called by the wasm-bindgen glue as soon as the module is instantiated.
#[wasm_bindgen(start)]
pub fn start() {
    // The same module runs in the page's Web Worker (www/worker.js): there is no page to probe.
    if web_sys::window().is_none() {
        console_error_panic_hook::set_once();
        return;
    }
    install_panic_hook();
    wasm_bindgen_futures::spawn_local(async {
        if let Err(err) = run().await {
            web_sys::console::error_1(&err);
        }
    });
}

async fn run() -> Result<(), JsValue> {
    let page = Page::current()?;
    page.set_state(STATE_RUNNING);
    page.set_line("version", &format!("brainmvp {}", core_link::VERSION));
    let core_ok = match core_link::nifti_round_trip() {
        Ok(line) => {
            page.set_line("core", &format!("core: {line}"));
            true
        }
        Err(reason) => {
            page.set_line("core", &format!("core: NIfTI round trip FAILED: {reason}"));
            false
        }
    };
    let check_ok = match probe_adapter().await {
        Ok(report) => check_webgpu(&page, &report).await,
        Err(reason) => check_cpu_fallback(&page, &reason).await,
    };
    let ok = core_ok && check_ok;
    page.set_line("status", if ok { "done" } else { "done with failures" });
    page.set_state(if ok { STATE_DONE } else { STATE_FAILED });
    Ok(())
}

/// Initialise burn's WebGPU backend (cubecl requests the adapter's own limits, not the WebGPU
/// defaults), report the limits the device got, and run the matmul check on it.
async fn check_webgpu(page: &Page, report: &AdapterReport) -> bool {
    page.set_line("adapter", &report.summary());
    let device = WgpuDevice::default();
    let setup = init_setup_async::<WebGpu>(&device, RuntimeOptions::default()).await;
    let granted = setup.device.limits();
    page.set_line(
        "limits",
        &format!(
            "limits: max_storage_buffer_binding_size {} (adapter {}, WebGPU default {}), max_buffer_size {} (adapter {})",
            mebibytes(granted.max_storage_buffer_binding_size as f64),
            mebibytes(report.max_storage_buffer_binding_size),
            mebibytes(WEBGPU_DEFAULT_STORAGE_BINDING as f64),
            mebibytes(granted.max_buffer_size as f64),
            mebibytes(report.max_buffer_size),
        ),
    );
    page.set_line("backend", "backend: burn wgpu (WebGPU)");
    report_check(
        page,
        run_matmul_check::<burn::backend::WebGpu>(&device).await,
    )
}

/// No WebGPU: say why, and show that the CPU backend still computes correctly.
async fn check_cpu_fallback(page: &Page, reason: &str) -> bool {
    page.set_line("adapter", &format!("WebGPU not available: {reason}"));
    page.set_line("backend", "backend: burn flex (CPU fallback)");
    let device = Default::default();
    report_check(page, run_matmul_check::<burn::backend::Flex>(&device).await)
}

fn report_check(page: &Page, outcome: Result<crate::compute_check::MatmulCheck, String>) -> bool {
    match outcome {
        Ok(check) => {
            page.set_line("check", &check.summary());
            check.is_ok()
        }
        Err(reason) => {
            page.set_line("check", &format!("check: FAILED ({reason})"));
            false
        }
    }
}

/// `2048 MiB` style, with decimals only when needed.
fn mebibytes(bytes: f64) -> String {
    format!("{} MiB", bytes / f64::from(1u32 << 20))
}

// The page's Web Worker (a module worker): segmentation and fine-tuning run here, so the page
// never freezes. It loads the same wasm module as the page (the variant the page chose, passed
// as ?wasm= in this script's address; see wasm-loader.js) and calls its worker_* exports
// (web-viewer/src/worker_api.rs). On the CPU with several cores a segmentation's windows are
// spread over a pool of window-worker.js workers (web-viewer/src/window_pool.rs).
//
// Messages in:  {type: 'segment', id, modelName, model, files: [{name, modality, bytes}], mirror, clean,
//                workers: 'auto' | n}   (n = 1: this worker alone; 'auto': one per core, as memory allows)
//               {type: 'finetune', id, modelName, model, cases: [{images: [...], label: {name, bytes},
//                 weights?: {name, bytes}}], steps, lr, focus?}   (weights: a taught case's weight
//                 classes; focus: 'corrected-slices' | 'up-weighted')
//               {type: 'templates', id, modelName, model}
//               {type: 'bench', id, preset: 'uniformer-tiny' | 'uniformer-s', roi, repeats, kernels}
//               {type: 'backend', id}   (which backend the job would use, and why)
//               {type: 'inspect', id, modelName, model}   (what the model is, the memory it needs)
//               every job message may carry backend: 'auto' (default) | 'webgpu' | 'cpu'
//               {type: 'stop'}   (ends a fine-tuning run after its current step)
// Messages out: {type: 'progress', id, done, total}, {type: 'loss', id, step, loss},
//               {type: 'result', id, result}, {type: 'error', id, message}
// Cancelling a segmentation terminates the worker (segment-client.js starts a fresh one).

import { chooseVariant, loadWasm } from './wasm-loader.js';
import { poolPlan, segmentOnPool } from './window-pool.js';

const variant = chooseVariant(self.location.search);
const ready = loadWasm(variant.variant);
let wasm = null;
let stopRequested = false;
let gpuCheck = null;

/** Whether WebGPU works in this worker: {ok, fallback, adapter, reason}. */
async function webgpu() {
  if (!gpuCheck) {
    gpuCheck = (async () => {
      if (!('gpu' in navigator) || !navigator.gpu) {
        return { ok: false, reason: 'WebGPU is not available in this browser' };
      }
      try {
        const adapter = await navigator.gpu.requestAdapter();
        if (!adapter) return { ok: false, reason: 'no WebGPU adapter' };
        const info = adapter.info ?? {};
        const fallback = Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter);
        const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'unnamed';
        // burn asks for the adapter's own limits; one tensor must fit one buffer binding.
        const limits = {
          maxBufferSize: adapter.limits.maxBufferSize,
          maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
        };
        return { ok: true, fallback, adapter: name, limits, reason: '' };
      } catch (error) {
        return { ok: false, reason: `WebGPU adapter request failed: ${error}` };
      }
    })();
  }
  return gpuCheck;
}

/**
 * The backend a job runs on and why: {useGpu, backend: 'WebGPU' | 'CPU', why}. 'auto' takes
 * WebGPU on a hardware adapter and the CPU where the only adapter is a software fallback
 * (SwiftShader runs a window several times slower than the wasm CPU path).
 */
async function chooseBackend(preference = 'auto') {
  if (preference === 'cpu') return { useGpu: false, backend: 'CPU', why: 'CPU chosen on the page' };
  const gpu = await webgpu();
  if (!gpu.ok) return { useGpu: false, backend: 'CPU', why: gpu.reason };
  if (preference === 'webgpu') {
    return { useGpu: true, backend: 'WebGPU', why: `WebGPU chosen on the page (adapter: ${gpu.adapter})` };
  }
  if (gpu.fallback) {
    return {
      useGpu: false,
      backend: 'CPU',
      why: `the only WebGPU adapter is a software fallback (${gpu.adapter}), slower than the CPU path`,
    };
  }
  return { useGpu: true, backend: 'WebGPU', why: `hardware WebGPU adapter (${gpu.adapter})` };
}

/** Lets queued messages (a Stop) run between steps, even on the CPU backend. */
const yieldToEvents = () => new Promise((resolve) => setTimeout(resolve, 0));

async function handle(message) {
  const choice = await chooseBackend(message.forceCpu ? 'cpu' : message.backend);
  const gpu = { ok: choice.useGpu, limits: choice.useGpu ? (await webgpu()).limits : null };
  const note = (result) => {
    result.backendNote = choice.why;
    return result;
  };
  const model = message.model ? new Uint8Array(message.model) : null;
  switch (message.type) {
    case 'segment': {
      const started = performance.now();
      const settings = { mirror: Boolean(message.mirror), clean: Boolean(message.clean), gpuLimits: gpu.limits };
      const onProgress = (done, total) => postMessage({ type: 'progress', id: message.id, done, total });
      const plan = poolPlan(message.workers, gpu.ok);
      const result = plan.pool
        ? await segmentOnPool(await ready, message, model, settings, plan, onProgress)
        : await wasm.worker_segment(message.modelName, model, message.files, gpu.ok, settings, onProgress);
      result.workers = result.workers ?? 1;
      result.poolNote = result.poolNote ?? plan.why;
      result.wasmVariant = variant.variant;
      result.seconds = (performance.now() - started) / 1000;
      result.msPerWindow = result.windows ? (1000 * result.seconds) / result.windows : 0;
      return note(result);
    }
    case 'finetune': {
      stopRequested = false;
      const result = await wasm.worker_finetune(message.modelName, model, message.cases,
        message.steps, message.lr, message.focus ?? '', gpu.ok, async (step, loss) => {
          postMessage({ type: 'loss', id: message.id, step, loss });
          await yieldToEvents();
          return !stopRequested;
        });
      return note(result);
    }
    case 'backend':
      return { backend: choice.backend, backendNote: choice.why, wasmVariant: variant.variant,
        wasmWhy: variant.why, cores: navigator.hardwareConcurrency ?? 1 };
    case 'inspect':
      return wasm.worker_model_info(message.modelName, model);
    case 'templates':
      return wasm.worker_templates(message.modelName, model);
    case 'bench': {
      const result = await wasm.worker_bench(message.preset, message.roi, message.repeats, gpu.ok,
        message.kernels !== false);
      // wasm memory only grows: its size now is the CPU path's high-water mark.
      result.wasmMemoryBytes = (await ready).exports.memory.buffer.byteLength;
      result.wasmVariant = variant.variant;
      return note(result);
    }
    default:
      throw new Error(`unknown request ${message.type}`);
  }
}

self.onmessage = async (event) => {
  const message = event.data;
  if (message.type === 'stop') {
    stopRequested = true;
    return;
  }
  try {
    wasm = (await ready).bindings;
    const result = await handle(message);
    postMessage({ type: 'result', id: message.id, result });
  } catch (error) {
    postMessage({ type: 'error', id: message.id, message: String(error?.message ?? error) });
  }
};

// The page's Web Worker (a module worker): segmentation and fine-tuning run here, so the page
// never freezes. It loads the same wasm module as the page (trunk's glue, stable name because
// Trunk.toml has filehash = false) and calls its worker_* exports (web-viewer/src/worker_api.rs).
//
// Messages in:  {type: 'segment', id, modelName, model, files: [{name, modality, bytes}]}
//               {type: 'finetune', id, modelName, model, cases: [{images: [...], label: {name, bytes}}], steps, lr}
//               {type: 'templates', id, modelName, model}
//               {type: 'bench', id, preset: 'tiny' | 'small', roi, repeats, kernels}
//               {type: 'stop'}   (ends a fine-tuning run after its current step)
// Messages out: {type: 'progress', id, done, total}, {type: 'loss', id, step, loss},
//               {type: 'result', id, result}, {type: 'error', id, message}
// Cancelling a segmentation terminates the worker (segment-client.js starts a fresh one).

import init, * as wasm from './brainmvp-web.js';

const ready = init();
let stopRequested = false;
let gpuCheck = null;

/** Whether WebGPU works in this worker, and why not when it does not. */
async function webgpu() {
  if (!gpuCheck) {
    gpuCheck = (async () => {
      if (!('gpu' in navigator) || !navigator.gpu) {
        return { ok: false, reason: 'WebGPU is not available in this browser' };
      }
      try {
        const adapter = await navigator.gpu.requestAdapter();
        if (!adapter) return { ok: false, reason: 'no WebGPU adapter' };
        return { ok: true, reason: '' };
      } catch (error) {
        return { ok: false, reason: `WebGPU adapter request failed: ${error}` };
      }
    })();
  }
  return gpuCheck;
}

/** Lets queued messages (a Stop) run between steps, even on the CPU backend. */
const yieldToEvents = () => new Promise((resolve) => setTimeout(resolve, 0));

async function handle(message) {
  const gpu = message.forceCpu ? { ok: false, reason: 'CPU requested' } : await webgpu();
  const note = (result) => {
    result.backendNote = gpu.ok ? '' : gpu.reason;
    return result;
  };
  const model = message.model ? new Uint8Array(message.model) : null;
  switch (message.type) {
    case 'segment': {
      const started = performance.now();
      const result = await wasm.worker_segment(message.modelName, model, message.files, gpu.ok,
        (done, total) => postMessage({ type: 'progress', id: message.id, done, total }));
      result.seconds = (performance.now() - started) / 1000;
      result.msPerWindow = result.windows ? (1000 * result.seconds) / result.windows : 0;
      return note(result);
    }
    case 'finetune': {
      stopRequested = false;
      const result = await wasm.worker_finetune(message.modelName, model, message.cases,
        message.steps, message.lr, gpu.ok, async (step, loss) => {
          postMessage({ type: 'loss', id: message.id, step, loss });
          await yieldToEvents();
          return !stopRequested;
        });
      return note(result);
    }
    case 'templates':
      return wasm.worker_templates(message.modelName, model);
    case 'bench':
      return note(await wasm.worker_bench(message.preset, message.roi, message.repeats, gpu.ok,
        message.kernels !== false));
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
    await ready;
    const result = await handle(message);
    postMessage({ type: 'result', id: message.id, result });
  } catch (error) {
    postMessage({ type: 'error', id: message.id, message: String(error?.message ?? error) });
  }
};

// The page's side of the worker protocol (see worker.js): one request at a time, promises for
// results, callbacks for progress and losses. cancel() terminates the worker (a segmentation
// cannot be interrupted inside the wasm call) and the next request starts a fresh one.

import { chooseVariant } from './wasm-loader.js';

let worker = null;
let pending = null;
let nextId = 1;
// Quick questions that do not occupy the worker (id → {resolve, reject}), answered alongside a job.
const queries = new Map();

function ensureWorker() {
  if (!worker) {
    // The worker loads the WebAssembly variant the page loads (see wasm-loader.js).
    const variant = chooseVariant(location.search).variant;
    worker = new Worker(new URL(`./worker.js?wasm=${variant}`, import.meta.url), { type: 'module' });
    worker.onmessage = (event) => {
      const message = event.data;
      const query = queries.get(message.id);
      if (query && ['result', 'error'].includes(message.type)) {
        queries.delete(message.id);
        if (message.type === 'result') query.resolve(message.result);
        else query.reject(new Error(message.message));
        return;
      }
      if (!pending || message.id !== pending.id) return;
      if (message.type === 'progress') pending.onProgress?.(message.done, message.total);
      else if (message.type === 'loss') pending.onLoss?.(message.step, message.loss);
      else if (message.type === 'result') settle((p) => p.resolve(message.result));
      else if (message.type === 'error') settle((p) => p.reject(new Error(message.message)));
    };
    worker.onerror = (event) => {
      event.preventDefault();
      settle((p) => p.reject(new Error(`worker failed: ${event.message ?? 'unknown error'}`)));
    };
  }
  return worker;
}

function settle(action) {
  const request = pending;
  pending = null;
  if (request) action(request);
}

function request(message, callbacks = {}) {
  if (pending) return Promise.reject(new Error('the worker is busy: wait for it or cancel'));
  const id = nextId++;
  return new Promise((resolve, reject) => {
    pending = { id, resolve, reject, ...callbacks };
    ensureWorker().postMessage({ ...message, id });
  });
}

/** Whether a request is running. */
export function busy() {
  return pending !== null;
}

/**
 * Segment one case. model: {name, bytes: ArrayBuffer}; files: [{name, modality, bytes}].
 * mirror: test-time mirroring (8 × the windows); clean: remove specks under 0.1 ml and fill enclosed
 * core holes. Resolves to {nifti, volumes, windows, backend, backendNote, synthetic, ignored,
 * mirrored, windowBatch, memory, postprocessed, inputWarnings, labelConvention, workers, poolNote,
 * wasmVariant, seconds, msPerWindow} (inputWarnings: lines saying why the images do not look
 * BraTS-preprocessed; labelConvention: the enhancing tumour's value in the map and why, from the
 * file names, or null; workers: how many workers ran the windows, poolNote why); a model whose
 * window does not fit the backend's memory limits is refused. workers: 'auto' (on the CPU, one
 * per core as memory allows) or a count (1: one worker).
 */
export function segment({ model, files, onProgress, forceCpu = false, backend = 'auto', mirror = false, clean = false,
  workers = 'auto' }) {
  return request({ type: 'segment', modelName: model.name, model: model.bytes, files, forceCpu, backend,
    mirror, clean, workers }, { onProgress });
}

/** A quick question to the worker, answered beside a running job. */
function query(message) {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    queries.set(id, { resolve, reject });
    ensureWorker().postMessage({ ...message, id });
  });
}

/**
 * Which backend a job would run on for `backend` ('auto' | 'webgpu' | 'cpu'), and why:
 * {backend: 'WebGPU' | 'CPU', backendNote, wasmVariant: 'simd' | 'plain', wasmWhy, cores}.
 */
export function chooseBackend(backend = 'auto') {
  return query({ type: 'backend', backend });
}

/**
 * What a model is and the memory one window needs: {encoder, precision, preprocess, values, fileBytes, roi,
 * weightBytes, activationBytes, largestBufferBytes, summary, modalities, templates}.
 */
export function inspect(model) {
  return query({ type: 'inspect', modelName: model.name, model: model.bytes });
}

/** Stop a running segmentation now (the worker is terminated and restarted on the next call). */
export function cancel() {
  if (worker) worker.terminate();
  worker = null;
  for (const query of queries.values()) query.reject(new Error('cancelled'));
  queries.clear();
  settle((p) => p.reject(new Error('cancelled')));
}

/**
 * Fine-tune on labelled cases [{images: [{name, modality, bytes}], label: {name, bytes}}].
 * Resolves to {model: Uint8Array (.bmvp), losses, backend, backendNote}.
 */
export function finetune({ model, cases, steps, lr, onLoss, focus = '', forceCpu = false, backend = 'auto' }) {
  return request({ type: 'finetune', modelName: model.name, model: model.bytes, cases, steps, lr,
    focus, forceCpu, backend }, { onLoss });
}

/** Ask a running fine-tuning to stop after its current step (it resolves with the model so far). */
export function stop() {
  if (worker) worker.postMessage({ type: 'stop' });
}

/** The model's learned modality templates: [{modality, nifti}]. */
export function templates(model) {
  return request({ type: 'templates', modelName: model.name, model: model.bytes });
}

/** Milliseconds per roi³ window of a random tiny or full (small) UniUnet: {msPerWindow, backend,
 * kernels, estimatedBytes, memory, wasmMemoryBytes}; `kernels: false` times the CPU backend with
 * burn's own operations (before/after); wasmMemoryBytes: the worker's wasm memory afterwards (its
 * high-water mark). */
export function bench({ preset = 'uniformer-tiny', roi = 96, repeats = 2, forceCpu = false, kernels = true, backend = 'webgpu' } = {}) {
  return request({ type: 'bench', preset, roi, repeats, forceCpu, kernels, backend });
}

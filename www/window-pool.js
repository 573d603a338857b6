// The coordinator's side of the CPU pool (imported by worker.js): a segmentation's model calls
// go to window-worker.js workers, each with its own copy of the network, and their outputs come
// back into the wasm PooledSegmentation in job order (web-viewer/src/window_pool.rs), so the
// label map is the one the one-worker path and `brainmvp segment` give.

/** Most pool workers, whatever the core count. */
const MAX_WORKERS = 16;
const MB = 1e6;

/**
 * Whether to use a pool and how large at most: {pool, cores, why}. `workers`: 'auto' (one per
 * core) or a number (1: this worker alone). WebGPU jobs never pool (one device).
 */
export function poolPlan(workers = 'auto', useGpu = false) {
  const cores = Math.max(1, navigator.hardwareConcurrency || 1);
  if (useGpu) return { pool: false, cores, why: 'WebGPU: one worker drives the device' };
  const wanted = workers === 'auto' || workers === undefined ? cores : Number(workers);
  if (!(wanted >= 1)) throw new Error(`workers must be 'auto' or a count from 1, not ${workers}`);
  if (wanted === 1) {
    return { pool: false, cores, why: cores === 1 ? 'one core: one worker' : 'one worker asked for' };
  }
  return { pool: true, cores, wanted: Math.min(wanted, MAX_WORKERS) };
}

/**
 * How many pool workers run, from the plan and the memory one worker needs (`workerBytes`, the
 * window estimate); the device's memory (navigator.deviceMemory, where the browser tells it)
 * bounds the total to half of it, else 4 GiB. Returns {size, why}.
 */
export function poolSize(plan, jobs, workerBytes) {
  const deviceBytes = navigator.deviceMemory ? navigator.deviceMemory * 2 ** 30 : null;
  const budget = deviceBytes ? deviceBytes / 2 : 4 * 2 ** 30;
  const byMemory = Math.max(1, Math.floor(budget / workerBytes));
  const size = Math.max(1, Math.min(plan.wanted, byMemory, jobs));
  const source = deviceBytes ? `half of the device's ${(deviceBytes / 2 ** 30).toFixed(0)} GiB` : '4 GiB';
  const why = `${size} pool workers: ${plan.cores} cores, ${(workerBytes / MB).toFixed(0)} MB a worker `
    + `within ${(budget / MB).toFixed(0)} MB (${source}), ${jobs} model calls`;
  return { size, why };
}

/** Starts `size` pool workers with the network; resolves when all have loaded it. */
function startWorkers(size, loaded, message, model) {
  const started = [];
  const readiness = [];
  for (let index = 0; index < size; index += 1) {
    const worker = new Worker(new URL(`./window-worker.js${self.location.search}`, import.meta.url), { type: 'module' });
    started.push(worker);
    readiness.push(new Promise((resolve, reject) => {
      worker.onmessage = (event) => (event.data.type === 'ready' ? resolve()
        : reject(new Error(`pool worker: ${event.data.message}`)));
      worker.onerror = (event) => reject(new Error(`pool worker failed: ${event.message ?? 'unknown error'}`));
    }));
    worker.postMessage({ type: 'init', variant: loaded.variant, module: loaded.module,
      modelName: message.modelName, model });
  }
  return Promise.all(readiness).then(() => started, (error) => {
    started.forEach((worker) => worker.terminate());
    throw error;
  });
}

/** Sends every model call of `job` to the workers and takes the outputs back in order. */
function runJobs(job, workers, onProgress) {
  return new Promise((resolve, reject) => {
    const total = job.jobCount();
    const arrived = new Map();
    let sent = 0;
    let accepted = 0;
    const send = (worker) => {
      if (sent >= total) return;
      const index = sent;
      sent += 1;
      const input = job.jobInput(index);
      worker.postMessage({ type: 'run', job: index, values: input.values, shape: input.shape },
        [input.values.buffer, input.shape.buffer]);
    };
    for (const worker of workers) {
      worker.onmessage = (event) => {
        const message = event.data;
        if (message.type === 'error') {
          reject(new Error(message.message));
          return;
        }
        try {
          arrived.set(message.job, message);
          while (arrived.has(accepted)) {
            const output = arrived.get(accepted);
            arrived.delete(accepted);
            job.accept(accepted, output.values, output.shape);
            accepted += 1;
            onProgress(job.windowsDone(), job.windowsTotal());
          }
          send(worker);
          if (accepted === total) resolve();
        } catch (error) {
          reject(error);
        }
      };
      worker.onerror = (event) => reject(new Error(`pool worker failed: ${event.message ?? 'unknown error'}`));
      send(worker);
    }
  });
}

/**
 * Segments one case on a pool of workers: `loaded` is this worker's {bindings, module,
 * variant}; resolves to the object worker_segment gives, with {workers, poolNote}.
 */
export async function segmentOnPool(loaded, message, model, settings, plan, onProgress) {
  const job = new loaded.bindings.PooledSegmentation(message.modelName, model, message.files, settings);
  const { size, why } = poolSize(plan, job.jobCount(), job.workerBytes());
  const workers = await startWorkers(size, loaded, message, model);
  try {
    await runJobs(job, workers, onProgress);
  } catch (error) {
    job.free();
    throw error;
  } finally {
    workers.forEach((worker) => worker.terminate());
  }
  const result = await job.finish();
  result.workers = size;
  result.poolNote = why;
  return result;
}

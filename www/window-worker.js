// A pool worker of the page's CPU path (web-viewer/src/window_pool.rs): it holds its own copy
// of the network and runs the model calls its coordinator (worker.js) sends, one at a time.
//
// Messages in:  {type: 'init', variant, module, modelName, model}   (module: a compiled WebAssembly.Module)
//               {type: 'run', job, values: Float32Array, shape: Uint32Array}
// Messages out: {type: 'ready'} | {type: 'output', job, values, shape} | {type: 'error', job, message}

import { loadWasm } from './wasm-loader.js';

let network = null;

onmessage = async (event) => {
  const message = event.data;
  try {
    if (message.type === 'init') {
      const { bindings } = await loadWasm(message.variant, message.module);
      network = new bindings.WindowModel(message.modelName, new Uint8Array(message.model));
      postMessage({ type: 'ready' });
    } else if (message.type === 'run') {
      const output = network.forward(message.values, message.shape);
      postMessage({ type: 'output', job: message.job, values: output.values, shape: output.shape },
        [output.values.buffer, output.shape.buffer]);
    }
  } catch (error) {
    postMessage({ type: 'error', job: message.job, message: String(error?.message ?? error) });
  }
};

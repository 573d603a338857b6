// Loads the page's WebAssembly module in the page and in its workers. Two builds of the same
// crate are in dist/: `brainmvp-web` uses WebAssembly SIMD (simd128: 4-wide f32 vectors in the
// CPU path's matrix products and kernels) and `brainmvp-web-plain` does not, for browsers
// without SIMD (Safari before 16.4, Chrome before 91, Firefox before 89). The variant is chosen
// once per page (`?wasm=plain` or `?wasm=simd` in the page's address forces one) and handed to
// the workers in their script address, so every worker runs what the page runs.

// The smallest module that uses a SIMD instruction (i8x16.splat + i8x16.popcnt): it validates
// only where WebAssembly SIMD is supported (the probe wasm-feature-detect uses).
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

/** Whether this browser runs WebAssembly SIMD. */
export function simdSupported() {
  try {
    return WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

/** The variant to load ('simd' | 'plain') and why, from `search` (an address's query string). */
export function chooseVariant(search = globalThis.location?.search ?? '') {
  const forced = new URLSearchParams(search).get('wasm');
  if (forced === 'plain') return { variant: 'plain', why: 'plain module asked for in the address (?wasm=plain)' };
  if (!simdSupported()) return { variant: 'plain', why: 'this browser has no WebAssembly SIMD' };
  if (forced === 'simd') return { variant: 'simd', why: 'SIMD module asked for in the address (?wasm=simd)' };
  return { variant: 'simd', why: 'this browser runs WebAssembly SIMD' };
}

const FILES = {
  simd: { glue: './brainmvp-web.js', wasm: './brainmvp-web_bg.wasm' },
  plain: { glue: './brainmvp-web-plain.js', wasm: './brainmvp-web-plain_bg.wasm' },
};

/**
 * Loads `variant` and returns {bindings, exports, module, variant} (exports: the instance's, with
 * its memory); `module` (a compiled
 * WebAssembly.Module) may be given to skip the download and compilation (a pool worker gets its
 * coordinator's).
 */
export async function loadWasm(variant, module = null) {
  const files = FILES[variant];
  if (!files) throw new Error(`unknown WebAssembly variant ${variant}`);
  let bindings;
  try {
    bindings = await import(files.glue);
  } catch (error) {
    if (variant !== 'plain') throw error;
    throw new Error('this browser has no WebAssembly SIMD and this build of the page has no plain module: '
      + `run scripts/build-plain-wasm.sh www/dist (${error.message})`);
  }
  const base = new URL(files.wasm, import.meta.url);
  const compiled = module ?? await WebAssembly.compile(await (await fetch(base)).arrayBuffer());
  const exports = await bindings.default({ module_or_path: compiled });
  return { bindings, exports, module: compiled, variant };
}

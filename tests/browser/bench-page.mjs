// Not a test: times 96³ windows in the page's worker and reports their memory
// (`node bench-page.mjs [tiny|small] [webgpu|cpu] [ROI] [kernels|burn]`; `burn` turns the CPU kernels off).
import { chromium } from 'playwright-core';
import { launchArgs, serveDist } from './harness.mjs';
const [preset = 'tiny', backend = 'webgpu', roi = '96', kernels = 'kernels'] = process.argv.slice(2);
const { server, baseUrl } = await serveDist();
const flag = backend === 'cpu' ? '--disable-features=WebGPU' : '--enable-unsafe-webgpu';
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: launchArgs([flag]) });
try {
  const page = await browser.newPage();
  await page.goto(`${baseUrl}/index.html`);
  const result = await page.evaluate(async ([p, r, k]) => (await import('./segment-client.js')).bench({ preset: p, roi: r, repeats: 2, kernels: k }), [preset, Number(roi), kernels !== 'burn']);
  console.log(`${preset} ${roi}³ window: ${result.msPerWindow.toFixed(0)} ms on ${result.backend}${result.kernels ? ' with the CPU kernels' : ''} ${result.backendNote ?? ''}`);
  console.log(`memory: estimate ${result.memory}; the worker's wasm memory afterwards ${(result.wasmMemoryBytes / 1e6).toFixed(0)} MB`);
} finally {
  await browser.close();
  server.close();
}

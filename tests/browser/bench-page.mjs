// Not a test: times work in the page's worker.
//   node bench-page.mjs [tiny|small] [webgpu|cpu] [ROI] [kernels|burn]   96³ windows of a random
//     UniUnet and their memory (`burn` turns the CPU kernels off);
//   node bench-page.mjs finetune [webgpu|cpu] [STEPS]   fine-tuning steps of the bundled model on
//     the bundled sample case (ms per step after the first).
// DIST=path serves another build of the page (e.g. an older www/dist, for before/after figures);
// QUERY=wasm=plain loads the page with those address options.
import { chromium } from 'playwright-core';
import { distDir, fetchSampleInputs, launchArgs, serveDist } from './harness.mjs';
const [preset = 'tiny', backend = 'webgpu', third, kernels = 'kernels'] = process.argv.slice(2);
const { server, baseUrl } = await serveDist(process.env.DIST ?? distDir);
const flag = backend === 'cpu' ? '--disable-features=WebGPU' : '--enable-unsafe-webgpu';
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: launchArgs([flag]) });

async function benchWindows(page) {
  const roi = Number(third ?? 96);
  const result = await page.evaluate(async ([p, r, k]) => (await import('./segment-client.js')).bench({ preset: p, roi: r, repeats: 2, kernels: k }), [preset, roi, kernels !== 'burn']);
  console.log(`${preset} ${roi}³ window: ${result.msPerWindow.toFixed(0)} ms on ${result.backend}${result.kernels ? ' with the CPU kernels' : ''} (${result.wasmVariant ?? 'simd-less build'}) ${result.backendNote ?? ''}`);
  console.log(`memory: estimate ${result.memory}; the worker's wasm memory afterwards ${(result.wasmMemoryBytes / 1e6).toFixed(0)} MB`);
}

async function benchFinetune(page) {
  const steps = Number(third ?? 4);
  const result = await page.evaluate(async ([fetchSource, steps, backend]) => {
    const { model, images, label } = await eval(`(${fetchSource})`)();
    const times = [];
    const tuned = await (await import('./segment-client.js')).finetune({ model, backend, cases: [{ images, label }],
      steps, lr: 1e-3, onLoss: () => times.push(performance.now()) });
    return { times, backend: tuned.backend, losses: tuned.losses };
  }, [fetchSampleInputs.toString(), steps, backend]);
  const gaps = result.times.slice(1).map((t, i) => t - result.times[i]);
  const mean = gaps.reduce((a, b) => a + b, 0) / Math.max(1, gaps.length);
  console.log(`fine-tuning on ${result.backend}: ${mean.toFixed(0)} ms per step after the first (${gaps.map((g) => g.toFixed(0)).join(', ')}); losses ${result.losses.map((l) => l.toFixed(4)).join(', ')}`);
}

try {
  const page = await browser.newPage();
  await page.goto(`${baseUrl}/index.html${process.env.QUERY ? `?${process.env.QUERY}` : ''}`);
  await (preset === 'finetune' ? benchFinetune(page) : benchWindows(page));
} finally {
  await browser.close();
  server.close();
}

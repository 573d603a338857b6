// Not a test: times work in the page's worker.
//   node bench-page.mjs [uniformer-tiny|uniformer-s] [webgpu|cpu] [ROI] [kernels|burn]   96³ windows of a random
//     UniUnet and their memory (`burn` turns the CPU kernels off);
//   node bench-page.mjs finetune [webgpu|cpu] [STEPS]   fine-tuning steps of the bundled model on
//     the bundled sample case (ms per step after the first).
//   node bench-page.mjs teach [webgpu|cpu] [STEPS]   the Teach button after three brush strokes on
//     the sample's label map (seconds of the teaching run, before the case is segmented again).
// DIST=path serves another build of the page (e.g. an older www/dist, for before/after figures);
// QUERY=wasm=plain loads the page with those address options.
import { chromium } from 'playwright-core';
import { distDir, fetchSampleInputs, launchArgs, serveDist } from './harness.mjs';
const [preset = 'uniformer-tiny', backend = 'webgpu', third, kernels = 'kernels'] = process.argv.slice(2);
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

async function benchTeach(page) {
  const steps = Number(third ?? 20);
  await page.waitForFunction(() => window.brainmvp?.ready);
  await page.evaluate(() => window.brainmvp.ready);
  await page.evaluate(() => window.brainmvp.loadSample());
  await page.selectOption('#backend-choice', backend);
  await page.setChecked('#mirror', false);
  await page.check('input[name="tool"][value="brush"]');
  const centre = await page.evaluate(() => window.brainmvp.cursor());
  for (const dx of [-4, 0, 4]) {
    await page.locator('#view-axial').scrollIntoViewIfNeeded();
    const [x, y] = await page.evaluate(([c, d]) => window.brainmvp.pixelOf(0, [c[0] + d, c[1], c[2]]), [centre, dx]);
    await page.mouse.click(x, y);
  }
  await page.fill('#teach-steps', String(steps));
  await page.click('#teach');
  const started = Date.now();
  for (;;) {
    const [state, text] = await page.evaluate(() => [document.getElementById('teach-status').dataset.state,
      document.getElementById('teach-status').textContent]);
    console.log(`${((Date.now() - started) / 1000).toFixed(0)} s: ${text}`);
    if (state !== 'running') break;
    await new Promise((resolve) => setTimeout(resolve, 10_000));
  }
  const taught = await page.evaluate(() => window.brainmvp.taught());
  console.log(`teaching ${steps} steps on ${taught?.backend}: ${taught?.seconds.toFixed(1)} s (${await page.textContent('#teach-status')})`);
}

try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(`${baseUrl}/index.html${process.env.QUERY ? `?${process.env.QUERY}` : ''}`);
  const benches = { finetune: benchFinetune, teach: benchTeach };
  await (benches[preset] ?? benchWindows)(page);
} finally {
  await browser.close();
  server.close();
}

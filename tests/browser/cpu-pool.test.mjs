// The page's CPU path on several cores and without SIMD (issue: the page's CPU path close to
// native speed): the sample case segmented by a pool of workers gives exactly the label map of
// one worker; the plain (no SIMD) module loads when asked for, says so in the system panel, and
// segments as the SIMD one does; a pooled segmentation can be cancelled and the next one runs.
//
// Needs www/dist (trunk build --release). Run with `node --test` from tests/browser, or run.sh.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { readNifti } from './nifti.mjs';
import { fetchSampleInputs, launchArgs, serveDist } from './harness.mjs';

let server;
let baseUrl;

before(async () => {
  ({ server, baseUrl } = await serveDist());
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
});

/** Headless Chromium without WebGPU on the page at `query`, once its module has loaded. */
async function openPage(query = '') {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: launchArgs(['--disable-features=WebGPU']),
  });
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  await page.goto(`${baseUrl}/index.html${query}`);
  await page.waitForFunction(() => document.body.dataset.viewer === 'empty', null, { timeout: 120_000 });
  return { browser, page, problems };
}

/** In the page: segment the bundled sample on the CPU with `workers`, mirrored (8 × the windows). */
function segmentSample(page, workers) {
  return page.evaluate(async ([fetchSource, workers]) => {
    const { model, images: files } = await eval(`(${fetchSource})`)();
    const client = await import('./segment-client.js');
    const progress = [];
    const result = await client.segment({ model, files, backend: 'cpu', mirror: true, workers,
      onProgress: (done, total) => progress.push([done, total]) });
    return { nifti: Array.from(result.nifti), workers: result.workers, poolNote: result.poolNote,
      windows: result.windows, seconds: result.seconds, wasmVariant: result.wasmVariant, progress,
      cores: navigator.hardwareConcurrency };
  }, [fetchSampleInputs.toString(), workers]);
}

function share(a, b) {
  assert.deepEqual(a.dims, b.dims);
  let same = 0;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] === b.data[i]) same++;
  return same / a.data.length;
}

test('a pool of workers gives exactly the label map of one worker', { timeout: 600_000 }, async () => {
  const { browser, page, problems } = await openPage();
  try {
    const panel = await page.textContent('#cpu-module');
    assert.match(panel, /^CPU path: WebAssembly SIMD module \(simd128\): this browser runs WebAssembly SIMD/);
    const pooled = await segmentSample(page, 'auto');
    const single = await segmentSample(page, 1);
    console.log(`pool: ${pooled.workers} workers, ${pooled.seconds.toFixed(1)} s (${pooled.poolNote}); `
      + `one worker: ${single.seconds.toFixed(1)} s; ${pooled.windows} windows`);
    assert.equal(pooled.wasmVariant, 'simd');
    assert.equal(single.workers, 1);
    assert.equal(pooled.workers, Math.min(pooled.cores, 16), 'one pool worker per core');
    assert.ok(pooled.workers >= 2, `the test machine has ${pooled.cores} cores: a pool needs 2`);
    // Progress counts windows in order up to all 8 mirrorings' windows.
    const done = pooled.progress.map(([d]) => d);
    assert.deepEqual(done, [...done].sort((a, b) => a - b));
    assert.deepEqual(pooled.progress.at(-1), [pooled.windows, pooled.windows]);
    const a = readNifti(Buffer.from(pooled.nifti));
    const b = readNifti(Buffer.from(single.nifti));
    assert.equal(share(a, b), 1, 'pool and one worker disagree');
    assert.ok(a.data.some((v) => v !== 0), 'an empty map proves nothing');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('the plain module (no SIMD) loads when asked for, says so, and segments as the SIMD one', { timeout: 600_000 }, async () => {
  const simd = await openPage();
  let reference;
  try {
    reference = await segmentSample(simd.page, 'auto');
  } finally {
    await simd.browser.close();
  }
  const { browser, page, problems } = await openPage('?wasm=plain');
  try {
    assert.match(await page.textContent('#cpu-module'),
      /^CPU path: plain WebAssembly module \(no SIMD\): plain module asked for in the address/);
    assert.equal(await page.evaluate(() => document.body.dataset.wasm), 'plain');
    const plain = await segmentSample(page, 'auto');
    console.log(`plain module: ${plain.seconds.toFixed(1)} s against ${reference.seconds.toFixed(1)} s with SIMD`);
    assert.equal(plain.wasmVariant, 'plain');
    const agreement = share(readNifti(Buffer.from(plain.nifti)), readNifti(Buffer.from(reference.nifti)));
    // Vector and scalar sums round differently; the maps may differ only at near-ties.
    assert.ok(agreement >= 0.999, `only ${(100 * agreement).toFixed(3)} % of voxels agree`);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('a pooled segmentation can be cancelled, and the next one runs', { timeout: 600_000 }, async () => {
  const { browser, page, problems } = await openPage();
  try {
    const outcome = await page.evaluate(async (fetchSource) => {
      const client = await import('./segment-client.js');
      const { model, images: files } = await eval(`(${fetchSource})`)();
      let cancelled = null;
      const first = client.segment({ model, files, backend: 'cpu', mirror: true,
        onProgress: (done) => { if (done >= 8 && !cancelled) { cancelled = done; client.cancel(); } } });
      const error = await first.then(() => 'finished', (e) => e.message);
      const second = await client.segment({ model, files, backend: 'cpu', mirror: false });
      return { error, cancelled, secondWindows: second.windows, secondWorkers: second.workers };
    }, fetchSampleInputs.toString());
    console.log(outcome);
    assert.equal(outcome.error, 'cancelled');
    assert.ok(outcome.cancelled >= 8);
    assert.ok(outcome.secondWindows > 0);
    assert.ok(outcome.secondWorkers >= 2);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

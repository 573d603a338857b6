// The official-size model in the page: a UniFormer-S UniUnet (34 M weights)
// written in the official PyTorch layout (`brainmvp export --torch --untrained uniformer-s`: no
// official fine-tuned weights are released, and PyTorch is not needed) and imported as an f16
// `.bmvp` (`brainmvp import --f16`) is loaded through the page's model picker, which says what it
// is and the memory a window needs; it segments a 16³ crop of the 2 mm sample case (one 32³
// window once resampled to the model's 1 mm) through the page's button on the CPU and on WebGPU
// (SwiftShader), each label map ≥ 99 % the native CLI's; the same model with a 160³ window does
// not fit either backend's limits and is refused with the figures.
//
// Needs www/dist (trunk build --release) and the brainmvp binary (BRAINMVP, default
// target/release/brainmvp). Run with `node --test` from tests/browser, or run.sh.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, writeFile, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { blockAroundLabels, cropNifti, readNifti } from './nifti.mjs';
import { launchArgs, repoRoot, segmentThroughButton, serveDist } from './harness.mjs';

const outputDir = path.join(repoRoot, 'tests', 'browser', 'output', 'official');
const sampleDir = path.join(repoRoot, 'www', 'assets', 'sample');
const brainmvp = process.env.BRAINMVP ?? path.join(repoRoot, 'target', 'release', 'brainmvp');
const modalities = [['t1', 'sample_t1'], ['t1c', 'sample_t1ce'], ['t2', 'sample_t2'], ['flair', 'sample_flair']];
const CROP = 16;

let server;
let baseUrl;
const files = {};

function run(...args) {
  return execFileSync(brainmvp, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

/** The 16³ block around the centre of the sample's tumour, as crop_<modality>.nii files. */
async function cropSample() {
  const label = readNifti(await readFile(path.join(sampleDir, 'sample_seg.nii.gz')));
  const start = blockAroundLabels(label, CROP);
  files.images = [];
  for (const [modality, stem] of modalities) {
    const image = readNifti(await readFile(path.join(sampleDir, `${stem}.nii.gz`)));
    const file = path.join(outputDir, `crop_${modality}.nii`);
    await writeFile(file, cropNifti(image, start, CROP));
    files.images.push([modality, file]);
  }
}

before(async () => {
  await mkdir(outputDir, { recursive: true });
  const torch = path.join(outputDir, 'uniunet-small.safetensors');
  run('export', '--torch', '--untrained', 'uniformer-s', '--out', torch);
  files.model = path.join(outputDir, 'official-roi32.bmvp');
  files.tooLarge = path.join(outputDir, 'official-roi160.bmvp');
  run('import', '--torch', torch, '--arch', 'uniunet', '--f16', '--roi', '32', '--out', files.model);
  run('import', '--torch', torch, '--arch', 'uniunet', '--f16', '--roi', '160', '--out', files.tooLarge);
  await cropSample();
  files.native = path.join(outputDir, 'native.nii.gz');
  run('segment', '--model', files.model, '--out', files.native,
    ...files.images.flatMap(([modality, file]) => [`--${modality}`, file]));
  ({ server, baseUrl } = await serveDist());
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
});

/** Fraction of voxels with the same label on the same grid. */
function agreement(a, b) {
  assert.deepEqual(a.dims, b.dims);
  assert.deepEqual(a.srow, b.srow);
  let same = 0;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] === b.data[i]) same++;
  return same / a.data.length;
}

test('an official-size UniFormer-S model: loaded, described, run on the CPU and WebGPU, refused where it does not fit', { timeout: 900_000 }, async () => {
  const size = (await stat(files.model)).size;
  assert.ok(size > 60e6 && size < 75e6, `an f16 UniFormer-S UniUnet is about 69 MB, not ${size} B`);
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: launchArgs(['--enable-unsafe-webgpu']) });
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    await page.goto(`${baseUrl}/index.html`);
    await page.waitForFunction(() => document.body.dataset.viewer === 'empty', null, { timeout: 120_000 });
    await page.setInputFiles('#file-input', files.images.map(([, file]) => file));
    await page.waitForFunction(() => Number(document.body.dataset.loads ?? 0) > 0, null, { timeout: 60_000 });
    assert.deepEqual((await page.evaluate(() => window.brainmvp.files())).map((f) => f.modality).sort(), ['flair', 't1', 't1c', 't2']);

    // The page's model picker: what the model is and what one window needs.
    page.once('filechooser', () => {}); // choosing "my .bmvp file" opens the picker
    await page.selectOption('#model-source', 'file');
    await page.setInputFiles('#model-file', files.model);
    await page.waitForFunction(() => document.getElementById('model-info').textContent.includes('UniFormer-S'), null, { timeout: 120_000 });
    const info = await page.textContent('#model-info');
    console.log(info);
    assert.match(info, /^official-roi32\.bmvp: UniFormer-S UniUnet · 34\.3 M weights · f16 file 69 MB · takes t1, t1c, t2, flair · no templates \(give every modality\) · official-downstream preprocessing · one 32×32×32 window needs about \d+ MB \(137 MB weights \+ \d+ MB activations; largest buffer 17 MB\)$/);

    await page.uncheck('#mirror');
    await page.uncheck('#clean');
    const native = readNifti(await readFile(files.native));
    for (const backend of ['cpu', 'webgpu']) {
      const started = Date.now();
      await page.selectOption('#backend-choice', backend);
      const status = await segmentThroughButton(page);
      console.log(status, `(${((Date.now() - started) / 1000).toFixed(0)} s)`);
      assert.match(status, new RegExp(`^done on ${backend === 'cpu' ? 'CPU' : 'WebGPU'} .* · 1 window, \\d+ ms per window`));
      const bytes = await page.evaluate(() => Array.from(window.brainmvp.segmentationBytes()));
      await writeFile(path.join(outputDir, `browser-${backend}.nii.gz`), Buffer.from(bytes));
      const share = agreement(readNifti(Buffer.from(bytes)), native);
      console.log(`${backend}: ${(100 * share).toFixed(3)} % of voxels as the native CLI`);
      assert.ok(share >= 0.99, `${backend}: only ${(100 * share).toFixed(2)} % agree`);
    }

    // A 160³ window: a 2.1 GB concatenation, over SwiftShader's 1 GiB buffers and, with the
    // weights, over the 4 GiB of wasm32.
    await page.setInputFiles('#model-file', files.tooLarge);
    await page.waitForFunction(() => document.getElementById('model-info').textContent.startsWith('official-roi160'), null, { timeout: 120_000 });
    assert.match(await page.textContent('#model-info'), /one 160×160×160 window needs about 4\.9 GB \(137 MB weights \+ 4\.8 GB activations; largest buffer 2\.1 GB\)$/);
    const limits = await page.evaluate(async () => (await navigator.gpu.requestAdapter()).limits.maxStorageBufferBindingSize);
    if (limits < 2.1e9) {
      await page.selectOption('#backend-choice', 'webgpu');
      assert.match(await segmentThroughButton(page),
        /^segmentation failed: official-roi160\.bmvp on WebGPU: the model does not fit: one 160×160×160 window needs a 2\.1 GB buffer; this device allows [\d.]+ [GM]B per buffer$/);
    }
    await page.selectOption('#backend-choice', 'cpu');
    assert.match(await segmentThroughButton(page),
      /^segmentation failed: official-roi160\.bmvp on CPU: the model does not fit: one 160×160×160 window needs about 4\.9 GB \(137 MB weights \+ 4\.8 GB activations\); this page can use [\d.]+ GB$/);
    assert.match(await page.textContent('#error'), /^segment: official-roi160\.bmvp on CPU: the model does not fit/);
    await page.screenshot({ path: path.join(outputDir, 'official-model.png'), fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

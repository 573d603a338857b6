// Segmentation and fine-tuning in a real browser, through the page's Web Worker: the bundled demo
// model (www/assets/demo-model.bmvp) segments the bundled sample case on WebGPU (SwiftShader on a
// machine without a GPU) and on the CPU fallback, and both label maps agree with the native CLI's
// (`brainmvp segment`) on at least 99 % of the voxels; two fine-tuning steps give finite losses
// and new weights that the CLI loads.
//
// Needs www/dist (trunk build --release) and the brainmvp binary (BRAINMVP, default
// target/release/brainmvp). Run with `node --test` from tests/browser, or run.sh.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { readNifti } from './nifti.mjs';
import { fetchSampleInputs, launchArgs, serveDist } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const assetsDir = path.join(repoRoot, 'www', 'assets');
const outputDir = path.join(here, 'output');
const brainmvp = process.env.BRAINMVP ?? path.join(repoRoot, 'target', 'release', 'brainmvp');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';

let server;
let baseUrl;
let sample;

/** The sample case's files as listed in www/assets/sample/index.json. */
async function sampleFiles() {
  const index = JSON.parse(await readFile(path.join(assetsDir, 'sample', 'index.json'), 'utf8'));
  return index.files;
}

/** `brainmvp segment` with `model` on the sample images; returns the parsed label map. */
function nativeSegment(model, out) {
  const args = ['segment', '--model', model, '--out', out];
  for (const file of sample.files.filter((f) => f.modality !== 'label')) {
    args.push(`--${file.modality}`, path.join(assetsDir, 'sample', file.name));
  }
  execFileSync(brainmvp, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  return out;
}

/** Fraction of voxels with the same label; the grids must match exactly. */
function agreement(a, b) {
  assert.deepEqual(a.dims, b.dims, 'label maps on different grids');
  assert.deepEqual(a.srow, b.srow, 'label maps with different affines');
  let same = 0;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] === b.data[i]) same++;
  return same / a.data.length;
}

function labelCounts(map) {
  const counts = {};
  for (const value of map.data) if (value) counts[value] = (counts[value] ?? 0) + 1;
  return counts;
}

/** A fresh headless Chromium on the page, after its start-up probe finished. */
async function openPage(extraArgs) {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: launchArgs(extraArgs),
  });
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  await page.goto(`${baseUrl}/index.html`);
  await page.waitForFunction(() => ['done', 'failed'].includes(document.body.dataset.state), null, {
    timeout: 120_000,
  });
  return { browser, page, problems };
}

/** Segment the sample case in the page's worker on `backend` (auto | webgpu | cpu); the label
 * map comes back as bytes. */
async function segmentInPage(page, backend) {
  return page.evaluate(async ([fetchInputsSource, backend]) => {
    const fetchInputs = eval(`(${fetchInputsSource})`);
    const client = await import('./segment-client.js');
    const { model, images } = await fetchInputs();
    const progress = [];
    const result = await client.segment({
      model,
      files: images,
      backend,
      onProgress: (done, total) => progress.push([done, total]),
    });
    return {
      nifti: Array.from(result.nifti),
      backend: result.backend,
      backendNote: result.backendNote,
      windows: result.windows,
      msPerWindow: result.msPerWindow,
      volumes: result.volumes,
      progress,
    };
  }, [fetchSampleInputs.toString(), backend]);
}

before(async () => {
  assert.ok(existsSync(path.join(repoRoot, 'www', 'dist', 'index.html')), 'www/dist not built');
  assert.ok(existsSync(brainmvp), `${brainmvp} missing: cargo build --release -p brainmvp-trainer`);
  await mkdir(outputDir, { recursive: true });
  sample = { files: await sampleFiles() };
  sample.native = readNifti(
    await readFile(nativeSegment(path.join(assetsDir, 'demo-model.bmvp'), path.join(outputDir, 'native-seg.nii.gz'))),
  );
  ({ server, baseUrl } = await serveDist());
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
});

// WebGPU is asked for by name: on SwiftShader (a software fallback adapter) 'auto' takes the CPU.
for (const [name, flags, choice, backend] of [
  ['WebGPU', ['--enable-unsafe-webgpu'], 'webgpu', 'WebGPU'],
  ['CPU fallback', ['--disable-features=WebGPU'], 'auto', 'CPU'],
]) {
  test(`segment the sample case on ${name}: ≥ 99 % of voxels as the native CLI`, { timeout: 600_000 }, async () => {
    const { browser, page, problems } = await openPage(flags);
    try {
      const result = await segmentInPage(page, choice);
      console.log(`${name}: ${result.windows} windows, ${result.msPerWindow.toFixed(0)} ms per window`,
        result.volumes, result.backendNote);
      assert.equal(result.backend, backend);
      if (backend === 'CPU') assert.match(result.backendNote, /\S/, 'the fallback says why');
      assert.ok(result.progress.length > 1, 'progress was reported');
      assert.deepEqual(result.progress.at(-1), [result.windows, result.windows]);
      const bytes = Buffer.from(result.nifti);
      await writeFile(path.join(outputDir, `browser-seg-${backend.toLowerCase()}.nii.gz`), bytes);
      const browserMap = readNifti(bytes);
      const share = agreement(browserMap, sample.native);
      console.log(`${name}: agreement with the native CLI ${(100 * share).toFixed(3)} %`,
        labelCounts(browserMap), labelCounts(sample.native));
      assert.ok(share >= 0.99, `only ${(100 * share).toFixed(2)} % of voxels agree`);
      // Not a trivial agreement on an empty map: the native model finds tumour in the sample.
      assert.ok(Object.keys(labelCounts(sample.native)).length > 0, 'the native label map is empty');
      const browserVolumes = Object.fromEntries(result.volumes.map((v) => [v.label, v.voxels]));
      assert.deepEqual(browserVolumes, labelCounts(browserMap));
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });
}

test('fine-tune two steps on WebGPU: finite losses, new weights the CLI loads', { timeout: 600_000 }, async () => {
  const { browser, page, problems } = await openPage(['--enable-unsafe-webgpu']);
  try {
    const result = await page.evaluate(async (fetchInputsSource) => {
      const fetchInputs = eval(`(${fetchInputsSource})`);
      const client = await import('./segment-client.js');
      const { model, images, label } = await fetchInputs();
      const reported = [];
      const tuned = await client.finetune({
        model,
        backend: 'webgpu',
        cases: [{ images, label }],
        steps: 2,
        lr: 1e-3,
        onLoss: (step, loss) => reported.push([step, loss]),
      });
      let same = model.bytes.length === tuned.model.length;
      for (let i = 0; same && i < tuned.model.length; i++) same = model.bytes[i] === tuned.model[i];
      return { losses: tuned.losses, reported, backend: tuned.backend, same, model: Array.from(tuned.model) };
    }, fetchSampleInputs.toString());
    console.log('fine-tuning losses', result.losses, result.backend);
    assert.equal(result.backend, 'WebGPU');
    assert.equal(result.losses.length, 2);
    assert.ok(result.losses.every(Number.isFinite), `losses ${result.losses}`);
    assert.deepEqual(result.reported.map(([step]) => step), [1, 2]);
    assert.equal(result.same, false, 'the weights did not change');
    const tunedPath = path.join(outputDir, 'finetuned.bmvp');
    await writeFile(tunedPath, Buffer.from(result.model));
    const tunedMap = readNifti(await readFile(nativeSegment(tunedPath, path.join(outputDir, 'native-seg-finetuned.nii.gz'))));
    assert.deepEqual(tunedMap.dims, sample.native.dims);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('backend choice: automatic takes the CPU over a software WebGPU adapter and says why; the user can switch', { timeout: 300_000 }, async () => {
  const { browser, page, problems } = await openPage(['--enable-unsafe-webgpu']);
  try {
    const fallback = await page.evaluate(async () => {
      const adapter = await navigator.gpu.requestAdapter();
      return Boolean(adapter?.info?.isFallbackAdapter ?? adapter?.isFallbackAdapter);
    });
    await page.waitForFunction(() => document.getElementById('backend-why').textContent.startsWith('jobs run on'));
    const automatic = await page.textContent('#backend-why');
    console.log('automatic:', automatic, '(fallback adapter reported:', fallback, ')');
    if (fallback) assert.match(automatic, /^jobs run on CPU: the only WebGPU adapter is a software fallback \(.+\), slower than the CPU path$/);
    else assert.match(automatic, /^jobs run on WebGPU: hardware WebGPU adapter/);

    // The page's own control: WebGPU by name, then the CPU.
    await page.selectOption('#backend-choice', 'webgpu');
    await page.waitForFunction(() => document.getElementById('backend-why').textContent.includes('chosen on the page'));
    assert.match(await page.textContent('#backend-why'), /^jobs run on WebGPU: WebGPU chosen on the page \(adapter: .+\)$/);
    await page.selectOption('#backend-choice', 'cpu');
    await page.waitForFunction(() => document.getElementById('backend-why').textContent.startsWith('jobs run on CPU: CPU chosen'));

    // A segmentation through the page's button runs where the line said, and its status says why.
    await page.click('#load-sample');
    await page.waitForFunction(() => Number(document.body.dataset.loads ?? 0) > 0, null, { timeout: 60_000 });
    await page.uncheck('#mirror'); // 8× the windows: not needed to check where the job runs
    await page.click('#segment');
    await page.waitForFunction(() => /^(done|segmentation failed)/.test(document.getElementById('segment-status').textContent),
      null, { timeout: 240_000 });
    assert.match(await page.textContent('#segment-status'), /^done on CPU \(CPU chosen on the page\)/);
    // The sample's label map and the prediction: Dice shown, either one on screen.
    assert.equal(await page.isVisible('#compare'), true);
    const dice = await page.textContent('#dice');
    console.log(dice);
    assert.match(dice, /^Dice of the prediction against sample_seg\.nii\.gz: WT 0\.\d{3} · TC 0\.\d{3} · ET 0\.\d{3}$/);
    const predicted = await page.evaluate(() => window.brainmvp.currentLabels());
    await page.selectOption('#overlay-source', 'truth');
    const truth = await page.evaluate(() => window.brainmvp.currentLabels());
    const truthFile = readNifti(await readFile(path.join(assetsDir, 'sample', 'sample_seg.nii.gz')));
    assert.deepEqual(truth, labelCounts(truthFile));
    assert.notDeepEqual(truth, predicted);
    await page.screenshot({ path: path.join(outputDir, 'backend-choice.png'), fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

// A real patient through the page: a 64³ block (1 mm) around the tumour of
// BraTS-GLI-00001-000 from ../shared/data/real, cropped here into tests/browser/output (never into
// www/), is loaded through the page's file input under its BraTS 2023 names and segmented with the
// bundled model and the page's defaults (mirror, clean-up) through the Segment button on the CPU
// path. The label map equals `brainmvp segment --mirror --clean` on the same files on ≥ 99.9 %
// of the voxels, and both write the enhancing tumour as 3, as BraTS 2023 file names call for,
// the page saying so. Skipped when ../shared/data/real is absent.
//
// Needs www/dist (trunk build --release) and the brainmvp binary (BRAINMVP, default
// target/release/brainmvp). Run with `node --test` from tests/browser, or run.sh. A whole
// 240×240×155 case is timed outside CI (docs/results.md).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { blockAroundLabels, cropNifti, readNifti } from './nifti.mjs';
import { launchArgs, repoRoot, segmentThroughButton, serveDist } from './harness.mjs';

const realDir = path.join(repoRoot, '..', 'shared', 'data', 'real', 'BraTS-GLI-00001-000');
const outputDir = path.join(repoRoot, 'tests', 'browser', 'output', 'real-case');
const model = path.join(repoRoot, 'www', 'assets', 'demo-model.bmvp');
const brainmvp = process.env.BRAINMVP ?? path.join(repoRoot, 'target', 'release', 'brainmvp');
const CASE = 'BraTS-GLI-00001-000';
const MODALITIES = [['t1', 't1n'], ['t1c', 't1c'], ['t2', 't2w'], ['flair', 't2f']];
const CROP = 64;
const present = existsSync(realDir);

let server;
let baseUrl;
const files = [];
let native;

/** The CROP³ block around the centre of the reference's tumour, as BraTS-2023-named .nii files. */
async function cropCase() {
  const label = readNifti(await readFile(path.join(realDir, 'reference', 'BraTS23_1.nii.gz')));
  const start = blockAroundLabels(label, CROP);
  for (const [modality, token] of MODALITIES) {
    const image = readNifti(await readFile(path.join(realDir, `${CASE}-${token}.nii.gz`)));
    const file = path.join(outputDir, `${CASE}-${token}.nii`);
    await writeFile(file, cropNifti(image, start, CROP));
    files.push([modality, file]);
  }
}

before(async () => {
  if (!present) return;
  await mkdir(outputDir, { recursive: true });
  await cropCase();
  const out = path.join(outputDir, 'native.nii.gz');
  const printed = execFileSync(brainmvp, ['segment', '--model', model, '--mirror', '--clean', '--out', out,
    ...files.flatMap(([modality, file]) => [`--${modality}`, file])], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
  assert.match(printed, /enhancing tumour written as 3 \(BraTS 2023 convention/);
  native = readNifti(await readFile(out));
  ({ server, baseUrl } = await serveDist());
});

after(async () => {
  if (server) await new Promise((resolve) => server.close(resolve));
});

test('a real case through the page: the CLI\'s label map, enhancing tumour as 3 for BraTS 2023 names', { skip: !present && '../shared/data/real absent', timeout: 600_000 }, async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', headless: true, args: launchArgs(['--enable-unsafe-webgpu']) });
  try {
    const page = await browser.newPage();
    const problems = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    await page.goto(`${baseUrl}/index.html`);
    await page.waitForFunction(() => document.body.dataset.viewer === 'empty', null, { timeout: 120_000 });
    await page.setInputFiles('#file-input', files.map(([, file]) => file));
    await page.waitForFunction(() => Number(document.body.dataset.loads ?? 0) > 0, null, { timeout: 60_000 });
    assert.deepEqual((await page.evaluate(() => window.brainmvp.files())).map((f) => f.modality).sort(), ['flair', 't1', 't1c', 't2']);
    assert.ok(await page.isChecked('#mirror'), 'mirroring is on by default');
    assert.ok(await page.isChecked('#clean'), 'clean-up is on by default');
    await page.selectOption('#backend-choice', 'cpu');
    const started = Date.now();
    const status = await segmentThroughButton(page);
    console.log(status, `(${((Date.now() - started) / 1000).toFixed(0)} s)`);
    assert.match(status, /^done on CPU .*mirrored ×8 · enhancing tumour written as 3 \(BraTS 2023 convention: BraTS 2023 file names/);
    const bytes = await page.evaluate(() => Array.from(window.brainmvp.segmentationBytes()));
    const browserMap = readNifti(Buffer.from(bytes));
    assert.deepEqual(browserMap.dims, native.dims);
    assert.deepEqual(browserMap.srow, native.srow);
    let same = 0;
    const counts = { browser: new Map(), native: new Map() };
    for (let i = 0; i < native.data.length; i++) {
      if (browserMap.data[i] === native.data[i]) same++;
      counts.browser.set(browserMap.data[i], (counts.browser.get(browserMap.data[i]) ?? 0) + 1);
      counts.native.set(native.data[i], (counts.native.get(native.data[i]) ?? 0) + 1);
    }
    console.log('labels (browser, native):', [...counts.browser], [...counts.native]);
    assert.ok(!counts.native.has(4) && !counts.browser.has(4), 'no label 4 in a BraTS 2023 map');
    const share = same / native.data.length;
    console.log(`${(100 * share).toFixed(3)} % of voxels as the native CLI`);
    assert.ok(share >= 0.999, `only ${(100 * share).toFixed(2)} % agree`);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

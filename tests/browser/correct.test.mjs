// Correcting a segmentation by hand in the page and teaching the model from it, as a user does it:
// every stroke goes through the views' pointer events (page.mouse), never through page state.
//
// - the loop: the bundled model segments the bundled synthetic sample (truth known); the whole
//   tumour's truth is painted on a few axial slices only; Teach (20 steps on the page's CPU path);
//   the case is segmented again. The WT Dice on the slices that were NOT painted rises; on a second
//   case of the same cohort (`brainmvp synth`, subject 2) it does not fall by more than 0.05; the
//   taught .bmvp gives `brainmvp segment` the page's label map;
// - undo/redo of more than 20 strokes, from the keyboard and the buttons;
// - the fill stays inside the clicked voxel's label, its slice and the intensity range;
// - the corrected map and its correction mask download as NIfTI on the input's grid and affine,
//   load again, and painting goes on.
//
// Needs www/dist (trunk build --release) and the brainmvp binary (BRAINMVP, default
// target/release/brainmvp). Run with `node --test` from tests/browser, or run.sh.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, writeFile, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { readNifti } from './nifti.mjs';
import { launchArgs, segmentThroughButton, serveDist } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const sampleDir = path.join(repoRoot, 'www', 'assets', 'sample');
const outputDir = path.join(here, 'output', 'correct');
const brainmvp = process.env.BRAINMVP ?? path.join(repoRoot, 'target', 'release', 'brainmvp');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Axial slices painted in the teaching test, and its teaching settings (the page's defaults). */
const PAINTED_SLICES = 3;
const TAUGHT_SUBJECT = 0; // of the sample's cohort; subject 1 (the bundled sample) is the second case
const TEACH_STEPS = 20;
const TEACH_FOCUS = 'up-weighted';
const SAMPLE_IMAGES = [['sample_t1.nii.gz', 't1'], ['sample_t1ce.nii.gz', 't1c'], ['sample_t2.nii.gz', 't2'], ['sample_flair.nii.gz', 'flair']];

let server;
let baseUrl;

before(async () => {
  ({ server, baseUrl } = await serveDist());
  await rm(outputDir, { recursive: true, force: true });
  await mkdir(outputDir, { recursive: true });
});

after(() => server?.close());

async function openPage() {
  const browser = await chromium.launch({
    executablePath: chromiumPath, headless: true, args: launchArgs(['--disable-features=WebGPU']),
  });
  const page = await browser.newPage({ acceptDownloads: true, viewport: { width: 1400, height: 1000 } });
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  await page.goto(`${baseUrl}/index.html`);
  await page.waitForFunction(() => window.brainmvp?.ready, null, { timeout: 120_000 });
  await page.evaluate(() => window.brainmvp.ready);
  return { browser, page, problems };
}

/** Load files [{path, modality?}] through the page's API (as a drop would). */
async function loadFiles(page, files) {
  const payload = [];
  for (const file of files) {
    payload.push({ name: path.basename(file.path), modality: file.modality, bytes: [...await readFile(file.path)] });
  }
  return page.evaluate((list) => window.brainmvp.loadFiles(list.map((f) => ({ ...f, bytes: new Uint8Array(f.bytes) }))), payload);
}

const sampleImages = () => SAMPLE_IMAGES.map(([name, modality]) => ({ path: path.join(sampleDir, name), modality }));

/** A file-grid voxel of a diagonal affine (the sample is LAS) as the page's RAS voxel. */
function toRas(voxel, image) {
  return voxel.map((at, axis) => {
    for (let row = 0; row < 3; row++) {
      if (row !== axis) assert.equal(image.srow[row][axis], 0, 'the test handles diagonal affines only');
    }
    return image.srow[axis][axis] < 0 ? image.dims[axis] - 1 - at : at;
  });
}

const indexOf = (image, [x, y, z]) => x + image.dims[0] * (y + image.dims[1] * z);

async function useTool(page, tool, label) {
  await page.check(`input[name="tool"][value="${tool}"]`);
  if (label) await page.selectOption('#paint-label', String(label));
}

/** Drag the pointer over the RAS voxels `run` (one row) on the axial view, at the crosshair's slice. */
async function paintRun(page, run) {
  await page.locator('#view-axial').scrollIntoViewIfNeeded();
  const points = await page.evaluate((voxels) => voxels.map((v) => window.brainmvp.pixelOf(0, v)), [run[0], run.at(-1)]);
  await page.mouse.move(...points[0]);
  await page.mouse.down();
  if (run.length > 1) await page.mouse.move(...points[1], { steps: Math.max(2, run.length) });
  await page.mouse.up();
}

/** Axial slices spread over the middle of the truth's tumour. */
function slicesToPaint(truth, count) {
  const [nx, ny, nz] = truth.dims;
  const tumour = [];
  for (let z = 0; z < nz; z++) {
    if (truth.data.subarray(z * nx * ny, (z + 1) * nx * ny).some((value) => value > 0)) tumour.push(z);
  }
  const [low, high] = [tumour[0], tumour.at(-1)];
  return Array.from({ length: count }, (_, k) => low + Math.floor(((high - low) * (k + 1)) / (count + 1)));
}

/**
 * The simulated user: on slice z, every voxel whose whole-tumour membership differs between the
 * model's map and the truth gets the truth's label (the eraser where the truth is background),
 * row by row with dragged strokes. Returns the voxels painted.
 */
async function paintTruthOnSlice(page, predicted, truth, z) {
  const [nx, ny] = truth.dims;
  await page.evaluate((cursor) => window.brainmvp.setCursor(cursor), toRas([Math.floor(nx / 2), Math.floor(ny / 2), z], truth));
  let painted = 0;
  for (const label of [0, 1, 2, 4]) {
    await useTool(page, label === 0 ? 'eraser' : 'brush', label || undefined);
    await page.fill('#brush-mm', '1');
    for (let y = 0; y < ny; y++) {
      let run = [];
      const flush = async () => {
        if (run.length) await paintRun(page, run.map((voxel) => toRas(voxel, truth)));
        painted += run.length;
        run = [];
      };
      for (let x = 0; x < nx; x++) {
        const at = indexOf(truth, [x, y, z]);
        const wanted = (predicted.data[at] > 0) !== (truth.data[at] > 0) && truth.data[at] === label;
        if (wanted && (!run.length || run.at(-1)[0] === x - 1)) run.push([x, y, z]);
        else {
          await flush();
          if (wanted) run.push([x, y, z]);
        }
      }
      await flush();
    }
  }
  return painted;
}

/** Dice of the whole tumour over the axial slices `keep` accepts. */
function wtDice(predicted, truth, keep) {
  const sliceLength = truth.dims[0] * truth.dims[1];
  let both = 0;
  let total = 0;
  for (let at = 0; at < truth.data.length; at++) {
    if (!keep(Math.floor(at / sliceLength))) continue;
    const [p, t] = [predicted.data[at] > 0, truth.data[at] > 0];
    both += p && t ? 1 : 0;
    total += (p ? 1 : 0) + (t ? 1 : 0);
  }
  return total ? (2 * both) / total : 1;
}

async function cliSegment(model, images, out) {
  const args = ['segment', '--model', model, '--out', out, '--clean'];
  for (const { path: file, modality } of images) args.push(`--${modality}`, file);
  execFileSync(brainmvp, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  return readNifti(await readFile(out));
}

const correctedMap = async (page) => readNifti(Buffer.from(await page.evaluate(() => Array.from(window.brainmvp.correctedBytes()))));

async function segmentInPage(page) {
  await page.selectOption('#backend-choice', 'cpu');
  await page.setChecked('#mirror', false);
  await page.setChecked('#clean', true);
  const status = await segmentThroughButton(page);
  assert.match(status, /^done/, status);
  return readNifti(Buffer.from(await page.evaluate(() => Array.from(window.brainmvp.segmentationBytes()))));
}

/** The sample's cohort (`brainmvp synth --seed 7 --spacing-mm 2`, all high-grade, four
 * modalities; subject 1 is the bundled sample): subject `index`'s images and truth file. */
function cohortCase(index) {
  const cohort = path.join(outputDir, 'cohort');
  execFileSync(brainmvp, ['synth', '--out', cohort, '--subjects', '6', '--seed', '7', '--spacing-mm', '2',
    '--no-tumour-fraction', '0', '--missing-modality-fraction', '0', '--low-grade-fraction', '0'], { stdio: 'ignore' });
  const id = `SynthBraTS_${String(index).padStart(5, '0')}`;
  const file = (token) => path.join(cohort, id, `${id}_${token}.nii.gz`);
  const images = [['t1', 't1'], ['t1ce', 't1c'], ['t2', 't2'], ['flair', 'flair']].map(([token, modality]) => ({ path: file(token), modality }));
  return { images, truth: file('seg') };
}

test('paint the truth on three slices, teach, and the unpainted slices improve', { timeout: 1_200_000 }, async () => {
  const { browser, page, problems } = await openPage();
  try {
    const taughtCase = cohortCase(TAUGHT_SUBJECT);
    const truth = readNifti(await readFile(taughtCase.truth));
    await loadFiles(page, taughtCase.images);
    const before = await segmentInPage(page);
    const slices = slicesToPaint(truth, PAINTED_SLICES);
    let painted = 0;
    for (const z of slices) painted += await paintTruthOnSlice(page, before, truth, z);
    const edit = await page.evaluate(() => window.brainmvp.editState());
    assert.equal(edit.corrected, painted, 'every stroke hit exactly the voxels aimed at');
    assert.equal(edit.slices, PAINTED_SLICES);
    const corrected = await correctedMap(page);
    assert.equal(wtDice(corrected, truth, (z) => slices.includes(z)), 1, 'the painted slices hold the truth');
    await page.selectOption('#teach-focus', TEACH_FOCUS);
    await page.fill('#teach-steps', String(TEACH_STEPS));
    await page.click('#teach');
    await page.waitForFunction(() => ['done', 'failed', 'cancelled'].includes(document.getElementById('teach-status').dataset.state),
      null, { timeout: 900_000, polling: 500 });
    assert.equal(await page.getAttribute('#teach-status', 'data-state'), 'done', await page.textContent('#teach-status'));
    const taught = await page.evaluate(() => ({ ...window.brainmvp.taught(), model: Array.from(window.brainmvp.taught().model) }));
    const afterMap = readNifti(Buffer.from(await page.evaluate(() => Array.from(window.brainmvp.segmentationBytes()))));
    const unpainted = (z) => !slices.includes(z);
    const [diceBefore, diceAfter] = [wtDice(before, truth, unpainted), wtDice(afterMap, truth, unpainted)];
    // The taught model downloads and the CLI gives the page's map with it.
    const taughtPath = path.join(outputDir, 'taught.bmvp');
    await writeFile(taughtPath, Buffer.from(taught.model));
    const cli = await cliSegment(taughtPath, taughtCase.images, path.join(outputDir, 'cli-taught.nii.gz'));
    let same = 0;
    for (let at = 0; at < cli.data.length; at++) same += cli.data[at] === afterMap.data[at] ? 1 : 0;
    // The second case, before and after, through the CLI (which agrees with the page).
    const secondTruth = readNifti(await readFile(path.join(sampleDir, 'sample_seg.nii.gz')));
    const demo = path.join(repoRoot, 'www', 'assets', 'demo-model.bmvp');
    const secondBefore = wtDice(await cliSegment(demo, sampleImages(), path.join(outputDir, 'second-demo.nii.gz')), secondTruth, () => true);
    const secondAfter = wtDice(await cliSegment(taughtPath, sampleImages(), path.join(outputDir, 'second-taught.nii.gz')), secondTruth, () => true);
    console.log(JSON.stringify({
      paintedSlices: slices, correctedVoxels: painted, focus: TEACH_FOCUS, steps: taught.losses.length,
      teachSeconds: Number(taught.seconds.toFixed(1)), backend: taught.backend, changedVoxels: taught.changed,
      unpaintedWtDice: [diceBefore, diceAfter].map((d) => Number(d.toFixed(3))),
      secondCaseWtDice: [secondBefore, secondAfter].map((d) => Number(d.toFixed(3))),
      cliAgreement: same / cli.data.length,
    }));
    assert.equal(taught.losses.length, TEACH_STEPS);
    assert.ok(diceAfter > diceBefore, `WT Dice on the unpainted slices ${diceBefore.toFixed(3)} -> ${diceAfter.toFixed(3)}`);
    assert.ok(secondAfter > secondBefore - 0.05, `second case WT Dice ${secondBefore.toFixed(3)} -> ${secondAfter.toFixed(3)}`);
    assert.ok(same / cli.data.length >= 0.999, `the CLI agrees on ${(100 * same / cli.data.length).toFixed(2)} % only`);
    assert.ok(taught.changed > 0, 'teaching changed nothing');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

/** The sample's images and its label map (the overlay to correct), loaded. */
async function loadSampleWithLabels(page) {
  await loadFiles(page, [...sampleImages(), { path: path.join(sampleDir, 'sample_seg.nii.gz'), modality: 'label' }]);
  return readNifti(await readFile(path.join(sampleDir, 'sample_seg.nii.gz')));
}


test('undo and redo take back and repaint 24 strokes, from the keyboard and the buttons', { timeout: 300_000 }, async () => {
  const { browser, page, problems } = await openPage();
  try {
    const truth = await loadSampleWithLabels(page);
    const z = slicesToPaint(truth, 1)[0];
    await page.evaluate((cursor) => window.brainmvp.setCursor(cursor), toRas([45, 54, z], truth));
    await useTool(page, 'brush', 1);
    await page.fill('#brush-mm', '3');
    for (let stroke = 0; stroke < 24; stroke++) {
      await paintRun(page, [toRas([20 + 2 * stroke, 30 + (stroke % 5), z], truth)]);
    }
    const painted = await correctedMap(page);
    const afterStrokes = await page.evaluate(() => window.brainmvp.editState());
    assert.deepEqual({ ...afterStrokes, corrected: afterStrokes.corrected >= 24 }, { corrected: true, slices: 1, undo: 24, redo: 0 });
    await page.locator('#view-axial').focus();
    for (let stroke = 0; stroke < 24; stroke++) await page.keyboard.press('Control+z');
    assert.deepEqual(Array.from((await correctedMap(page)).data), Array.from(truth.data), 'every stroke undone');
    assert.equal((await page.evaluate(() => window.brainmvp.editState())).redo, 24);
    assert.equal(await page.isDisabled('#undo'), true);
    for (let stroke = 0; stroke < 23; stroke++) await page.keyboard.press('Control+y');
    await page.click('#redo');
    assert.deepEqual(Array.from((await correctedMap(page)).data), Array.from(painted.data), 'every stroke repainted');
    await page.click('#undo');
    assert.equal((await page.evaluate(() => window.brainmvp.editState())).redo, 1);
    // The overlay hides and shows while painting (key O), the image is never touched.
    await page.keyboard.press('o');
    assert.equal(await page.isChecked('#overlay-visible'), false);
    await page.keyboard.press('o');
    assert.equal(await page.isChecked('#overlay-visible'), true);
    const t1 = readNifti(await readFile(path.join(sampleDir, 'sample_t1.nii.gz')));
    const voxel = toRas([20, 30, z], truth);
    assert.equal(await page.evaluate((v) => window.brainmvp.valueAt(v), voxel), t1.data[indexOf(t1, [20, 30, z])]);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

/** The 4-connected voxels of axial slice z reachable from `seed` through `accepts`. */
function component(image, seed, accepts) {
  const [nx, ny] = image.dims;
  const z = seed[2];
  const seen = new Set();
  const pending = [seed];
  if (!accepts(seed)) return seen;
  seen.add(indexOf(image, seed));
  while (pending.length) {
    const [x, y] = pending.pop();
    for (const [dx, dy] of [[1, 0], [-1, 0], [0, 1], [0, -1]]) {
      const next = [x + dx, y + dy, z];
      if (next[0] < 0 || next[1] < 0 || next[0] >= nx || next[1] >= ny) continue;
      const at = indexOf(image, next);
      if (!seen.has(at) && accepts(next)) {
        seen.add(at);
        pending.push(next);
      }
    }
  }
  return seen;
}

test('the fill stays inside the clicked label, its slice and the intensity range', { timeout: 300_000 }, async () => {
  const { browser, page, problems } = await openPage();
  try {
    const truth = await loadSampleWithLabels(page);
    const t1 = readNifti(await readFile(path.join(sampleDir, 'sample_t1.nii.gz')));
    assert.equal(await page.evaluate(() => window.brainmvp.shown()), 'sample_t1.nii.gz');
    const z = slicesToPaint(truth, 1)[0];
    const [nx, ny] = truth.dims;
    const oedema = [];
    for (let at = z * nx * ny; at < (z + 1) * nx * ny; at++) if (truth.data[at] === 2) oedema.push(at);
    const values = oedema.map((at) => t1.data[at]).sort((a, b) => a - b);
    const [low, high] = [values[Math.floor(values.length / 2)], values.at(-1)];
    const inRange = (v) => truth.data[indexOf(truth, v)] === 2 && t1.data[indexOf(t1, v)] >= low && t1.data[indexOf(t1, v)] <= high;
    // A seed whose region the range bounds: more than 10 voxels, fewer than the slice's oedema.
    let seed = null;
    let expected = null;
    for (const at of oedema) {
      const voxel = [at % nx, Math.floor(at / nx) % ny, z];
      const region = component(truth, voxel, inRange);
      if (region.size > 10 && region.size < oedema.length) {
        [seed, expected] = [voxel, region];
        break;
      }
    }
    assert.ok(seed, 'no oedema region on the slice for the fill');
    await page.evaluate((cursor) => window.brainmvp.setCursor(cursor), toRas(seed, truth));
    await useTool(page, 'fill', 1);
    await page.fill('#fill-low', String(low));
    await page.fill('#fill-high', String(high));
    await paintRun(page, [toRas(seed, truth)]);
    const filled = await correctedMap(page);
    const changed = [];
    for (let at = 0; at < filled.data.length; at++) if (filled.data[at] !== truth.data[at]) changed.push(at);
    assert.deepEqual(changed.sort((a, b) => a - b), [...expected].sort((a, b) => a - b));
    assert.ok(changed.every((at) => filled.data[at] === 1));
    assert.equal((await page.evaluate(() => window.brainmvp.editState())).corrected, expected.size);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('the corrected map and its mask download as NIfTI on the input grid, load again, and painting goes on', { timeout: 300_000 }, async () => {
  const { browser, page, problems } = await openPage();
  try {
    const truth = await loadSampleWithLabels(page);
    const z = slicesToPaint(truth, 1)[0];
    await page.evaluate((cursor) => window.brainmvp.setCursor(cursor), toRas([45, 54, z], truth));
    await useTool(page, 'brush', 4);
    await page.fill('#brush-mm', '6');
    await paintRun(page, [toRas([30, 40, z], truth), toRas([40, 40, z], truth)]);
    const save = async (button, name) => {
      const [download] = await Promise.all([page.waitForEvent('download'), page.click(button)]);
      assert.equal(download.suggestedFilename(), name);
      const file = path.join(outputDir, name);
      await download.saveAs(file);
      return file;
    };
    const mapFile = await save('#download-corrected', 'corrected_seg.nii.gz');
    const maskFile = await save('#download-corrections', 'corrections.nii.gz');
    const map = readNifti(await readFile(mapFile));
    const mask = readNifti(await readFile(maskFile));
    const t1 = readNifti(await readFile(path.join(sampleDir, 'sample_t1.nii.gz')));
    for (const file of [map, mask]) {
      assert.deepEqual(file.dims, t1.dims);
      assert.deepEqual(file.srow, t1.srow);
      assert.equal(file.datatype, 2, 'uint8');
    }
    const marked = mask.data.filter((value) => value > 0).length;
    assert.ok(marked > 0 && mask.data.every((value) => value === 0 || value === 3), 'axial marks');
    for (let at = 0; at < map.data.length; at++) {
      assert.equal(map.data[at], mask.data[at] ? 4 : truth.data[at], `voxel ${at}`);
    }
    // Reload both in a fresh page and go on painting.
    await page.evaluate(() => window.brainmvp.clear());
    await loadFiles(page, [...sampleImages(), { path: mapFile, modality: 'label' }]);
    const counts = await page.evaluate(() => window.brainmvp.currentLabels());
    const expected = {};
    for (const value of map.data) if (value) expected[value] = (expected[value] ?? 0) + 1;
    assert.deepEqual(counts, expected);
    await page.setInputFiles('#corrections-file', maskFile);
    // The page reads the file asynchronously: wait for the marks to arrive.
    await page.waitForFunction(() => (window.brainmvp.editState()?.corrected ?? 0) > 0, null, { timeout: 30_000 });
    assert.equal((await page.evaluate(() => window.brainmvp.editState())).corrected, marked);
    await page.evaluate((cursor) => window.brainmvp.setCursor(cursor), toRas([45, 54, z + 1], truth));
    await paintRun(page, [toRas([30, 40, z + 1], truth)]);
    const state = await page.evaluate(() => window.brainmvp.editState());
    assert.ok(state.corrected > marked && state.slices === 2, JSON.stringify(state));
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

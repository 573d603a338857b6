// Headless-Chromium test of the NIfTI viewer (www/app.js on the wasm in www/dist): real MRI from
// ../shared/data/mri (ICBM152 2 mm averages, stored LAS) is fed through the file picker, the three
// views must draw the brain, a click moves the crosshair in every view and the coordinates line,
// values under the crosshair match an independent decode in Node (with the LAS → RAS flip), a
// label map is overlaid, and broken files (random bytes, a truncated NIfTI) show an error naming
// the file while the page keeps working. The screenshot goes to output/viewer.png.
//
// Run with `node --test` from tests/browser (after `trunk build --release` in www/), or run.sh.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, mkdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { launchArgs, serveDist, sharedMriDir } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '..', '..');
const distDir = path.join(repoRoot, 'www', 'dist');
const outputDir = path.join(here, 'output');
const mriDir = path.join(sharedMriDir, 'icbm152-2mm');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';



let server;
let baseUrl;
let browser;


/** A minimal NIfTI-1 reader for the test's own checks: dims, scaling and raw voxels (uint8 only). */
function parseNifti(gzBytes) {
  const bytes = gunzipSync(gzBytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert.equal(view.getInt32(0, true), 348, 'not a little-endian NIfTI-1');
  const dims = [1, 2, 3].map((at) => view.getInt16(40 + 2 * at, true));
  assert.equal(view.getInt16(70, true), 2, 'the test expects uint8 voxels');
  const slope = view.getFloat32(112, true) || 1;
  const inter = view.getFloat32(116, true);
  const offset = Math.round(view.getFloat32(108, true));
  return { bytes, dims, slope, inter, offset };
}

/** Value of file voxel (i, j, k) after scaling. */
function fileValue(nifti, [i, j, k]) {
  const [nx, ny] = nifti.dims;
  const raw = nifti.bytes[nifti.offset + i + nx * (j + ny * k)];
  return raw * nifti.slope + nifti.inter;
}

/**
 * A uint8 label map on the grid of `nifti` (its header reused): label 1 in a 10-voxel cube around
 * `centre` (file voxels), label 2 in the shell 3 voxels around it; returns .nii bytes and counts.
 */
function labelMapLike(nifti, centre) {
  const header = Buffer.from(nifti.bytes.subarray(0, 352));
  header.writeFloatLE(1, 112); // scl_slope
  header.writeFloatLE(0, 116); // scl_inter
  const [nx, ny, nz] = nifti.dims;
  const voxels = Buffer.alloc(nx * ny * nz);
  const counts = { 1: 0, 2: 0 };
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      for (let i = 0; i < nx; i++) {
        const distance = Math.max(Math.abs(i - centre[0]), Math.abs(j - centre[1]), Math.abs(k - centre[2]));
        const label = distance < 5 ? 1 : distance < 8 ? 2 : 0;
        if (label) {
          voxels[i + nx * (j + ny * k)] = label;
          counts[label] += 1;
        }
      }
    }
  }
  return { bytes: Buffer.concat([header, voxels]), counts };
}

async function openPage(prepare = async () => {}) {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1100 }, acceptDownloads: true });
  await prepare(page);
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
  });
  await page.goto(`${baseUrl}/index.html`);
  await page.waitForFunction(() => window.brainmvp && document.body.dataset.viewer !== 'starting',
    null, { timeout: 90_000 });
  return { page, problems };
}

/** Give files to the page's file picker and wait until it has handled them. */
async function pickFiles(page, files) {
  const before_ = await page.evaluate(() => Number(document.body.dataset.loads ?? 0));
  await page.setInputFiles('#file-input', files.map(({ name, bytes }) => ({
    name, mimeType: 'application/octet-stream', buffer: Buffer.from(bytes),
  })));
  await page.waitForFunction((count) => Number(document.body.dataset.loads ?? 0) > count, before_,
    { timeout: 60_000 });
}

/** Move the zoom slider as a user drags it. */
async function setZoom(page, value) {
  await page.evaluate((zoomValue) => {
    const zoom = document.getElementById('zoom');
    zoom.value = String(zoomValue);
    zoom.dispatchEvent(new Event('input'));
  }, value);
}

/** For each view: size and how many pixels are neither black nor the same grey as the first. */
async function canvasStats(page) {
  return page.evaluate(() => ['axial', 'coronal', 'sagittal'].map((name) => {
    const canvas = document.getElementById(`view-${name}`);
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    let bright = 0;
    const greys = new Set();
    for (let at = 0; at < data.length; at += 4) {
      if (data[at] > 40) bright += 1;
      greys.add(data[at]);
    }
    return { name, width: canvas.width, height: canvas.height, bright, levels: greys.size, pixels: data.length / 4 };
  }));
}

before(async () => {
  assert.ok(existsSync(path.join(distDir, 'index.html')), `${distDir} not built: run trunk build --release in www/`);
  assert.ok(existsSync(path.join(mriDir, 'avg152T1.nii.gz')), `${mriDir} missing (see shared/data/mri/README.md)`);
  await mkdir(outputDir, { recursive: true });
  ({ server, baseUrl } = await serveDist(distDir));
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: launchArgs(['--disable-features=WebGPU']),
  });
});

after(async () => {
  await browser?.close();
  await new Promise((resolve) => server.close(resolve));
});

test('real MRI: three views, crosshair, values, label overlay, screenshot', async () => {
  const t1Gz = await readFile(path.join(mriDir, 'avg152T1.nii.gz'));
  const t2Gz = await readFile(path.join(mriDir, 'avg152T2.nii.gz'));
  const t1 = parseNifti(t1Gz);
  const [nx, ny, nz] = t1.dims;
  // A lesion in the patient's right hemisphere: LAS file x runs to the left, so small i is right.
  const centre = [25, 60, 50];
  const labels = labelMapLike(t1, centre);
  const { page, problems } = await openPage();
  try {
    await pickFiles(page, [
      { name: 'case01_t1.nii.gz', bytes: t1Gz },
      { name: 'case01_t2.nii.gz', bytes: t2Gz },
      { name: 'case01_seg.nii', bytes: labels.bytes },
    ]);
    assert.equal(await page.evaluate(() => document.body.dataset.viewer), 'ready');
    assert.equal(await page.textContent('#error'), '');
    // File names mapped to modalities (the CLI's mapping), the label map recognised.
    assert.deepEqual(await page.evaluate(() => window.brainmvp.files()), [
      { name: 'case01_t1.nii.gz', modality: 't1' },
      { name: 'case01_t2.nii.gz', modality: 't2' },
      { name: 'case01_seg.nii', modality: 'label' },
    ]);
    assert.deepEqual(await page.$$eval('#file-list select', (selects) => selects.map((s) => s.value)),
      ['t1', 't2', 'label']);
    assert.equal(await page.evaluate(() => window.brainmvp.shown()), 'case01_t1.nii.gz');
    assert.deepEqual(await page.evaluate(() => window.brainmvp.currentLabels()),
      { 1: labels.counts[1], 2: labels.counts[2] });

    // The crosshair starts in the middle of the RAS grid (same dims as the file's here).
    assert.deepEqual(await page.evaluate(() => window.brainmvp.cursor()),
      [Math.floor(nx / 2), Math.floor(ny / 2), Math.floor(nz / 2)]);
    for (const stats of await canvasStats(page)) {
      assert.ok(stats.bright > stats.pixels * 0.2, `${stats.name} view nearly black: ${JSON.stringify(stats)}`);
      assert.ok(stats.levels > 50, `${stats.name} view has only ${stats.levels} grey levels`);
    }

    // Click a quarter across and half down the axial view: x and y follow, z stays.
    const box = await page.locator('#view-axial').boundingBox();
    const cursorLineBefore = await page.textContent('#cursor');
    await page.mouse.click(box.x + box.width * 0.25, box.y + box.height * 0.5);
    const clicked = await page.evaluate(() => window.brainmvp.cursor());
    const expectedX = Math.floor(0.25 * nx);
    const expectedY = ny - 1 - Math.floor(0.5 * ny);
    assert.ok(Math.abs(clicked[0] - expectedX) <= 1, `x ${clicked[0]}, expected ~${expectedX}`);
    assert.ok(Math.abs(clicked[1] - expectedY) <= 1, `y ${clicked[1]}, expected ~${expectedY}`);
    assert.equal(clicked[2], Math.floor(nz / 2));
    const cursorLine = await page.textContent('#cursor');
    assert.notEqual(cursorLine, cursorLineBefore);
    assert.match(cursorLine, new RegExp(`voxel \\(${clicked.join(', ')}\\)`));
    // The other views now show the clicked slices.
    assert.equal(await page.textContent('#slice-sagittal'), `${clicked[0] + 1}/${nx}`);
    assert.equal(await page.textContent('#slice-coronal'), `${clicked[1] + 1}/${ny}`);

    // Values under the crosshair are the file's, with x mirrored (LAS → RAS).
    for (const voxel of [clicked, [10, 20, 30], [70, 50, 40]]) {
      const shown = await page.evaluate((at) => window.brainmvp.valueAt(at), voxel);
      const expected = fileValue(t1, [nx - 1 - voxel[0], voxel[1], voxel[2]]);
      assert.ok(Math.abs(shown - expected) < 1e-5, `voxel ${voxel}: page ${shown}, file ${expected}`);
    }

    // Put the crosshair in the lesion: its label shows, and the overlay is drawn in label 1 red
    // at the crosshair of the axial view (centre pixel of the lesion, opacity 0.5 over grey).
    const lesion = [nx - 1 - centre[0], centre[1], centre[2]];
    await page.evaluate((at) => window.brainmvp.setCursor(at), lesion);
    assert.match(await page.textContent('#cursor'), / · label 1$/);
    const lesionPixel = await page.evaluate((at) => {
      const canvas = document.getElementById('view-axial');
      // Axial: column = x, row 0 = the most anterior y; pixels scaled to the canvas.
      const column = Math.floor(((at[0] + 0.3) / 91) * canvas.width);
      const row = Math.floor(((108 - at[1] + 0.3) / 109) * canvas.height);
      return [...canvas.getContext('2d').getImageData(column, row, 1, 1).data];
    }, lesion);
    assert.ok(lesionPixel[0] > lesionPixel[1] + 40 && lesionPixel[0] > lesionPixel[2] + 40,
      `lesion pixel not red: ${lesionPixel}`);
    // Hiding label 1 takes the red away.
    await page.click('#label-toggles input[data-label="1"]');
    const hiddenPixel = await page.evaluate((at) => {
      const canvas = document.getElementById('view-axial');
      const column = Math.floor(((at[0] + 0.3) / 91) * canvas.width);
      const row = Math.floor(((108 - at[1] + 0.3) / 109) * canvas.height);
      return [...canvas.getContext('2d').getImageData(column, row, 1, 1).data];
    }, lesion);
    assert.equal(hiddenPixel[0], hiddenPixel[1], `hidden label still coloured: ${hiddenPixel}`);
    await page.click('#label-toggles input[data-label="1"]');
    // The volume table: label 1 in millilitres (2 mm voxels: 0.008 ml each).
    const row1 = await page.$$eval('#volumes tbody tr[data-label="1"] td', (cells) => cells.map((c) => c.textContent));
    assert.equal(row1[2], String(labels.counts[1]));
    assert.equal(row1[3], (labels.counts[1] * 0.008).toFixed(2));

    // Opacity 0 hides the overlay; zoom 2 doubles the canvases.
    const setRange = (id, value) => page.evaluate(([rangeId, rangeValue]) => {
      const input = document.getElementById(rangeId);
      input.value = rangeValue;
      input.dispatchEvent(new Event('input'));
    }, [id, value]);
    const widthsBefore = (await canvasStats(page)).map((stats) => stats.width);
    await setRange('opacity', '0');
    const transparent = await page.evaluate((at) => {
      const canvas = document.getElementById('view-axial');
      const column = Math.floor(((at[0] + 0.3) / 91) * canvas.width);
      const row = Math.floor(((108 - at[1] + 0.3) / 109) * canvas.height);
      return [...canvas.getContext('2d').getImageData(column, row, 1, 1).data];
    }, lesion);
    assert.equal(transparent[0], transparent[1], `overlay drawn at opacity 0: ${transparent}`);
    await setRange('opacity', '0.5');
    await setRange('zoom', '2');
    const widthsZoomed = (await canvasStats(page)).map((stats) => stats.width);
    widthsZoomed.forEach((width, view) => assert.ok(Math.abs(width - 2 * widthsBefore[view]) <= 1,
      `zoom 2: ${widthsZoomed} vs ${widthsBefore}`));
    await setRange('zoom', '1');

    // Right-drag: window grows with →, level with ↑, by (max − min) / 500 per pixel.
    const [window0, level0] = await page.evaluate(() => window.brainmvp.windowLevel());
    const [low, high] = [0, 1]; // avg152T1 spans 0..255 × 1/255
    const coronal = await page.locator('#view-coronal').boundingBox();
    await page.mouse.move(coronal.x + 50, coronal.y + 50);
    await page.mouse.down({ button: 'right' });
    await page.mouse.move(coronal.x + 100, coronal.y + 30);
    await page.mouse.up({ button: 'right' });
    const [window1, level1] = await page.evaluate(() => window.brainmvp.windowLevel());
    const perPixel = (high - low) / 500;
    assert.ok(Math.abs(window1 - (window0 + 50 * perPixel)) < 1e-4, `window ${window0} → ${window1}`);
    assert.ok(Math.abs(level1 - (level0 + 20 * perPixel)) < 1e-4, `level ${level0} → ${level1}`);
    assert.equal(Number(await page.inputValue('#window')).toFixed(3), window1.toFixed(3));
    await page.click('#auto-wl');
    assert.deepEqual(await page.evaluate(() => window.brainmvp.windowLevel()), [window0, level0]);

    // Screenshot with the crosshair through the lesion: red core, green shell in all views.
    await page.evaluate((at) => window.brainmvp.setCursor(at), lesion);
    await page.screenshot({ path: path.join(outputDir, 'viewer.png'), fullPage: true });

    // The modality switcher, and window/level typed in: a level below every value and a tiny
    // window make every pixel white, outside the lesion overlay.
    await page.selectOption('#modality-select', 'case01_t2.nii.gz');
    assert.equal(await page.evaluate(() => window.brainmvp.shown()), 'case01_t2.nii.gz');
    await page.fill('#window', '0.000001');
    await page.fill('#level', '-1');
    await page.dispatchEvent('#level', 'change');
    assert.deepEqual(await page.evaluate(() => window.brainmvp.windowLevel()), [0.000001, -1]);
    await page.evaluate(() => window.brainmvp.clearOverlay());
    for (const stats of await canvasStats(page)) {
      // All white but the crosshair's two one-pixel lines (cyan: no red).
      const crosshair = 2 * (stats.width + stats.height);
      assert.ok(stats.bright >= stats.pixels - crosshair,
        `${stats.name}: not all white under W/L 0.000001/-1: ${JSON.stringify(stats)}`);
    }
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
  }
});

test('broken files: the error names the file, the page still loads a good one', async () => {
  const t1Gz = await readFile(path.join(mriDir, 'avg152T1.nii.gz'));
  const t1Raw = gunzipSync(t1Gz);
  let seed = 12345;
  const random = Buffer.alloc(4096, 0).map(() => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed & 0xff;
  });
  const { page, problems } = await openPage();
  try {
    await pickFiles(page, [{ name: 'broken.nii.gz', bytes: random }]);
    let error = await page.textContent('#error');
    assert.match(error, /^broken\.nii\.gz: \S/);
    assert.equal(await page.isVisible('#error'), true);
    assert.equal(await page.evaluate(() => window.brainmvp.files().length), 0);

    await pickFiles(page, [{ name: 'cut_t1.nii', bytes: t1Raw.subarray(0, t1Raw.length - 1000) }]);
    error = await page.textContent('#error');
    assert.match(error, /cut_t1\.nii: truncated/);

    // Still usable: a good file loads and draws.
    await pickFiles(page, [{ name: 'good_t1.nii.gz', bytes: t1Gz }]);
    assert.equal(await page.evaluate(() => document.body.dataset.viewer), 'ready');
    assert.deepEqual(await page.evaluate(() => window.brainmvp.files()), [{ name: 'good_t1.nii.gz', modality: 't1' }]);
    const stats = await canvasStats(page);
    for (const view of stats) assert.ok(view.bright > view.pixels * 0.2, JSON.stringify(view));

    // Correcting the modality to "label map" is refused for an image (fractional values),
    // and the file stays an image.
    await page.selectOption('#file-list li[data-name="good_t1.nii.gz"] select', 'label');
    assert.match(await page.textContent('#error'), /good_t1\.nii\.gz: not a label map/);
    assert.deepEqual(await page.evaluate(() => window.brainmvp.files()), [{ name: 'good_t1.nii.gz', modality: '' }]);
    assert.equal(await page.evaluate(() => document.body.dataset.viewer), 'ready');

    // Dropping a file on the drop zone loads it like the picker.
    const t2Gz = await readFile(path.join(mriDir, 'avg152T2.nii.gz'));
    const loadsBefore = await page.evaluate(() => Number(document.body.dataset.loads));
    const drop = await page.evaluateHandle((bytes) => {
      const transfer = new DataTransfer();
      transfer.items.add(new File([new Uint8Array(bytes)], 'dropped_T2.nii.gz'));
      return transfer;
    }, [...t2Gz]);
    await page.dispatchEvent('#dropzone', 'drop', { dataTransfer: drop });
    await page.waitForFunction((count) => Number(document.body.dataset.loads) > count, loadsBefore);
    assert.deepEqual((await page.evaluate(() => window.brainmvp.files()))[1], { name: 'dropped_T2.nii.gz', modality: 't2' });

    // The wheel over the axial view steps through axial slices.
    const zBefore = (await page.evaluate(() => window.brainmvp.cursor()))[2];
    await page.hover('#view-axial');
    await page.mouse.wheel(0, -100);
    await page.waitForFunction((z) => window.brainmvp.cursor()[2] === z + 1, zBefore);
    await page.mouse.wheel(0, 100);
    await page.mouse.wheel(0, 100);
    await page.waitForFunction((z) => window.brainmvp.cursor()[2] === z - 1, zBefore);
    assert.equal(await page.textContent('#slice-axial'), `${zBefore}/91`);

    // A label map on another grid (10³ voxels in a corner of the image's field of view):
    const other = Buffer.from(t1Raw.subarray(0, 352 + 10 * 10 * 10));
    other.writeFloatLE(1, 112); // whole-number labels: no 1/255 scaling
    other.writeFloatLE(0, 116);
    other.writeInt16LE(10, 42);
    other.writeInt16LE(10, 44);
    other.writeInt16LE(10, 46);
    // It goes onto the image's grid through world space (nearest voxel), with a notice...
    await pickFiles(page, [{ name: 'small_seg.nii', bytes: other }]);
    assert.equal(await page.textContent('#error'), '');
    assert.match(await page.textContent('#notice'),
      /^small_seg\.nii: on another grid than good_t1\.nii\.gz: resampled onto it \(\d+ % of it covered\)$/);
    assert.equal(await page.evaluate(() => window.brainmvp.files().length), 3);
    // ...and one that shares no world space with the image is refused with its name.
    const far = Buffer.from(other);
    far.writeFloatLE(far.readFloatLE(268) + 5000, 268); // qoffset_x
    far.writeFloatLE(far.readFloatLE(292) + 5000, 292); // srow_x[3]
    await pickFiles(page, [{ name: 'far_seg.nii', bytes: far }]);
    assert.match(await page.textContent('#error'),
      /^far_seg\.nii: does not overlap good_t1\.nii\.gz in world space \(centres \d+ mm apart\)/);
    assert.equal(await page.evaluate(() => window.brainmvp.files().length), 3);
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
  }
});

test('file names: BIDS, scanner and template names read as their modality; an unknown one points at its selector', async () => {
  const t1Gz = await readFile(path.join(mriDir, 'avg152T1.nii.gz'));
  const { page, problems } = await openPage();
  try {
    // File names seen in the field (templates, ITK and BraTS releases), each read through the page's picker.
    const names = {
      'mni_icbm152_t1_tal_nlin_sym_09a.nii.gz': 't1',
      'head_T1UCharRaw.nii.gz': 't1',
      't1_mprage.nii.gz': 't1',
      'patient_T1_post.nii.gz': 't1c',
      'sub-01_ce-gd_T1w.nii.gz': 't1c',
    };
    await pickFiles(page, Object.keys(names).map((name) => ({ name, bytes: t1Gz })));
    assert.deepEqual(await page.evaluate(() => window.brainmvp.files()),
      Object.entries(names).map(([name, modality]) => ({ name, modality })));
    assert.equal(await page.textContent('#error'), '');

    // A name that says nothing: the message names the file and the selector to use.
    await pickFiles(page, [{ name: 'scan0001.nii.gz', bytes: t1Gz }]);
    assert.match(await page.textContent('#error'),
      /^scan0001\.nii\.gz: modality not recognised from the file name; choose it in the file's "modality\?" selector/);
    const selector = '#file-list li[data-name="scan0001.nii.gz"] select';
    assert.equal(await page.getAttribute(selector, 'class'), 'modality unset');
    // Segmenting now says the same; choosing the modality (keyboard: focus, then select) clears it.
    await page.click('#segment');
    assert.match(await page.textContent('#error'), /segment: .*scan0001\.nii\.gz: modality not recognised/);
    await page.focus(selector);
    await page.selectOption(selector, 'flair');
    assert.equal(await page.textContent('#error'), '');
    assert.equal(await page.isVisible('#error'), false);
    assert.equal(await page.getAttribute(selector, 'class'), 'modality');

    // A 4D file opens at its first volume, with a notice (not an error).
    const t1Raw = gunzipSync(t1Gz);
    const fourD = Buffer.concat([t1Raw, t1Raw.subarray(352), t1Raw.subarray(352)]);
    fourD.writeInt16LE(4, 40);
    fourD.writeInt16LE(3, 48);
    await pickFiles(page, [{ name: 'series_T2w.nii', bytes: fourD }]);
    assert.equal(await page.textContent('#error'), '');
    assert.equal(await page.textContent('#notice'), 'series_T2w.nii: 4D file (3 volumes): using the first');
    assert.deepEqual((await page.evaluate(() => window.brainmvp.files())).at(-1), { name: 'series_T2w.nii', modality: 't2' });
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
  }
});

test('keyboard, zoom that follows the crosshair, a 390 px screen', async () => {
  const t1Gz = await readFile(path.join(mriDir, 'avg152T1.nii.gz'));
  const { page, problems } = await openPage();
  try {
    // The file picker is reachable by keyboard (focusable, not display: none).
    await page.focus('#file-input');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'file-input');
    await pickFiles(page, [{ name: 'kb_t1.nii.gz', bytes: t1Gz }]);
    // No label map, no prediction: nothing to compare, the switch is not shown.
    assert.equal(await page.isVisible('#compare'), false);

    // Arrows in the focused axial view move the crosshair one voxel on screen; Page Up a slice.
    await page.evaluate(() => window.brainmvp.setCursor([45, 54, 45]));
    await page.focus('#view-axial');
    await page.keyboard.press('ArrowRight');
    const right = await page.evaluate(() => window.brainmvp.cursor());
    assert.deepEqual([Math.abs(right[0] - 45), right[1], right[2]], [1, 54, 45]);
    await page.keyboard.press('ArrowUp');
    const up = await page.evaluate(() => window.brainmvp.cursor());
    assert.deepEqual([up[0], Math.abs(up[1] - 54), up[2]], [right[0], 1, 45]);
    await page.keyboard.press('PageUp');
    assert.deepEqual(await page.evaluate(() => window.brainmvp.cursor()), [up[0], up[1], 46]);
    await page.keyboard.press('PageDown');
    await page.keyboard.press('PageDown');
    assert.equal((await page.evaluate(() => window.brainmvp.cursor()))[2], 44);

    // Zoom 4 with the crosshair near a corner: the view's box scrolls to keep it in sight.
    await page.evaluate(() => window.brainmvp.setCursor([85, 100, 80]));
    await setZoom(page, 4);
    const view = await page.evaluate(() => {
      const canvas = document.getElementById('view-axial');
      const box = canvas.parentElement;
      return { scrollLeft: box.scrollLeft, scrollTop: box.scrollTop, boxWidth: box.clientWidth,
        boxHeight: box.clientHeight, width: canvas.width, height: canvas.height };
    });
    assert.ok(view.width > view.boxWidth, JSON.stringify(view));
    assert.ok(view.scrollLeft > 0 || view.scrollTop > 0, `the zoomed view did not follow: ${JSON.stringify(view)}`);

    // A phone-sized screen: nothing wider than it.
    await page.setViewportSize({ width: 390, height: 844 });
    await setZoom(page, 1);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
    await page.screenshot({ path: path.join(outputDir, 'viewer-390px.png'), fullPage: true });
    assert.ok(overflow <= 390, `page is ${overflow} px wide on a 390 px screen`);
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
  }
});

test('sample case button: loads assets/sample when present, says so when not', async () => {
  const indexPath = path.join(distDir, 'assets', 'sample', 'index.json');
  const { page, problems } = await openPage();
  try {
    const before_ = await page.evaluate(() => Number(document.body.dataset.loads ?? 0));
    await page.click('#load-sample');
    if (existsSync(indexPath)) {
      const index = JSON.parse(await readFile(indexPath, 'utf8'));
      await page.waitForFunction((count) => Number(document.body.dataset.loads ?? 0) > count, before_,
        { timeout: 60_000 });
      assert.equal(await page.textContent('#error'), '');
      const files = await page.evaluate(() => window.brainmvp.files());
      assert.deepEqual(files.map((file) => file.name), index.files.map((file) => file.name));
      for (const view of await canvasStats(page)) {
        assert.ok(view.levels > 10, `${view.name} view blank: ${JSON.stringify(view)}`);
      }
      // The ground truth is the overlay: BraTS labels only, and the table lists them.
      const labels = await page.evaluate(() => window.brainmvp.currentLabels());
      assert.ok(labels && Object.keys(labels).length > 0, 'no overlay from the sample label map');
      for (const label of Object.keys(labels)) assert.ok(['1', '2', '3', '4'].includes(label), `label ${label}`);
      assert.equal(await page.locator('#volumes tbody tr').count(), Object.keys(labels).length);
      // The crosshair went to the tumour: every view shows overlay colour (red, green or yellow:
      // blue well below the brightest channel; grey has all equal, the cyan crosshair most blue).
      const coloured = await page.evaluate(() => ['axial', 'coronal', 'sagittal'].map((name) => {
        const canvas = document.getElementById(`view-${name}`);
        const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
        let count = 0;
        for (let at = 0; at < data.length; at += 4) if (data[at + 2] + 30 < Math.max(data[at], data[at + 1])) count += 1;
        return count;
      }));
      assert.ok(coloured.every((count) => count > 20), `overlay pixels per view: ${coloured}`);
      await page.screenshot({ path: path.join(outputDir, 'viewer-sample.png'), fullPage: true });
    } else {
      await page.waitForFunction(() => document.getElementById('error').textContent !== '', null,
        { timeout: 30_000 });
      assert.match(await page.textContent('#error'), /assets\/sample\/index\.json not available \(HTTP 404\)/);
      assert.equal(await page.evaluate(() => document.body.dataset.viewer), 'empty');
      // A 404 is a failed request only in Chromium's log, not a page error.
      assert.deepEqual(problems.filter((problem) => !problem.includes('404')), []);
    }
  } finally {
    await page.close();
  }
});

// A stand-in for the lead's segment-client.js with the same exports: it records what the page
// sends and answers with the test's label map, so the page's side of the protocol is checked
// without a model.
const FAKE_SEGMENT_CLIENT = `
export function segment({ model, files, onProgress, backend, mirror, clean }) {
  window.fakeCalls.options = { backend, mirror, clean };
  window.fakeCalls.segment = { model: model.name, modelBytes: model.bytes.byteLength,
    files: files.map((file) => ({ name: file.name, modality: file.modality, bytes: file.bytes.byteLength })) };
  onProgress(1, 2);
  onProgress(2, 2);
  return Promise.resolve({ nifti: window.fakeNifti.slice(), volumes: [], backend: 'fake backend',
    windows: 2, msPerWindow: 12.5, synthetic: [{ modality: 'flair', nifti: window.fakeNifti.slice() }], ignored: ['pd'] });
}
export function cancel() {}
export function inspect(model) {
  return Promise.resolve({ encoder: 'UniFormer tiny', precision: 'f16', preprocess: 'pretraining', values: 234579, fileBytes: 16, roi: 32,
    summary: 'one 32×32×32 window needs about 6 MB', modalities: ['t1', 't1c', 't2', 'flair'], templates: ['flair'] });
}
export function chooseBackend(backend) {
  return Promise.resolve({ backend: 'fake backend', backendNote: \`asked for \${backend}\` });
}
export function finetune({ model, cases, steps, lr, onLoss }) {
  window.fakeCalls.finetune = { model: model.name, steps, lr, cases: cases.map((c) => ({
    images: c.images.map((image) => image.modality), label: c.label.name, labelBytes: c.label.bytes.byteLength })) };
  const losses = [];
  for (let step = 1; step <= steps; step++) { losses.push(1 / step); onLoss(step, 1 / step); }
  return Promise.resolve({ model: new Uint8Array([1, 2, 3]).buffer, losses, backend: 'fake backend' });
}
export function stop() {}
export function templates(model) {
  window.fakeCalls.templates = model.name;
  return Promise.resolve([{ modality: 'flair', nifti: window.fakeNifti.slice().buffer }]);
}
`;

test('segment, fine-tune, templates and downloads through segment-client.js (stand-in)', async () => {
  const t1Gz = await readFile(path.join(mriDir, 'avg152T1.nii.gz'));
  const t2Gz = await readFile(path.join(mriDir, 'avg152T2.nii.gz'));
  const t1 = parseNifti(t1Gz);
  const centre = [25, 60, 50];
  const labels = labelMapLike(t1, centre);
  const labelsGz = gzipSync(labels.bytes);
  const { page, problems } = await openPage(async (page) => {
    await page.route('**/segment-client.js', (route) => route.fulfill({
      status: 200, contentType: 'text/javascript', body: FAKE_SEGMENT_CLIENT }));
    await page.route('**/assets/demo-model.bmvp', (route) => route.fulfill({
      status: 200, contentType: 'application/octet-stream', body: Buffer.alloc(16, 7) }));
  });
  try {
    await page.evaluate((bytes) => {
      window.fakeNifti = new Uint8Array(bytes);
      window.fakeCalls = {};
    }, [...labelsGz]);
    await pickFiles(page, [
      { name: 'case01_t1.nii.gz', bytes: t1Gz },
      { name: 'case01_t2.nii.gz', bytes: t2Gz },
    ]);
    await page.click('#segment');
    await page.waitForFunction(() => document.getElementById('segment-status').textContent.startsWith('done'));
    assert.equal(await page.textContent('#segment-status'),
      'done on fake backend · demo model trained on synthetic data · 2 windows, 13 ms per window · synthesised (not measured): flair · not used by the model: pd');
    // The page's defaults: automatic backend, mirroring and clean-up on; the line says so.
    assert.deepEqual(await page.evaluate(() => window.fakeCalls.options), { backend: 'auto', mirror: true, clean: true });
    assert.equal(await page.textContent('#backend-why'), 'jobs run on fake backend: asked for auto');
    // What the model is: the worker's description of the chosen model, in one line.
    await page.waitForFunction(() => document.getElementById('model-info').textContent !== '');
    assert.equal(await page.textContent('#model-info'),
      'demo-model.bmvp: UniFormer tiny UniUnet · 0.23 M weights · f16 file 0.0 MB · takes t1, t1c, t2, flair · templates for flair · pretraining preprocessing · one 32×32×32 window needs about 6 MB');
    // The synthetic channel is listed and viewable, marked synthetic.
    assert.deepEqual((await page.evaluate(() => window.brainmvp.files()))[2],
      { name: 'synthetic_flair.nii.gz', modality: 'flair', synthetic: true });
    assert.match(await page.textContent('#file-list li[data-name="synthetic_flair.nii.gz"]'), /synthetic \(made by the model, not measured\)/);
    assert.match(await page.textContent('#modality-select'), /flair \(synthetic\)/);
    assert.deepEqual(await page.evaluate(() => window.fakeCalls.segment), {
      model: 'demo-model.bmvp', modelBytes: 16, files: [
        { name: 'case01_t1.nii.gz', modality: 't1', bytes: t1Gz.length },
        { name: 'case01_t2.nii.gz', modality: 't2', bytes: t2Gz.length },
      ] });
    assert.equal(await page.evaluate(() => document.getElementById('progress').value), 2);
    assert.deepEqual(await page.evaluate(() => window.brainmvp.currentLabels()),
      { 1: labels.counts[1], 2: labels.counts[2] });
    // The crosshair went to the lesion (LAS file x mirrored on the RAS grid).
    assert.deepEqual(await page.evaluate(() => window.brainmvp.cursor()), [91 - 1 - centre[0], centre[1], centre[2]]);
    assert.equal(await page.locator('#volumes tbody tr').count(), 2);

    // Download segmentation: the model's NIfTI bytes, unchanged.
    const [segDownload] = await Promise.all([page.waitForEvent('download'), page.click('#download-seg')]);
    assert.equal(segDownload.suggestedFilename(), 'segmentation.nii.gz');
    assert.deepEqual(await readFile(await segDownload.path()), labelsGz);

    // Fine-tuning needs a label map file: add it, then the case, then train 5 steps.
    await pickFiles(page, [{ name: 'case01_seg.nii.gz', bytes: labelsGz }]);
    await page.click('#ft-add-case');
    assert.equal(await page.textContent('#ft-cases'), '1 training case');
    await page.fill('#ft-steps', '5');
    await page.click('#ft-start');
    await page.waitForFunction(() => document.getElementById('ft-status').textContent.startsWith('fine-tuned'));
    assert.equal(await page.textContent('#ft-status'),
      'fine-tuned 5 steps on fake backend; the next segmentation uses it');
    assert.deepEqual(await page.evaluate(() => window.fakeCalls.finetune), {
      model: 'demo-model.bmvp', steps: 5, lr: 0.001,
      cases: [{ images: ['t1', 't2'], label: 'case01_seg.nii.gz', labelBytes: labelsGz.length }] });
    assert.equal(await page.inputValue('#model-source'), 'finetuned');
    const curvePixels = await page.evaluate(() => {
      const canvas = document.getElementById('loss-curve');
      const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
      let drawn = 0;
      for (let at = 3; at < data.length; at += 4) if (data[at] > 0) drawn += 1;
      return drawn;
    });
    assert.ok(curvePixels > 200, `loss curve: ${curvePixels} pixels drawn`);
    const [weights] = await Promise.all([page.waitForEvent('download'), page.click('#download-weights')]);
    assert.equal(weights.suggestedFilename(), 'finetuned.bmvp');
    assert.deepEqual([...(await readFile(await weights.path()))], [1, 2, 3]);

    // The next segmentation uses the fine-tuned model, and never sends synthetic channels.
    await page.click('#segment');
    await page.waitForFunction(() => window.fakeCalls.segment.model === 'finetuned.bmvp');
    assert.deepEqual(await page.evaluate(() => window.fakeCalls.segment.files.map((file) => file.modality)), ['t1', 't2']);
    assert.equal((await page.evaluate(() => window.brainmvp.files())).filter((file) => file.synthetic).length, 1);

    // Templates: one figure per modality, marked synthetic.
    await page.click('#show-templates');
    await page.waitForSelector('#templates figure');
    assert.equal(await page.textContent('#templates figcaption'), 'flair template (synthetic)');
    assert.equal(await page.evaluate(() => window.fakeCalls.templates), 'finetuned.bmvp');
    assert.equal(await page.textContent('#error'), '');
    assert.deepEqual(problems, []);
  } finally {
    await page.close();
  }
});

// brainmvp viewer page: files → decoded volumes (Rust/wasm, web-viewer/src/viewer_api.rs) →
// three orthogonal views with a shared crosshair; segmentation, fine-tuning and templates go
// through segment-client.js (a Web Worker).
//
// Hooks for tests and other scripts
// ---------------------------------
// <body data-viewer="...">: starting (wasm not ready) · empty (no image) · loading · ready
//   (an image is shown) · busy (segmenting / fine-tuning). <body data-loads="n">: how many
//   loadFiles calls (picker, drop, sample, API) have finished. body[data-state] belongs to the wasm
//   start-up probe (System panel) and is not touched here.
// Element ids: #error (load/segment errors, hidden when empty) · #dropzone · #file-input ·
//   #load-sample · #clear-case · #file-list (li[data-name] > select.modality) · #modality-select ·
//   #window · #level · #auto-wl · #zoom · #opacity · #label-toggles (input[data-label]) ·
//   #view-axial / #view-coronal / #view-sagittal (canvas, data-axis 0/1/2) · #slice-axial … ·
//   #cursor (crosshair line: "crosshair voxel (x, y, z) · world (…) mm · <modality> <value> · label n")
//   · #hover (same for the voxel under the mouse) · #model-source · #model-file ·
//   #model-info (what the chosen model is, the memory one window needs) ·
//   #compare (shown with a prediction and a ground truth or corrected map) > #overlay-source
//   (truth | prediction | corrected), #dice · the correction and teaching controls (edit.js) ·
//   #backend-choice (auto | webgpu | cpu) · #backend-why (which backend jobs use, and why) · #segment ·
//   #cancel · #progress · #segment-status · #volumes (tbody tr[data-label]) · #download-seg ·
//   #download-weights · #ft-add-case · #ft-cases · #ft-steps · #ft-lr · #ft-start · #ft-stop ·
//   #loss-curve · #ft-status · #show-templates · #templates.
// window.brainmvp (available once data-viewer leaves "starting"; `ready` is a promise for it):
//   loadFiles([{name, bytes}]) → Promise<{loaded: [name], errors: [message]}> (adds to the case)
//   loadSample() → same, from assets/sample/index.json
//   clear()                       drop every file
//   setOverlay(bytes, name?)      → Promise<{labels: [[label, voxels]]}>, throws on a bad file
//   clearOverlay()
//   currentLabels()               → the overlay's {label: voxels} or null
//   goToLabels()                  crosshair to the centre of the largest labelled region (done
//                                 after loadSample and after a segmentation)
//   setCursor([x, y, z]) / cursor() → RAS voxel of the crosshair
//   show(modalityOrName) / shown()  the displayed image
//   setWindowLevel(window, level) / windowLevel() → [window, level]
//   files()                       → [{name, modality, synthetic?}] (modality '' unassigned,
//                                 'label'; synthetic: a channel the model filled in)
//   valueAt([x, y, z])            → value of the displayed image
//   segmentationBytes()           → Uint8Array of the last segmentation NIfTI or null
//   lastError()                   → text of #error
//   lastNotice()                  → text of #notice (4D file's first volume, resampled onto the grid)
//   segmentWarnings()             → text of #segment-warnings (input not BraTS-preprocessed)
//   and the correction tools' hooks (edit.js: pixelOf, correctedBytes, correctionsBytes,
//   editState, taught)

import * as seg from './segment-client.js';
import { chooseVariant, loadWasm } from './wasm-loader.js';
import { initEditing } from './edit.js';

const AXES = ['axial', 'coronal', 'sagittal'];
// RAS voxel axis each view slices along.
const NORMAL = [2, 1, 0];
// Canvas size in CSS pixels of the largest physical extent at zoom 1.
const BASE_VIEW_PX = 300;

const $ = (id) => document.getElementById(id);
let wasm = null;

const state = {
  files: [], // {name, bytes: Uint8Array, modality: '' | 'label' | MODALITY, volume?, labels?}
  shown: null, // the file entry displayed
  grid: null, // dims [x, y, z] every file must share
  cursor: [0, 0, 0],
  windowLevel: new Map(), // file name → [window, level]
  overlay: null, // the layer shown: {labels: ViewerLabels, name, source: 'file' | 'model' | 'edit'}
  // the label map from a file, the model's, the user's corrected copy (edit.js)
  layers: { truth: null, prediction: null, corrected: null },
  overlayHidden: false, // the overlay switched off (key O) while painting
  dice: null, // {key: [truth labels, prediction labels], text}
  hidden: new Set(),
  segmentation: null, // Uint8Array of the last model output
  model: null, // {name, bytes} of a fine-tuned or user model
  trainingCases: [],
  losses: [],
  drag: null,
};

// ---------------------------------------------------------------------------------- errors

function showError(message) {
  const box = $('error');
  const line = document.createElement('div');
  line.textContent = message;
  box.append(line);
  box.hidden = false;
  console.warn(message);
}

function clearErrors() {
  $('error').replaceChildren();
  $('error').hidden = true;
  $('notice').replaceChildren();
  $('notice').hidden = true;
}

/** Something the user should know that is not a failure (a 4D file's first volume, a resampling). */
function showNotice(message) {
  const box = $('notice');
  for (const text of message.split('\n')) {
    const line = document.createElement('div');
    line.textContent = text;
    box.append(line);
  }
  box.hidden = false;
}

const errorText = (error) => String(error?.message ?? error);

/** Where to fix a file whose name named no modality. */
const selectorHint = (names) =>
  `${names.join(', ')}: modality not recognised from the file name; choose it in the file's "modality?" selector (file list)`;

function setViewerState(value) {
  document.body.dataset.viewer = value;
}

// ---------------------------------------------------------------------------------- files

/** The case's reference image: its first real image; every other file goes onto its grid. */
function referenceImage(except) {
  return state.files.find((other) => other !== except && other.volume && !other.synthetic)?.volume;
}

/**
 * Decode one file as the kind its modality says, onto the reference image's grid when there is
 * one (resampled through world space if its grid differs); throws the one-line wasm error.
 */
function decode(entry) {
  const reference = referenceImage(entry);
  if (entry.modality === 'label') {
    return { labels: reference ? wasm.loadLabelsOnto(entry.name, entry.bytes, reference)
      : wasm.loadLabels(entry.name, entry.bytes) };
  }
  return { volume: reference ? wasm.loadVolumeOnto(entry.name, entry.bytes, reference)
    : wasm.loadVolume(entry.name, entry.bytes) };
}

function freeDecoded(entry) {
  entry.volume?.free();
  entry.labels?.free();
  entry.volume = undefined;
  entry.labels = undefined;
}

/** The grid check of a case without an image yet (label maps only): the same RAS dims. */
function checkGrid(entry, dims) {
  if (!state.grid) return;
  if (dims.some((size, axis) => size !== state.grid[axis])) {
    throw new Error(`${entry.name}: grid ${[...dims].join('x')} differs from the case's grid ${state.grid.join('x')}`);
  }
}

function addDecoded(entry) {
  const decoded = decode(entry);
  const dims = [...(decoded.volume ?? decoded.labels).dims()];
  try {
    checkGrid(entry, dims);
  } catch (error) {
    decoded.volume?.free();
    decoded.labels?.free();
    throw error;
  }
  if (!state.grid) {
    state.grid = dims;
    state.cursor = dims.map((size) => Math.floor(size / 2));
  }
  Object.assign(entry, decoded);
  const notes = (decoded.volume ?? decoded.labels).warnings();
  if (notes) showNotice(notes.split('\n').map((note) => `${entry.name}: ${note}`).join('\n'));
}

/** Add files [{name, bytes}] to the case; each failure is reported and skipped. */
async function loadFiles(files) {
  clearErrors(); // a new action: earlier messages are gone, this one's are shown
  setViewerState('loading');
  const loaded = [];
  const errors = [];
  for (const file of files) {
    await new Promise((resolve) => setTimeout(resolve, 0)); // let the page paint between files
    const bytes = file.bytes instanceof Uint8Array ? file.bytes : new Uint8Array(file.bytes);
    const guessed = file.modality ?? wasm.guessModality(file.name) ?? '';
    const entry = { name: file.name, bytes, modality: guessed };
    try {
      const previous = state.files.findIndex((other) => other.name === entry.name);
      if (previous >= 0) removeFile(state.files[previous]);
      addDecoded(entry);
      state.files.push(entry);
      if (entry.labels) useLabels(entry.labels, entry.name, 'file');
      loaded.push(entry.name);
    } catch (error) {
      errors.push(errorText(error));
      showError(errorText(error));
    }
  }
  const unnamed = loaded.filter((name) => state.files.find((entry) => entry.name === name)?.modality === '');
  if (unnamed.length) showError(selectorHint(unnamed));
  if (!state.shown || !state.files.includes(state.shown)) state.shown = defaultShown();
  refreshAll();
  document.body.dataset.loads = String(Number(document.body.dataset.loads ?? 0) + 1);
  return { loaded, errors };
}

function defaultShown() {
  const images = state.files.filter((entry) => entry.volume && !entry.synthetic);
  for (const modality of ['t1', 't1c', 'flair', 't2']) {
    const match = images.find((entry) => entry.modality === modality);
    if (match) return match;
  }
  return images[0] ?? state.files.find((entry) => entry.volume) ?? null;
}

function removeFile(entry) {
  if (entry.labels) dropLayer(entry.labels);
  freeDecoded(entry);
  state.files = state.files.filter((other) => other !== entry);
  if (state.shown === entry) state.shown = null;
  if (!state.files.length) state.grid = null;
}

function clearCase() {
  for (const entry of [...state.files]) removeFile(entry);
  clearOverlay();
  state.grid = null;
  state.shown = null;
  state.segmentation = null;
  clearErrors();
  refreshAll();
}

/** The user corrected the modality of a file: decode it again if its kind changed. */
function changeModality(entry, modality) {
  clearErrors();
  const wasLabel = entry.modality === 'label';
  entry.modality = modality;
  if (wasLabel === (modality === 'label')) {
    refreshAll();
    return;
  }
  if (entry.labels) dropLayer(entry.labels);
  freeDecoded(entry);
  try {
    addDecoded(entry);
  } catch (error) {
    // E.g. an image is not a label map: say why and keep the file as it was.
    showError(errorText(error));
    entry.modality = wasLabel ? 'label' : '';
    addDecoded(entry);
  }
  if (entry.labels) useLabels(entry.labels, entry.name, 'file');
  if (!state.shown || !state.files.includes(state.shown) || !state.shown.volume) state.shown = defaultShown();
  refreshAll();
}

async function loadSample() {
  let index;
  try {
    const response = await fetch('assets/sample/index.json');
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    index = await response.json();
  } catch (error) {
    showError(`sample case: assets/sample/index.json not available (${errorText(error)})`);
    return { loaded: [], errors: [errorText(error)] };
  }
  const files = [];
  const errors = [];
  for (const { name, modality } of index.files ?? []) {
    try {
      const response = await fetch(`assets/sample/${name}`);
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      files.push({ name, modality, bytes: new Uint8Array(await response.arrayBuffer()) });
    } catch (error) {
      const message = `${name}: could not fetch the sample file (${errorText(error)})`;
      errors.push(message);
      showError(message);
    }
  }
  const result = await loadFiles(files.map((file) => ({ ...file, modality: canonical(file.modality) })));
  goToLabels();
  return { loaded: result.loaded, errors: [...errors, ...result.errors] };
}

/** `seg`/`label` → 'label', known modality tokens → canonical name, else the name guess. */
function canonical(modality) {
  if (!modality) return undefined;
  const lower = String(modality).toLowerCase();
  if (['seg', 'label', 'labels', 'segmentation'].includes(lower)) return 'label';
  return wasm.modalityNames().includes(lower) ? lower : wasm.guessModality(`x_${lower}.nii`) ?? undefined;
}

async function readDroppedFiles(fileList) {
  const files = [];
  for (const file of fileList) {
    files.push({ name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) });
  }
  return loadFiles(files);
}

// ---------------------------------------------------------------------------------- overlay

/** The layer slot of a label map's source. */
const SLOTS = { model: 'prediction', edit: 'corrected', file: 'truth' };

/**
 * Show `labels` (from a file: the ground truth; from the model: the prediction; from the
 * correction tools: the corrected map) as the overlay.
 */
function useLabels(labels, name, source) {
  const slot = SLOTS[source] ?? 'truth';
  const previous = state.layers[slot];
  if (previous && previous.source !== 'file' && previous.labels !== labels) previous.labels.free();
  state.layers[slot] = { labels, name, source };
  state.overlay = state.layers[slot];
}

/** Forget the overlay layer holding `labels` (its file is gone or no longer a label map). */
function dropLayer(labels) {
  for (const slot of ['truth', 'prediction', 'corrected']) {
    if (state.layers[slot]?.labels === labels) state.layers[slot] = null;
  }
  if (state.overlay?.labels === labels) {
    state.overlay = state.layers.corrected ?? state.layers.prediction ?? state.layers.truth;
  }
}

/**
 * With a prediction and a reference (the corrected map, else the ground truth): the overlay
 * switch and the Dice line. The corrected map changes in place, so its Dice is keyed by its edits.
 */
function renderCompare() {
  const { truth, prediction, corrected } = state.layers;
  const reference = corrected ?? truth;
  $('compare').hidden = !(prediction && reference);
  if (!prediction || !reference) return;
  for (const option of $('overlay-source').options) option.hidden = !state.layers[option.value];
  $('overlay-source').value = Object.keys(state.layers).find((slot) => state.layers[slot] === state.overlay) ?? 'prediction';
  const version = corrected ? `${corrected.labels.undoDepth()}/${corrected.labels.redoDepth()}/${state.editVersion ?? 0}` : '';
  const key = [reference.labels, prediction.labels, version];
  if (state.dice?.key.some((part, at) => part !== key[at]) ?? true) {
    let text;
    try {
      const [tc, wt, et] = prediction.labels.diceAgainst(reference.labels);
      text = `Dice of the prediction against ${reference.name}: WT ${wt.toFixed(3)} · TC ${tc.toFixed(3)} · ET ${et.toFixed(3)}`;
    } catch (error) {
      text = `Dice: ${errorText(error)}`;
    }
    state.dice = { key, text };
  }
  $('dice').textContent = state.dice.text;
}

async function setOverlay(bytes, name = 'segmentation.nii.gz') {
  const labels = wasm.loadLabels(name, bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes));
  try {
    checkGrid({ name }, [...labels.dims()]);
  } catch (error) {
    labels.free();
    throw error;
  }
  if (!state.grid) state.grid = [...labels.dims()];
  useLabels(labels, name, 'model');
  refreshAll();
  return { labels: Object.entries(currentLabels() ?? {}).map(([label, voxels]) => [Number(label), voxels]) };
}

/** Move the crosshair to the centre of the labelled voxels (if any). */
function goToLabels() {
  const centre = state.overlay?.labels.lesionCentre();
  if (centre) setCursor([...centre]);
}

function clearOverlay() {
  state.layers.prediction?.labels.free();
  state.layers.corrected?.labels.free();
  state.layers = { truth: null, prediction: null, corrected: null };
  state.overlay = null;
  refreshAll();
}

function currentLabels() {
  if (!state.overlay) return null;
  const counts = state.overlay.labels.labelCounts();
  const result = {};
  for (let at = 0; at < counts.length; at += 2) result[counts[at]] = counts[at + 1];
  return result;
}

// ---------------------------------------------------------------------------------- drawing

function windowLevelOf(entry) {
  if (!state.windowLevel.has(entry.name)) {
    const [low, high] = entry.volume.robustRange();
    const width = high > low ? high - low : 1;
    state.windowLevel.set(entry.name, [width, low + width / 2]);
  }
  return state.windowLevel.get(entry.name);
}

/** Millimetres → CSS pixels, the same for all three views so that anatomy keeps its size. */
function viewScale(volume) {
  const spacing = volume.spacing();
  const dims = volume.dims();
  const extent = Math.max(...[0, 1, 2].map((axis) => spacing[axis] * dims[axis]));
  return (BASE_VIEW_PX / extent) * Number($('zoom').value);
}

function drawView(axis) {
  const canvas = $(`view-${AXES[axis]}`);
  const drawn = drawSlice(canvas, axis, state.overlayHidden ? null : state.overlay);
  if (!drawn) {
    $(`slice-${AXES[axis]}`).textContent = '';
    return;
  }
  const { volume, slice } = drawn;
  drawCrosshair(canvas.getContext('2d'), volume, axis, slice.width, slice.height, canvas);
  followCrosshair(axis, canvas, slice.width, slice.height);
  $(`slice-${AXES[axis]}`).textContent = `${state.cursor[NORMAL[axis]] + 1}/${volume.dims()[NORMAL[axis]]}`;
}

/**
 * The crosshair's slice of view `axis` with `layer` over it, on `canvas`; returns the volume and
 * the slice size, or null without an image.
 */
function drawSlice(canvas, axis, layer) {
  const entry = state.shown;
  if (!entry?.volume) {
    canvas.width = BASE_VIEW_PX;
    canvas.height = BASE_VIEW_PX;
    canvas.getContext('2d').clearRect(0, 0, canvas.width, canvas.height);
    return null;
  }
  const volume = entry.volume;
  const index = state.cursor[NORMAL[axis]];
  const [window_, level] = windowLevelOf(entry);
  const slice = layer
    ? volume.renderWithLabels(axis, index, window_, level, layer.labels,
      Number($('opacity').value), Uint8Array.from(state.hidden))
    : volume.render(axis, index, window_, level);
  const image = new ImageData(new Uint8ClampedArray(slice.rgba()), slice.width, slice.height);
  const [pixelWidth, pixelHeight] = volume.pixelSpacing(axis);
  const scale = viewScale(volume);
  canvas.width = Math.max(1, Math.round(slice.width * pixelWidth * scale));
  canvas.height = Math.max(1, Math.round(slice.height * pixelHeight * scale));
  const source = new OffscreenCanvas(slice.width, slice.height);
  source.getContext('2d').putImageData(image, 0, 0);
  const context = canvas.getContext('2d');
  context.imageSmoothingEnabled = false;
  context.drawImage(source, 0, 0, canvas.width, canvas.height);
  const size = { width: slice.width, height: slice.height };
  slice.free();
  return { volume, slice: size };
}

function drawCrosshair(context, volume, axis, sliceWidth, sliceHeight, canvas) {
  const pixel = volume.voxelToPixel(axis, ...state.cursor);
  if (!pixel) return;
  const x = ((pixel[0] + 0.5) * canvas.width) / sliceWidth;
  const y = ((pixel[1] + 0.5) * canvas.height) / sliceHeight;
  context.strokeStyle = 'rgba(0, 220, 255, 0.8)';
  context.lineWidth = 1;
  context.beginPath();
  context.moveTo(Math.round(x) + 0.5, 0);
  context.lineTo(Math.round(x) + 0.5, canvas.height);
  context.moveTo(0, Math.round(y) + 0.5);
  context.lineTo(canvas.width, Math.round(y) + 0.5);
  context.stroke();
}

function drawViews() {
  for (const axis of [0, 1, 2]) {
    try {
      drawView(axis);
    } catch (error) {
      showError(errorText(error));
      if (state.overlay) {
        state.overlay = null;
        return drawViews();
      }
    }
  }
  editing?.drawSideBySide();
  updateCursorLine();
}

/** The correction tools (edit.js), once the page started. */
let editing = null;

function describeVoxel(voxel) {
  const entry = state.shown;
  const parts = [`voxel (${voxel.join(', ')})`];
  if (entry?.volume) {
    const world = entry.volume.worldAt(...voxel);
    parts.push(`world (${[...world].map((value) => value.toFixed(1)).join(', ')}) mm`);
    const value = entry.volume.valueAt(...voxel);
    parts.push(`${entry.modality || entry.name} ${value === undefined ? '–' : formatValue(value)}`);
  }
  if (state.overlay) {
    const corrected = state.overlay.labels.isCorrected?.(...voxel) ? ' (corrected)' : '';
    parts.push(`label ${state.overlay.labels.labelAt(...voxel) ?? '–'}${corrected}`);
  }
  return parts.join(' · ');
}

function formatValue(value) {
  return Number.isInteger(value) ? String(value) : value.toPrecision(4);
}

function updateCursorLine() {
  $('cursor').textContent = state.grid ? `crosshair ${describeVoxel(state.cursor)}` : 'no image loaded';
}

// ---------------------------------------------------------------------------------- controls

function refreshAll() {
  renderFileList();
  renderModalitySelect();
  renderWindowLevelInputs();
  renderLabelToggles();
  renderVolumeTable();
  renderCompare();
  editing?.render();
  drawViews();
  setViewerState(state.shown?.volume ? 'ready' : 'empty');
}

function renderFileList() {
  const list = $('file-list');
  list.replaceChildren(...state.files.map((entry) => {
    const item = document.createElement('li');
    item.dataset.name = entry.name;
    const select = document.createElement('select');
    select.className = 'modality';
    select.append(new Option('modality?', ''));
    for (const modality of wasm.modalityNames()) select.append(new Option(modality, modality));
    select.append(new Option('label map', 'label'));
    select.value = entry.modality;
    select.classList.toggle('unset', entry.modality === '');
    select.setAttribute('aria-label', `modality of ${entry.name}`);
    select.addEventListener('change', () => changeModality(entry, select.value));
    const name = document.createElement('span');
    name.className = 'file-name';
    name.textContent = entry.name;
    const dims = (entry.volume ?? entry.labels)?.dims();
    const info = document.createElement('span');
    info.className = 'file-info';
    info.textContent = dims ? [...dims].join('×') : '';
    if (entry.volume) info.textContent += ` · ${entry.volume.sourceOrientation()}`;
    if (entry.synthetic) {
      info.textContent += ' · synthetic (made by the model, not measured)';
      item.classList.add('synthetic');
      select.disabled = true;
    }
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.textContent = '×';
    remove.title = 'remove';
    remove.addEventListener('click', () => {
      removeFile(entry);
      if (!state.shown) state.shown = defaultShown();
      refreshAll();
    });
    item.append(name, select, info, remove);
    return item;
  }));
}

function renderModalitySelect() {
  const select = $('modality-select');
  const images = state.files.filter((entry) => entry.volume);
  select.replaceChildren(...images.map((entry) => new Option(
    entry.synthetic ? `${entry.modality} (synthetic)`
      : entry.modality ? `${entry.modality} (${entry.name})` : entry.name, entry.name)));
  select.value = state.shown?.name ?? '';
  select.disabled = images.length === 0;
}

function renderWindowLevelInputs() {
  if (!state.shown?.volume) return;
  const [window_, level] = windowLevelOf(state.shown);
  $('window').value = Number(window_.toPrecision(5));
  $('level').value = Number(level.toPrecision(5));
}

function renderLabelToggles() {
  const box = $('label-toggles');
  const labels = currentLabels();
  if (!labels) {
    box.replaceChildren();
    return;
  }
  box.replaceChildren(...Object.keys(labels).map((label) => {
    const toggle = document.createElement('label');
    toggle.className = 'label-toggle';
    const input = document.createElement('input');
    input.type = 'checkbox';
    input.dataset.label = label;
    input.checked = !state.hidden.has(Number(label));
    input.addEventListener('change', () => {
      if (input.checked) state.hidden.delete(Number(label));
      else state.hidden.add(Number(label));
      drawViews();
    });
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = `rgb(${[...wasm.labelColor(Number(label))].join(',')})`;
    toggle.append(input, swatch, `${label} ${wasm.bratsLabelName(label) ?? ''}`);
    return toggle;
  }));
}

function renderVolumeTable() {
  const body = $('volumes').querySelector('tbody');
  const labels = currentLabels();
  if (!labels) {
    body.replaceChildren();
    return;
  }
  const voxelMl = state.overlay.labels.voxelMl();
  body.replaceChildren(...Object.entries(labels).map(([label, voxels]) => {
    const row = document.createElement('tr');
    row.dataset.label = label;
    const swatch = `<span class="swatch" style="background: rgb(${[...wasm.labelColor(Number(label))].join(',')})"></span>`;
    row.innerHTML = `<td>${swatch}${label}</td><td>${wasm.bratsLabelName(label) ?? ''}</td><td>${voxels}</td><td>${(voxels * voxelMl).toFixed(2)}</td>`;
    return row;
  }));
}

function setCursor(voxel) {
  if (!state.grid) return;
  state.cursor = voxel.map((at, axis) => Math.min(Math.max(0, Math.round(at)), state.grid[axis] - 1));
  drawViews();
}

/** The RAS voxel under a mouse event on view `axis`, or null. */
function voxelAt(event, axis) {
  const volume = state.shown?.volume;
  if (!volume) return null;
  const canvas = event.currentTarget;
  const rect = canvas.getBoundingClientRect();
  const dims = volume.dims();
  const width = axis === 2 ? dims[1] : dims[0];
  const height = axis === 0 ? dims[1] : dims[2];
  const column = Math.floor(((event.clientX - rect.left) / rect.width) * width);
  const row = Math.floor(((event.clientY - rect.top) / rect.height) * height);
  const voxel = volume.pixelToVoxel(axis, state.cursor[NORMAL[axis]], column, row);
  return voxel ? [...voxel] : null;
}

function wireView(axis) {
  const canvas = $(`view-${AXES[axis]}`);
  canvas.addEventListener('contextmenu', (event) => event.preventDefault());
  canvas.addEventListener('mousedown', (event) => {
    if (event.button === 2 && state.shown?.volume) {
      state.drag = { x: event.clientX, y: event.clientY, start: windowLevelOf(state.shown) };
    } else if (event.button === 0) {
      const voxel = voxelAt(event, axis);
      if (voxel) setCursor(voxel);
      state.drag = { axis, moving: true };
    }
  });
  canvas.addEventListener('mousemove', (event) => {
    const voxel = voxelAt(event, axis);
    $('hover').textContent = voxel ? `under the mouse ${describeVoxel(voxel)}` : '';
    if (state.drag?.moving && state.drag.axis === axis && event.buttons & 1 && voxel) setCursor(voxel);
  });
  canvas.addEventListener('keydown', (event) => {
    if (moveByKey(axis, event.key)) event.preventDefault();
  });
  canvas.addEventListener('wheel', (event) => {
    if (!state.grid) return;
    event.preventDefault();
    const cursor = [...state.cursor];
    cursor[NORMAL[axis]] += event.deltaY > 0 ? -1 : 1;
    setCursor(cursor);
  }, { passive: false });
}

/** Pixel steps of the arrow keys in a view (screen directions), slice steps of Page Up / Down. */
const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
const PAGES = { PageUp: 1, PageDown: -1 };

/**
 * Keyboard navigation in a focused view: arrows move the crosshair one pixel on screen, Page Up /
 * Page Down step through slices. Returns whether the key was one of them.
 */
function moveByKey(axis, key) {
  const volume = state.shown?.volume;
  if (!volume || !(key in ARROWS || key in PAGES)) return false;
  const cursor = [...state.cursor];
  if (key in PAGES) {
    cursor[NORMAL[axis]] += PAGES[key];
  } else {
    const pixel = volume.voxelToPixel(axis, ...cursor);
    if (!pixel) return true;
    const [dx, dy] = ARROWS[key];
    const moved = volume.pixelToVoxel(axis, cursor[NORMAL[axis]], pixel[0] + dx, pixel[1] + dy);
    if (!moved) return true;
    cursor.splice(0, 3, ...moved);
  }
  setCursor(cursor);
  return true;
}

/** At zoom > 1 each view's box scrolls so that the crosshair stays in sight (centred when it left). */
function followCrosshair(axis, canvas, sliceWidth, sliceHeight) {
  const box = canvas.parentElement;
  const pixel = state.shown?.volume?.voxelToPixel(axis, ...state.cursor);
  if (!pixel || !box) return;
  const x = ((pixel[0] + 0.5) * canvas.width) / sliceWidth;
  const y = ((pixel[1] + 0.5) * canvas.height) / sliceHeight;
  const margin = 16;
  if (x < box.scrollLeft + margin || x > box.scrollLeft + box.clientWidth - margin) {
    box.scrollLeft = x - box.clientWidth / 2;
  }
  if (y < box.scrollTop + margin || y > box.scrollTop + box.clientHeight - margin) {
    box.scrollTop = y - box.clientHeight / 2;
  }
}

function wireWindowLevelDrag() {
  window.addEventListener('mousemove', (event) => {
    const drag = state.drag;
    if (!drag?.start || !state.shown?.volume) return;
    const [low, high] = state.shown.volume.fullRange();
    const perPixel = (high - low || 1) / 500;
    const width = Math.max(perPixel, drag.start[0] + (event.clientX - drag.x) * perPixel);
    const level = drag.start[1] - (event.clientY - drag.y) * perPixel;
    setWindowLevel(width, level);
  });
  window.addEventListener('mouseup', () => {
    state.drag = null;
  });
}

function setWindowLevel(width, level) {
  if (!state.shown?.volume) return;
  state.windowLevel.set(state.shown.name, [Number(width), Number(level)]);
  renderWindowLevelInputs();
  drawViews();
}

function show(nameOrModality) {
  const entry = state.files.find((file) => file.volume && (file.name === nameOrModality || file.modality === nameOrModality));
  if (!entry) throw new Error(`no image ${nameOrModality} loaded`);
  state.shown = entry;
  refreshAll();
}

function wireControls() {
  $('file-input').addEventListener('change', async (event) => {
    await readDroppedFiles([...event.target.files]);
    event.target.value = '';
  });
  const drop = $('dropzone');
  drop.addEventListener('dragover', (event) => {
    event.preventDefault();
    drop.classList.add('dragging');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('dragging'));
  drop.addEventListener('drop', (event) => {
    event.preventDefault();
    drop.classList.remove('dragging');
    readDroppedFiles([...event.dataTransfer.files]);
  });
  $('load-sample').addEventListener('click', () => loadSample());
  $('error').addEventListener('click', () => clearErrors());
  $('notice').addEventListener('click', () => clearErrors());
  $('overlay-source').addEventListener('change', () => {
    const chosen = state.layers[$('overlay-source').value];
    if (chosen) state.overlay = chosen;
    refreshAll();
  });
  $('error').title = 'click to dismiss';
  $('clear-case').addEventListener('click', () => clearCase());
  $('modality-select').addEventListener('change', (event) => show(event.target.value));
  $('window').addEventListener('change', () => setWindowLevel($('window').value, $('level').value));
  $('level').addEventListener('change', () => setWindowLevel($('window').value, $('level').value));
  $('auto-wl').addEventListener('click', () => {
    if (!state.shown) return;
    state.windowLevel.delete(state.shown.name);
    renderWindowLevelInputs();
    drawViews();
  });
  $('zoom').addEventListener('input', () => drawViews());
  $('opacity').addEventListener('input', () => drawViews());
  for (const axis of [0, 1, 2]) wireView(axis);
  wireWindowLevelDrag();
}

// ---------------------------------------------------------------------------------- model

async function currentModel() {
  if ($('model-source').value === 'finetuned' && state.model) return state.model;
  if ($('model-source').value === 'file') {
    const file = $('model-file').files[0];
    if (!file) throw new Error('choose a .bmvp model file first');
    return { name: file.name, bytes: await file.arrayBuffer() };
  }
  const response = await fetch('assets/demo-model.bmvp');
  if (!response.ok) throw new Error(`assets/demo-model.bmvp: HTTP ${response.status}`);
  return { name: 'demo-model.bmvp', bytes: await response.arrayBuffer() };
}

/** The case's images for the worker: [{name, modality, bytes}] (copies: the worker owns them). */
function caseImages() {
  return state.files
    .filter((entry) => entry.volume && entry.modality && !entry.synthetic)
    .map((entry) => ({ name: entry.name, modality: entry.modality, bytes: entry.bytes.slice().buffer }));
}

async function runSegmentation() {
  clearErrors();
  const files = caseImages();
  const unnamed = state.files.filter((entry) => entry.volume && !entry.modality).map((entry) => entry.name);
  if (unnamed.length) {
    showError(`segment: ${selectorHint(unnamed)}`);
    return;
  }
  if (!files.length) {
    showError('segment: load at least one image first');
    return;
  }
  setBusy(true);
  $('progress').value = 0;
  $('segment-status').textContent = 'segmenting…';
  showInputWarnings([]);
  try {
    const model = await currentModel();
    const result = await seg.segment({
      model,
      files,
      backend: $('backend-choice').value,
      mirror: $('mirror').checked,
      clean: $('clean').checked,
      // ?workers=N in the address caps the CPU path's pool (1: one worker); default one per core.
      workers: new URLSearchParams(location.search).get('workers') ?? 'auto',
      onProgress: (done, total) => {
        $('progress').max = total || 1;
        $('progress').value = done;
        $('segment-status').textContent = `segmenting… window ${done}/${total}`;
      },
    });
    state.segmentation = new Uint8Array(result.nifti);
    await setOverlay(state.segmentation, 'segmentation.nii.gz');
    addSynthetic(result.synthetic ?? []);
    goToLabels();
    $('segment-status').textContent = describeSegmentation(result);
    showInputWarnings(result.inputWarnings);
    $('download-seg').disabled = false;
    return true;
  } catch (error) {
    if (errorText(error) === 'cancelled') {
      $('segment-status').textContent = 'cancelled';
    } else {
      $('segment-status').textContent = `segmentation failed: ${errorText(error)}`;
      showError(`segment: ${errorText(error)}`);
    }
    return false;
  } finally {
    setBusy(false);
  }
}

function describeSegmentation(result) {
  const parts = [`done on ${result.backend ?? 'unknown backend'}`];
  if (result.backendNote) parts.push(`(${result.backendNote})`);
  if ($('model-source').value === 'demo') parts.push('· demo model trained on synthetic data');
  if (result.msPerWindow) {
    const windows = `${result.windows} window${result.windows === 1 ? '' : 's'}`;
    parts.push(`· ${windows}, ${Number(result.msPerWindow).toFixed(0)} ms per window`);
  }
  if (result.workers > 1) parts.push(`· ${result.workers} workers in parallel`);
  const synthetic = [].concat(result.synthetic ?? []).map((entry) => entry?.modality ?? entry);
  if (synthetic.length) parts.push(`· synthesised (not measured): ${synthetic.join(', ')}`);
  const ignored = [].concat(result.ignored ?? []);
  if (ignored.length) parts.push(`· not used by the model: ${ignored.join(', ')}`);
  if (result.mirrored) parts.push('· mirrored ×8');
  if (result.labelConvention) parts.push(`· ${result.labelConvention}`);
  const cleaned = result.postprocessed;
  if (cleaned) {
    parts.push(`· clean-up: ${cleaned.removed} speck voxels removed, ${cleaned.holesFilled} enclosed voxels → necrotic core`);
  }
  return parts.join(' ');
}

/**
 * Under the segmentation's status, why the images do not look BraTS-preprocessed (skull on, thick
 * slices, sequences on different grids), one line each, the last saying what the result is worth;
 * hidden when there is nothing to say.
 */
function showInputWarnings(lines) {
  const box = $('segment-warnings');
  box.replaceChildren(...[].concat(lines ?? []).map((text) => {
    const line = document.createElement('div');
    line.textContent = `warning: ${text}`;
    return line;
  }));
  box.hidden = !box.childElementCount;
}

/**
 * Show the channels the model synthesised for missing modalities ([{modality, nifti}]) as extra
 * images marked synthetic (never sent back to the model); the previous ones are replaced.
 */
function addSynthetic(synthetic) {
  for (const entry of state.files.filter((file) => file.synthetic)) removeFile(entry);
  for (const { modality, nifti } of synthetic.filter((entry) => entry?.nifti)) {
    const entry = { name: `synthetic_${modality}.nii.gz`, bytes: new Uint8Array(nifti), modality, synthetic: true };
    try {
      addDecoded(entry);
      state.files.push(entry);
    } catch (error) {
      showError(errorText(error));
    }
  }
  if (!state.shown) state.shown = defaultShown();
  refreshAll();
}

function setBusy(busy) {
  $('segment').disabled = busy;
  $('ft-start').disabled = busy;
  editing?.setBusy(busy);
  $('cancel').disabled = !busy;
  setViewerState(busy ? 'busy' : (state.shown?.volume ? 'ready' : 'empty'));
}

function addTrainingCase() {
  const label = state.files.find((entry) => entry.labels);
  const images = caseImages();
  if (!label || !images.length) {
    showError('fine-tune: a training case needs images with modalities and a label map');
    return;
  }
  state.trainingCases.push({ images, label: { name: label.name, bytes: label.bytes.slice().buffer } });
  $('ft-cases').textContent = `${state.trainingCases.length} training case${state.trainingCases.length === 1 ? '' : 's'}`;
}

async function runFinetune() {
  if (!state.trainingCases.length) addTrainingCase();
  if (!state.trainingCases.length) return;
  setBusy(true);
  $('ft-stop').disabled = false;
  state.losses = [];
  drawLossCurve();
  try {
    const model = await currentModel();
    const result = await seg.finetune({
      model,
      backend: $('backend-choice').value,
      cases: state.trainingCases,
      steps: Number($('ft-steps').value),
      lr: Number($('ft-lr').value),
      onLoss: (step, loss) => {
        state.losses.push(loss);
        $('ft-status').textContent = `step ${step}: loss ${Number(loss).toFixed(4)}`;
        drawLossCurve();
      },
    });
    useModel({ name: 'finetuned.bmvp', bytes: result.model });
    $('ft-status').textContent = `fine-tuned ${result.losses?.length ?? state.losses.length} steps on ${result.backend ?? 'unknown backend'}; the next segmentation uses it`;
  } catch (error) {
    $('ft-status').textContent = `fine-tuning failed: ${errorText(error)}`;
    showError(`fine-tune: ${errorText(error)}`);
  } finally {
    $('ft-stop').disabled = true;
    setBusy(false);
  }
}

/** Use `model` ({name, bytes}, made in this page) for the next jobs; Download weights saves it. */
function useModel(model) {
  state.model = model;
  if (!$('model-source').querySelector('option[value="finetuned"]')) {
    $('model-source').append(new Option('fine-tuned model (this page)', 'finetuned'));
  }
  $('model-source').value = 'finetuned';
  $('model-about').hidden = true;
  describeModel();
  $('download-weights').disabled = false;
}

function drawLossCurve(canvas = $('loss-curve'), values = state.losses) {
  const context = canvas.getContext('2d');
  context.clearRect(0, 0, canvas.width, canvas.height);
  const losses = values.filter(Number.isFinite);
  if (losses.length < 1) return;
  const low = Math.min(...losses);
  const high = Math.max(...losses);
  const span = high - low || 1;
  context.strokeStyle = '#1565c0';
  context.lineWidth = 2;
  context.beginPath();
  losses.forEach((loss, step) => {
    const x = 8 + ((canvas.width - 16) * step) / Math.max(1, losses.length - 1);
    const y = 8 + ((canvas.height - 16) * (high - loss)) / span;
    if (step === 0) context.moveTo(x, y);
    else context.lineTo(x, y);
  });
  context.stroke();
  context.fillStyle = '#444';
  context.font = '11px sans-serif';
  context.fillText(`${high.toPrecision(3)}`, 10, 18);
  context.fillText(`${low.toPrecision(3)}`, 10, canvas.height - 10);
}

async function showTemplates() {
  const box = $('templates');
  box.textContent = 'loading templates…';
  try {
    const templates = await seg.templates(await currentModel());
    box.replaceChildren(...templates.map(templateFigure));
  } catch (error) {
    box.textContent = '';
    showError(`templates: ${errorText(error)}`);
  }
}

/** The middle axial slice of one template, marked as synthetic. */
function templateFigure({ modality, nifti }) {
  const figure = document.createElement('figure');
  const volume = wasm.loadVolume(`template-${modality}.nii`, new Uint8Array(nifti));
  try {
    const [low, high] = volume.robustRange();
    const index = Math.floor(volume.dims()[2] / 2);
    const slice = volume.render(0, index, high - low || 1, (low + high) / 2);
    const canvas = document.createElement('canvas');
    canvas.width = slice.width;
    canvas.height = slice.height;
    canvas.getContext('2d').putImageData(new ImageData(new Uint8ClampedArray(slice.rgba()), slice.width, slice.height), 0, 0);
    slice.free();
    const caption = document.createElement('figcaption');
    caption.textContent = `${modality} template (synthetic)`;
    figure.append(canvas, caption);
  } finally {
    volume.free();
  }
  return figure;
}

function download(bytes, name) {
  const url = URL.createObjectURL(new Blob([bytes], { type: 'application/octet-stream' }));
  const link = document.createElement('a');
  link.href = url;
  link.download = name;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Say what the chosen model is and the memory one of its windows needs (#model-info). */
async function describeModel() {
  const source = $('model-source').value;
  if (source === 'file' && !$('model-file').files[0]) {
    $('model-info').textContent = '';
    return;
  }
  try {
    const model = await currentModel();
    const info = await seg.inspect(model);
    if ($('model-source').value !== source) return;
    const megaValues = (info.values / 1e6).toFixed(info.values < 1e6 ? 2 : 1);
    const fileMb = (info.fileBytes / 1e6).toFixed(info.fileBytes < 1e7 ? 1 : 0);
    const templates = info.templates.length ? `templates for ${info.templates.join(', ')}` : 'no templates (give every modality)';
    $('model-info').textContent = `${model.name}: ${info.encoder} UniUnet · ${megaValues} M weights · ${info.precision} file ${fileMb} MB · takes ${info.modalities.join(', ')} · ${templates} · ${info.preprocess} preprocessing · ${info.summary}`;
  } catch (error) {
    $('model-info').textContent = '';
    showError(`model: ${errorText(error)}`);
  }
}

/** Ask the worker which backend the chosen setting gives, and say it under the controls. */
async function describeBackend() {
  const preference = $('backend-choice').value;
  try {
    const choice = await seg.chooseBackend(preference);
    if ($('backend-choice').value !== preference) return;
    $('backend-why').textContent = `jobs run on ${choice.backend}: ${choice.backendNote}`;
    document.body.dataset.backend = choice.backend;
  } catch (error) {
    $('backend-why').textContent = `backend: ${errorText(error)}`;
  }
}

function wireModel() {
  $('backend-choice').addEventListener('change', () => describeBackend());
  $('model-source').addEventListener('change', () => {
    $('model-about').hidden = $('model-source').value !== 'demo';
    $('model-file').hidden = $('model-source').value !== 'file';
    if ($('model-source').value === 'file') $('model-file').click();
    describeModel();
  });
  $('model-file').addEventListener('change', () => {
    clearErrors();
    describeModel();
  });
  $('segment').addEventListener('click', () => runSegmentation());
  $('cancel').addEventListener('click', () => seg.cancel());
  $('ft-add-case').addEventListener('click', () => addTrainingCase());
  $('ft-start').addEventListener('click', () => runFinetune());
  $('ft-stop').addEventListener('click', () => seg.stop());
  $('show-templates').addEventListener('click', () => showTemplates());
  $('download-seg').addEventListener('click', () => {
    if (state.segmentation) download(state.segmentation, 'segmentation.nii.gz');
  });
  $('download-weights').addEventListener('click', () => {
    if (state.model) download(state.model.bytes, state.model.name);
  });
}

// ---------------------------------------------------------------------------------- start

function exposeApi() {
  window.brainmvp = {
    loadFiles,
    loadSample,
    clear: clearCase,
    setOverlay,
    clearOverlay,
    currentLabels,
    goToLabels,
    setCursor,
    cursor: () => [...state.cursor],
    show,
    shown: () => state.shown?.name ?? null,
    setWindowLevel,
    windowLevel: () => (state.shown?.volume ? [...windowLevelOf(state.shown)] : null),
    files: () => state.files.map(({ name, modality, synthetic }) => (synthetic
      ? { name, modality, synthetic: true } : { name, modality })),
    valueAt: (voxel) => state.shown?.volume?.valueAt(...voxel),
    segmentationBytes: () => state.segmentation,
    lastError: () => $('error').textContent,
    lastNotice: () => $('notice').textContent,
    segmentWarnings: () => $('segment-warnings').textContent,
  };
}

let markReady;
const ready = new Promise((resolve) => {
  markReady = resolve;
});

/** Say in the system panel which WebAssembly build runs and on how many cores. */
function describeCpuModule(loaded, choice) {
  const kind = loaded.variant === 'simd' ? 'WebAssembly SIMD module (simd128)' : 'plain WebAssembly module (no SIMD)';
  const cores = navigator.hardwareConcurrency || 1;
  $('cpu-module').textContent = `CPU path: ${kind}: ${choice.why}; segmentation windows spread over up to `
    + `${cores} worker${cores === 1 ? '' : 's'} (one per core)`;
  document.body.dataset.wasm = loaded.variant;
}

function start(loaded, choice) {
  if (wasm) return;
  wasm = loaded.bindings;
  describeCpuModule(loaded, choice);
  wireControls();
  wireModel();
  exposeApi();
  window.brainmvp.ready = ready;
  editing = initEditing({
    state, wasm, seg, $, NORMAL, AXES, drawViews, refreshAll, drawSlice, voxelAt, useLabels,
    caseImages, currentModel, useModel, runSegmentation, drawLossCurve, download, showError,
    clearErrors, errorText, setBusy,
  });
  Object.assign(window.brainmvp, editing.api);
  refreshAll();
  describeBackend();
  describeModel();
  markReady();
}

// trunk injects no loader (Trunk.toml: inject_scripts = false): wasm-loader.js picks the SIMD or
// the plain build for this browser.
const choice = chooseVariant(location.search);
loadWasm(choice.variant).then((loaded) => start(loaded, choice), (error) => {
  $('version').textContent = `the WebAssembly module failed to load: ${errorText(error)}`;
  document.body.dataset.viewer = 'failed';
});

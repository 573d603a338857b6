// Correcting the segmentation by hand and teaching the model from the corrections.
//
// The tools paint on an editable copy of the shown label map (the "corrected" layer of app.js),
// through the wasm ViewerLabels methods of web-viewer/src/edit_api.rs (brainmvp_core::correction
// does the work): brush (round, size in mm), eraser, 2-D flood fill bounded by the clicked voxel's
// label and an intensity range, undo/redo, correction marks (outlined in yellow). Pointer events
// serve mouse, pen and touch alike; a stroke stays on the slice it started on.
//
// Teach: the corrected map and its weight classes go to the worker's fine-tuning (the focus
// decides the weights), the taught model becomes the page's fine-tuned model, the case is
// segmented again, and the status says what changed.
//
// Hooks for tests: input[name=tool] (none | brush | eraser | fill) · #paint-label · #brush-mm ·
// #fill-low · #fill-high · #undo · #redo · #overlay-visible · #side-by-side · #view-model ·
// #download-corrected · #download-corrections · #corrections-file · #edit-status
// (data-corrected: voxels marked, data-undo / data-redo: depths) · #teach-focus · #teach-steps ·
// #teach-lr · #teach · #teach-cancel · #teach-progress · #teach-curve · #teach-status
// (data-state: running | done | cancelled | failed). window.brainmvp gains:
//   pixelOf(axis, [x, y, z]) → [clientX, clientY] of the voxel's centre on view `axis` (at the
//                             crosshair's slice) or null
//   correctedBytes() / correctionsBytes() → the corrected map / the correction mask as .nii.gz
//   editState() → {corrected, slices, undo, redo} or null without a corrected map
//   taught() → {model: Uint8Array, losses, seconds, backend, changed, dice: [tc, wt, et]} of the
//              last Teach, or null

/** Brush steps of the [ and ] keys, in mm. */
const BRUSH_STEP_MM = 1;

/** The page (app.js) and its state, set by initEditing. */
let app = null;
let state = null;
let wasm = null;
let seg = null;
let $ = null;
let stroke = null; // {axis, pointerId, last: [x, y, z]}
let lastAxis = 0; // the view last painted on (the side-by-side view shows it)
let taught = null;
let teaching = null; // {cancelled}

const tool = () => document.querySelector('input[name="tool"]:checked')?.value ?? 'none';
const corrected = () => state.layers.corrected;

function setTool(value) {
  const input = document.querySelector(`input[name="tool"][value="${value}"]`);
  if (input) input.checked = true;
  applyTool();
}

function applyTool() {
  const painting = tool() !== 'none';
  for (const axis of [0, 1, 2]) {
    const canvas = $(`view-${app.AXES[axis]}`);
    canvas.style.touchAction = painting ? 'none' : '';
    canvas.classList.toggle('painting', painting);
  }
}

/** The label values offered: BraTS names for 1, 2 and the enhancing label, plus any other
 * label of the shown map. */
function renderLabelPicker() {
  const picker = $('paint-label');
  const present = Object.keys(currentCounts()).map(Number);
  const enhancing = present.includes(3) && !present.includes(4) ? 3 : 4;
  const values = [...new Set([1, 2, enhancing, ...present])].sort((a, b) => a - b);
  const chosen = picker.value;
  picker.replaceChildren(...values.map((value) => new Option(
    `${value} ${wasm.bratsLabelName(value) ?? ''}`.trim(), String(value))));
  picker.value = values.map(String).includes(chosen) ? chosen : String(values.includes(2) ? 2 : values[0]);
  $('paint-swatch').style.background = `rgb(${[...wasm.labelColor(Number(picker.value))].join(',')})`;
}

function currentCounts() {
  const counts = state.overlay?.labels.labelCounts() ?? [];
  const result = {};
  for (let at = 0; at < counts.length; at += 2) result[counts[at]] = counts[at + 1];
  return result;
}

/** The corrected layer, made from the shown map (or an empty one) on the first stroke. */
function editableLayer() {
  if (state.overlay?.source === 'edit') return state.overlay;
  if (corrected()) {
    state.overlay = corrected();
    return corrected();
  }
  const volume = state.shown?.volume;
  if (!volume) return null;
  const base = state.overlay ?? state.layers.prediction ?? state.layers.truth;
  const name = 'corrected_seg.nii.gz';
  const labels = base ? base.labels.editableCopy(name) : wasm.emptyLabelsLike(volume, name);
  app.useLabels(labels, name, 'edit');
  return corrected();
}

function paintLabel() {
  return tool() === 'eraser' ? 0 : Number($('paint-label').value);
}

function fillRange() {
  const [window_, level] = state.windowLevel.get(state.shown.name) ?? [Infinity, 0];
  const low = $('fill-low').value === '' ? level - window_ / 2 : Number($('fill-low').value);
  const high = $('fill-high').value === '' ? level + window_ / 2 : Number($('fill-high').value);
  return [low, high];
}

function startStroke(event, axis) {
  if (tool() === 'none' || event.button !== 0 || teaching) return;
  const voxel = app.voxelAt(event, axis);
  if (!voxel) return;
  event.preventDefault(); // no compatibility mouse events: the crosshair stays
  const layer = editableLayer();
  if (!layer) return;
  lastAxis = axis;
  try {
    layer.labels.beginStroke(axis, state.cursor[app.NORMAL[axis]]);
    if (tool() === 'fill') {
      const [low, high] = fillRange();
      layer.labels.fill(state.shown.volume, ...voxel, paintLabel(), low, high);
      finishStroke();
      return;
    }
    layer.labels.brush(...voxel, Number($('brush-mm').value), paintLabel());
    event.currentTarget.setPointerCapture?.(event.pointerId);
    stroke = { axis, pointerId: event.pointerId, last: voxel };
    app.drawViews();
  } catch (error) {
    app.showError(`correct: ${app.errorText(error)}`);
  }
}

function continueStroke(event, axis) {
  if (!stroke || stroke.pointerId !== event.pointerId || stroke.axis !== axis) return;
  const voxel = app.voxelAt(event, axis);
  if (!voxel) return;
  event.preventDefault();
  corrected().labels.brushLine(stroke.last, voxel, Number($('brush-mm').value), paintLabel());
  stroke.last = voxel;
  app.drawViews();
}

function finishStroke() {
  stroke = null;
  corrected()?.labels.endStroke();
  state.editVersion = (state.editVersion ?? 0) + 1;
  app.refreshAll();
}

function wireCanvas(axis) {
  const canvas = $(`view-${app.AXES[axis]}`);
  canvas.addEventListener('pointerdown', (event) => startStroke(event, axis));
  canvas.addEventListener('pointermove', (event) => continueStroke(event, axis));
  for (const type of ['pointerup', 'pointercancel', 'lostpointercapture']) {
    canvas.addEventListener(type, (event) => {
      if (stroke && stroke.pointerId === event.pointerId) finishStroke();
    });
  }
}

function undoRedo(redo) {
  const layer = corrected();
  if (!layer || teaching) return;
  if (redo ? layer.labels.redo() : layer.labels.undo()) {
    state.overlay = layer;
    state.editVersion = (state.editVersion ?? 0) + 1;
    app.refreshAll();
  }
}

/** Buttons, counts and the label picker after any change (app.js's refreshAll; not on every
 * redraw: the counts read the whole map). */
function render() {
  const layer = corrected();
  const labels = layer?.labels;
  $('undo').disabled = !labels?.undoDepth() || Boolean(teaching);
  $('redo').disabled = !labels?.redoDepth() || Boolean(teaching);
  $('download-corrected').disabled = !layer;
  $('download-corrections').disabled = !layer;
  $('teach').disabled = !labels?.correctedCount() || Boolean(teaching);
  const status = $('edit-status');
  status.dataset.corrected = String(labels?.correctedCount() ?? 0);
  status.dataset.undo = String(labels?.undoDepth() ?? 0);
  status.dataset.redo = String(labels?.redoDepth() ?? 0);
  status.textContent = labels
    ? `${labels.correctedCount()} voxels corrected on ${labels.paintedSliceCount()} slices · ${labels.undoDepth()} strokes to undo`
    : '';
  $('overlay-visible').checked = !state.overlayHidden;
  renderLabelPicker();
}

/** The model's map on the slice last painted, beside the views (#side-by-side). */
function drawSideBySide() {
  const show = $('side-by-side').checked && Boolean(state.layers.prediction) && Boolean(state.shown?.volume);
  $('model-figure').hidden = !show;
  if (!show) return;
  const layer = state.overlayHidden ? null : state.layers.prediction;
  app.drawSlice($('view-model'), lastAxis, layer);
  const axis = app.AXES[lastAxis];
  $('model-view-slice').textContent = `${axis} ${state.cursor[app.NORMAL[lastAxis]] + 1}`;
}

function onKey(event) {
  if (event.target.closest?.('input, select, textarea') && event.target.type !== 'radio') return;
  const key = event.key.toLowerCase();
  const command = event.ctrlKey || event.metaKey;
  if (command && key === 'z') undoRedo(event.shiftKey);
  else if (command && key === 'y') undoRedo(true);
  else if (command) return;
  else if (key === 'b') setTool('brush');
  else if (key === 'e') setTool('eraser');
  else if (key === 'f') setTool('fill');
  else if (key === 'n' || key === 'escape') setTool('none');
  else if (key === 'o') toggleOverlay();
  else if (key === '[' || key === ']') stepBrush(key === ']' ? BRUSH_STEP_MM : -BRUSH_STEP_MM);
  else if (/^[1-9]$/.test(key) && $('paint-label').querySelector(`option[value="${key}"]`)) {
    $('paint-label').value = key;
    render();
  } else return;
  event.preventDefault();
}

function toggleOverlay() {
  state.overlayHidden = !state.overlayHidden;
  $('overlay-visible').checked = !state.overlayHidden;
  app.drawViews();
}

function stepBrush(millimetres) {
  $('brush-mm').value = String(Math.max(0.5, Number($('brush-mm').value) + millimetres));
}

async function loadCorrections(file) {
  const layer = editableLayer();
  if (!layer) {
    app.showError(`${file.name}: load an image and a label map first`);
    return;
  }
  try {
    layer.labels.loadCorrections(file.name, new Uint8Array(await file.arrayBuffer()));
    state.editVersion = (state.editVersion ?? 0) + 1;
    app.refreshAll();
  } catch (error) {
    app.showError(app.errorText(error));
  }
}

// ------------------------------------------------------------------------------ teaching

function teachingCase(layer, focus) {
  return {
    images: app.caseImages(),
    label: { name: 'corrected_seg.nii.gz', bytes: layer.labels.toNifti().buffer },
    weights: { name: 'weight_classes.nii.gz', bytes: layer.labels.weightClassesNifti(focus).buffer },
  };
}

function setTeachState(value, text) {
  $('teach-status').dataset.state = value;
  $('teach-status').textContent = text;
}

async function teach() {
  const layer = corrected();
  if (!layer?.labels.correctedCount()) {
    app.showError('teach: paint a correction first');
    return;
  }
  app.clearErrors();
  const focus = $('teach-focus').value;
  const steps = Number($('teach-steps').value);
  const losses = [];
  teaching = { cancelled: false };
  app.setBusy(true);
  render();
  $('teach-cancel').disabled = false;
  setTeachState('running', `teaching ${steps} steps (${focus})…`);
  const started = performance.now();
  try {
    const model = await app.currentModel();
    const result = await seg.finetune({
      model,
      backend: $('backend-choice').value,
      cases: [teachingCase(layer, focus)],
      steps,
      lr: Number($('teach-lr').value),
      focus,
      onLoss: (step, loss) => {
        losses.push(loss);
        $('teach-progress').max = steps;
        $('teach-progress').value = step;
        setTeachState('running', `teaching: step ${step}/${steps}, loss ${Number(loss).toFixed(4)}`);
        app.drawLossCurve($('teach-curve'), losses);
      },
    });
    const seconds = (performance.now() - started) / 1000;
    if (teaching.cancelled) {
      setTeachState('cancelled', `cancelled after ${losses.length} steps; the model is unchanged`);
      return;
    }
    app.useModel({ name: 'taught.bmvp', bytes: result.model });
    await resegment(layer, { model: result.model, losses, seconds, backend: result.backend, focus });
  } catch (error) {
    setTeachState('failed', `teaching failed: ${app.errorText(error)}`);
    app.showError(`teach: ${app.errorText(error)}`);
  } finally {
    teaching = null;
    $('teach-cancel').disabled = true;
    app.setBusy(false);
    render();
  }
}

/** Segment again with the taught model and say what changed against the previous map. */
async function resegment(layer, run) {
  const previous = state.layers.prediction;
  state.layers.prediction = null; // kept (not freed) for the comparison
  const before = previous ? [...previous.labels.diceAgainst(layer.labels)] : null;
  setTeachState('running', `taught ${run.losses.length} steps in ${run.seconds.toFixed(1)} s; segmenting again…`);
  const done = await app.runSegmentation();
  const now = state.layers.prediction;
  if (!done || !now) {
    if (!state.layers.prediction && previous) app.useLabels(previous.labels, previous.name, 'model');
    setTeachState('failed', 'the taught model is ready, but segmenting again failed');
    return;
  }
  const changed = previous ? now.labels.differentVoxels(previous.labels) : null;
  const dice = [...now.labels.diceAgainst(layer.labels)];
  previous?.labels.free();
  taught = { ...run, changed, dice, diceBefore: before };
  const format = (scores) => `WT ${scores[1].toFixed(3)} · TC ${scores[0].toFixed(3)} · ET ${scores[2].toFixed(3)}`;
  const was = before ? ` (before: ${format(before)})` : '';
  setTeachState('done', `taught ${run.losses.length} steps (${run.focus}) in ${run.seconds.toFixed(1)} s on ${run.backend}; `
    + `segmented again: ${changed ?? '–'} voxels changed; Dice of the new map against the corrected one: ${format(dice)}${was}`);
}

function setBusy(busy) {
  $('teach').disabled = busy || !corrected()?.labels.correctedCount();
}

function wire() {
  for (const axis of [0, 1, 2]) wireCanvas(axis);
  for (const input of document.querySelectorAll('input[name="tool"]')) input.addEventListener('change', applyTool);
  $('paint-label').addEventListener('change', render);
  $('undo').addEventListener('click', () => undoRedo(false));
  $('redo').addEventListener('click', () => undoRedo(true));
  $('overlay-visible').addEventListener('change', () => {
    state.overlayHidden = !$('overlay-visible').checked;
    app.drawViews();
  });
  $('side-by-side').addEventListener('change', () => app.drawViews());
  $('download-corrected').addEventListener('click', () => {
    if (corrected()) app.download(corrected().labels.toNifti(), 'corrected_seg.nii.gz');
  });
  $('download-corrections').addEventListener('click', () => {
    if (corrected()) app.download(corrected().labels.correctionsNifti(), 'corrections.nii.gz');
  });
  $('corrections-file').addEventListener('change', async (event) => {
    if (event.target.files[0]) await loadCorrections(event.target.files[0]);
    event.target.value = '';
  });
  $('teach').addEventListener('click', () => teach());
  $('teach-cancel').addEventListener('click', () => {
    if (!teaching) return;
    teaching.cancelled = true;
    seg.stop();
  });
  document.addEventListener('keydown', onKey);
}

/** Client coordinates of the centre of `voxel` on view `axis` (the crosshair's slice). */
function pixelOf(axis, voxel) {
  const volume = state.shown?.volume;
  const pixel = volume?.voxelToPixel(axis, ...voxel);
  if (!pixel) return null;
  const dims = volume.dims();
  const width = axis === 2 ? dims[1] : dims[0];
  const height = axis === 0 ? dims[1] : dims[2];
  const rect = $(`view-${app.AXES[axis]}`).getBoundingClientRect();
  return [rect.left + ((pixel[0] + 0.5) * rect.width) / width, rect.top + ((pixel[1] + 0.5) * rect.height) / height];
}

/** Wire the tools and Teach to the page `context` (app.js's state and functions); returns
 * {drawSideBySide, render, setBusy, api} (render: the tools' buttons, counts and label picker
 * after a change; api: the window.brainmvp hooks listed above). */
export function initEditing(context) {
  app = context;
  ({ state, wasm, seg, $ } = context);
  wire();
  applyTool();
  return {
    drawSideBySide,
    render,
    setBusy,
    api: {
      pixelOf,
      correctedBytes: () => corrected()?.labels.toNifti() ?? null,
      correctionsBytes: () => corrected()?.labels.correctionsNifti() ?? null,
      editState: () => {
        const labels = corrected()?.labels;
        return labels ? {
          corrected: labels.correctedCount(), slices: labels.paintedSliceCount(),
          undo: labels.undoDepth(), redo: labels.redoDepth(),
        } : null;
      },
      taught: () => taught,
    },
  };
}

//! The page's correction tools on a label map (wasm32 only): an editable copy of a
//! [`ViewerLabels`], strokes of the brush, eraser and fill on one view's slice, undo/redo, and
//! the files that leave the page: the corrected map and its correction mask on the input's grid
//! and affine, and the weight classes a "Teach" run trains with. The tools themselves are
//! `brainmvp_core::correction` (host-tested).

use brainmvp_core::correction::{Corrections, SlicePlane, TeachingFocus};
use brainmvp_core::{nifti, Error, Volume};
use wasm_bindgen::prelude::*;

use crate::render::{decode_nifti, RasLabelMap};
use crate::viewer_api::{axis_of, to_js, ViewerLabels, ViewerVolume};

const NOT_EDITABLE: &str = "this label map is not an editable copy (editableCopy)";

/// An empty editable label map named `name` on the grid of `image` (painting from scratch).
#[wasm_bindgen(js_name = emptyLabelsLike)]
pub fn empty_labels_like(image: &ViewerVolume, name: &str) -> ViewerLabels {
    let ras = Volume::filled(image.view.ras.dims, image.view.ras.affine, 0u8);
    let labels = RasLabelMap {
        ras,
        reorientation: image.view.reorientation.clone(),
    };
    ViewerLabels {
        name: name.to_string(),
        corrections: Some(Corrections::new(&labels.ras)),
        labels,
        warnings: Vec::new(),
    }
}

#[wasm_bindgen]
impl ViewerLabels {
    /// A copy named `name` that the tools can paint on, with no correction yet.
    #[wasm_bindgen(js_name = editableCopy)]
    pub fn editable_copy(&self, name: &str) -> ViewerLabels {
        ViewerLabels {
            name: name.to_string(),
            labels: self.labels.clone(),
            warnings: Vec::new(),
            corrections: Some(Corrections::new(&self.labels.ras)),
        }
    }

    /// Whether this map is an editable copy.
    #[wasm_bindgen(js_name = isEditable)]
    pub fn is_editable(&self) -> bool {
        self.corrections.is_some()
    }

    /// Start a stroke on slice `index` of view `axis` (0 axial, 1 coronal, 2 sagittal).
    #[wasm_bindgen(js_name = beginStroke)]
    pub fn begin_stroke(&mut self, axis: u32, index: u32) -> Result<(), JsError> {
        let plane = SlicePlane {
            normal_axis: axis_of(axis)?.normal(),
            index: index as usize,
        };
        let (labels, corrections) = self.editing()?;
        corrections.begin_stroke(labels, plane).map_err(to_js)
    }

    /// A round brush stamp of `diameter_mm` at RAS voxel `(x, y, z)` painting `label` (0
    /// erases); returns the voxels stamped.
    pub fn brush(
        &mut self,
        x: u32,
        y: u32,
        z: u32,
        diameter_mm: f64,
        label: u8,
    ) -> Result<u32, JsError> {
        let (labels, corrections) = self.editing()?;
        let centre = [x, y, z].map(|at| at as usize);
        let stamped = corrections.brush(labels, centre, diameter_mm, label);
        stamped.map(|count| count as u32).map_err(to_js)
    }

    /// Brush stamps along the line from RAS voxel `from` to `to` (a dragged pointer).
    #[wasm_bindgen(js_name = brushLine)]
    pub fn brush_line(
        &mut self,
        from: &[u32],
        to: &[u32],
        diameter_mm: f64,
        label: u8,
    ) -> Result<u32, JsError> {
        let (from, to) = (voxel_of(from)?, voxel_of(to)?);
        let (labels, corrections) = self.editing()?;
        let stamped = corrections.brush_line(labels, from, to, diameter_mm, label);
        stamped.map(|count| count as u32).map_err(to_js)
    }

    /// 2-D flood fill from RAS voxel `(x, y, z)` over the seed's label where `image` lies in
    /// `[low, high]`; returns the voxels filled.
    #[allow(clippy::too_many_arguments)]
    pub fn fill(
        &mut self,
        image: &ViewerVolume,
        x: u32,
        y: u32,
        z: u32,
        label: u8,
        low: f32,
        high: f32,
    ) -> Result<u32, JsError> {
        let (labels, corrections) = self.editing()?;
        let seed = [x, y, z].map(|at| at as usize);
        let filled = corrections.fill(labels, &image.view.ras, seed, label, [low, high]);
        filled.map(|count| count as u32).map_err(to_js)
    }

    /// Close the stroke; returns the voxels it changed (0: not an undo step).
    #[wasm_bindgen(js_name = endStroke)]
    pub fn end_stroke(&mut self) -> u32 {
        match self.editing() {
            Ok((labels, corrections)) => corrections.end_stroke(labels) as u32,
            Err(_) => 0,
        }
    }

    /// Take back the last stroke; `false` when there is none.
    pub fn undo(&mut self) -> Result<bool, JsError> {
        let (labels, corrections) = self.editing()?;
        corrections.undo(labels).map_err(to_js)
    }

    /// Paint again the last stroke taken back; `false` when there is none.
    pub fn redo(&mut self) -> Result<bool, JsError> {
        let (labels, corrections) = self.editing()?;
        corrections.redo(labels).map_err(to_js)
    }

    /// Strokes that can be undone.
    #[wasm_bindgen(js_name = undoDepth)]
    pub fn undo_depth(&self) -> u32 {
        self.corrections
            .as_ref()
            .map_or(0, |corrections| corrections.undo_depth() as u32)
    }

    /// Strokes that can be redone.
    #[wasm_bindgen(js_name = redoDepth)]
    pub fn redo_depth(&self) -> u32 {
        self.corrections
            .as_ref()
            .map_or(0, |corrections| corrections.redo_depth() as u32)
    }

    /// Voxels marked as corrections.
    #[wasm_bindgen(js_name = correctedCount)]
    pub fn corrected_count(&self) -> u32 {
        self.corrections
            .as_ref()
            .map_or(0, |corrections| corrections.marked_count() as u32)
    }

    /// Slices holding a correction (on the view each was painted in).
    #[wasm_bindgen(js_name = paintedSliceCount)]
    pub fn painted_slice_count(&self) -> u32 {
        self.corrections
            .as_ref()
            .map_or(0, |corrections| corrections.painted_slices().len() as u32)
    }

    /// Whether RAS voxel `(x, y, z)` is a correction.
    #[wasm_bindgen(js_name = isCorrected)]
    pub fn is_corrected(&self, x: u32, y: u32, z: u32) -> bool {
        let [x, y, z] = [x, y, z].map(|at| at as usize);
        let inside = self.labels.label_at(x, y, z).is_some();
        inside
            && self
                .corrections
                .as_ref()
                .is_some_and(|c| c.is_marked(self.labels.ras.index(x, y, z)))
    }

    /// Voxels whose label differs from `other`'s (same grid).
    #[wasm_bindgen(js_name = differentVoxels)]
    pub fn different_voxels(&self, other: &ViewerLabels) -> Result<u32, JsError> {
        if other.labels.ras.dims != self.labels.ras.dims {
            return Err(JsError::new(&format!(
                "{}: grid {:?} differs from {}'s {:?}",
                other.name, other.labels.ras.dims, self.name, self.labels.ras.dims
            )));
        }
        let pairs = self.labels.ras.data.iter().zip(&other.labels.ras.data);
        Ok(pairs.filter(|(a, b)| a != b).count() as u32)
    }

    /// The label map as `.nii.gz` on the input's grid and affine (uint8).
    #[wasm_bindgen(js_name = toNifti)]
    pub fn to_nifti(&self) -> Result<Vec<u8>, JsError> {
        self.on_input_grid(&self.labels.ras.data)
    }

    /// The correction mask as `.nii.gz` on the input's grid (0 none; 1, 2, 3: painted in a
    /// sagittal, coronal or axial slice), for [`Self::load_corrections`] later.
    #[wasm_bindgen(js_name = correctionsNifti)]
    pub fn corrections_nifti(&self) -> Result<Vec<u8>, JsError> {
        let corrections = self
            .corrections
            .as_ref()
            .ok_or_else(|| JsError::new(NOT_EDITABLE))?;
        self.on_input_grid(corrections.marks())
    }

    /// The weight class of every voxel for a teaching run with `focus` (`corrected-slices` or
    /// `up-weighted`), as `.nii.gz` on the input's grid.
    #[wasm_bindgen(js_name = weightClassesNifti)]
    pub fn weight_classes_nifti(&self, focus: &str) -> Result<Vec<u8>, JsError> {
        let focus = TeachingFocus::from_name(focus).ok_or_else(|| {
            JsError::new(&format!(
                "teaching focus {focus:?} is not corrected-slices or up-weighted"
            ))
        })?;
        let corrections = self
            .corrections
            .as_ref()
            .ok_or_else(|| JsError::new(NOT_EDITABLE))?;
        self.on_input_grid(&focus.weight_classes(corrections, self.labels.ras.dims))
    }

    /// Read the correction marks of this map back from a mask file (as written by
    /// [`Self::corrections_nifti`]); returns the voxels marked.
    #[wasm_bindgen(js_name = loadCorrections)]
    pub fn load_corrections(&mut self, name: &str, bytes: &[u8]) -> Result<u32, JsError> {
        let image = decode_nifti(bytes, name).map_err(to_js)?;
        let mask = RasLabelMap::from_values(&image.volume, name).map_err(to_js)?;
        let corrections = Corrections::new(&self.labels.ras)
            .with_marks(&mask.ras, name)
            .map_err(to_js)?;
        let marked = corrections.marked_count() as u32;
        self.corrections = Some(corrections);
        Ok(marked)
    }
}

impl ViewerLabels {
    fn editing(&mut self) -> Result<(&mut Volume<u8>, &mut Corrections), JsError> {
        let corrections = self
            .corrections
            .as_mut()
            .ok_or_else(|| JsError::new(NOT_EDITABLE))?;
        Ok((&mut self.labels.ras, corrections))
    }

    /// `values` (on this map's RAS grid) as `.nii.gz` on the input's grid and affine.
    fn on_input_grid(&self, values: &[u8]) -> Result<Vec<u8>, JsError> {
        let ras = Volume {
            dims: self.labels.ras.dims,
            affine: self.labels.ras.affine,
            data: values.to_vec(),
        };
        let on_input = self.labels.reorientation.undo(&ras).map_err(to_js)?;
        nifti::encode_u8(&on_input, true)
            .map_err(|err| to_js(Error::new(&self.name, err.to_string())))
    }
}

fn voxel_of(values: &[u32]) -> Result<[usize; 3], JsError> {
    match values {
        [x, y, z] => Ok([*x as usize, *y as usize, *z as usize]),
        _ => Err(JsError::new("a voxel is [x, y, z]")),
    }
}

//! The viewer's JavaScript API (wasm32 only): decode NIfTI files dropped on the page, slice them,
//! read values under the cursor and guess modalities from file names.
//!
//! Views are numbered `0` axial, `1` coronal, `2` sagittal; voxel coordinates are on the RAS grid
//! of [`crate::render`]. Every failure is a `JsError` whose message is one line naming the file.

use brainmvp_core::cohort::{classify_file_name, FileRole};
use brainmvp_core::correction::Corrections;
use brainmvp_core::nifti;
use brainmvp_core::volume::voxel_to_world;
use wasm_bindgen::prelude::*;

use crate::render::{self, decode_nifti, Axis, Overlay, RasLabelMap, ViewVolume};

/// A loaded intensity image (one modality).
#[wasm_bindgen]
pub struct ViewerVolume {
    pub(crate) name: String,
    pub(crate) view: ViewVolume,
    warnings: Vec<String>,
}

/// A loaded label map (segmentation); an editable copy also holds its hand corrections
/// (`edit_api`).
#[wasm_bindgen]
pub struct ViewerLabels {
    pub(crate) name: String,
    pub(crate) labels: RasLabelMap,
    pub(crate) warnings: Vec<String>,
    pub(crate) corrections: Option<Corrections>,
}

/// A rendered slice: `width × height` RGBA pixels from the top-left corner.
#[wasm_bindgen]
pub struct RenderedSlice {
    width: usize,
    height: usize,
    rgba: Vec<u8>,
}

/// Decode an image file (`.nii` or `.nii.gz`) for viewing.
#[wasm_bindgen(js_name = loadVolume)]
pub fn load_volume(name: &str, bytes: &[u8]) -> Result<ViewerVolume, JsError> {
    let image = decode_nifti(bytes, name).map_err(to_js)?;
    Ok(ViewerVolume {
        name: name.to_string(),
        view: ViewVolume::from_image(&image),
        warnings: image.warnings,
    })
}

/// Decode a label map file; an error when a voxel is not a whole number in 0..=255.
#[wasm_bindgen(js_name = loadLabels)]
pub fn load_labels(name: &str, bytes: &[u8]) -> Result<ViewerLabels, JsError> {
    let image = decode_nifti(bytes, name).map_err(to_js)?;
    let labels = RasLabelMap::from_values(&image.volume, name).map_err(to_js)?;
    Ok(ViewerLabels {
        name: name.to_string(),
        labels,
        warnings: image.warnings,
        corrections: None,
    })
}

/// Decode an image file onto the RAS grid of `reference` (the case's first image): resampled
/// through world space when its grid differs, refused when the two do not overlap.
#[wasm_bindgen(js_name = loadVolumeOnto)]
pub fn load_volume_onto(
    name: &str,
    bytes: &[u8],
    reference: &ViewerVolume,
) -> Result<ViewerVolume, JsError> {
    let image = decode_nifti(bytes, name).map_err(to_js)?;
    let (view, note) =
        ViewVolume::onto(&image.volume, name, &reference.view, &reference.name).map_err(to_js)?;
    let mut warnings = image.warnings;
    warnings.extend(note);
    Ok(ViewerVolume {
        name: name.to_string(),
        view,
        warnings,
    })
}

/// Decode a label map onto the RAS grid of `reference` (nearest voxel when its grid differs).
#[wasm_bindgen(js_name = loadLabelsOnto)]
pub fn load_labels_onto(
    name: &str,
    bytes: &[u8],
    reference: &ViewerVolume,
) -> Result<ViewerLabels, JsError> {
    let image = decode_nifti(bytes, name).map_err(to_js)?;
    let (labels, note) =
        RasLabelMap::onto(&image.volume, name, &reference.view, &reference.name).map_err(to_js)?;
    let mut warnings = image.warnings;
    warnings.extend(note);
    Ok(ViewerLabels {
        name: name.to_string(),
        labels,
        warnings,
        corrections: None,
    })
}

/// The modality a file name says (`flair`, `t1`, `t1c`, `t2`, `mra`, `pd`, `dwi`, `adc`), `label`
/// for a segmentation, `undefined` when the name says nothing (same mapping as the CLI).
#[wasm_bindgen(js_name = guessModality)]
pub fn guess_modality(name: &str) -> Option<String> {
    classify_file_name(name).map(|role| match role {
        FileRole::Image(modality) => modality.name().to_string(),
        FileRole::Label => "label".to_string(),
    })
}

/// The modality names the page offers, in core's order (`brainmvp_core::Modality::ALL`).
#[wasm_bindgen(js_name = modalityNames)]
pub fn modality_names() -> js_sys::Array {
    brainmvp_core::Modality::ALL
        .iter()
        .map(|modality| JsValue::from_str(modality.name()))
        .collect()
}

/// The name of a BraTS label value (`necrotic core`, `oedema`, `enhancing tumour` for 3 and
/// 4, the BraTS 2023 and 2021 values), `undefined` for others: core's names, as the CLI's.
#[wasm_bindgen(js_name = bratsLabelName)]
pub fn brats_label_name(value: u8) -> Option<String> {
    let enhancing = if value == 3 { 3 } else { 4 };
    brainmvp_core::labels::brats_label_name(value, enhancing)
        .filter(|_| value > 0)
        .map(str::to_string)
}

/// `[r, g, b]` of a label in the overlay.
#[wasm_bindgen(js_name = labelColor)]
pub fn label_color(label: u8) -> Vec<u8> {
    render::label_color(label).to_vec()
}

#[wasm_bindgen]
impl ViewerVolume {
    /// The file name it was loaded from.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// `[x, y, z]` voxels on the RAS grid.
    pub fn dims(&self) -> Vec<u32> {
        to_u32(&self.view.dims())
    }

    /// Voxel size in mm along R, A, S.
    pub fn spacing(&self) -> Vec<f64> {
        self.view.spacing().to_vec()
    }

    /// `[low, high]`: 1st and 99th percentile of the non-zero voxels.
    #[wasm_bindgen(js_name = robustRange)]
    pub fn robust_range(&self) -> Vec<f32> {
        self.view.robust_range.to_vec()
    }

    /// `[min, max]` of the voxels.
    #[wasm_bindgen(js_name = fullRange)]
    pub fn full_range(&self) -> Vec<f32> {
        self.view.full_range.to_vec()
    }

    /// The file's orientation code before reorientation (e.g. `LAS`).
    #[wasm_bindgen(js_name = sourceOrientation)]
    pub fn source_orientation(&self) -> String {
        nifti::orientation_code(&self.view.reorientation.source_affine)
    }

    /// What the decoder noted about the file (NaN voxels zeroed, ...), one per line.
    pub fn warnings(&self) -> String {
        self.warnings.join("\n")
    }

    /// `[width, height]` of one pixel of view `axis` in mm.
    #[wasm_bindgen(js_name = pixelSpacing)]
    pub fn pixel_spacing(&self, axis: u32) -> Result<Vec<f64>, JsError> {
        Ok(self.view.pixel_spacing(axis_of(axis)?).to_vec())
    }

    /// The value of RAS voxel `(x, y, z)`; `undefined` outside the grid.
    #[wasm_bindgen(js_name = valueAt)]
    pub fn value_at(&self, x: u32, y: u32, z: u32) -> Option<f32> {
        self.view.value_at(x as usize, y as usize, z as usize)
    }

    /// World (scanner) coordinates in mm of RAS voxel `(x, y, z)`.
    #[wasm_bindgen(js_name = worldAt)]
    pub fn world_at(&self, x: u32, y: u32, z: u32) -> Vec<f64> {
        voxel_to_world(&self.view.ras.affine, [x, y, z].map(f64::from)).to_vec()
    }

    /// The RAS voxel `[x, y, z]` shown at pixel `(column, row)` of slice `index` of view `axis`.
    #[wasm_bindgen(js_name = pixelToVoxel)]
    pub fn pixel_to_voxel(
        &self,
        axis: u32,
        index: u32,
        column: u32,
        row: u32,
    ) -> Result<Option<Vec<u32>>, JsError> {
        let voxel = self.view.pixel_to_voxel(
            axis_of(axis)?,
            index as usize,
            column as usize,
            row as usize,
        );
        Ok(voxel.map(|voxel| to_u32(&voxel)))
    }

    /// The pixel `[column, row]` where RAS voxel `(x, y, z)` appears in view `axis`.
    #[wasm_bindgen(js_name = voxelToPixel)]
    pub fn voxel_to_pixel(
        &self,
        axis: u32,
        x: u32,
        y: u32,
        z: u32,
    ) -> Result<Option<Vec<u32>>, JsError> {
        let voxel = [x, y, z].map(|at| at as usize);
        let pixel = self.view.voxel_to_pixel(axis_of(axis)?, voxel);
        Ok(pixel.map(|(column, row)| vec![column as u32, row as u32]))
    }

    /// Slice `index` of view `axis` in grey for `window` and `level`.
    pub fn render(
        &self,
        axis: u32,
        index: u32,
        window: f32,
        level: f32,
    ) -> Result<RenderedSlice, JsError> {
        let slice = self
            .view
            .render_slice(axis_of(axis)?, index as usize, window, level, None)
            .map_err(to_js)?;
        Ok(RenderedSlice::from(slice))
    }

    /// As [`Self::render`], with `labels` blended at `opacity` (0..1), except the labels in
    /// `hidden`; an error when the label map is on another grid.
    #[wasm_bindgen(js_name = renderWithLabels)]
    #[allow(clippy::too_many_arguments)]
    pub fn render_with_labels(
        &self,
        axis: u32,
        index: u32,
        window: f32,
        level: f32,
        labels: &ViewerLabels,
        opacity: f32,
        hidden: &[u8],
    ) -> Result<RenderedSlice, JsError> {
        let overlay = Overlay {
            labels: &labels.labels,
            opacity,
            hidden,
            marks: labels.corrections.as_ref().map(Corrections::marks),
        };
        let slice = self
            .view
            .render_slice(axis_of(axis)?, index as usize, window, level, Some(overlay))
            .map_err(|err| JsError::new(&format!("{}: {}", labels.name, err.cause)))?;
        Ok(RenderedSlice::from(slice))
    }
}

#[wasm_bindgen]
impl ViewerLabels {
    /// The file name it was loaded from.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// `[x, y, z]` voxels on the RAS grid.
    pub fn dims(&self) -> Vec<u32> {
        to_u32(&self.labels.ras.dims)
    }

    /// What the decoder noted about the file (first volume of a 4D file, resampled, ...).
    pub fn warnings(&self) -> String {
        self.warnings.join("\n")
    }

    /// The label of RAS voxel `(x, y, z)`; `undefined` outside the grid.
    #[wasm_bindgen(js_name = labelAt)]
    pub fn label_at(&self, x: u32, y: u32, z: u32) -> Option<u8> {
        self.labels.label_at(x as usize, y as usize, z as usize)
    }

    /// `[label, voxels, label, voxels, ...]` for every label present except 0.
    #[wasm_bindgen(js_name = labelCounts)]
    pub fn label_counts(&self) -> Vec<u32> {
        self.labels
            .label_counts()
            .into_iter()
            .flat_map(|(label, count)| [u32::from(label), count as u32])
            .collect()
    }

    /// The mean RAS voxel `[x, y, z]` of the labelled voxels; `undefined` when none is labelled.
    pub fn centroid(&self) -> Option<Vec<u32>> {
        self.labels.centroid().map(|voxel| to_u32(&voxel))
    }

    /// The centre `[x, y, z]` of the largest connected labelled region; `undefined` when none.
    #[wasm_bindgen(js_name = lesionCentre)]
    pub fn lesion_centre(&self) -> Option<Vec<u32>> {
        self.labels.lesion_centre().map(|voxel| to_u32(&voxel))
    }

    /// Dice `[TC, WT, ET]` of this label map against `truth` (BraTS regions, same grid).
    #[wasm_bindgen(js_name = diceAgainst)]
    pub fn dice_against(&self, truth: &ViewerLabels) -> Result<Vec<f64>, JsError> {
        let scores = self.labels.brats_dice(&truth.labels).map_err(to_js)?;
        Ok(scores.to_vec())
    }

    /// Volume of one voxel in millilitres.
    #[wasm_bindgen(js_name = voxelMl)]
    pub fn voxel_ml(&self) -> f64 {
        self.labels.voxel_ml()
    }
}

#[wasm_bindgen]
impl RenderedSlice {
    /// Pixels per row.
    #[wasm_bindgen(getter)]
    pub fn width(&self) -> u32 {
        self.width as u32
    }

    /// Rows.
    #[wasm_bindgen(getter)]
    pub fn height(&self) -> u32 {
        self.height as u32
    }

    /// The RGBA bytes (a copy, for `new ImageData(new Uint8ClampedArray(...), width, height)`).
    pub fn rgba(&self) -> Vec<u8> {
        self.rgba.clone()
    }
}

impl From<render::Slice> for RenderedSlice {
    fn from(slice: render::Slice) -> Self {
        Self {
            width: slice.width,
            height: slice.height,
            rgba: slice.rgba,
        }
    }
}

pub(crate) fn axis_of(index: u32) -> Result<Axis, JsError> {
    Axis::from_index(index).ok_or_else(|| {
        JsError::new(&format!(
            "view {index} is not 0 (axial), 1 (coronal) or 2 (sagittal)"
        ))
    })
}

pub(crate) fn to_js(err: brainmvp_core::Error) -> JsError {
    JsError::new(&err.to_string())
}

fn to_u32(values: &[usize; 3]) -> Vec<u32> {
    values.iter().map(|&value| value as u32).collect()
}

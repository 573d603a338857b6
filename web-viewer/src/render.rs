//! Slice rendering for the viewer, independent of the browser (tested on the host).
//!
//! A [`ViewVolume`] holds an image reoriented to RAS (by axis permutation and flips only, so every
//! voxel keeps its value) together with the [`Reorientation`] back to the file's own grid. Slices
//! are drawn in the neurological convention:
//!
//! | view     | slice index | screen column (left → right) | screen row (top → bottom) |
//! |----------|-------------|------------------------------|---------------------------|
//! | axial    | z (I → S)   | x: patient left → right      | y: anterior → posterior   |
//! | coronal  | y (P → A)   | x: patient left → right      | z: superior → inferior    |
//! | sagittal | x (L → R)   | y: anterior → posterior      | z: superior → inferior    |
//!
//! so the patient's left is on the screen's left, anterior is up in the axial view and superior is
//! up in the coronal and sagittal views. Pixels are voxels; [`ViewVolume::pixel_spacing`] gives
//! their physical size so the page can scale the canvas to the true aspect.

use brainmvp_core::metrics::{detect_enhancing_label, dice, BratsRegion};
use brainmvp_core::nifti::{self, NiftiImage, ReadLimits, Reorientation};
use brainmvp_core::postprocess::{components, Connectivity};
use brainmvp_core::preprocess::regrid::{onto_reference, Regridded};
use brainmvp_core::{Error, Result, Volume};

/// Largest image the viewer opens: 64 Mi voxels (256 MiB as `f32`, e.g. 400³).
pub const MAX_VIEW_VOXELS: usize = 64 << 20;

/// Decode a `.nii`/`.nii.gz` for the page (viewer and worker alike): at most
/// [`MAX_VIEW_VOXELS`] voxels; of a 4D file the first volume, with a warning saying so. Errors
/// are one line naming `name`.
pub fn decode_nifti(bytes: &[u8], name: &str) -> Result<NiftiImage> {
    let limits = ReadLimits {
        max_voxels: MAX_VIEW_VOXELS,
    };
    nifti::read_bytes_with_limits(bytes, name, limits)
}

/// `volume` in RAS on `reference`'s RAS grid (see [`ViewVolume::onto`]).
fn onto_ras_grid(
    volume: &Volume<f32>,
    name: &str,
    reference: &ViewVolume,
    reference_name: &str,
    labels: bool,
) -> Result<(Volume<f32>, Regridded)> {
    let (ras, _) = nifti::to_ras(volume);
    let grid = (reference.ras.dims, &reference.ras.affine);
    onto_reference(name, ras, reference_name, grid, labels)
}

fn resampling_note(how: Regridded, reference_name: &str) -> Option<String> {
    match how {
        Regridded::Same => None,
        Regridded::Resampled { coverage } => Some(format!(
            "on another grid than {reference_name}: resampled onto it ({:.0} % of it covered)",
            100.0 * coverage
        )),
    }
}

/// One of the three orthogonal views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    /// Slices of constant z (RAS), seen from above.
    Axial,
    /// Slices of constant y, seen from the front.
    Coronal,
    /// Slices of constant x, seen from the left.
    Sagittal,
}

impl Axis {
    /// `0` axial, `1` coronal, `2` sagittal (the numbering of the page); `None` otherwise.
    pub fn from_index(index: u32) -> Option<Axis> {
        match index {
            0 => Some(Axis::Axial),
            1 => Some(Axis::Coronal),
            2 => Some(Axis::Sagittal),
            _ => None,
        }
    }

    /// The RAS voxel axis this view slices along (axial z, coronal y, sagittal x).
    pub fn normal(self) -> usize {
        match self {
            Axis::Axial => 2,
            Axis::Coronal => 1,
            Axis::Sagittal => 0,
        }
    }

    /// The RAS voxel axes along the screen's columns and rows.
    fn screen_axes(self) -> (usize, usize) {
        match self {
            Axis::Axial => (0, 1),
            Axis::Coronal => (0, 2),
            Axis::Sagittal => (1, 2),
        }
    }

    /// Whether the screen column runs against its voxel axis (sagittal: anterior on the left).
    fn column_reversed(self) -> bool {
        matches!(self, Axis::Sagittal)
    }
}

/// A rendered slice: `width × height` RGBA pixels, row-major from the top-left corner.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub width: usize,
    pub height: usize,
    /// `4 · width · height` bytes, alpha always 255.
    pub rgba: Vec<u8>,
}

/// How a label map is drawn over a slice.
#[derive(Debug, Clone, Copy)]
pub struct Overlay<'a> {
    pub labels: &'a RasLabelMap,
    /// 0 (invisible) to 1 (label colour only).
    pub opacity: f32,
    /// Labels not drawn.
    pub hidden: &'a [u8],
    /// Hand corrections (non-zero per marked voxel, on the label map's grid): their outline on
    /// the slice is drawn in [`CORRECTION_OUTLINE`].
    pub marks: Option<&'a [u8]>,
}

/// The colour of the outline around hand-corrected voxels.
pub const CORRECTION_OUTLINE: [u8; 3] = [255, 230, 0];

/// An intensity image on the RAS grid, ready to be sliced.
#[derive(Debug, Clone)]
pub struct ViewVolume {
    /// The image with its voxel axes pointing R, A, S.
    pub ras: Volume<f32>,
    /// How to go back to the file's grid and affine (for results written in the input's grid).
    pub reorientation: Reorientation,
    /// 1st and 99th percentile of the non-zero voxels: the default display range.
    pub robust_range: [f32; 2],
    /// Smallest and largest voxel value.
    pub full_range: [f32; 2],
}

impl ViewVolume {
    /// Reorient `volume` to RAS and measure its intensity range.
    pub fn new(volume: &Volume<f32>) -> Self {
        let (ras, reorientation) = nifti::to_ras(volume);
        let robust_range = robust_range(&ras.data);
        let full_range = full_range(&ras.data);
        Self {
            ras,
            reorientation,
            robust_range,
            full_range,
        }
    }

    /// The decoded image of a NIfTI file.
    pub fn from_image(image: &NiftiImage) -> Self {
        Self::new(&image.volume)
    }

    /// `volume` (named `name`) on the RAS grid of `reference` (named `reference_name`),
    /// resampled through world space when its grid differs (trilinear), with a note saying so;
    /// an error when the two share no world space. Results go back to the reference's file grid.
    pub fn onto(
        volume: &Volume<f32>,
        name: &str,
        reference: &ViewVolume,
        reference_name: &str,
    ) -> Result<(Self, Option<String>)> {
        let (ras, how) = onto_ras_grid(volume, name, reference, reference_name, false)?;
        let view = Self {
            robust_range: robust_range(&ras.data),
            full_range: full_range(&ras.data),
            ras,
            reorientation: reference.reorientation.clone(),
        };
        Ok((view, resampling_note(how, reference_name)))
    }

    /// Voxels along R, A, S.
    pub fn dims(&self) -> [usize; 3] {
        self.ras.dims
    }

    /// Voxel size in mm along R, A, S.
    pub fn spacing(&self) -> [f64; 3] {
        self.ras.spacing()
    }

    /// The value of RAS voxel `(x, y, z)`, `None` outside the grid.
    pub fn value_at(&self, x: usize, y: usize, z: usize) -> Option<f32> {
        contains(self.ras.dims, [x, y, z]).then(|| self.ras.get(x, y, z))
    }

    /// `(width, height)` in pixels of a slice of `axis`.
    pub fn slice_size(&self, axis: Axis) -> (usize, usize) {
        slice_size(self.ras.dims, axis)
    }

    /// Number of slices along `axis`.
    pub fn slice_count(&self, axis: Axis) -> usize {
        self.ras.dims[axis.normal()]
    }

    /// Physical `[width, height]` of one pixel of `axis` in mm (the canvas aspect).
    pub fn pixel_spacing(&self, axis: Axis) -> [f64; 2] {
        let spacing = self.spacing();
        let (column_axis, row_axis) = axis.screen_axes();
        [spacing[column_axis], spacing[row_axis]]
    }

    /// The RAS voxel shown at pixel `(column, row)` of slice `index` of `axis`; `None` outside.
    pub fn pixel_to_voxel(
        &self,
        axis: Axis,
        index: usize,
        column: usize,
        row: usize,
    ) -> Option<[usize; 3]> {
        pixel_to_voxel(self.ras.dims, axis, index, column, row)
    }

    /// The pixel `(column, row)` where RAS voxel `voxel` appears in the slices of `axis`.
    pub fn voxel_to_pixel(&self, axis: Axis, voxel: [usize; 3]) -> Option<(usize, usize)> {
        contains(self.ras.dims, voxel).then(|| voxel_to_pixel(self.ras.dims, axis, voxel))
    }

    /// Draw slice `index` of `axis` in grey with `window` width and `level` centre (values at
    /// `level - window/2` and below are black, at `level + window/2` and above white), with the
    /// label map blended over it. An error if `index` is outside the volume or the label map is
    /// on another grid.
    pub fn render_slice(
        &self,
        axis: Axis,
        index: usize,
        window: f32,
        level: f32,
        overlay: Option<Overlay<'_>>,
    ) -> Result<Slice> {
        let count = self.slice_count(axis);
        if index >= count {
            return Err(Error::new(
                "render",
                format!("slice {index} is outside the {count} slices of this view"),
            ));
        }
        if let Some(overlay) = overlay {
            if overlay.labels.ras.dims != self.ras.dims {
                return Err(Error::new(
                    "render",
                    format!(
                        "label map grid {:?} does not match the image grid {:?}",
                        overlay.labels.ras.dims, self.ras.dims
                    ),
                ));
            }
        }
        let (width, height) = self.slice_size(axis);
        let mut rgba = Vec::with_capacity(4 * width * height);
        for row in 0..height {
            for column in 0..width {
                let [x, y, z] =
                    pixel_to_voxel(self.ras.dims, axis, index, column, row).unwrap_or([0, 0, 0]);
                let grey = window_level(self.ras.get(x, y, z), window, level);
                let mut pixel = [grey; 3];
                if let Some(overlay) = overlay {
                    blend_label(&mut pixel, overlay, overlay.labels.ras.get(x, y, z));
                    if let Some(marks) = overlay.marks {
                        let marked = |column: usize, row: usize| {
                            pixel_to_voxel(self.ras.dims, axis, index, column, row)
                                .is_some_and(|[x, y, z]| marks[self.ras.index(x, y, z)] != 0)
                        };
                        if on_outline(marked, column, row, width, height) {
                            pixel = CORRECTION_OUTLINE;
                        }
                    }
                }
                rgba.extend_from_slice(&[pixel[0], pixel[1], pixel[2], 255]);
            }
        }
        Ok(Slice {
            width,
            height,
            rgba,
        })
    }
}

/// A label map on the RAS grid.
#[derive(Debug, Clone)]
pub struct RasLabelMap {
    pub ras: Volume<u8>,
    pub reorientation: Reorientation,
}

impl RasLabelMap {
    /// Reorient a label map given as floats (as decoded from NIfTI) to RAS; `name` is used in the
    /// error when a value is not a whole number in 0..=255.
    pub fn from_values(volume: &Volume<f32>, name: &str) -> Result<Self> {
        if let Some(bad) = volume
            .data
            .iter()
            .find(|value| value.fract() != 0.0 || !(0.0..=255.0).contains(*value))
        {
            return Err(Error::new(
                name,
                format!("not a label map: voxel value {bad} is not a whole number in 0..=255"),
            ));
        }
        Ok(Self::new(&volume.map(|value| value as u8)))
    }

    /// A label map given as floats (checked as in [`Self::from_values`]) on the RAS grid of
    /// `reference`, resampled by nearest voxel when its grid differs (see [`ViewVolume::onto`]).
    pub fn onto(
        volume: &Volume<f32>,
        name: &str,
        reference: &ViewVolume,
        reference_name: &str,
    ) -> Result<(Self, Option<String>)> {
        Self::from_values(volume, name)?;
        let (ras, how) = onto_ras_grid(volume, name, reference, reference_name, true)?;
        let labels = Self {
            ras: ras.map(|value| value as u8),
            reorientation: reference.reorientation.clone(),
        };
        Ok((labels, resampling_note(how, reference_name)))
    }

    /// Reorient a label map to RAS.
    pub fn new(volume: &Volume<u8>) -> Self {
        let (ras, reorientation) = nifti::to_ras(volume);
        Self { ras, reorientation }
    }

    /// The label of RAS voxel `(x, y, z)`, `None` outside the grid.
    pub fn label_at(&self, x: usize, y: usize, z: usize) -> Option<u8> {
        contains(self.ras.dims, [x, y, z]).then(|| self.ras.get(x, y, z))
    }

    /// `(label, voxel count)` of every label present except 0, in increasing label order.
    pub fn label_counts(&self) -> Vec<(u8, usize)> {
        let mut counts = [0usize; 256];
        for &label in &self.ras.data {
            counts[usize::from(label)] += 1;
        }
        (1u8..=255)
            .filter(|&label| counts[usize::from(label)] > 0)
            .map(|label| (label, counts[usize::from(label)]))
            .collect()
    }

    /// The mean RAS voxel of all labelled (non-zero) voxels, rounded; `None` without any.
    pub fn centroid(&self) -> Option<[usize; 3]> {
        self.mean_voxel(|index| self.ras.data[index] != 0)
    }

    /// The mean RAS voxel of the largest connected (26-neighbour) labelled region: where a
    /// lesion is, even when scattered specks elsewhere pull the plain centroid off it.
    pub fn lesion_centre(&self) -> Option<[usize; 3]> {
        let found = components(
            self.ras.dims,
            &self.ras.data,
            |l| l != 0,
            Connectivity::Full,
        );
        let (largest, _) = found
            .sizes
            .iter()
            .enumerate()
            .max_by_key(|(_, &size)| size)?;
        let id = largest as u32 + 1;
        self.mean_voxel(|index| found.of_voxel[index] == id)
    }

    /// Dice of this label map against `truth` (same RAS grid) for the BraTS regions TC, WT, ET,
    /// the enhancing label (4 or 3) read from the truth (else from this map, else 4). As the
    /// official metric: 1 where both are empty, 0 where only the truth is.
    pub fn brats_dice(&self, truth: &RasLabelMap) -> Result<[f64; 3]> {
        if self.ras.dims != truth.ras.dims {
            return Err(Error::new(
                "Dice",
                format!(
                    "grids differ: {:?} against the truth's {:?}",
                    self.ras.dims, truth.ras.dims
                ),
            ));
        }
        let enhancing = detect_enhancing_label(&truth.ras.data)
            .or_else(|| detect_enhancing_label(&self.ras.data))
            .unwrap_or(4);
        let mut scores = [0.0; 3];
        for (score, region) in scores.iter_mut().zip(BratsRegion::ALL) {
            *score = dice(
                &region.mask(&self.ras.data, enhancing),
                &region.mask(&truth.ras.data, enhancing),
            )?;
        }
        Ok(scores)
    }

    /// The mean RAS voxel of the voxels `selected` accepts (by index), rounded.
    fn mean_voxel(&self, selected: impl Fn(usize) -> bool) -> Option<[usize; 3]> {
        let [nx, ny, _] = self.ras.dims;
        let mut sum = [0f64; 3];
        let mut count = 0usize;
        for index in (0..self.ras.data.len()).filter(|&index| selected(index)) {
            let voxel = [index % nx, (index / nx) % ny, index / (nx * ny)];
            for (total, at) in sum.iter_mut().zip(voxel) {
                *total += at as f64;
            }
            count += 1;
        }
        (count > 0).then(|| sum.map(|total| (total / count as f64).round() as usize))
    }

    /// Volume of one voxel in millilitres.
    pub fn voxel_ml(&self) -> f64 {
        self.ras.spacing().iter().product::<f64>() / 1000.0
    }
}

/// Fixed colours for labels past the BraTS ones (cycled).
const PALETTE: [[u8; 3]; 8] = [
    [230, 25, 75],
    [60, 180, 75],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 240, 240],
    [240, 50, 230],
    [210, 245, 60],
];

/// The colour of `label`: BraTS 1 necrosis red, 2 oedema green, 3 enhancing (2023) blue,
/// 4 enhancing (2021) yellow; others from a fixed palette; 0 is black (never drawn).
pub fn label_color(label: u8) -> [u8; 3] {
    match label {
        0 => [0, 0, 0],
        1 => [220, 40, 40],
        2 => [40, 200, 60],
        3 => [50, 100, 255],
        4 => [250, 220, 30],
        other => PALETTE[usize::from(other - 5) % PALETTE.len()],
    }
}

/// Grey value of `value` for a `window` wide range centred on `level` (a window of 0 or less
/// is a threshold at `level`).
pub fn window_level(value: f32, window: f32, level: f32) -> u8 {
    if window <= 0.0 || !window.is_finite() {
        return if value >= level { 255 } else { 0 };
    }
    let low = level - window / 2.0;
    let scaled = (value - low) / window * 255.0;
    scaled.round().clamp(0.0, 255.0) as u8
}

/// Whether pixel `(column, row)` is marked and one of its four neighbours (or the slice's edge)
/// is not.
fn on_outline(
    marked: impl Fn(usize, usize) -> bool,
    column: usize,
    row: usize,
    width: usize,
    height: usize,
) -> bool {
    if !marked(column, row) {
        return false;
    }
    let edge = column == 0 || row == 0 || column + 1 == width || row + 1 == height;
    edge || !(marked(column - 1, row)
        && marked(column + 1, row)
        && marked(column, row - 1)
        && marked(column, row + 1))
}

fn blend_label(pixel: &mut [u8; 3], overlay: Overlay<'_>, label: u8) {
    if label == 0 || overlay.hidden.contains(&label) {
        return;
    }
    let opacity = overlay.opacity.clamp(0.0, 1.0);
    let color = label_color(label);
    for (channel, &tint) in pixel.iter_mut().zip(&color) {
        let mixed = f32::from(*channel) * (1.0 - opacity) + f32::from(tint) * opacity;
        *channel = mixed.round().clamp(0.0, 255.0) as u8;
    }
}

fn contains(dims: [usize; 3], voxel: [usize; 3]) -> bool {
    voxel.iter().zip(&dims).all(|(&at, &size)| at < size)
}

fn slice_size(dims: [usize; 3], axis: Axis) -> (usize, usize) {
    let (column_axis, row_axis) = axis.screen_axes();
    (dims[column_axis], dims[row_axis])
}

fn pixel_to_voxel(
    dims: [usize; 3],
    axis: Axis,
    index: usize,
    column: usize,
    row: usize,
) -> Option<[usize; 3]> {
    let (width, height) = slice_size(dims, axis);
    if column >= width || row >= height || index >= dims[axis.normal()] {
        return None;
    }
    let (column_axis, row_axis) = axis.screen_axes();
    let mut voxel = [0; 3];
    voxel[axis.normal()] = index;
    voxel[column_axis] = if axis.column_reversed() {
        width - 1 - column
    } else {
        column
    };
    // Rows run from the top: anterior (axial) or superior (coronal, sagittal) first.
    voxel[row_axis] = height - 1 - row;
    Some(voxel)
}

fn voxel_to_pixel(dims: [usize; 3], axis: Axis, voxel: [usize; 3]) -> (usize, usize) {
    let (width, height) = slice_size(dims, axis);
    let (column_axis, row_axis) = axis.screen_axes();
    let column = if axis.column_reversed() {
        width - 1 - voxel[column_axis]
    } else {
        voxel[column_axis]
    };
    (column, height - 1 - voxel[row_axis])
}

/// At most this many voxels are sampled (evenly) for the percentiles.
const PERCENTILE_SAMPLES: usize = 1 << 20;

/// 1st and 99th percentile of the non-zero values (all values when every one is zero).
pub fn robust_range(values: &[f32]) -> [f32; 2] {
    let stride = values.len().div_ceil(PERCENTILE_SAMPLES).max(1);
    let mut sample: Vec<f32> = values
        .iter()
        .step_by(stride)
        .copied()
        .filter(|value| *value != 0.0)
        .collect();
    if sample.is_empty() {
        return full_range(values);
    }
    let low = percentile(&mut sample, 0.01);
    let high = percentile(&mut sample, 0.99);
    [low, high]
}

/// The value at fraction `quantile` of the sorted values (nearest rank).
fn percentile(values: &mut [f32], quantile: f64) -> f32 {
    let rank = ((values.len() - 1) as f64 * quantile).round() as usize;
    let (_, value, _) = values.select_nth_unstable_by(rank, f32::total_cmp);
    *value
}

fn full_range(values: &[f32]) -> [f32; 2] {
    let mut range = [f32::INFINITY, f32::NEG_INFINITY];
    for &value in values {
        range[0] = range[0].min(value);
        range[1] = range[1].max(value);
    }
    if range[0] > range[1] {
        [0.0, 0.0]
    } else {
        range
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brainmvp_core::volume::IDENTITY;

    /// A 4×5×6 RAS grid with 1×2×3 mm voxels.
    fn ras_affine() -> brainmvp_core::Affine {
        [
            [1.0, 0.0, 0.0, -2.0],
            [0.0, 2.0, 0.0, -4.0],
            [0.0, 0.0, 3.0, -6.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    }

    fn single_voxel(voxel: [usize; 3], value: f32) -> ViewVolume {
        let mut volume = Volume::filled([4, 5, 6], ras_affine(), 0.0);
        volume.set(voxel[0], voxel[1], voxel[2], value);
        ViewVolume::new(&volume)
    }

    /// The `(column, row)` of every pixel whose red channel is not 0.
    fn lit_pixels(slice: &Slice) -> Vec<(usize, usize)> {
        (0..slice.width * slice.height)
            .filter(|pixel| slice.rgba[4 * pixel] != 0)
            .map(|pixel| (pixel % slice.width, pixel / slice.width))
            .collect()
    }

    #[test]
    fn a_voxel_appears_at_its_pixel_in_each_view() {
        let view = single_voxel([2, 0, 5], 100.0);
        let axial = view
            .render_slice(Axis::Axial, 5, 100.0, 50.0, None)
            .unwrap();
        assert_eq!((axial.width, axial.height), (4, 5));
        // Column = x (left to right), row 0 = most anterior y.
        assert_eq!(lit_pixels(&axial), vec![(2, 4)]);
        let coronal = view
            .render_slice(Axis::Coronal, 0, 100.0, 50.0, None)
            .unwrap();
        assert_eq!((coronal.width, coronal.height), (4, 6));
        // Row 0 = most superior z.
        assert_eq!(lit_pixels(&coronal), vec![(2, 0)]);
        let sagittal = view
            .render_slice(Axis::Sagittal, 2, 100.0, 50.0, None)
            .unwrap();
        assert_eq!((sagittal.width, sagittal.height), (5, 6));
        // Column 0 = most anterior y.
        assert_eq!(lit_pixels(&sagittal), vec![(4, 0)]);
        // Other slices are black, and the pixel holds white with full alpha.
        let other = view
            .render_slice(Axis::Axial, 4, 100.0, 50.0, None)
            .unwrap();
        assert!(lit_pixels(&other).is_empty());
        let at = 4 * (4 * axial.width + 2);
        assert_eq!(&axial.rgba[at..at + 4], &[255, 255, 255, 255]);
    }

    #[test]
    fn pixels_and_voxels_map_both_ways() {
        let view = single_voxel([0, 0, 0], 1.0);
        for axis in [Axis::Axial, Axis::Coronal, Axis::Sagittal] {
            let (width, height) = view.slice_size(axis);
            for row in 0..height {
                for column in 0..width {
                    let voxel = view.pixel_to_voxel(axis, 1, column, row).unwrap();
                    assert_eq!(voxel[axis.normal()], 1);
                    assert_eq!(view.voxel_to_pixel(axis, voxel), Some((column, row)));
                }
            }
            assert_eq!(view.pixel_to_voxel(axis, 1, width, 0), None);
        }
        assert_eq!(view.pixel_to_voxel(Axis::Axial, 6, 0, 0), None);
        assert_eq!(view.pixel_spacing(Axis::Axial), [1.0, 2.0]);
        assert_eq!(view.pixel_spacing(Axis::Coronal), [1.0, 3.0]);
        assert_eq!(view.pixel_spacing(Axis::Sagittal), [2.0, 3.0]);
        assert_eq!(view.value_at(0, 0, 0), Some(1.0));
        assert_eq!(view.value_at(4, 0, 0), None);
    }

    #[test]
    fn window_and_level_map_the_range_onto_black_to_white() {
        // Window 200 around 100: 0 → black, 200 → white, 100 → mid grey, linear between.
        assert_eq!(window_level(0.0, 200.0, 100.0), 0);
        assert_eq!(window_level(-50.0, 200.0, 100.0), 0);
        assert_eq!(window_level(200.0, 200.0, 100.0), 255);
        assert_eq!(window_level(1e9, 200.0, 100.0), 255);
        assert_eq!(window_level(100.0, 200.0, 100.0), 128);
        assert_eq!(window_level(40.0, 200.0, 100.0), 51);
        // A zero window thresholds at the level.
        assert_eq!(window_level(99.0, 0.0, 100.0), 0);
        assert_eq!(window_level(100.0, 0.0, 100.0), 255);
    }

    #[test]
    fn corrections_are_outlined_and_their_inside_keeps_the_label_colour() {
        let image = Volume::filled([7, 7, 3], ras_affine(), 50.0);
        let view = ViewVolume::new(&image);
        let labels = RasLabelMap::new(&Volume::filled([7, 7, 3], ras_affine(), 2u8));
        let mut marks = vec![0u8; 7 * 7 * 3];
        for y in 1..=3 {
            for x in 1..=3 {
                marks[x + 7 * y + 49] = 3; // a 3×3 block on axial slice 1
            }
        }
        let overlay = Overlay {
            labels: &labels,
            opacity: 1.0,
            hidden: &[],
            marks: Some(&marks),
        };
        let slice = view
            .render_slice(Axis::Axial, 1, 100.0, 50.0, Some(overlay))
            .unwrap();
        let pixel = |column: usize, row: usize| {
            let at = 4 * (row * slice.width + column);
            [slice.rgba[at], slice.rgba[at + 1], slice.rgba[at + 2]]
        };
        // Rows count from the top: y = 1..=3 are rows 5..=3.
        assert_eq!(pixel(2, 4), label_color(2), "inside the block");
        for (column, row) in [(1, 3), (2, 3), (3, 5), (1, 4)] {
            assert_eq!(pixel(column, row), CORRECTION_OUTLINE, "({column}, {row})");
        }
        assert_eq!(pixel(4, 4), label_color(2), "outside the block");
        let other = view
            .render_slice(Axis::Axial, 2, 100.0, 50.0, Some(overlay))
            .unwrap();
        assert!(
            !other.rgba.chunks(4).any(|p| p[..3] == CORRECTION_OUTLINE),
            "another slice"
        );
    }

    #[test]
    fn the_overlay_colours_only_labelled_visible_voxels() {
        let mut image = Volume::filled([4, 5, 6], ras_affine(), 50.0);
        image.set(0, 0, 2, 0.0);
        let view = ViewVolume::new(&image);
        let mut labels = Volume::filled([4, 5, 6], ras_affine(), 0u8);
        labels.set(1, 4, 2, 1);
        labels.set(3, 4, 2, 2);
        labels.set(0, 0, 2, 4);
        let labels = RasLabelMap::new(&labels);
        let overlay = Overlay {
            labels: &labels,
            opacity: 1.0,
            hidden: &[2],
            marks: None,
        };
        let slice = view
            .render_slice(Axis::Axial, 2, 100.0, 50.0, Some(overlay))
            .unwrap();
        let pixel = |column: usize, row: usize| {
            let at = 4 * (row * slice.width + column);
            [slice.rgba[at], slice.rgba[at + 1], slice.rgba[at + 2]]
        };
        // y = 4 is the top row; y = 0 the bottom one (row 4).
        assert_eq!(pixel(1, 0), label_color(1));
        assert_eq!(pixel(3, 0), [128, 128, 128], "hidden label 2 drawn");
        assert_eq!(pixel(0, 4), label_color(4));
        for (column, row) in [(0, 0), (2, 0), (1, 1), (3, 4)] {
            assert_eq!(pixel(column, row), [128, 128, 128]);
        }
        // Half opacity mixes grey 128 and red evenly.
        let half = Overlay {
            opacity: 0.5,
            ..overlay
        };
        let slice = view
            .render_slice(Axis::Axial, 2, 100.0, 50.0, Some(half))
            .unwrap();
        let red = label_color(1);
        let expected: Vec<u8> = red
            .iter()
            .map(|&tint| ((128.0 + f32::from(tint)) / 2.0).round() as u8)
            .collect();
        assert_eq!(&slice.rgba[4..7], expected.as_slice());
    }

    #[test]
    fn lps_input_is_displayed_as_its_ras_twin() {
        let dims = [4, 5, 6];
        let ras_values: Vec<f32> = (0..120).map(|index| ((index * 37) % 101) as f32).collect();
        let ras = Volume::from_vec(dims, ras_affine(), ras_values);
        // The same image stored LPS: x and y run the other way, the affine says so.
        let mut lps_affine = ras_affine();
        lps_affine[0][0] = -1.0;
        lps_affine[0][3] = -2.0 + 3.0;
        lps_affine[1][1] = -2.0;
        lps_affine[1][3] = -4.0 + 2.0 * 4.0;
        let mut lps = Volume::filled(dims, lps_affine, 0.0);
        for z in 0..6 {
            for y in 0..5 {
                for x in 0..4 {
                    lps.set(3 - x, 4 - y, z, ras.get(x, y, z));
                }
            }
        }
        let (ras_view, lps_view) = (ViewVolume::new(&ras), ViewVolume::new(&lps));
        assert_eq!(lps_view.ras.affine, ras.affine);
        assert_eq!(lps_view.reorientation.source_affine, lps_affine);
        for axis in [Axis::Axial, Axis::Coronal, Axis::Sagittal] {
            for index in 0..ras_view.slice_count(axis) {
                let want = ras_view
                    .render_slice(axis, index, 90.0, 45.0, None)
                    .unwrap();
                let got = lps_view
                    .render_slice(axis, index, 90.0, 45.0, None)
                    .unwrap();
                assert_eq!(got, want, "{axis:?} slice {index}");
            }
        }
    }

    #[test]
    fn robust_range_takes_the_percentiles_of_non_zero_voxels() {
        let mut values: Vec<f32> = (1..=100).map(|value| value as f32).collect();
        values.extend([0.0; 500]);
        // Nearest rank over 100 sorted values: ranks 1 and 98.
        assert_eq!(robust_range(&values), [2.0, 99.0]);
        assert_eq!(robust_range(&[0.0, 0.0]), [0.0, 0.0]);
        let view = ViewVolume::new(&Volume::from_vec([2, 1, 1], IDENTITY, vec![-3.0, 7.0]));
        assert_eq!(view.full_range, [-3.0, 7.0]);
    }

    #[test]
    fn the_lesion_centre_ignores_specks_and_dice_scores_the_regions() {
        let mut truth = Volume::filled([20, 20, 20], ras_affine(), 0u8);
        for z in 4..10 {
            for y in 4..10 {
                for x in 4..10 {
                    truth.set(x, y, z, if x < 6 { 4 } else { 2 });
                }
            }
        }
        let mut prediction = truth.clone();
        // A far, smaller false positive (3³): it pulls the plain centroid, not the lesion centre.
        for z in 16..19 {
            for y in 16..19 {
                for x in 16..19 {
                    prediction.set(x, y, z, 2);
                }
            }
        }
        let prediction = RasLabelMap::new(&prediction);
        assert_eq!(prediction.lesion_centre(), Some([7, 7, 7]));
        assert_ne!(prediction.centroid(), prediction.lesion_centre());
        let truth = RasLabelMap::new(&truth);
        let [tc, wt, et] = prediction.brats_dice(&truth).unwrap();
        assert_eq!((tc, et), (1.0, 1.0));
        assert!((wt - 2.0 * 216.0 / (243.0 + 216.0)).abs() < 1e-12, "{wt}");
        let other = RasLabelMap::new(&Volume::filled([4, 4, 4], ras_affine(), 0u8));
        assert!(prediction.brats_dice(&other).is_err());
        assert_eq!(other.lesion_centre(), None);
    }

    #[test]
    fn label_maps_are_checked_counted_and_measured() {
        let volume = Volume::from_vec([3, 1, 1], ras_affine(), vec![0.0, 4.0, 4.0]);
        let labels = RasLabelMap::from_values(&volume, "seg.nii.gz").unwrap();
        assert_eq!(labels.label_counts(), vec![(4, 2)]);
        assert!((labels.voxel_ml() - 0.006).abs() < 1e-12);
        assert_eq!(labels.label_at(1, 0, 0), Some(4));
        // Labelled voxels x = 1 and 2 of the row: mean 1.5, rounded to 2.
        assert_eq!(labels.centroid(), Some([2, 0, 0]));
        let mut block = Volume::filled([6, 7, 8], ras_affine(), 0u8);
        for (x, y, z) in [(1, 2, 3), (3, 2, 3), (2, 5, 6), (2, 3, 4)] {
            block.set(x, y, z, 2);
        }
        assert_eq!(RasLabelMap::new(&block).centroid(), Some([2, 3, 4]));
        assert_eq!(
            RasLabelMap::new(&Volume::filled([2, 2, 2], ras_affine(), 0u8)).centroid(),
            None
        );
        let fractional = Volume::from_vec([2, 1, 1], ras_affine(), vec![0.0, 0.5]);
        let err = RasLabelMap::from_values(&fractional, "t1.nii.gz").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t1.nii.gz: not a label map: voxel value 0.5 is not a whole number in 0..=255"
        );
    }

    /// An uncompressed NIfTI of `dims` (x fastest, values 0, 1, 2, ...) as `dim[0] = 4` with
    /// `volumes` 3D volumes when `volumes > 1`.
    fn nifti_bytes(dims: [usize; 3], volumes: usize) -> Vec<u8> {
        let count = dims.iter().product::<usize>();
        let values = (0..count).map(|index| index as f32).collect();
        let volume = Volume::from_vec(dims, ras_affine(), values);
        let mut bytes = nifti::encode_f32(&volume, false).unwrap();
        if volumes > 1 {
            bytes[40..42].copy_from_slice(&4i16.to_le_bytes());
            bytes[48..50].copy_from_slice(&(volumes as i16).to_le_bytes());
            let data = bytes[352..].to_vec();
            for _ in 1..volumes {
                bytes.extend_from_slice(&data);
            }
        }
        bytes
    }

    #[test]
    fn decoding_opens_4d_at_its_first_volume_and_refuses_broken_files() {
        let good = nifti_bytes([4, 5, 6], 1);
        let image = decode_nifti(&good, "t1.nii").unwrap();
        let view = ViewVolume::from_image(&image);
        assert_eq!(view.value_at(1, 2, 3), Some((1 + 4 * 2 + 20 * 3) as f32));
        // A 4D file opens at its first volume, and says so.
        let four_d = nifti_bytes([4, 5, 6], 3);
        let image = decode_nifti(&four_d, "dwi.nii").unwrap();
        assert_eq!(image.volume.dims, [4, 5, 6]);
        assert_eq!(
            image.warnings,
            vec!["4D file (3 volumes): using the first".to_string()]
        );
        let err = decode_nifti(&good[..good.len() - 10], "cut.nii").unwrap_err();
        assert!(err.to_string().starts_with("cut.nii: truncated"), "{err}");
        let err = decode_nifti(&[7u8; 600], "broken.nii.gz").unwrap_err();
        assert!(err.to_string().starts_with("broken.nii.gz: "), "{err}");
        let mut huge = nifti_bytes([4, 5, 6], 1);
        for at in [42, 44, 46] {
            huge[at..at + 2].copy_from_slice(&1024i16.to_le_bytes());
        }
        let err = decode_nifti(&huge, "huge.nii").unwrap_err().to_string();
        assert!(err.starts_with("huge.nii: "), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn bad_requests_are_errors() {
        let view = single_voxel([0, 0, 0], 1.0);
        assert!(view.render_slice(Axis::Axial, 6, 1.0, 0.5, None).is_err());
        let labels = RasLabelMap::new(&Volume::filled([4, 5, 5], ras_affine(), 0u8));
        let overlay = Overlay {
            labels: &labels,
            opacity: 0.5,
            hidden: &[],
            marks: None,
        };
        let err = view
            .render_slice(Axis::Axial, 0, 1.0, 0.5, Some(overlay))
            .unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert_eq!(Axis::from_index(3), None);
        assert_eq!(label_color(5), PALETTE[0]);
        assert_eq!(label_color(13), PALETTE[0]);
    }
}

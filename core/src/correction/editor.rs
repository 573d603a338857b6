//! The painting tools on a RAS label map: strokes on one slice plane, undo/redo, correction marks.
//!
//! A stroke is opened on a [`SlicePlane`] (a view's slice), receives brush stamps, brush lines and
//! flood fills, and is closed; closing records the voxels it changed (label and mark, before and
//! after), so that [`Corrections::undo`] and [`Corrections::redo`] restore both exactly. Every
//! voxel a tool touches is marked as a correction, even when its label was already the one
//! painted: the user looked at it and said what it is. A mark remembers the normal axis of the
//! plane it was painted on, so the "corrected slices" of a teaching run follow undo and redo.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::{Error, Result, Volume};

/// How many strokes [`Corrections::undo`] can take back (the oldest are forgotten past it).
pub const UNDO_STROKES: usize = 100;

const CONTEXT: &str = "label editing";

/// One slice of the volume: the voxels whose coordinate along `normal_axis` (0 x/R, 1 y/A,
/// 2 z/S on the RAS grid) is `index`. The axial view's slices have normal 2, the coronal 1, the
/// sagittal 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SlicePlane {
    pub normal_axis: usize,
    pub index: usize,
}

impl SlicePlane {
    /// The two in-plane axes, in increasing order.
    pub fn in_plane_axes(self) -> [usize; 2] {
        match self.normal_axis {
            0 => [1, 2],
            1 => [0, 2],
            _ => [0, 1],
        }
    }
}

/// What one stroke did to one voxel.
#[derive(Debug, Clone, Copy)]
struct Change {
    index: u32,
    label_before: u8,
    mark_before: u8,
    label_after: u8,
    mark_after: u8,
}

/// A stroke being painted: the plane and each touched voxel's label and mark before it.
#[derive(Debug, Clone)]
struct OpenStroke {
    plane: SlicePlane,
    before: HashMap<u32, (u8, u8)>,
}

/// The correction marks and the stroke history of one label map (same grid).
#[derive(Debug, Clone)]
pub struct Corrections {
    dims: [usize; 3],
    spacing: [f64; 3],
    /// 0: not corrected; `1 + normal_axis` of the plane it was last painted on.
    marks: Vec<u8>,
    undo: VecDeque<Vec<Change>>,
    redo: Vec<Vec<Change>>,
    open: Option<OpenStroke>,
}

impl Corrections {
    /// No corrections yet on a label map shaped like `labels`.
    pub fn new(labels: &Volume<u8>) -> Self {
        Self {
            dims: labels.dims,
            spacing: labels.spacing(),
            marks: vec![0; labels.voxel_count()],
            undo: VecDeque::new(),
            redo: Vec::new(),
            open: None,
        }
    }

    /// Marks read back from a saved correction mask (0: none; 1, 2, 3: painted on a plane of
    /// normal axis 0, 1, 2). An error naming `name` when its grid or values do not fit.
    pub fn with_marks(mut self, mask: &Volume<u8>, name: &str) -> Result<Self> {
        if mask.dims != self.dims {
            let cause = format!(
                "correction mask grid {:?} differs from the label map's {:?}",
                mask.dims, self.dims
            );
            return Err(Error::new(name, cause));
        }
        if let Some(bad) = mask.data.iter().find(|&&mark| mark > 3) {
            let cause = format!("correction mask value {bad} is not 0, 1, 2 or 3");
            return Err(Error::new(name, cause));
        }
        self.marks.clone_from(&mask.data);
        Ok(self)
    }

    /// Start a stroke on `plane` (a stroke still open is closed first).
    pub fn begin_stroke(&mut self, labels: &Volume<u8>, plane: SlicePlane) -> Result<()> {
        self.check_grid(labels)?;
        if plane.normal_axis > 2 || plane.index >= self.dims[plane.normal_axis] {
            let cause = format!("slice {plane:?} is outside the grid {:?}", self.dims);
            return Err(Error::new(CONTEXT, cause));
        }
        self.end_stroke(labels);
        self.open = Some(OpenStroke {
            plane,
            before: HashMap::new(),
        });
        Ok(())
    }

    /// Close the open stroke; returns how many voxels it changed (label or mark). A stroke that
    /// changed something can be undone and clears the redo list.
    pub fn end_stroke(&mut self, labels: &Volume<u8>) -> usize {
        let Some(stroke) = self.open.take() else {
            return 0;
        };
        let mut changes: Vec<Change> = stroke
            .before
            .into_iter()
            .map(|(index, (label_before, mark_before))| Change {
                index,
                label_before,
                mark_before,
                label_after: labels.data[index as usize],
                mark_after: self.marks[index as usize],
            })
            .filter(|c| c.label_before != c.label_after || c.mark_before != c.mark_after)
            .collect();
        if changes.is_empty() {
            return 0;
        }
        changes.sort_by_key(|change| change.index);
        let changed = changes.len();
        self.undo.push_back(changes);
        if self.undo.len() > UNDO_STROKES {
            self.undo.pop_front();
        }
        self.redo.clear();
        changed
    }

    /// Paint a round stamp of `diameter_mm` (in the stroke's plane, at least the centre voxel)
    /// around `centre` with `label` (0 erases); `centre`'s coordinate along the plane's normal
    /// is ignored. Returns the voxels stamped.
    pub fn brush(
        &mut self,
        labels: &mut Volume<u8>,
        centre: [usize; 3],
        diameter_mm: f64,
        label: u8,
    ) -> Result<usize> {
        let plane = self.open_plane(labels)?;
        let [first, second] = plane.in_plane_axes();
        let radius = (diameter_mm.max(0.0) / 2.0).max(0.0);
        let reach = [first, second].map(|axis| (radius / self.spacing[axis]).floor() as isize);
        let mut stamped = 0;
        for step_first in -reach[0]..=reach[0] {
            for step_second in -reach[1]..=reach[1] {
                let distance = ((step_first as f64 * self.spacing[first]).powi(2)
                    + (step_second as f64 * self.spacing[second]).powi(2))
                .sqrt();
                if distance > radius {
                    continue;
                }
                let mut voxel = centre;
                voxel[plane.normal_axis] = plane.index;
                let moved = [(first, step_first), (second, step_second)]
                    .into_iter()
                    .all(|(axis, step)| shift(&mut voxel[axis], step, self.dims[axis]));
                if moved {
                    self.set(labels, voxel, label, plane);
                    stamped += 1;
                }
            }
        }
        Ok(stamped)
    }

    /// Brush stamps from `from` to `to` (in the plane), one per voxel step, as a dragged pointer
    /// paints between two of its events. Returns the stamps' voxels (with repeats).
    pub fn brush_line(
        &mut self,
        labels: &mut Volume<u8>,
        from: [usize; 3],
        to: [usize; 3],
        diameter_mm: f64,
        label: u8,
    ) -> Result<usize> {
        let plane = self.open_plane(labels)?;
        let [first, second] = plane.in_plane_axes();
        let delta = [first, second].map(|axis| to[axis] as f64 - from[axis] as f64);
        let steps = delta[0].abs().max(delta[1].abs()).ceil() as usize;
        let mut stamped = 0;
        for step in 0..=steps {
            let along = if steps == 0 {
                0.0
            } else {
                step as f64 / steps as f64
            };
            let mut voxel = from;
            voxel[first] = (from[first] as f64 + along * delta[0]).round() as usize;
            voxel[second] = (from[second] as f64 + along * delta[1]).round() as usize;
            stamped += self.brush(labels, voxel, diameter_mm, label)?;
        }
        Ok(stamped)
    }

    /// 2-D flood fill in the stroke's plane from `seed`: the 4-connected voxels that have the
    /// seed's label and whose `image` value lies in `window` (`[low, high]`, inclusive) become
    /// `label`. Nothing is filled when the seed itself is outside the window. Returns the voxels
    /// filled.
    pub fn fill(
        &mut self,
        labels: &mut Volume<u8>,
        image: &Volume<f32>,
        seed: [usize; 3],
        label: u8,
        window: [f32; 2],
    ) -> Result<usize> {
        let plane = self.open_plane(labels)?;
        if image.dims != self.dims {
            let cause = format!(
                "the image grid {:?} differs from the label map's {:?}",
                image.dims, self.dims
            );
            return Err(Error::new(CONTEXT, cause));
        }
        let mut seed = seed;
        seed[plane.normal_axis] = plane.index;
        if seed.iter().zip(self.dims).any(|(&at, size)| at >= size) {
            return Ok(0);
        }
        let region = flood_region(labels, image, seed, plane, window);
        for &voxel in &region {
            self.set(labels, voxel, label, plane);
        }
        Ok(region.len())
    }

    /// Take back the last closed stroke (an open one is closed first); `false` when none is left.
    pub fn undo(&mut self, labels: &mut Volume<u8>) -> Result<bool> {
        self.replay(labels, false)
    }

    /// Paint again the last stroke taken back; `false` when none is.
    pub fn redo(&mut self, labels: &mut Volume<u8>) -> Result<bool> {
        self.replay(labels, true)
    }

    /// Undo (`forward` false) or redo one stroke: its voxels get their labels and marks from
    /// before or after it, and it moves to the other list.
    fn replay(&mut self, labels: &mut Volume<u8>, forward: bool) -> Result<bool> {
        self.check_grid(labels)?;
        self.end_stroke(labels);
        let taken = if forward {
            self.redo.pop()
        } else {
            self.undo.pop_back()
        };
        let Some(changes) = taken else {
            return Ok(false);
        };
        for change in &changes {
            let (label, mark) = if forward {
                (change.label_after, change.mark_after)
            } else {
                (change.label_before, change.mark_before)
            };
            labels.data[change.index as usize] = label;
            self.marks[change.index as usize] = mark;
        }
        if forward {
            self.undo.push_back(changes);
        } else {
            self.redo.push(changes);
        }
        Ok(true)
    }

    /// Strokes that [`Self::undo`] can take back.
    pub fn undo_depth(&self) -> usize {
        self.undo.len()
    }

    /// Strokes that [`Self::redo`] can paint again.
    pub fn redo_depth(&self) -> usize {
        self.redo.len()
    }

    /// Per voxel: 0 not corrected, `1 + normal_axis` of the plane it was painted on.
    pub fn marks(&self) -> &[u8] {
        &self.marks
    }

    /// Whether voxel `index` (x fastest) is a correction.
    pub fn is_marked(&self, index: usize) -> bool {
        self.marks.get(index).is_some_and(|&mark| mark != 0)
    }

    /// How many voxels are marked as corrections.
    pub fn marked_count(&self) -> usize {
        self.marks.iter().filter(|&&mark| mark != 0).count()
    }

    /// The slices holding at least one correction, on the plane each was painted on.
    pub fn painted_slices(&self) -> BTreeSet<SlicePlane> {
        let [nx, ny, _] = self.dims;
        self.marks
            .iter()
            .enumerate()
            .filter(|(_, &mark)| mark != 0)
            .map(|(index, &mark)| {
                let voxel = [index % nx, (index / nx) % ny, index / (nx * ny)];
                let normal_axis = usize::from(mark - 1);
                SlicePlane {
                    normal_axis,
                    index: voxel[normal_axis],
                }
            })
            .collect()
    }

    fn set(&mut self, labels: &mut Volume<u8>, voxel: [usize; 3], label: u8, plane: SlicePlane) {
        let index = labels.index(voxel[0], voxel[1], voxel[2]);
        if let Some(stroke) = &mut self.open {
            stroke
                .before
                .entry(index as u32)
                .or_insert((labels.data[index], self.marks[index]));
        }
        labels.data[index] = label;
        self.marks[index] = 1 + plane.normal_axis as u8;
    }

    fn open_plane(&self, labels: &Volume<u8>) -> Result<SlicePlane> {
        self.check_grid(labels)?;
        self.open
            .as_ref()
            .map(|stroke| stroke.plane)
            .ok_or_else(|| Error::new(CONTEXT, "no stroke is open (begin one on a slice first)"))
    }

    fn check_grid(&self, labels: &Volume<u8>) -> Result<()> {
        if labels.dims != self.dims || labels.data.len() != self.marks.len() {
            let cause = format!(
                "the label map grid {:?} differs from the corrections' {:?}",
                labels.dims, self.dims
            );
            return Err(Error::new(CONTEXT, cause));
        }
        Ok(())
    }
}

/// `at + step` when it stays in `0..size`.
fn shift(at: &mut usize, step: isize, size: usize) -> bool {
    match at.checked_add_signed(step) {
        Some(moved) if moved < size => {
            *at = moved;
            true
        }
        _ => false,
    }
}

/// The 4-connected voxels of `plane` reachable from `seed` through voxels of the seed's label
/// whose image value lies in `window`.
fn flood_region(
    labels: &Volume<u8>,
    image: &Volume<f32>,
    seed: [usize; 3],
    plane: SlicePlane,
    window: [f32; 2],
) -> Vec<[usize; 3]> {
    let [first, second] = plane.in_plane_axes();
    let dims = labels.dims;
    let seed_label = labels.get(seed[0], seed[1], seed[2]);
    let accepts = |voxel: [usize; 3]| {
        let value = image.get(voxel[0], voxel[1], voxel[2]);
        labels.get(voxel[0], voxel[1], voxel[2]) == seed_label
            && value >= window[0]
            && value <= window[1]
    };
    if !accepts(seed) {
        return Vec::new();
    }
    let mut visited = vec![false; dims[first] * dims[second]];
    let slot = |voxel: [usize; 3]| voxel[first] + dims[first] * voxel[second];
    visited[slot(seed)] = true;
    let mut pending = vec![seed];
    let mut region = Vec::new();
    while let Some(voxel) = pending.pop() {
        region.push(voxel);
        for (axis, step) in [(first, -1), (first, 1), (second, -1), (second, 1)] {
            let mut next = voxel;
            if shift(&mut next[axis], step, dims[axis]) && !visited[slot(next)] {
                visited[slot(next)] = true;
                if accepts(next) {
                    pending.push(next);
                }
            }
        }
    }
    region
}

#[cfg(test)]
mod tests;

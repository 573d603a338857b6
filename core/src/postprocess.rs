//! Post-processing of BraTS tumour label maps, shared by the CLI and the page.
//!
//! The usual steps after a tumour segmentation network, each switchable:
//! - **small components**: connected components (26-connected) of the whole tumour (WT) under a
//!   minimum volume are removed; then components of the tumour core (TC) under it become oedema,
//!   and components of the enhancing tumour (ET) under it become necrotic core. Relabelling to the
//!   enclosing region keeps the hierarchy ET ⊂ TC ⊂ WT (a removed core is still tumour).
//! - **largest component**: only the largest WT component is kept (a single lesion assumed).
//! - **core holes**: background or oedema fully enclosed by the tumour core (6-connected pockets
//!   that touch neither the volume's border nor anything outside the core) becomes necrotic core,
//!   as a necrosis ringed by enhancing tumour is labelled in BraTS.
//!
//! Labels: 0 background, 1 necrotic core, 2 oedema, `enhancing_label` (4 or 3) enhancing.

use serde::{Deserialize, Serialize};

use crate::{Error, Result, Volume};

const NECROSIS: u8 = 1;
const OEDEMA: u8 = 2;

crate::config! {
    /// Which post-processing steps run (all off by default: the network's output as it is).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
    pub struct PostprocessConfig {
        /// Components under this volume (ml) are removed (WT) or relabelled (TC → oedema,
        /// ET → necrotic core); 0 keeps every component.
        pub min_component_ml: f64 = 0.0,
        /// Keep only the largest whole-tumour component.
        pub keep_largest: bool = false,
        /// Label background and oedema enclosed by the tumour core as necrotic core.
        pub fill_core_holes: bool = false,
    }
}

impl PostprocessConfig {
    /// The steps the page and the CLI offer as one switch ("clean up"): components under 0.1 ml
    /// removed and enclosed core holes filled (not keep-largest: multifocal tumours exist).
    pub fn recommended() -> Self {
        Self {
            min_component_ml: 0.1,
            keep_largest: false,
            fill_core_holes: true,
        }
    }

    /// Whether any step runs.
    pub fn is_active(&self) -> bool {
        self.min_component_ml > 0.0 || self.keep_largest || self.fill_core_holes
    }

    /// Checks the settings: a finite, non-negative minimum volume.
    pub fn validate(&self) -> Result<()> {
        if !self.min_component_ml.is_finite() || self.min_component_ml < 0.0 {
            return Err(Error::new(
                "post-processing",
                format!(
                    "min-component-ml must be 0 or more, got {}",
                    self.min_component_ml
                ),
            ));
        }
        Ok(())
    }
}

/// What post-processing changed, in voxels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PostprocessReport {
    /// Tumour voxels set to background (small or not-largest WT components).
    pub removed: usize,
    /// Core voxels relabelled to oedema (small TC components).
    pub core_to_oedema: usize,
    /// Enhancing voxels relabelled to necrotic core (small ET components).
    pub enhancing_to_core: usize,
    /// Enclosed voxels labelled necrotic core.
    pub holes_filled: usize,
}

/// Applies `config` to the BraTS label map `labels` in place.
pub fn postprocess_brats(
    labels: &mut Volume<u8>,
    enhancing_label: u8,
    config: &PostprocessConfig,
) -> Result<PostprocessReport> {
    config.validate()?;
    let voxel_ml = labels.spacing().iter().product::<f64>() / 1000.0;
    let min_voxels = (config.min_component_ml / voxel_ml).ceil() as usize;
    let dims = labels.dims;
    let data = &mut labels.data;
    let mut report = PostprocessReport::default();
    let is_core = |label: u8| label == NECROSIS || label == enhancing_label;

    let tumour = components(dims, data, |label| label != 0, Connectivity::Full);
    let largest = tumour.sizes.iter().copied().max().unwrap_or(0);
    let drop_tumour = |size: usize| size < min_voxels || (config.keep_largest && size < largest);
    report.removed = relabel(data, &tumour, drop_tumour, |_| 0);

    let core = components(dims, data, is_core, Connectivity::Full);
    report.core_to_oedema = relabel(data, &core, |size| size < min_voxels, |_| OEDEMA);

    let enhancing = components(
        dims,
        data,
        |label| label == enhancing_label,
        Connectivity::Full,
    );
    report.enhancing_to_core = relabel(data, &enhancing, |size| size < min_voxels, |_| NECROSIS);

    if config.fill_core_holes {
        report.holes_filled = fill_enclosed(dims, data, is_core, NECROSIS);
    }
    Ok(report)
}

/// Which neighbours connect: faces only (6) or faces, edges and corners (26).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connectivity {
    Faces,
    Full,
}

/// Connected components of the voxels `member` accepts: each voxel's component (0 = not a
/// member, else index + 1) and each component's size.
#[derive(Debug, Clone)]
pub struct Components {
    pub of_voxel: Vec<u32>,
    pub sizes: Vec<usize>,
    /// Whether each component touches the volume's border.
    pub touches_border: Vec<bool>,
}

/// Labels the connected components of `member` voxels (x fastest) by flood fill.
pub fn components(
    dims: [usize; 3],
    data: &[u8],
    member: impl Fn(u8) -> bool,
    connectivity: Connectivity,
) -> Components {
    let offsets = neighbour_offsets(connectivity);
    let mut found = Components {
        of_voxel: vec![0; data.len()],
        sizes: Vec::new(),
        touches_border: Vec::new(),
    };
    let mut stack = Vec::new();
    for seed in 0..data.len() {
        if found.of_voxel[seed] != 0 || !member(data[seed]) {
            continue;
        }
        let id = found.sizes.len() as u32 + 1;
        let (mut size, mut border) = (0usize, false);
        found.of_voxel[seed] = id;
        stack.push(seed);
        while let Some(voxel) = stack.pop() {
            size += 1;
            let at = coordinates(voxel, dims);
            border |= (0..3).any(|axis| at[axis] == 0 || at[axis] + 1 == dims[axis]);
            for offset in &offsets {
                let Some(next) = neighbour(at, *offset, dims) else {
                    continue;
                };
                if found.of_voxel[next] == 0 && member(data[next]) {
                    found.of_voxel[next] = id;
                    stack.push(next);
                }
            }
        }
        found.sizes.push(size);
        found.touches_border.push(border);
    }
    found
}

/// Sets every voxel of a component whose size `drop` accepts to `to(old label)`; returns how
/// many voxels changed.
fn relabel(
    data: &mut [u8],
    found: &Components,
    drop: impl Fn(usize) -> bool,
    to: impl Fn(u8) -> u8,
) -> usize {
    let dropped: Vec<bool> = found.sizes.iter().map(|&size| drop(size)).collect();
    let mut changed = 0;
    for (label, &id) in data.iter_mut().zip(&found.of_voxel) {
        if id != 0 && dropped[id as usize - 1] {
            *label = to(*label);
            changed += 1;
        }
    }
    changed
}

/// Labels `fill` every pocket of non-`wall` voxels (6-connected) that does not reach the border:
/// such a pocket is enclosed by `wall` voxels only. Returns how many voxels changed.
fn fill_enclosed(dims: [usize; 3], data: &mut [u8], wall: impl Fn(u8) -> bool, fill: u8) -> usize {
    let pockets = components(dims, data, |label| !wall(label), Connectivity::Faces);
    let mut changed = 0;
    for (label, &id) in data.iter_mut().zip(&pockets.of_voxel) {
        if id != 0 && !pockets.touches_border[id as usize - 1] {
            *label = fill;
            changed += 1;
        }
    }
    changed
}

fn neighbour_offsets(connectivity: Connectivity) -> Vec<[isize; 3]> {
    let mut offsets = Vec::with_capacity(26);
    for dz in -1isize..=1 {
        for dy in -1isize..=1 {
            for dx in -1isize..=1 {
                let steps = dx.abs() + dy.abs() + dz.abs();
                let wanted = match connectivity {
                    Connectivity::Faces => steps == 1,
                    Connectivity::Full => steps >= 1,
                };
                if wanted {
                    offsets.push([dx, dy, dz]);
                }
            }
        }
    }
    offsets
}

fn coordinates(voxel: usize, dims: [usize; 3]) -> [usize; 3] {
    let x = voxel % dims[0];
    let y = (voxel / dims[0]) % dims[1];
    [x, y, voxel / (dims[0] * dims[1])]
}

fn neighbour(at: [usize; 3], offset: [isize; 3], dims: [usize; 3]) -> Option<usize> {
    let mut moved = [0usize; 3];
    for axis in 0..3 {
        let value = at[axis].checked_add_signed(offset[axis])?;
        if value >= dims[axis] {
            return None;
        }
        moved[axis] = value;
    }
    Some(moved[0] + dims[0] * (moved[1] + dims[1] * moved[2]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::IDENTITY;

    /// A 1 mm grid of `dims` (1 voxel = 0.001 ml), all background.
    fn empty(dims: [usize; 3]) -> Volume<u8> {
        Volume::filled(dims, IDENTITY, 0)
    }

    fn paint(volume: &mut Volume<u8>, from: [usize; 3], to: [usize; 3], label: u8) {
        for z in from[2]..to[2] {
            for y in from[1]..to[1] {
                for x in from[0]..to[0] {
                    let dims = volume.dims;
                    volume.data[x + dims[0] * (y + dims[1] * z)] = label;
                }
            }
        }
    }

    fn count(volume: &Volume<u8>, label: u8) -> usize {
        volume.data.iter().filter(|&&value| value == label).count()
    }

    #[test]
    fn components_count_faces_and_diagonals() {
        let mut volume = empty([5, 5, 5]);
        volume.data[0] = 1; // corner
        volume.data[1 + 5 + 25] = 1; // its diagonal neighbour
        volume.data[4 + 5 * 4 + 25 * 4] = 1; // the far corner
        let full = components(volume.dims, &volume.data, |l| l != 0, Connectivity::Full);
        assert_eq!(full.sizes, vec![2, 1]);
        let faces = components(volume.dims, &volume.data, |l| l != 0, Connectivity::Faces);
        assert_eq!(faces.sizes, vec![1, 1, 1]);
        assert_eq!(full.touches_border, vec![true, true]);
    }

    /// A tumour (oedema around a core with an enhancing rim) and a speck elsewhere.
    fn lesion_and_speck() -> Volume<u8> {
        let mut volume = empty([30, 30, 30]);
        paint(&mut volume, [5, 5, 5], [20, 20, 20], OEDEMA);
        paint(&mut volume, [8, 8, 8], [17, 17, 17], 4);
        paint(&mut volume, [10, 10, 10], [15, 15, 15], 0); // the hole the network left
        paint(&mut volume, [25, 25, 25], [27, 27, 27], 4); // 8 voxels of stray "enhancing"
        volume
    }

    #[test]
    fn small_components_go_and_the_hierarchy_holds() {
        let mut volume = lesion_and_speck();
        paint(&mut volume, [6, 6, 6], [7, 7, 7], 4); // a 1-voxel ET inside the oedema
        let config = PostprocessConfig {
            min_component_ml: 0.01, // 10 voxels
            ..Default::default()
        };
        let report = postprocess_brats(&mut volume, 4, &config).unwrap();
        assert_eq!(report.removed, 8, "the speck is gone");
        // The lone ET voxel is its own TC component of 1 voxel: it becomes oedema, not background.
        assert_eq!(report.core_to_oedema, 1);
        assert_eq!(volume.data[6 + 30 * (6 + 30 * 6)], OEDEMA);
        assert_eq!(report.holes_filled, 0);
        assert_eq!(count(&volume, 4), 9 * 9 * 9 - 5 * 5 * 5);
    }

    #[test]
    fn keep_largest_and_fill_core_holes() {
        let mut volume = lesion_and_speck();
        let config = PostprocessConfig {
            keep_largest: true,
            fill_core_holes: true,
            ..Default::default()
        };
        let report = postprocess_brats(&mut volume, 4, &config).unwrap();
        assert_eq!(report.removed, 8);
        assert_eq!(report.holes_filled, 5 * 5 * 5);
        assert_eq!(count(&volume, NECROSIS), 125);
        assert_eq!(volume.data[12 + 30 * (12 + 30 * 12)], NECROSIS);
        // Background outside the tumour is not a hole.
        assert_eq!(count(&volume, 0), 30 * 30 * 30 - 15 * 15 * 15);
    }

    #[test]
    fn an_open_pocket_is_not_filled() {
        let mut volume = lesion_and_speck();
        paint(&mut volume, [12, 12, 8], [13, 13, 10], 0); // a channel through the rim
        let config = PostprocessConfig {
            fill_core_holes: true,
            ..Default::default()
        };
        let report = postprocess_brats(&mut volume, 4, &config).unwrap();
        // The pocket reaches the oedema, the oedema is not core: still enclosed by the tumour but
        // not by the core, so nothing is filled.
        assert_eq!(report.holes_filled, 0);
    }

    #[test]
    fn off_by_default_and_rejects_negative_volumes() {
        let mut volume = lesion_and_speck();
        let before = volume.clone();
        let report = postprocess_brats(&mut volume, 4, &PostprocessConfig::default()).unwrap();
        assert_eq!(report, PostprocessReport::default());
        assert_eq!(volume.data, before.data);
        let bad = PostprocessConfig {
            min_component_ml: -1.0,
            ..Default::default()
        };
        let err = postprocess_brats(&mut volume, 4, &bad).unwrap_err();
        assert!(err.to_string().contains("min-component-ml"), "{err}");
    }
}

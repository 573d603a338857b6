//! The shared anatomy of a cohort: the ICBM152 T1/T2/PD averages and GM/WM/CSF probability maps,
//! upsampled once to the output grid and interleaved per voxel (one cache line per lookup).

use crate::{Affine, Error, Result, Volume};

/// Number of interleaved channels per voxel.
pub const CHANNELS: usize = 6;
/// Channel of the T1 average.
pub const T1: usize = 0;
/// Channel of the T2 average.
pub const T2: usize = 1;
/// Channel of the PD average.
pub const PD: usize = 2;
/// Channel of the grey-matter probability.
pub const GM: usize = 3;
/// Channel of the white-matter probability.
pub const WM: usize = 4;
/// Channel of the CSF probability.
pub const CSF: usize = 5;

/// Template file of each channel, in channel order.
pub const TEMPLATE_FILES: [&str; CHANNELS] = [
    "avg152T1.nii.gz",
    "avg152T2.nii.gz",
    "avg152PD.nii.gz",
    "OldSeg_grey.nii.gz",
    "OldSeg_white.nii.gz",
    "OldSeg_csf.nii.gz",
];

/// Largest output grid accepted (voxels): 1 mm MNI is 7.1 M; this bounds memory at ~1.5 GB.
pub const MAX_VOXELS: usize = 64 << 20;

/// Depth (mm) below the intracranial surface required of a tumour centre.
const SITE_DEPTH_MM: f64 = 20.0;

/// The anatomy every subject is deformed from, on the output grid.
#[derive(Debug, Clone)]
pub struct Anatomy {
    pub dims: [usize; 3],
    /// Output-grid affine (the templates' orientation and origin, the output voxel size).
    pub affine: Affine,
    /// `[t1, t2, pd, gm, wm, csf]` per voxel, x fastest.
    pub voxels: Vec<[f32; CHANNELS]>,
    /// Voxel coordinates of candidate tumour centres: white matter, deep inside the head.
    pub tumour_sites: Vec<[f32; 3]>,
}

impl Anatomy {
    /// Build from six maps on one grid (channel order of [`TEMPLATE_FILES`]).
    pub fn from_maps(maps: &[Volume<f32>; CHANNELS]) -> Result<Self> {
        let dims = maps[0].dims;
        let affine = maps[0].affine;
        let count = dims[0] * dims[1] * dims[2];
        if count == 0 || count > MAX_VOXELS {
            return Err(Error::new(
                "synth anatomy",
                format!("unusable grid {dims:?}"),
            ));
        }
        for (map, name) in maps.iter().zip(TEMPLATE_FILES) {
            if map.dims != dims || map.data.len() != count {
                return Err(Error::new(
                    name,
                    format!(
                        "grid {:?} differs from {:?} of {}",
                        map.dims, dims, TEMPLATE_FILES[0]
                    ),
                ));
            }
        }
        let voxels = (0..count)
            .map(|i| std::array::from_fn(|channel| maps[channel].data[i]))
            .collect();
        let mut anatomy = Self {
            dims,
            affine,
            voxels,
            tumour_sites: Vec::new(),
        };
        anatomy.tumour_sites = find_tumour_sites(&anatomy);
        Ok(anatomy)
    }

    /// Resample six template maps (any common grid) to `spacing_mm` with trilinear interpolation,
    /// then build the anatomy.
    pub fn upsampled(maps: &[Volume<f32>; CHANNELS], spacing_mm: f64) -> Result<Self> {
        let target = [spacing_mm; 3];
        let (dims, _) =
            crate::preprocess::resample::resampled_grid(maps[0].dims, &maps[0].affine, target);
        if dims.iter().product::<usize>() > MAX_VOXELS {
            return Err(Error::new(
                "synth anatomy",
                format!(
                    "{spacing_mm} mm would make a {dims:?} grid, more than {MAX_VOXELS} voxels"
                ),
            ));
        }
        let same_spacing = maps[0]
            .spacing()
            .iter()
            .all(|&s| (s - spacing_mm).abs() < 1e-6);
        if same_spacing {
            return Self::from_maps(maps);
        }
        let resampled: Vec<Volume<f32>> = maps
            .iter()
            .map(|map| crate::preprocess::resample_linear(map, target))
            .collect();
        let resampled: [Volume<f32>; CHANNELS] = resampled
            .try_into()
            .map_err(|_| Error::new("synth anatomy", "resampling lost a map"))?;
        Self::from_maps(&resampled)
    }

    /// Voxel size (mm) along each axis.
    pub fn spacing(&self) -> [f64; 3] {
        crate::volume::spacing_of(&self.affine)
    }

    /// Channel `channel` as a volume on the output grid (for tests and inspection).
    pub fn channel(&self, channel: usize) -> Volume<f32> {
        let data = self.voxels.iter().map(|v| v[channel]).collect();
        Volume {
            dims: self.dims,
            affine: self.affine,
            data,
        }
    }

    /// Trilinear sample of all channels at voxel coordinate `position` (clamped to the grid).
    #[inline]
    pub fn sample(&self, position: [f32; 3]) -> [f32; CHANNELS] {
        let [nx, ny, _] = self.dims;
        let (x0, x1, wx) = axis_cell(position[0], self.dims[0]);
        let (y0, y1, wy) = axis_cell(position[1], self.dims[1]);
        let (z0, z1, wz) = axis_cell(position[2], self.dims[2]);
        let row = |y: usize, z: usize| nx * (y + ny * z);
        let mut out = [0f32; CHANNELS];
        let mut add = |base: usize, weight: f32| {
            let (a, b) = (&self.voxels[base + x0], &self.voxels[base + x1]);
            for channel in 0..CHANNELS {
                out[channel] += weight * (a[channel] + wx * (b[channel] - a[channel]));
            }
        };
        add(row(y0, z0), (1.0 - wy) * (1.0 - wz));
        add(row(y1, z0), wy * (1.0 - wz));
        add(row(y0, z1), (1.0 - wy) * wz);
        add(row(y1, z1), wy * wz);
        out
    }

    /// Nearest-voxel lookup (clamped), for coarse tests.
    fn nearest(&self, position: [f64; 3]) -> [f32; CHANNELS] {
        let index: [usize; 3] = std::array::from_fn(|axis| {
            position[axis]
                .round()
                .clamp(0.0, (self.dims[axis] - 1) as f64) as usize
        });
        self.voxels[index[0] + self.dims[0] * (index[1] + self.dims[1] * index[2])]
    }
}

/// Lower and upper neighbour along an axis of `len` voxels, and the weight of the upper one.
#[inline]
fn axis_cell(position: f32, len: usize) -> (usize, usize, f32) {
    let last = len - 1;
    let p = position.clamp(0.0, last as f32);
    let lower = (p as usize).min(last);
    (lower, (lower + 1).min(last), p - lower as f32)
}

/// White-matter voxels (on a ~4 mm lattice) whose 26 neighbours at [`SITE_DEPTH_MM`] (or a
/// quarter of the field of view on small grids) are all inside the head (GM+WM+CSF > 0.5).
/// Falls back to the voxel of highest white-matter probability.
fn find_tumour_sites(anatomy: &Anatomy) -> Vec<[f32; 3]> {
    let spacing = anatomy.spacing();
    let fov_min = (0..3)
        .map(|axis| anatomy.dims[axis] as f64 * spacing[axis])
        .fold(f64::INFINITY, f64::min);
    let depth_mm = SITE_DEPTH_MM.min(0.25 * fov_min);
    let step = (4.0 / spacing[0]).round().max(1.0) as usize;
    let inside = |p: [f64; 3]| {
        let v = anatomy.nearest(p);
        v[GM] + v[WM] + v[CSF] > 0.5
    };
    let mut sites = Vec::new();
    let [nx, ny, nz] = anatomy.dims;
    for z in (0..nz).step_by(step) {
        for y in (0..ny).step_by(step) {
            for x in (0..nx).step_by(step) {
                if anatomy.voxels[x + nx * (y + ny * z)][WM] <= 0.5 {
                    continue;
                }
                let deep = directions().all(|d| {
                    inside(std::array::from_fn(|axis| {
                        [x, y, z][axis] as f64 + d[axis] * depth_mm / spacing[axis]
                    }))
                });
                if deep {
                    sites.push([x as f32, y as f32, z as f32]);
                }
            }
        }
    }
    if sites.is_empty() {
        sites.push(most_white_voxel(anatomy));
    }
    sites
}

/// The 26 unit directions to the neighbours of a voxel.
fn directions() -> impl Iterator<Item = [f64; 3]> {
    (0..27).filter(|&i| i != 13).map(|i| {
        let raw = [
            (i % 3) as f64 - 1.0,
            ((i / 3) % 3) as f64 - 1.0,
            (i / 9) as f64 - 1.0,
        ];
        let norm = raw.iter().map(|v| v * v).sum::<f64>().sqrt();
        raw.map(|v| v / norm)
    })
}

fn most_white_voxel(anatomy: &Anatomy) -> [f32; 3] {
    let mut best = (0usize, f32::NEG_INFINITY);
    for (i, v) in anatomy.voxels.iter().enumerate() {
        if v[WM] > best.1 {
            best = (i, v[WM]);
        }
    }
    let [nx, ny, _] = anatomy.dims;
    [
        (best.0 % nx) as f32,
        ((best.0 / nx) % ny) as f32,
        (best.0 / (nx * ny)) as f32,
    ]
}

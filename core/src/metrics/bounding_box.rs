//! Axis-aligned boxes of voxels on a grid (x fastest, as in [`crate::Volume`]): the part of a
//! volume a metric has to look at, and the sub-volume copied out of it.

/// The voxels `low[a] <= c[a] < high[a]` on every axis `a` of a grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoxelBox {
    /// First voxel inside, per axis.
    pub low: [usize; 3],
    /// One past the last voxel inside, per axis.
    pub high: [usize; 3],
}

impl VoxelBox {
    /// The box of the single voxel `coords`.
    pub fn of_voxel(coords: [usize; 3]) -> Self {
        Self {
            low: coords,
            high: coords.map(|c| c + 1),
        }
    }

    /// Grows the box to hold voxel `coords`.
    pub fn include(&mut self, coords: [usize; 3]) {
        for (axis, &c) in coords.iter().enumerate() {
            self.low[axis] = self.low[axis].min(c);
            self.high[axis] = self.high[axis].max(c + 1);
        }
    }

    /// The smallest box holding both.
    pub fn union(self, other: Self) -> Self {
        Self {
            low: [0, 1, 2].map(|a| self.low[a].min(other.low[a])),
            high: [0, 1, 2].map(|a| self.high[a].max(other.high[a])),
        }
    }

    /// Voxels per axis.
    pub fn dims(&self) -> [usize; 3] {
        [0, 1, 2].map(|a| self.high[a] - self.low[a])
    }

    /// Number of voxels inside.
    pub fn voxel_count(&self) -> usize {
        self.dims().iter().product()
    }

    /// The values of `volume` (a grid of `grid_dims`) inside the box, x fastest, mapped by `f`.
    pub fn extract<T: Copy, U>(
        &self,
        volume: &[T],
        grid_dims: [usize; 3],
        f: impl Fn(T) -> U,
    ) -> Vec<U> {
        let [nx, ny, _] = grid_dims;
        let mut out = Vec::with_capacity(self.voxel_count());
        for z in self.low[2]..self.high[2] {
            for y in self.low[1]..self.high[1] {
                let start = nx * (y + ny * z);
                let row = &volume[start + self.low[0]..start + self.high[0]];
                out.extend(row.iter().map(|&value| f(value)));
            }
        }
        out
    }
}

/// The smallest box holding every voxel where `is_inside` is true, `None` when there is none.
pub fn bounding_box<T: Copy>(
    volume: &[T],
    dims: [usize; 3],
    is_inside: impl Fn(T) -> bool,
) -> Option<VoxelBox> {
    let [nx, ny, _] = dims;
    let mut found: Option<VoxelBox> = None;
    for (row_index, row) in volume.chunks_exact(nx.max(1)).enumerate() {
        let first = row.iter().position(|&value| is_inside(value));
        let Some(first) = first else { continue };
        let last = row
            .iter()
            .rposition(|&value| is_inside(value))
            .unwrap_or(first);
        let (y, z) = (row_index % ny, row_index / ny);
        let row_box = VoxelBox {
            low: [first, y, z],
            high: [last + 1, y + 1, z + 1],
        };
        found = Some(found.map_or(row_box, |b| b.union(row_box)));
    }
    found
}

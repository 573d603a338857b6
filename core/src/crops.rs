//! Where a training crop lies in a volume and how it is flipped: shared by the cache loader
//! (native) and the in-memory few-shot fine-tuning (browser), so both place crops the same way.

use crate::rng::Rng;

/// A crop origin: uniform over the valid starts along an axis where the volume is at least as large
/// as the crop, else centred (the crop is padded equally on both sides, the extra voxel after).
/// Always draws one number per axis, so the stream's use does not depend on the volume.
pub fn crop_start(dims: [usize; 3], size: [usize; 3], rng: &mut Rng) -> [isize; 3] {
    let mut start = [0isize; 3];
    for axis in 0..3 {
        let (dim, crop) = (dims[axis], size[axis]);
        let draw = rng.below(dim.saturating_sub(crop) + 1);
        start[axis] = if dim >= crop {
            draw as isize
        } else {
            -(((crop - dim) / 2) as isize)
        };
    }
    start
}

/// The crop origin that puts voxel `voxel` at index `offset` of the crop (`offset < size`), clamped
/// to the valid starts (the voxel stays inside the crop) along an axis where the volume is at
/// least as large as the crop, else centred on the volume as [`crop_start`] does.
pub fn crop_start_containing(
    dims: [usize; 3],
    size: [usize; 3],
    voxel: [usize; 3],
    offset: [usize; 3],
) -> [isize; 3] {
    let mut start = [0isize; 3];
    for axis in 0..3 {
        let (dim, crop) = (dims[axis], size[axis]);
        start[axis] = if dim >= crop {
            let wanted = voxel[axis] as isize - offset[axis].min(crop - 1) as isize;
            wanted.clamp(0, (dim - crop) as isize)
        } else {
            -(((crop - dim) / 2) as isize)
        };
    }
    start
}

/// The crop origin that centres a crop of `size` on voxel `centre` (the voxel lands at index
/// `size / 2` of the crop), clamped to the valid starts along an axis where the volume is at least
/// as large as the crop, else centred on the volume as [`crop_start`] does.
pub fn crop_start_around(dims: [usize; 3], size: [usize; 3], centre: [usize; 3]) -> [isize; 3] {
    let mut start = [0isize; 3];
    for axis in 0..3 {
        let (dim, crop) = (dims[axis], size[axis]);
        start[axis] = if dim >= crop {
            let wanted = centre[axis] as isize - (crop / 2) as isize;
            wanted.clamp(0, (dim - crop) as isize)
        } else {
            -(((crop - dim) / 2) as isize)
        };
    }
    start
}

/// Reverse an x-fastest block of `size` voxels along the axes marked in `flip`.
pub fn flip_in_place<T>(data: &mut [T], size: [usize; 3], flip: [bool; 3]) {
    let [nx, ny, nz] = size;
    if flip[0] {
        data.chunks_exact_mut(nx).for_each(|row| row.reverse());
    }
    if flip[1] {
        for slab in data.chunks_exact_mut(nx * ny) {
            for y in 0..ny / 2 {
                let (low, high) = slab.split_at_mut((ny - 1 - y) * nx);
                low[y * nx..(y + 1) * nx].swap_with_slice(&mut high[..nx]);
            }
        }
    }
    if flip[2] {
        let slab = nx * ny;
        for z in 0..nz / 2 {
            let (low, high) = data.split_at_mut((nz - 1 - z) * slab);
            low[z * slab..(z + 1) * slab].swap_with_slice(&mut high[..slab]);
        }
    }
}

/// The block of `size` voxels starting at `start` (may be negative or run past the end: those
/// voxels are `T::default()`) of an x-fastest volume of `dims`.
pub fn copy_crop<T: Copy + Default>(
    data: &[T],
    dims: [usize; 3],
    start: [isize; 3],
    size: [usize; 3],
) -> Vec<T> {
    let mut crop = vec![T::default(); size[0] * size[1] * size[2]];
    let inside = |axis: usize, i: usize| -> Option<usize> {
        let position = start[axis] + i as isize;
        (0..dims[axis] as isize)
            .contains(&position)
            .then_some(position as usize)
    };
    for z in 0..size[2] {
        let Some(source_z) = inside(2, z) else {
            continue;
        };
        for y in 0..size[1] {
            let Some(source_y) = inside(1, y) else {
                continue;
            };
            let row = (source_z * dims[1] + source_y) * dims[0];
            let target = (z * size[1] + y) * size[0];
            for x in 0..size[0] {
                if let Some(source_x) = inside(0, x) {
                    crop[target + x] = data[row + source_x];
                }
            }
        }
    }
    crop
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_copy_inside_and_pad_outside() {
        let dims = [4, 3, 2];
        let data: Vec<u32> = (1..=24).collect();
        // Voxel (x, y, z) holds 1 + x + 4y + 12z.
        let crop = copy_crop(&data, dims, [-1, 1, 1], [3, 3, 1]);
        assert_eq!(crop, vec![0, 17, 18, 0, 21, 22, 0, 0, 0]);
        assert_eq!(copy_crop(&data, dims, [0, 0, 0], dims), data);
    }
}

//! Output buffers and launch grids shared by the GPU kernels.

use burn::tensor::Shape;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::CubeRuntime;
use cubecl::prelude::*;
use cubecl::{calculate_cube_count_elemwise, CubeDim};

/// An uninitialised tensor of `dims` on `like`'s device, in `like`'s type.
pub fn empty_like<R: CubeRuntime>(like: &CubeTensor<R>, dims: &[usize]) -> CubeTensor<R> {
    empty_device_dtype(
        like.client.clone(),
        like.device.clone(),
        Shape::from(dims.to_vec()),
        like.dtype,
    )
}

/// One thread per item of `items`, on `like`'s device.
pub fn one_thread_each<R: CubeRuntime>(like: &CubeTensor<R>, items: usize) -> (CubeCount, CubeDim) {
    let cube_dim = CubeDim::new(&like.client, items);
    let cube_count = calculate_cube_count_elemwise(&like.client, items, cube_dim);
    (cube_count, cube_dim)
}

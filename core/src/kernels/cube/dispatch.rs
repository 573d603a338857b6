//! Which GPU backend a generic call runs on: the backend type is compared at run time with the
//! GPU backends this build has (features `wgpu`, `cuda`), with and without `Autodiff`.

use core::any::TypeId;

use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use burn::tensor::DType;
use burn_cubecl::{BoolElement, CubeBackend, CubeRuntime, FloatElement, IntElement};

use crate::kernels::autodiff::AutodiffTensor;
use crate::kernels::enabled;

/// burn's wgpu backend as this crate's kernels see it.
#[cfg(feature = "wgpu")]
pub type WgpuCube = CubeBackend<cubecl::wgpu::WgpuRuntime, f32, i32, u32>;
/// burn's CUDA backend as this crate's kernels see it.
#[cfg(feature = "cuda")]
pub type CudaCube = CubeBackend<cubecl::cuda::CudaRuntime, f32, i32, u8>;

/// Whether the GPU kernels take tensors of `dtype` (read as stored, summed in f32).
pub fn takes(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F16 | DType::BF16)
}

/// Whether backend `B` is one of the GPU backends with kernels here (with or without
/// `Autodiff`).
pub fn serves<B: Backend>() -> bool {
    #[cfg(feature = "wgpu")]
    if is_cube::<B, WgpuCube>() {
        return true;
    }
    #[cfg(feature = "cuda")]
    if is_cube::<B, CudaCube>() {
        return true;
    }
    false
}

fn is_cube<B: Backend, C: Backend>() -> bool {
    let id = TypeId::of::<B>();
    id == TypeId::of::<C>() || id == TypeId::of::<Autodiff<C>>()
}

/// An operation with a GPU kernel, run on the cube backend `CubeBackend<R, F, I, BT>` that `B`
/// is (with or without `Autodiff`), or declined where `B` is no GPU backend of this build.
pub trait OnCube<B: Backend> {
    type Output;
    fn on<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(self) -> Self::Output;
    fn decline(self) -> Self::Output;
}

pub fn dispatch<B: Backend, O: OnCube<B>>(op: O) -> O::Output {
    if !enabled() {
        return op.decline();
    }
    #[cfg(feature = "wgpu")]
    if is_cube::<B, WgpuCube>() {
        return op.on::<cubecl::wgpu::WgpuRuntime, f32, i32, u32>();
    }
    #[cfg(feature = "cuda")]
    if is_cube::<B, CudaCube>() {
        return op.on::<cubecl::cuda::CudaRuntime, f32, i32, u8>();
    }
    op.decline()
}

/// Whether `B` is `Autodiff<CubeBackend<R, F, I, BT>>` (else the cube backend itself).
pub fn is_autodiff<B: Backend, R, F, I, BT>() -> bool
where
    R: CubeRuntime,
    F: FloatElement,
    I: IntElement,
    BT: BoolElement,
{
    TypeId::of::<B>() == TypeId::of::<Autodiff<CubeBackend<R, F, I, BT>>>()
}

/// A tracked float tensor of the autodiff backend over a cube backend.
pub type Tracked<R, F, I, BT> = AutodiffTensor<CubeBackend<R, F, I, BT>>;

//! Which backend a generic call runs on, and the moves between burn's generic tensors and the
//! CPU backend's own tensors.
//!
//! The models are generic over `B: Backend`, and burn has no specialisation, so the kernels
//! are reached by comparing `B` with the two CPU backend types at run time (`TypeId`) and
//! moving the tensor primitive across (`Any`); every other backend keeps burn's operations.

use core::any::{Any, TypeId};

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Bytes, DType, Tensor, TensorPrimitive};

/// The training backend on the CPU.
pub type AutodiffFlex = Autodiff<Flex>;

/// Where a generic call goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `Flex`: inference on the CPU.
    Flex,
    /// `Autodiff<Flex>`: training on the CPU.
    AutodiffFlex,
    /// Any other backend: burn's own operation.
    Burn,
}

/// The route of backend `B`.
pub fn route<B: Backend>() -> Route {
    let id = TypeId::of::<B>();
    if id == TypeId::of::<Flex>() {
        Route::Flex
    } else if id == TypeId::of::<AutodiffFlex>() {
        Route::AutodiffFlex
    } else {
        Route::Burn
    }
}

/// `value` as type `T`, which must be its own type (checked by [`route`] before; a mismatch is
/// a bug and panics).
pub fn cast<A: 'static, T: 'static>(value: A) -> T {
    let mut slot = Some(value);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<T>>()
        .and_then(Option::take)
        .expect("kernels: tensor primitive of another backend than the route says")
}

/// The primitive of a float tensor of backend `B`, as type `T`.
pub fn primitive<B: Backend, const D: usize, T: 'static>(tensor: Tensor<B, D>) -> T {
    cast::<FloatTensor<B>, T>(tensor.into_primitive().tensor())
}

/// A float tensor of backend `B` from a primitive of type `T` (`B`'s own).
pub fn tensor<B: Backend, const D: usize, T: 'static>(value: T) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(cast::<T, FloatTensor<B>>(value)))
}

/// Whether every tensor given holds `f32` values (the kernels' only type).
pub fn all_f32<'a>(tensors: impl IntoIterator<Item = &'a FlexTensor>) -> bool {
    tensors.into_iter().all(|t| t.dtype() == DType::F32)
}

/// The values of a CPU tensor in row-major order (borrowed when already contiguous).
pub fn values(tensor: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match tensor.as_slice::<f32>() {
        Some(slice) => std::borrow::Cow::Borrowed(slice),
        None => std::borrow::Cow::Owned(
            tensor
                .to_contiguous()
                .as_slice::<f32>()
                .map_or_else(Vec::new, <[f32]>::to_vec),
        ),
    }
}

/// A contiguous CPU tensor of `shape` holding `values`.
pub fn flex_tensor(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    debug_assert_eq!(values.len(), shape.iter().product::<usize>());
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape.to_vec().into()),
        DType::F32,
    )
}

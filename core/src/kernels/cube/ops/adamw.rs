//! The AdamW kernel as an optimiser step on burn's tensors and AdamW state records.

use burn::optim::{AdamWState, AdaptiveMomentumState};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use burn_cubecl::tensor::CubeTensor;
use burn_cubecl::{BoolElement, CubeRuntime, FloatElement, IntElement};

use super::super::adamw;
use super::super::dispatch::{dispatch, is_autodiff, takes, OnCube};
use crate::kernels::route;
use crate::optim::AdamWSettings;

/// The inputs of an optimiser step, handed back when no kernel takes it.
pub type DeclinedStep<B, const D: usize> = (Tensor<B, D>, Tensor<B, D>, Option<AdamWState<B, D>>);

/// One AdamW step of `tensor` in one launch when `B` is a GPU backend (the optimiser runs on
/// the inner backend, not `Autodiff`) and the state is plain AdamW's (no AMSGrad): the new
/// tensor and state. Otherwise the inputs are handed back.
pub fn adamw_step<B: Backend, const D: usize>(
    settings: &AdamWSettings,
    lr: f64,
    tensor: Tensor<B, D>,
    grad: Tensor<B, D>,
    state: Option<AdamWState<B, D>>,
) -> Result<(Tensor<B, D>, AdamWState<B, D>), DeclinedStep<B, D>> {
    let moments = state.as_ref().map(|s| &s.momentum);
    let supported = [tensor.dtype(), grad.dtype()]
        .into_iter()
        .chain(
            moments
                .iter()
                .flat_map(|m| [m.moment_1.dtype(), m.moment_2.dtype()]),
        )
        .all(takes)
        && moments.is_none_or(|m| m.max_moment_2.is_none());
    if !supported {
        return Err((tensor, grad, state));
    }
    dispatch::<B, _>(AdamWCall {
        settings: *settings,
        lr,
        tensor,
        grad,
        state,
    })
}

/// An AdamW step's call.
struct AdamWCall<B: Backend, const D: usize> {
    settings: AdamWSettings,
    lr: f64,
    tensor: Tensor<B, D>,
    grad: Tensor<B, D>,
    state: Option<AdamWState<B, D>>,
}

impl<B: Backend, const D: usize> AdamWCall<B, D> {
    /// The step's scalars, as burn's `AdamW` computes them for step `time` (from 1).
    fn scalars(&self, time: usize) -> adamw::AdamWScalars {
        let AdamWSettings {
            beta_1,
            beta_2,
            epsilon,
            weight_decay,
        } = self.settings;
        let decay_rate = self.lr * weight_decay as f64;
        adamw::AdamWScalars {
            beta_1,
            factor_1: 1.0 - beta_1,
            beta_2,
            factor_2: 1.0 - beta_2,
            correction_1: 1.0 - beta_1.powi(time as i32),
            correction_2: 1.0 - beta_2.powi(time as i32),
            epsilon,
            decay: (1.0 - decay_rate) as f32,
            lr: self.lr as f32,
        }
    }
}

impl<B: Backend, const D: usize> OnCube<B> for AdamWCall<B, D> {
    type Output = Result<(Tensor<B, D>, AdamWState<B, D>), DeclinedStep<B, D>>;

    fn decline(self) -> Self::Output {
        Err((self.tensor, self.grad, self.state))
    }

    fn on<R: CubeRuntime, F: FloatElement, I: IntElement, BT: BoolElement>(self) -> Self::Output {
        if is_autodiff::<B, R, F, I, BT>() {
            return self.decline();
        }
        let time = self.state.as_ref().map_or(0, |s| s.momentum.time) + 1;
        let scalars = self.scalars(time);
        let moments = match self.state {
            Some(state) => [state.momentum.moment_1, state.momentum.moment_2],
            None => [self.tensor.zeros_like(), self.tensor.zeros_like()],
        };
        let [tensor, moment_1, moment_2] = adamw::step::<R>(
            route::primitive(self.tensor),
            route::primitive(self.grad),
            moments.map(route::primitive),
            scalars,
        )
        .map(route::tensor::<B, D, CubeTensor<R>>);
        let momentum = AdaptiveMomentumState {
            time,
            moment_1,
            moment_2,
            max_moment_2: None,
        };
        Ok((tensor, AdamWState { momentum }))
    }
}

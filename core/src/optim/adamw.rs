//! AdamW with burn's arithmetic and burn's state records (`AdamWState`, so checkpoints written
//! with burn's `AdamW` resume with this one and the other way round), whose step on burn's GPU
//! backends is one kernel launch per parameter tensor ([`crate::kernels`]); elsewhere, and for
//! types the kernel does not take, it is burn's `AdamW` step itself.

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, AdamWState, SimpleOptimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::Tensor;

/// The hyper-parameters of [`FusedAdamW`] (the job's TOML holds them; no defaults here).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWSettings {
    /// β₁.
    pub beta_1: f32,
    /// β₂.
    pub beta_2: f32,
    /// ε, added to `√v̂`.
    pub epsilon: f32,
    /// Decoupled weight decay λ.
    pub weight_decay: f32,
}

impl AdamWSettings {
    /// The optimiser.
    pub fn build(&self) -> FusedAdamW {
        let burn = AdamWConfig::new()
            .with_beta_1(self.beta_1)
            .with_beta_2(self.beta_2)
            .with_epsilon(self.epsilon)
            .with_weight_decay(self.weight_decay)
            .build();
        FusedAdamW {
            settings: *self,
            burn,
        }
    }

    /// The optimiser of module `M` on autodiff backend `B`.
    pub fn init<B: AutodiffBackend, M: AutodiffModule<B>>(
        &self,
    ) -> OptimizerAdaptor<FusedAdamW, M, B> {
        OptimizerAdaptor::from(self.build())
    }
}

/// AdamW (decoupled weight decay), one launch per parameter tensor on the GPU backends.
#[derive(Clone)]
pub struct FusedAdamW {
    /// The settings the GPU kernel reads (builds without a GPU backend only run burn's step).
    #[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
    settings: AdamWSettings,
    /// burn's own step, for every other backend.
    burn: AdamW,
}

impl<B: Backend> SimpleOptimizer<B> for FusedAdamW {
    type State<const D: usize> = AdamWState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        let (tensor, grad, state) =
            match crate::kernels::cube::adamw_step(&self.settings, lr, tensor, grad, state) {
                Ok((tensor, state)) => return (tensor, Some(state)),
                Err(declined) => declined,
            };
        self.burn.step(lr, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        <AdamW as SimpleOptimizer<B>>::to_device(state, device)
    }
}

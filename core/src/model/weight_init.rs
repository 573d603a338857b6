//! Weight initialisation as the official UniFormer (`_init_weights` in
//! `models/uniformer_blocks.py`): every Conv3d is Kaiming-normal in PyTorch's `fan_out` mode for a
//! ReLU (`std = √2 / √(out_channels · k³)`, PyTorch does not divide by the groups) with a zero
//! bias. burn's own Kaiming initialiser divides the fan-out by the groups, so the standard
//! deviation is computed here.

use burn::module::Param;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::Initializer;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

/// The standard deviation PyTorch's `kaiming_normal_(mode="fan_out", nonlinearity="relu")` uses
/// for a Conv3d weight of `out_channels` filters of `kernel_size` voxels.
pub fn kaiming_fan_out_std(out_channels: usize, kernel_size: [usize; 3]) -> f64 {
    let fan_out = (out_channels * kernel_size.iter().product::<usize>()).max(1);
    (2.0 / fan_out as f64).sqrt()
}

/// Builds `config` with the official initialisation: Kaiming-normal (fan-out) weight, zero bias.
pub fn official_conv3d<B: Backend>(config: Conv3dConfig, device: &B::Device) -> Conv3d<B> {
    let std = kaiming_fan_out_std(config.channels[1], config.kernel_size);
    let mut conv = config
        .with_initializer(Initializer::Normal { mean: 0.0, std })
        .init(device);
    conv.bias = conv.bias.map(|bias| {
        let shape = bias.val().shape();
        Param::from_tensor(Tensor::zeros(shape, device))
    });
    conv
}

//! Which kernel serves a convolution, decided from its shapes and options; `None` leaves it to
//! burn's own operation.

use burn::backend::flex::FlexTensor;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};

use super::autodiff::KernelBackward;
use super::route::{flex_tensor, values};
use super::shape::{bias_gradient, ConvShape};
use super::{dense, depthwise, patch};

/// The kernel families of this module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKind {
    /// Stride 1, groups 1, a kernel larger than `1×1×1` or padding ([`dense`]).
    Dense,
    /// Stride 1, one kernel per channel ([`depthwise`]).
    Depthwise,
    /// Kernel = stride, no padding, `1×1×1` included ([`patch::forward`]).
    Patch,
    /// Transposed, kernel = stride, no padding ([`patch::transpose_forward`]).
    PatchTranspose,
}

/// A convolution the kernels can run: its family and its sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvPlan {
    /// Kernel family.
    pub kind: ConvKind,
    /// Sizes.
    pub shape: ConvShape,
}

impl ConvPlan {
    /// The plan of `conv3d(x, weight, options)` (`x` `[N, C_in, D, H, W]`, `weight` `[C_out,
    /// C_in/groups, k…]`), or `None` where no kernel here covers it.
    pub fn conv(x: [usize; 5], weight: [usize; 5], options: &ConvOptions<3>) -> Option<Self> {
        let [batch, in_channels, d, h, w] = x;
        let [out_channels, group_channels, kd, kh, kw] = weight;
        let kernel = [kd, kh, kw];
        let shape = ConvShape {
            batch,
            in_channels,
            out_channels,
            input: [d, h, w],
            kernel,
            padding: options.padding,
        };
        let nonempty = batch > 0 && x.iter().chain(&weight).all(|&size| size > 0);
        if !nonempty || options.dilation != [1, 1, 1] {
            return None;
        }
        let stride_one = options.stride == [1, 1, 1]
            && (0..3).all(|axis| options.padding[axis] < kernel[axis])
            && (0..3).all(|axis| shape.padded()[axis] >= kernel[axis]);
        let patch = options.groups == 1
            && group_channels == in_channels
            && options.stride == kernel
            && options.padding == [0, 0, 0]
            && (0..3).all(|axis| shape.input[axis] % kernel[axis] == 0);
        let kind = if patch {
            ConvKind::Patch
        } else if stride_one && options.groups == 1 && group_channels == in_channels {
            ConvKind::Dense
        } else if stride_one
            && options.groups == in_channels
            && group_channels == 1
            && out_channels == in_channels
        {
            ConvKind::Depthwise
        } else {
            return None;
        };
        Some(Self { kind, shape })
    }

    /// The plan of `conv_transpose3d(x, weight, options)` (`weight` `[C_in, C_out/groups,
    /// k…]`), or `None` where no kernel here covers it.
    pub fn conv_transpose(
        x: [usize; 5],
        weight: [usize; 5],
        options: &ConvTransposeOptions<3>,
    ) -> Option<Self> {
        let [batch, in_channels, d, h, w] = x;
        let [weight_in, out_channels, kd, kh, kw] = weight;
        let kernel = [kd, kh, kw];
        let nonempty = batch > 0 && x.iter().chain(&weight).all(|&size| size > 0);
        let covered = nonempty
            && weight_in == in_channels
            && options.groups == 1
            && options.dilation == [1, 1, 1]
            && options.stride == kernel
            && options.padding == [0, 0, 0]
            && options.padding_out == [0, 0, 0];
        covered.then_some(Self {
            kind: ConvKind::PatchTranspose,
            shape: ConvShape {
                batch,
                in_channels,
                out_channels,
                input: [d, h, w],
                kernel,
                padding: [0, 0, 0],
            },
        })
    }

    /// `[N, C_out, D', H', W']`.
    pub fn output_dims(&self) -> [usize; 5] {
        let s = &self.shape;
        let spatial = match self.kind {
            ConvKind::Dense | ConvKind::Depthwise => s.stride_one_output(),
            ConvKind::Patch => [0, 1, 2].map(|axis| s.input[axis] / s.kernel[axis]),
            ConvKind::PatchTranspose => [0, 1, 2].map(|axis| s.input[axis] * s.kernel[axis]),
        };
        [s.batch, s.out_channels, spatial[0], spatial[1], spatial[2]]
    }

    /// The forward pass.
    pub fn forward(&self, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        let s = &self.shape;
        match self.kind {
            ConvKind::Dense => dense::forward(s, x, weight, bias),
            ConvKind::Depthwise => depthwise::forward(s, x, weight, bias),
            ConvKind::Patch => patch::forward(s, x, weight, bias),
            ConvKind::PatchTranspose => patch::transpose_forward(s, x, weight, bias),
        }
    }

    /// The gradient of the input from the output gradient.
    pub fn backward_input(&self, weight: &[f32], grad: &[f32]) -> Vec<f32> {
        let s = &self.shape;
        match self.kind {
            ConvKind::Dense => dense::backward_input(s, weight, grad),
            ConvKind::Depthwise => depthwise::backward_input(s, weight, grad),
            ConvKind::Patch => patch::backward_input(s, weight, grad),
            ConvKind::PatchTranspose => patch::transpose_backward_input(s, weight, grad),
        }
    }

    /// The gradient of the weight from the input and the output gradient.
    pub fn backward_weight(&self, x: &[f32], grad: &[f32]) -> Vec<f32> {
        let s = &self.shape;
        match self.kind {
            ConvKind::Dense => dense::backward_weight(s, x, grad),
            ConvKind::Depthwise => depthwise::backward_weight(s, x, grad),
            ConvKind::Patch => patch::backward_weight(s, x, grad),
            ConvKind::PatchTranspose => patch::transpose_backward_weight(s, x, grad),
        }
    }

    /// The gradient of the bias from the output gradient.
    pub fn backward_bias(&self, grad: &[f32]) -> Vec<f32> {
        let [batch, channels, d, h, w] = self.output_dims();
        bias_gradient(grad, batch, channels, d * h * w)
    }
}

impl ConvPlan {
    /// The forward pass on the CPU backend's tensors.
    pub fn forward_tensor(
        &self,
        x: &FlexTensor,
        weight: &FlexTensor,
        bias: Option<&FlexTensor>,
    ) -> FlexTensor {
        let bias_values = bias.map(values);
        let out = self.forward(&values(x), &values(weight), bias_values.as_deref());
        flex_tensor(out, &self.output_dims())
    }
}

/// Kept: `[input, weight]`; parents: `[input, weight]` or `[input, weight, bias]`.
impl KernelBackward for ConvPlan {
    fn gradients(
        &self,
        kept: &[FlexTensor],
        grad: &FlexTensor,
        wanted: &[bool],
    ) -> Vec<Option<FlexTensor>> {
        let [x, weight] = kept else {
            unreachable!("a convolution keeps its input and weight")
        };
        let grad_values = values(grad);
        let input = wanted[0].then(|| {
            let dx = self.backward_input(&values(weight), &grad_values);
            flex_tensor(dx, x.layout().shape())
        });
        let weight_grad = wanted[1].then(|| {
            let dw = self.backward_weight(&values(x), &grad_values);
            flex_tensor(dw, weight.layout().shape())
        });
        let bias = wanted.get(2).is_some_and(|&want| want).then(|| {
            let db = self.backward_bias(&grad_values);
            let channels = db.len();
            flex_tensor(db, &[channels])
        });
        vec![input, weight_grad, bias]
    }
}

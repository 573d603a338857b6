//! The shape of one 3-D convolution as the kernels see it, and the zero-padded copies of input
//! planes that the stride-1 kernels read from.
//!
//! Every tensor is contiguous `f32` in burn's layouts: inputs `[N, C, D, H, W]`, convolution
//! weights `[C_out, C_in, kD, kH, kW]`, transposed-convolution weights `[C_in, C_out, kD, kH, kW]`.

/// Sizes of one convolution (stride 1 unless the kernel says otherwise, dilation 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Samples.
    pub batch: usize,
    /// Channels of the input.
    pub in_channels: usize,
    /// Channels of the output.
    pub out_channels: usize,
    /// Input `[D, H, W]`.
    pub input: [usize; 3],
    /// Kernel `[kD, kH, kW]`.
    pub kernel: [usize; 3],
    /// Zeros added on both sides of each axis (stride-1 kernels only).
    pub padding: [usize; 3],
}

impl ConvShape {
    /// The padded input `[D + 2pD, H + 2pH, W + 2pW]`.
    pub fn padded(&self) -> [usize; 3] {
        [0, 1, 2].map(|axis| self.input[axis] + 2 * self.padding[axis])
    }

    /// The output of a stride-1 convolution, `padded − kernel + 1` per axis.
    pub fn stride_one_output(&self) -> [usize; 3] {
        let padded = self.padded();
        [0, 1, 2].map(|axis| padded[axis] + 1 - self.kernel[axis])
    }

    /// Values of one kernel (`kD·kH·kW`).
    pub fn taps(&self) -> usize {
        self.kernel.iter().product()
    }

    /// Voxels of one input channel.
    pub fn input_voxels(&self) -> usize {
        self.input.iter().product()
    }

    /// The stride-1 convolution whose forward pass gives this one's input gradient: the
    /// output as input, channels swapped, padding `k − 1 − p` (with the kernel flipped and
    /// transposed by [`flipped_transposed`]).
    pub fn input_gradient_shape(&self) -> ConvShape {
        ConvShape {
            batch: self.batch,
            in_channels: self.out_channels,
            out_channels: self.in_channels,
            input: self.stride_one_output(),
            kernel: self.kernel,
            padding: [0, 1, 2].map(|axis| self.kernel[axis] - 1 - self.padding[axis]),
        }
    }
}

/// `w'[i][o][t] = w[o][i][taps − 1 − t]` for `w` laid out `[outer][inner][taps]`: every axis of
/// each kernel reversed, and the two channel axes swapped.
pub fn flipped_transposed(weight: &[f32], outer: usize, inner: usize, taps: usize) -> Vec<f32> {
    let mut flipped = vec![0.0; weight.len()];
    for o in 0..outer {
        for i in 0..inner {
            let source = &weight[(o * inner + i) * taps..][..taps];
            let target = &mut flipped[(i * outer + o) * taps..][..taps];
            target
                .iter_mut()
                .zip(source.iter().rev())
                .for_each(|(t, s)| *t = *s);
        }
    }
    flipped
}

/// Where planes of the zero-padded input are copied to: `count` padded planes starting at
/// padded plane `first`, for `channels` channels, laid out `[channel][plane][Hp][Wp]` and
/// followed by one padded row of zeros (reads of the last row's last taps may run past the
/// plane into it; they only feed output columns that are thrown away).
pub struct PaddedPlanes {
    /// Padded planes copied.
    pub count: usize,
    /// `[Hp, Wp]`.
    pub plane: [usize; 2],
    /// The copied values.
    pub values: Vec<f32>,
}

impl PaddedPlanes {
    /// Copies padded planes `[first, first + count)` of each channel of `item` (`[C, D, H, W]`).
    pub fn copy(
        shape: &ConvShape,
        item: &[f32],
        channels: usize,
        first: usize,
        count: usize,
    ) -> Self {
        let [_, hp, wp] = shape.padded();
        let [depth, height, width] = shape.input;
        let [pad_d, pad_h, pad_w] = shape.padding;
        let mut values = vec![0.0f32; channels * count * hp * wp + wp];
        for channel in 0..channels {
            let source = &item[channel * depth * height * width..][..depth * height * width];
            for (slot, padded_z) in (first..first + count).enumerate() {
                let Some(z) = padded_z.checked_sub(pad_d).filter(|&z| z < depth) else {
                    continue;
                };
                let target_plane = (channel * count + slot) * hp * wp;
                for y in 0..height {
                    let target = target_plane + (y + pad_h) * wp + pad_w;
                    let row = &source[(z * height + y) * width..][..width];
                    values[target..target + width].copy_from_slice(row);
                }
            }
        }
        Self {
            count,
            plane: [hp, wp],
            values,
        }
    }

    /// Values per channel (`count · Hp · Wp`).
    pub fn channel_stride(&self) -> usize {
        self.count * self.plane[0] * self.plane[1]
    }

    /// Offset of tap `(a, b, c)` from its output position in this layout.
    pub fn tap_offset(&self, [a, b, c]: [usize; 3]) -> usize {
        (a * self.plane[0] + b) * self.plane[1] + c
    }

    /// Offsets of every tap, in the weight's `(kD, kH, kW)` order.
    pub fn tap_offsets(&self, kernel: [usize; 3]) -> Vec<usize> {
        let mut offsets = Vec::with_capacity(kernel.iter().product());
        for a in 0..kernel[0] {
            for b in 0..kernel[1] {
                for c in 0..kernel[2] {
                    offsets.push(self.tap_offset([a, b, c]));
                }
            }
        }
        offsets
    }
}

/// `Σ` of `grad` (`[N, C, ...]`, `volume` values per channel) over samples and voxels, per
/// channel: the gradient of a per-channel bias.
pub fn bias_gradient(grad: &[f32], batch: usize, channels: usize, voxels: usize) -> Vec<f32> {
    let mut sums = vec![0.0f64; channels];
    for sample in 0..batch {
        for (channel, sum) in sums.iter_mut().enumerate() {
            let start = (sample * channels + channel) * voxels;
            *sum += grad[start..start + voxels]
                .iter()
                .map(|&v| v as f64)
                .sum::<f64>();
        }
    }
    sums.into_iter().map(|s| s as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_planes_hold_the_input_inside_zeros() {
        let shape = ConvShape {
            batch: 1,
            in_channels: 2,
            out_channels: 1,
            input: [2, 2, 3],
            kernel: [3, 3, 3],
            padding: [1, 1, 1],
        };
        let item: Vec<f32> = (1..=24).map(|v| v as f32).collect();
        let planes = PaddedPlanes::copy(&shape, &item, 2, 1, 2);
        assert_eq!(planes.plane, [4, 5]);
        assert_eq!(planes.values.len(), 2 * 2 * 20 + 5);
        // channel 0, padded plane 1 = input plane 0, padded row 1 = input row 0.
        assert_eq!(&planes.values[5..10], &[0.0, 1.0, 2.0, 3.0, 0.0]);
        // channel 1 starts 2 planes later; its first copied plane is input plane 0 of channel 1.
        assert_eq!(
            &planes.values[40 + 5..40 + 10],
            &[0.0, 13.0, 14.0, 15.0, 0.0]
        );
        // padded plane 2 of channel 1 = input plane 1: values 19..21 on padded row 1.
        assert_eq!(
            &planes.values[40 + 20 + 5..40 + 20 + 10],
            &[0.0, 19.0, 20.0, 21.0, 0.0]
        );
        assert!(planes.values[40 + 20 + 15..].iter().all(|&v| v == 0.0));
        assert_eq!(planes.tap_offset([1, 2, 1]), 20 + 10 + 1);
    }

    #[test]
    fn flipped_transposed_reverses_each_kernel_and_swaps_channels() {
        // outer 2, inner 3, taps 2: w[o][i][t] = 10·o + i + 0.1·t
        let weight: Vec<f32> = (0..2)
            .flat_map(|o| {
                (0..3).flat_map(move |i| (0..2).map(move |t| (10 * o + i) as f32 + 0.1 * t as f32))
            })
            .collect();
        let flipped = flipped_transposed(&weight, 2, 3, 2);
        // w'[i=2][o=1][t=0] = w[1][2][1] = 12.1
        assert!((flipped[(2 * 2 + 1) * 2] - 12.1).abs() < 1e-6);
        assert!((flipped[(2 * 2 + 1) * 2 + 1] - 12.0).abs() < 1e-6);
    }
}

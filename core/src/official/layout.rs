//! Axis conventions of the official PyTorch code against ours, and the permutations between them.
//!
//! - Volumes: the official code (MONAI, nibabel) holds `[N, C, X, Y, Z]` (NIfTI voxel order, `x`
//!   the first index); brainmvp holds `[N, C, Z, Y, X]` (`x` fastest in memory, as
//!   [`Volume`](crate::Volume)). The same image is the official tensor with its spatial axes
//!   reversed.
//! - The official UniFormer permutes its input to `[N, C, Z, X, Y]` (`x.permute(0,1,4,2,3)`) and
//!   its decoders permute the stage outputs back to `[N, C, X, Y, Z]`. So a kernel of the encoder
//!   (and of the UniUnet's `proj1`, which sees the permuted input) runs over `(Z, X, Y)`: in ours,
//!   which runs over `(Z, Y, X)`, its last two kernel axes are swapped. A kernel of a decoder runs
//!   over `(X, Y, Z)`: in ours its three kernel axes are reversed.
//! - `nn.Linear` stores `[out, in]`, burn's `Linear` `[in, out]`.
//! - Templates: official `rep_template` `[M, X, Y, Z]`, ours `[M, Z, Y, X]`.
//!
//! Every permutation here is its own inverse, so one function converts both ways.

use crate::error::{Error, Result};

/// Official volume `[N, C, X, Y, Z]` ↔ ours `[N, C, Z, Y, X]`.
pub const VOLUME_AXES: [usize; 5] = [0, 1, 4, 3, 2];

/// Official encoder stage output `[N, C, Z, X, Y]` ↔ ours `[N, C, Z, Y, X]`.
pub const ENCODER_STAGE_AXES: [usize; 5] = [0, 1, 2, 4, 3];

/// Official template `[M, X, Y, Z]` ↔ ours `[M, Z, Y, X]`.
pub const TEMPLATE_AXES: [usize; 4] = [0, 3, 2, 1];

/// How one tensor is rearranged between the official model and ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// The same values in the same shape (biases, norm affines, running statistics).
    Copy,
    /// `nn.Linear` weight `[out, in]` ↔ burn `[in, out]`.
    Linear,
    /// A 3D convolution weight `[out, in, kz, kx, ky]` of the official encoder ↔ ours `[out, in, kz, ky, kx]`.
    EncoderConvWeight,
    /// A 3D convolution weight `[.., .., kx, ky, kz]` of an official decoder ↔ ours `[.., .., kz, ky, kx]`.
    DecoderConvWeight,
    /// Templates `[M, X, Y, Z]` ↔ ours `[M, Z, Y, X]`.
    Template,
}

impl Transform {
    /// The axis permutation for a tensor of `rank` (`None`: the values stay as they are).
    pub fn axes(self, rank: usize) -> Result<Option<Vec<usize>>> {
        let expected = match self {
            Self::Copy => return Ok(None),
            Self::Linear => 2,
            Self::EncoderConvWeight | Self::DecoderConvWeight => 5,
            Self::Template => 4,
        };
        if rank != expected {
            return Err(Error::new(
                "official tensor layout",
                format!("{self:?} needs a tensor of rank {expected}, got rank {rank}"),
            ));
        }
        Ok(Some(match self {
            Self::Linear => vec![1, 0],
            Self::EncoderConvWeight => ENCODER_STAGE_AXES.to_vec(),
            Self::DecoderConvWeight => VOLUME_AXES.to_vec(),
            _ => TEMPLATE_AXES.to_vec(),
        }))
    }

    /// Rearranges `values` of `shape` (row-major) between the official layout and ours (either
    /// way: every transform is its own inverse). Returns the new shape and values.
    pub fn apply(self, shape: &[usize], values: Vec<f32>) -> Result<(Vec<usize>, Vec<f32>)> {
        match self.axes(shape.len())? {
            None => Ok((shape.to_vec(), values)),
            Some(axes) => permute(shape, &values, &axes),
        }
    }
}

/// Row-major `values` of `shape` with their axes permuted: output axis `i` is input axis
/// `axes[i]`.
pub fn permute(shape: &[usize], values: &[f32], axes: &[usize]) -> Result<(Vec<usize>, Vec<f32>)> {
    let count: usize = shape.iter().product();
    let mut seen = vec![false; shape.len()];
    let valid_axes = axes.len() == shape.len()
        && axes
            .iter()
            .all(|&axis| axis < shape.len() && !std::mem::replace(&mut seen[axis], true));
    if !valid_axes || values.len() != count {
        return Err(Error::new(
            "official tensor layout",
            format!(
                "cannot permute {} values of shape {shape:?} by {axes:?}",
                values.len()
            ),
        ));
    }
    let out_shape: Vec<usize> = axes.iter().map(|&axis| shape[axis]).collect();
    let strides = row_major_strides(shape);
    let out_strides: Vec<usize> = axes.iter().map(|&axis| strides[axis]).collect();
    let mut out = Vec::with_capacity(count);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..count {
        let source: usize = index.iter().zip(&out_strides).map(|(i, s)| i * s).sum();
        out.push(values[source]);
        for axis in (0..index.len()).rev() {
            index[axis] += 1;
            if index[axis] < out_shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    Ok((out_shape, out))
}

fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; shape.len()];
    for axis in (0..shape.len().saturating_sub(1)).rev() {
        strides[axis] = strides[axis + 1] * shape[axis + 1];
    }
    strides
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_moves_each_value_to_its_permuted_index() {
        let shape = [2, 3, 4];
        let values: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let (out_shape, out) = permute(&shape, &values, &[2, 0, 1]).unwrap();
        assert_eq!(out_shape, vec![4, 2, 3]);
        for a in 0..2 {
            for b in 0..3 {
                for c in 0..4 {
                    assert_eq!(out[c * 6 + a * 3 + b], values[a * 12 + b * 4 + c]);
                }
            }
        }
    }

    #[test]
    fn every_transform_is_its_own_inverse() {
        let cases = [
            (Transform::Linear, vec![3, 5]),
            (Transform::EncoderConvWeight, vec![2, 3, 2, 3, 4]),
            (Transform::DecoderConvWeight, vec![3, 2, 2, 3, 4]),
            (Transform::Template, vec![2, 4, 3, 5]),
            (Transform::Copy, vec![7]),
        ];
        for (transform, shape) in cases {
            let values: Vec<f32> = (0..shape.iter().product::<usize>())
                .map(|v| v as f32)
                .collect();
            let (mid_shape, mid) = transform.apply(&shape, values.clone()).unwrap();
            let (back_shape, back) = transform.apply(&mid_shape, mid).unwrap();
            assert_eq!((back_shape, back), (shape, values), "{transform:?}");
        }
    }

    #[test]
    fn a_wrong_rank_or_length_is_an_error_not_a_panic() {
        assert!(Transform::Linear.apply(&[2, 2, 2], vec![0.0; 8]).is_err());
        assert!(permute(&[2, 2], &[0.0; 3], &[1, 0]).is_err());
        assert!(permute(&[2, 2], &[0.0; 4], &[0, 0]).is_err());
    }
}

//! A tiny real computation on a burn backend, read back asynchronously and compared with the
//! same product computed on the CPU in plain Rust: proof that the backend the page found works.

use burn::tensor::{backend::Backend, Tensor, TensorData};

/// Left operand of the check (row-major 2×2).
pub const LHS: [[f32; 2]; 2] = [[1.0, 2.0], [3.0, 4.0]];
/// Right operand of the check (row-major 2×2).
pub const RHS: [[f32; 2]; 2] = [[5.0, 6.0], [7.0, 8.0]];

/// Largest absolute difference accepted between the backend and the plain-Rust product.
const TOLERANCE: f32 = 1e-4;

/// The outcome of [`run_matmul_check`]: what the backend returned and what it should have.
#[derive(Debug, Clone, PartialEq)]
pub struct MatmulCheck {
    /// `LHS × RHS` as read back from the backend, row-major.
    pub backend_values: Vec<f32>,
    /// `LHS × RHS` computed with plain loops on the CPU, row-major.
    pub reference_values: Vec<f32>,
}

impl MatmulCheck {
    /// True when the backend's product matches the reference within [`TOLERANCE`].
    pub fn is_ok(&self) -> bool {
        self.backend_values.len() == self.reference_values.len()
            && self
                .backend_values
                .iter()
                .zip(&self.reference_values)
                .all(|(got, want)| (got - want).abs() <= TOLERANCE)
    }

    /// One line for the page, e.g. `check: ok (matmul [19, 22, 43, 50])`.
    pub fn summary(&self) -> String {
        let got = format_values(&self.backend_values);
        if self.is_ok() {
            format!("check: ok (matmul [{got}])")
        } else {
            let want = format_values(&self.reference_values);
            format!("check: FAILED (matmul [{got}], expected [{want}])")
        }
    }
}

/// `LHS × RHS` with plain loops: the reference the backend is compared with.
pub fn reference_product() -> Vec<f32> {
    let mut product = Vec::with_capacity(4);
    for lhs_row in &LHS {
        for column in 0..2 {
            let dot = lhs_row
                .iter()
                .zip(&RHS)
                .map(|(lhs_value, rhs_row)| lhs_value * rhs_row[column])
                .sum();
            product.push(dot);
        }
    }
    product
}

/// Multiply [`LHS`] by [`RHS`] on `device`, read the result back without blocking (the only way
/// on WebGPU) and pair it with the plain-Rust reference.
pub async fn run_matmul_check<B: Backend>(device: &B::Device) -> Result<MatmulCheck, String> {
    let lhs = Tensor::<B, 2>::from_data(TensorData::from(LHS), device);
    let rhs = Tensor::<B, 2>::from_data(TensorData::from(RHS), device);
    let data = lhs
        .matmul(rhs)
        .into_data_async()
        .await
        .map_err(|err| format!("reading the matmul result back failed: {err:?}"))?;
    let backend_values = data
        .to_vec::<f32>()
        .map_err(|err| format!("the matmul result is not f32: {err:?}"))?;
    Ok(MatmulCheck {
        backend_values,
        reference_values: reference_product(),
    })
}

/// `19, 22, 43, 50` for whole numbers, otherwise as many digits as needed.
fn format_values(values: &[f32]) -> String {
    values
        .iter()
        .map(|value| format!("{value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    /// Drive a future to completion on this thread (flex's reads complete without waiting).
    fn block_on<F: Future>(future: F) -> F::Output {
        let mut future = pin!(future);
        let mut context = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return output;
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn reference_is_the_hand_computed_product() {
        // [[1,2],[3,4]] × [[5,6],[7,8]] = [[1·5+2·7, 1·6+2·8], [3·5+4·7, 3·6+4·8]]
        assert_eq!(reference_product(), vec![19.0, 22.0, 43.0, 50.0]);
    }

    #[test]
    fn flex_backend_passes_the_check() {
        let device = Default::default();
        let check = block_on(run_matmul_check::<burn::backend::Flex>(&device)).unwrap();
        assert!(check.is_ok(), "{check:?}");
        assert_eq!(check.summary(), "check: ok (matmul [19, 22, 43, 50])");
    }

    #[test]
    fn a_wrong_product_is_reported_as_failed() {
        let check = MatmulCheck {
            backend_values: vec![19.0, 22.0, 43.0, 51.0],
            reference_values: reference_product(),
        };
        assert!(!check.is_ok());
        assert_eq!(
            check.summary(),
            "check: FAILED (matmul [19, 22, 43, 51], expected [19, 22, 43, 50])"
        );
    }
}

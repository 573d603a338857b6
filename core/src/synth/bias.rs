//! A smooth multiplicative bias field: `exp(p_x(x) + p_y(y) + p_z(z))` with random low-order
//! polynomials per axis, stored as three per-axis factor tables (one multiply per voxel).

use crate::rng::Rng;

/// Separable bias field over a grid.
#[derive(Debug, Clone)]
pub struct BiasField {
    factors: [Vec<f32>; 3],
}

impl BiasField {
    /// A random field whose log has amplitude about `strength` along each axis
    /// (linear and quadratic terms in the coordinate normalised to `[-1, 1]`).
    pub fn random(rng: &mut Rng, dims: [usize; 3], strength: f64) -> Self {
        let factors = std::array::from_fn(|axis| {
            let linear = strength * rng.range_f64(-1.0, 1.0);
            let quadratic = strength * rng.range_f64(-1.0, 1.0);
            let len = dims[axis];
            (0..len)
                .map(|i| {
                    let t = if len > 1 {
                        2.0 * i as f64 / (len - 1) as f64 - 1.0
                    } else {
                        0.0
                    };
                    // Centred quadratic (mean 0 over [-1, 1]) keeps the mean gain near 1.
                    (linear * t + quadratic * (t * t - 1.0 / 3.0)).exp() as f32
                })
                .collect()
        });
        Self { factors }
    }

    /// A field of 1 everywhere.
    pub fn flat(dims: [usize; 3]) -> Self {
        Self {
            factors: std::array::from_fn(|axis| vec![1.0; dims[axis]]),
        }
    }

    /// Product of the y and z factors (constant along a row).
    #[inline]
    pub fn row_factor(&self, y: usize, z: usize) -> f32 {
        self.factors[1][y] * self.factors[2][z]
    }

    /// The x factor.
    #[inline]
    pub fn x_factor(&self, x: usize) -> f32 {
        self.factors[0][x]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_stays_within_bounds_and_is_smooth() {
        let dims = [50, 60, 40];
        let field = BiasField::random(&mut Rng::new(9), dims, 0.15);
        // |log| ≤ 0.15 (linear) + 0.15·2/3 (quadratic) per axis, three axes.
        let bound = (3.0f32 * (0.15 + 0.1)).exp();
        for x in 0..dims[0] {
            let value = field.row_factor(10, 10) * field.x_factor(x);
            assert!(value < bound && value > 1.0 / bound);
        }
        for x in 1..dims[0] {
            assert!((field.x_factor(x) / field.x_factor(x - 1) - 1.0).abs() < 0.02);
        }
        assert_eq!(BiasField::flat(dims).row_factor(3, 4), 1.0);
    }
}

//! A small, fully specified pseudo-random generator (xoshiro256** seeded by SplitMix64).
//!
//! The data pipeline needs results that are byte-identical for a seed on every platform and
//! every dependency update (synthetic cohorts, crop order, masks), so it does not depend on the
//! `rand` crate's unspecified `StdRng`. Independent streams (one per subject, per worker, per
//! epoch) come from [`Rng::stream`], so parallel work stays deterministic.

/// xoshiro256** state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    state: [u64; 4],
}

fn splitmix64(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let state = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Self { state }
    }

    /// An independent generator for stream `id` of `seed` (e.g. subject index, worker index).
    pub fn stream(seed: u64, id: u64) -> Self {
        let mut sm = seed ^ 0x5DEE_CE66_D1A4_F87D;
        let mixed = splitmix64(&mut sm) ^ id.wrapping_mul(0xA076_1D64_78BD_642F);
        Self::new(mixed)
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[low, high)`.
    pub fn range_f64(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform()
    }

    /// Uniform integer in `[0, bound)`; `bound` must be > 0 (0 returns 0).
    pub fn below(&mut self, bound: usize) -> usize {
        if bound == 0 {
            return 0;
        }
        // Lemire's multiply-shift with rejection: unbiased.
        let bound = bound as u64;
        loop {
            let wide = (self.next_u64() as u128) * (bound as u128);
            let low = wide as u64;
            if low >= bound.wrapping_neg() % bound {
                return (wide >> 64) as usize;
            }
        }
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }

    /// Standard normal (Box–Muller, one value per call).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_streams_differ() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(Rng::stream(42, 0).next_u64(), Rng::stream(42, 1).next_u64());
    }

    #[test]
    fn uniform_and_normal_moments() {
        let mut rng = Rng::new(7);
        let count = 200_000;
        let values: Vec<f64> = (0..count).map(|_| rng.normal()).collect();
        let mean = values.iter().sum::<f64>() / count as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / count as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
        let below: Vec<usize> = (0..60_000).map(|_| rng.below(6)).collect();
        for face in 0..6 {
            let share = below.iter().filter(|&&v| v == face).count() as f64 / 60_000.0;
            assert!((share - 1.0 / 6.0).abs() < 0.01, "face {face}: {share}");
        }
    }
}

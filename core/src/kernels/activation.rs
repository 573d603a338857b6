//! GELU in its exact form `x·Φ(x) = ½·x·(1 + erf(x/√2))` (PyTorch's `nn.GELU()`, burn's
//! `gelu`), vectorised and split over threads. burn-flex evaluates it one value at a time with
//! a library `erf` on one thread (0.39 s for the `[1, 256, 48³]` MLP activation of a
//! UniFormer-S block).
//!
//! `erf` is its Taylor series below 1 and Abramowitz & Stegun 7.1.26 above (absolute error
//! below 1.5·10⁻⁷ in exact arithmetic; under 3·10⁻⁷ in `f32` as tested, so GELU is within
//! `|x|·1.5·10⁻⁷` of the exact value), with `exp` by range reduction and a degree-7
//! polynomial: no branches, so the loops vectorise.

use core::f32::consts::{FRAC_1_SQRT_2, LOG2_E};

use super::parallel::{self, SharedOut};
#[cfg(target_arch = "x86_64")]
use super::simd::has_fma;
use super::simd::madd;

/// `ln 2 = LN_2_HIGH + LN_2_LOW`, the high part with few enough bits that `k·LN_2_HIGH` is exact.
const LN_2_HIGH: f32 = 0.693_359_4;
const LN_2_LOW: f32 = -2.121_944_4e-4;

/// `1/√(2π)`.
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// Values per task.
const CHUNK: usize = 1 << 16;

/// `eˣ` for `x ≤ 0` (relative error about 10⁻⁷; inputs below −87 give `e⁻⁸⁷`).
#[inline(always)]
fn exp_nonpositive<const FMA: bool>(x: f32) -> f32 {
    let x = x.max(-87.0);
    // k = round(x / ln 2) by the 1.5·2²³ trick, r = x − k·ln 2 in [−ln2/2, ln2/2], with ln 2
    // split in an exact high part and a low part (Cody–Waite) so that r keeps its precision.
    let shifter = 12_582_912.0f32;
    let k = (x * LOG2_E + shifter) - shifter;
    let r = madd::<FMA>(-k, LN_2_HIGH, x);
    let r = madd::<FMA>(-k, LN_2_LOW, r);
    let mut p = 1.0 / 5040.0;
    for coefficient in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = madd::<FMA>(p, r, coefficient);
    }
    let scale = f32::from_bits(((k as i32 + 127) as u32) << 23);
    p * scale
}

/// `erf(x)`: its Taylor series below `|x| = 1` (where `1 − …` would lose the relative
/// precision), Abramowitz & Stegun 7.1.26 above; both are evaluated and one is selected, so the
/// loop stays branch-free.
#[inline(always)]
fn erf<const FMA: bool>(x: f32) -> f32 {
    let z = x.abs();
    let u = z * z;
    let mut series = -1.0 / 6_894_720.0 + u / 76_204_800.0;
    for coefficient in [
        1.0 / 685_440.0,
        -1.0 / 75_600.0,
        1.0 / 9_360.0,
        -1.0 / 1_320.0,
        1.0 / 216.0,
        -1.0 / 42.0,
        0.1,
        -1.0 / 3.0,
        1.0,
    ] {
        series = madd::<FMA>(series, u, coefficient);
    }
    let small = series * z * core::f32::consts::FRAC_2_SQRT_PI;
    let t = 1.0 / madd::<FMA>(0.327_591_1, z, 1.0);
    let mut poly = 1.061_405_4;
    for coefficient in [-1.453_152_1, 1.421_413_7, -0.284_496_72, 0.254_829_6] {
        poly = madd::<FMA>(poly, t, coefficient);
    }
    let large = 1.0 - poly * t * exp_nonpositive::<FMA>(-u);
    let value = if z < 1.0 { small } else { large };
    value.copysign(x)
}

#[inline(always)]
fn gelu_body<const FMA: bool>(out: &mut [f32], x: &[f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = 0.5 * v * (1.0 + erf::<FMA>(v * FRAC_1_SQRT_2));
    }
}

#[inline(always)]
fn gelu_grad_body<const FMA: bool>(out: &mut [f32], x: &[f32], grad: &[f32]) {
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(grad) {
        let cdf = 0.5 * (1.0 + erf::<FMA>(v * FRAC_1_SQRT_2));
        let pdf = INV_SQRT_2PI * exp_nonpositive::<FMA>(-0.5 * v * v);
        *o = g * madd::<FMA>(v, pdf, cdf);
    }
}

#[inline(always)]
fn exp_shifted_body<const FMA: bool>(values: &mut [f32], shift: f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut chunks = values.chunks_exact_mut(8);
    for chunk in &mut chunks {
        for lane in 0..8 {
            chunk[lane] = exp_nonpositive::<FMA>(chunk[lane] - shift);
            lanes[lane] += chunk[lane];
        }
    }
    let mut tail = 0.0;
    for v in chunks.into_remainder() {
        *v = exp_nonpositive::<FMA>(*v - shift);
        tail += *v;
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn exp_shifted_fma(values: &mut [f32], shift: f32) -> f32 {
    exp_shifted_body::<true>(values, shift)
}

/// `v ← e^(v − shift)` for every value (each `v − shift` must be `≤ 0`, as in a softmax with
/// the row maximum or the log-sum-exp as `shift`); returns the sum of the new values.
pub fn exp_shifted(values: &mut [f32], shift: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { exp_shifted_fma(values, shift) };
    }
    exp_shifted_body::<false>(values, shift)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_fma(out: &mut [f32], x: &[f32]) {
    gelu_body::<true>(out, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_grad_fma(out: &mut [f32], x: &[f32], grad: &[f32]) {
    gelu_grad_body::<true>(out, x, grad)
}

fn gelu_chunk(out: &mut [f32], x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { gelu_fma(out, x) };
    }
    gelu_body::<false>(out, x)
}

fn gelu_grad_chunk(out: &mut [f32], x: &[f32], grad: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { gelu_grad_fma(out, x, grad) };
    }
    gelu_grad_body::<false>(out, x, grad)
}

/// `GELU(x)`, elementwise.
pub fn gelu(x: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    let target = SharedOut::new(&mut out);
    parallel::for_each((0..x.len()).step_by(CHUNK).collect(), |start| {
        let len = CHUNK.min(x.len() - start);
        // SAFETY: each task writes its own chunk.
        gelu_chunk(unsafe { target.part(start, len) }, &x[start..start + len]);
    });
    out
}

/// `grad · GELU'(x)`, elementwise: the input gradient of [`gelu`].
pub fn gelu_backward(x: &[f32], grad: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    let target = SharedOut::new(&mut out);
    parallel::for_each((0..x.len()).step_by(CHUNK).collect(), |start| {
        let len = CHUNK.min(x.len() - start);
        let part = start..start + len;
        // SAFETY: each task writes its own chunk.
        gelu_grad_chunk(
            unsafe { target.part(start, len) },
            &x[part.clone()],
            &grad[part],
        );
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Taylor series (|x| ≤ 3) or continued fraction, in f64: a reference.
    fn erf_reference(x: f64) -> f64 {
        let z = x.abs();
        let value = if z < 3.0 {
            let mut term = z;
            let mut sum = z;
            for n in 1..200 {
                term *= -z * z / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        } else {
            // erfc continued fraction.
            let mut fraction = 0.0;
            for k in (1..60).rev() {
                fraction = (k as f64 / 2.0) / (z + fraction);
            }
            1.0 - (-z * z).exp() / (std::f64::consts::PI.sqrt() * (z + fraction))
        };
        value.copysign(x)
    }

    #[test]
    fn exp_and_erf_are_accurate_in_both_builds() {
        for i in 0..20_000 {
            let x = -10.0 + i as f32 * 1e-3;
            let expected_erf = erf_reference(x as f64);
            for got in [erf::<false>(x), erf::<true>(x)] {
                assert!(
                    (got as f64 - expected_erf).abs() < 3e-7,
                    "erf({x}) = {got}, expected {expected_erf}"
                );
            }
            let y = -(i as f32) * 4e-3;
            let expected_exp = (y as f64).exp();
            let got = exp_nonpositive::<false>(y) as f64;
            assert!(
                (got - expected_exp).abs() <= 3e-7 * expected_exp,
                "exp({y})"
            );
        }
    }

    #[test]
    fn gelu_and_its_gradient_match_the_formula() {
        let x: Vec<f32> = (0..300_000).map(|i| -12.0 + i as f32 * 8e-5).collect();
        let grad: Vec<f32> = x.iter().map(|v| (v * 3.0).sin()).collect();
        let out = gelu(&x);
        let dx = gelu_backward(&x, &grad);
        for (index, &v) in x.iter().enumerate() {
            let v64 = v as f64;
            let cdf = 0.5 * (1.0 + erf_reference(v64 * std::f64::consts::FRAC_1_SQRT_2));
            let expected = v64 * cdf;
            assert!(
                (out[index] as f64 - expected).abs() < 1e-6 * (1.0 + v64.abs()),
                "gelu({v})"
            );
            let pdf = (-0.5 * v64 * v64).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let expected_grad = grad[index] as f64 * (cdf + v64 * pdf);
            assert!(
                (dx[index] as f64 - expected_grad).abs() < 2e-6 * (1.0 + v64.abs()),
                "gelu'({v})"
            );
        }
    }
}

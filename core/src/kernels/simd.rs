//! The few vector loops the kernels run outside matrix products, compiled twice: once for the
//! build's baseline target and once with AVX2 + FMA, chosen at run time on x86-64 (a release
//! binary must run on any x86-64, so the baseline is SSE2 and gives neither 8-wide vectors nor
//! fused multiply-adds; these loops are worth both).

/// The fused multiply-add `a·b + c` where the instruction exists, `a·b + c` rounded twice
/// elsewhere (`f32::mul_add` without the FMA feature is a slow library call).
#[inline(always)]
pub fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `acc[i] += Σ_t taps[t] · src[i + t]` for `i < acc.len()` (`src` has `taps.len() − 1` more
/// values than `acc`): one row of a 1-D correlation.
#[inline(always)]
fn row_taps_body<const FMA: bool>(acc: &mut [f32], src: &[f32], taps: &[f32]) {
    let len = acc.len();
    assert!(
        src.len() + 1 >= len + taps.len(),
        "row_taps: source too short"
    );
    match taps {
        [t0, t1, t2] => {
            let (s0, s1, s2) = (&src[..len], &src[1..len + 1], &src[2..len + 2]);
            for i in 0..len {
                acc[i] = madd::<FMA>(
                    *t2,
                    s2[i],
                    madd::<FMA>(*t1, s1[i], madd::<FMA>(*t0, s0[i], acc[i])),
                );
            }
        }
        [t0, t1, t2, t3, t4] => {
            let (s0, s1, s2) = (&src[..len], &src[1..len + 1], &src[2..len + 2]);
            let (s3, s4) = (&src[3..len + 3], &src[4..len + 4]);
            for i in 0..len {
                let mut value = madd::<FMA>(*t0, s0[i], acc[i]);
                value = madd::<FMA>(*t1, s1[i], value);
                value = madd::<FMA>(*t2, s2[i], value);
                value = madd::<FMA>(*t3, s3[i], value);
                acc[i] = madd::<FMA>(*t4, s4[i], value);
            }
        }
        _ => {
            for (tap, &weight) in taps.iter().enumerate() {
                let shifted = &src[tap..tap + len];
                for (a, &s) in acc.iter_mut().zip(shifted) {
                    *a = madd::<FMA>(weight, s, *a);
                }
            }
        }
    }
}

/// `Σ_t lanes` of `a[i]·b[i]` over the common length, with eight independent partial sums
/// (so the loop vectorises without reassociating a single sum).
#[inline(always)]
fn dot_body<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut lanes = [0.0f32; 8];
    let mut a_chunks = a.chunks_exact(8);
    let mut b_chunks = b.chunks_exact(8);
    for (x, y) in (&mut a_chunks).zip(&mut b_chunks) {
        for lane in 0..8 {
            lanes[lane] = madd::<FMA>(x[lane], y[lane], lanes[lane]);
        }
    }
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + tail
}

/// One output plane of a single-channel stride-1 correlation, read from zero-padded planes.
#[derive(Clone, Copy, Debug)]
pub struct PlaneTaps {
    /// Output `[rows, cols]` of the plane.
    pub output: [usize; 2],
    /// Padded input plane `[Hp, Wp]`.
    pub padded: [usize; 2],
    /// Kernel `[kD, kH, kW]`.
    pub kernel: [usize; 3],
}

#[inline(always)]
fn correlate_plane_body<const FMA: bool>(
    out: &mut [f32],
    src: &[f32],
    taps: &[f32],
    geometry: PlaneTaps,
) {
    let ([rows, cols], [hp, wp], [kd, kh, kw]) =
        (geometry.output, geometry.padded, geometry.kernel);
    for row in 0..rows {
        let acc = &mut out[row * cols..][..cols];
        for a in 0..kd {
            for b in 0..kh {
                let start = a * hp * wp + (row + b) * wp;
                let row_taps = &taps[(a * kh + b) * kw..][..kw];
                row_taps_body::<FMA>(acc, &src[start..start + cols + kw - 1], row_taps);
            }
        }
    }
}

#[inline(always)]
fn correlate_gradient_plane_body<const FMA: bool>(
    sums: &mut [f32],
    grad: &[f32],
    src: &[f32],
    geometry: PlaneTaps,
) {
    let ([rows, cols], [hp, wp], [kd, kh, kw]) =
        (geometry.output, geometry.padded, geometry.kernel);
    for row in 0..rows {
        let grad_row = &grad[row * cols..][..cols];
        for a in 0..kd {
            for b in 0..kh {
                let start = a * hp * wp + (row + b) * wp;
                for c in 0..kw {
                    sums[(a * kh + b) * kw + c] +=
                        dot_body::<FMA>(grad_row, &src[start + c..][..cols]);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn correlate_plane_fma(out: &mut [f32], src: &[f32], taps: &[f32], geometry: PlaneTaps) {
    correlate_plane_body::<true>(out, src, taps, geometry)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn correlate_gradient_plane_fma(
    sums: &mut [f32],
    grad: &[f32],
    src: &[f32],
    geometry: PlaneTaps,
) {
    correlate_gradient_plane_body::<true>(sums, grad, src, geometry)
}

/// `out[r][c] += Σ_{a,b,t} taps[a][b][t] · src[a][r + b][c + t]`: one output plane (`rows ×
/// cols`) of a single-channel correlation, `src` starting at the first padded plane it reads.
pub fn correlate_plane(out: &mut [f32], src: &[f32], taps: &[f32], geometry: PlaneTaps) {
    #[cfg(target_arch = "x86_64")]
    if has_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { correlate_plane_fma(out, src, taps, geometry) };
    }
    correlate_plane_body::<false>(out, src, taps, geometry)
}

/// `sums[a][b][t] += Σ_{r,c} grad[r][c] · src[a][r + b][c + t]`: what one output plane adds to
/// the kernel gradient of a single-channel correlation.
pub fn correlate_gradient_plane(sums: &mut [f32], grad: &[f32], src: &[f32], geometry: PlaneTaps) {
    #[cfg(target_arch = "x86_64")]
    if has_fma() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { correlate_gradient_plane_fma(sums, grad, src, geometry) };
    }
    correlate_gradient_plane_body::<false>(sums, grad, src, geometry)
}

/// Whether the CPU has AVX2 and FMA (checked once).
#[cfg(target_arch = "x86_64")]
pub fn has_fma() -> bool {
    use std::sync::OnceLock;
    static DETECTED: OnceLock<bool> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(count: usize, seed: f32) -> Vec<f32> {
        (0..count)
            .map(|i| ((i as f32 + seed) * 0.731).sin())
            .collect()
    }

    fn row_taps(acc: &mut [f32], src: &[f32], taps: &[f32]) {
        row_taps_body::<false>(acc, src, taps)
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        dot_body::<false>(a, b)
    }

    #[test]
    fn row_taps_match_the_plain_sum_for_every_tap_count() {
        for taps_len in 1..=7 {
            let taps = values(taps_len, 3.0);
            let src = values(37 + taps_len - 1, 1.0);
            let mut acc = values(37, 5.0);
            let expected: Vec<f32> = (0..37)
                .map(|i| acc[i] + (0..taps_len).map(|t| taps[t] * src[i + t]).sum::<f32>())
                .collect();
            row_taps(&mut acc, &src, &taps);
            for (x, y) in acc.iter().zip(&expected) {
                assert!((x - y).abs() < 1e-5, "{taps_len} taps: {x} vs {y}");
            }
        }
    }

    #[test]
    fn dot_matches_the_plain_sum() {
        for len in [0, 1, 7, 8, 9, 100] {
            let (a, b) = (values(len, 0.0), values(len + 3, 2.0));
            let expected: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - expected).abs() < 1e-4, "length {len}");
        }
    }
}

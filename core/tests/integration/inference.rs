//! Sliding-window inference: MONAI window placement, padding, blending, batching, errors.

use crate::support::B;
use brainmvp_core::inference::{
    importance_values, sliding_window, sliding_window_async, sliding_window_with_progress,
    window_starts, Blend, SlidingWindowConfig,
};
use burn::tensor::{Distribution, Tensor, TensorData};

fn config(roi: usize, overlap: f64, blend: Blend, batch: usize) -> SlidingWindowConfig {
    SlidingWindowConfig {
        roi: [roi; 3],
        overlap,
        blend,
        batch,
    }
}

fn values(tensor: Tensor<B, 5>) -> Vec<f32> {
    tensor.into_data().to_vec::<f32>().expect("f32 data")
}

fn random_input(shape: [usize; 5]) -> Tensor<B, 5> {
    Tensor::random(shape, Distribution::Uniform(-1.0, 1.0), &Default::default())
}

/// A model returning `value` in `out_channels` channels for every window.
fn constant_model(
    value: f32,
    out_channels: usize,
) -> impl FnMut(Tensor<B, 5>) -> brainmvp_core::Result<Tensor<B, 5>> {
    move |windows: Tensor<B, 5>| {
        let [n, _, rz, ry, rx] = windows.dims();
        Ok(Tensor::full(
            [n, out_channels, rz, ry, rx],
            value,
            &windows.device(),
        ))
    }
}

#[test]
fn window_starts_match_monai_by_hand() {
    // interval = int(96 * (1 - 0.5)) = 48; MONAI keeps k = 0, 1, ... up to the first k with
    // 48k + 96 >= size, and shifts that last start back by max(48k + 96 - size, 0).
    // size 240: 48·3 + 96 = 240 >= 240 at k = 3 → starts 0, 48, 96, 144 (no shift).
    assert_eq!(window_starts(240, 96, 0.5), vec![0, 48, 96, 144]);
    // size 155: 48·2 + 96 = 192 >= 155 at k = 2 → 96 shifted back by 192 − 155 = 37 → 59.
    assert_eq!(window_starts(155, 96, 0.5), vec![0, 48, 59]);
    // size == roi: MONAI's interval is the roi itself → one window.
    assert_eq!(window_starts(96, 96, 0.5), vec![0]);
    // size < roi: the axis is padded to the roi → one window at 0.
    assert_eq!(window_starts(50, 96, 0.5), vec![0]);
    // overlap 0: interval 96; 96 + 96 = 192 >= 192 at k = 1 → 0, 96.
    assert_eq!(window_starts(192, 96, 0.0), vec![0, 96]);
    // overlap 0.6: 96 · 0.4 = 38.400000000000006 → int → 38; 38·2 + 96 = 172 >= 155 at k = 2
    // → 76 shifted back by 17 → 59.
    assert_eq!(window_starts(155, 96, 0.6), vec![0, 38, 59]);
    // overlap 0.99, roi 4: int(0.04) = 0 → interval 1; 1·2 + 4 = 6 >= 6 at k = 2.
    assert_eq!(window_starts(6, 4, 0.99), vec![0, 1, 2]);
    // roi 32, overlap 0.5 → interval 16 on the test volume 100 × 37 × 130:
    // 100: 16·5 + 32 = 112 >= 100 at k = 5 → 80 − 12 = 68.
    assert_eq!(window_starts(100, 32, 0.5), vec![0, 16, 32, 48, 64, 68]);
    // 37: 16 + 32 = 48 >= 37 at k = 1 → 16 − 11 = 5.
    assert_eq!(window_starts(37, 32, 0.5), vec![0, 5]);
    // 130: 16·7 + 32 = 144 >= 130 at k = 7 → 112 − 14 = 98.
    assert_eq!(
        window_starts(130, 32, 0.5),
        vec![0, 16, 32, 48, 64, 80, 96, 98]
    );
    assert!(window_starts(10, 0, 0.5).is_empty());
}

#[test]
fn constant_model_reproduces_the_constant_exactly() {
    // A power-of-two constant times any weight is exact, so Σ c·w / Σ w is exactly c.
    for blend in [Blend::Constant, Blend::Gaussian] {
        for shape in [[1, 2, 100, 37, 130], [2, 1, 20, 9, 31], [1, 1, 32, 32, 32]] {
            let input = random_input(shape);
            let output = sliding_window(input, &config(32, 0.5, blend, 4), constant_model(-0.5, 3))
                .expect("sliding window");
            assert_eq!(output.dims(), [shape[0], 3, shape[2], shape[3], shape[4]]);
            let out = values(output);
            assert!(
                out.iter().all(|&value| value == -0.5),
                "{blend:?} {shape:?}: not exactly -0.5"
            );
        }
    }
}

#[test]
fn constant_model_with_any_constant_is_reproduced_to_rounding() {
    for blend in [Blend::Constant, Blend::Gaussian] {
        let input = random_input([1, 1, 100, 37, 130]);
        let output = sliding_window(input, &config(32, 0.5, blend, 8), constant_model(0.3, 1))
            .expect("sliding window");
        let worst = values(output)
            .iter()
            .map(|value| (value - 0.3).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-6, "{blend:?}: worst error {worst}");
    }
}

#[test]
fn identity_model_reproduces_the_input() {
    let identity = |windows: Tensor<B, 5>| Ok(windows);
    for blend in [Blend::Constant, Blend::Gaussian] {
        // Larger than the roi, not a multiple of the interval; and smaller than it (padded).
        for shape in [[1, 2, 100, 37, 130], [2, 2, 10, 20, 40]] {
            let input = random_input(shape);
            let expected = values(input.clone());
            let output =
                sliding_window(input, &config(32, 0.5, blend, 4), identity).expect("identity");
            assert_eq!(output.dims(), shape);
            let worst = values(output)
                .iter()
                .zip(&expected)
                .map(|(got, want)| (got - want).abs())
                .fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "{blend:?} {shape:?}: worst error {worst}");
        }
    }
}

#[test]
fn small_volumes_are_padded_symmetrically_with_zeros() {
    // z 9 → 16: diff 7, 3 zeros before and 4 after (MONAI: half = diff // 2 before).
    // y 16: no padding. x 4 → 16: 6 before, 6 after.
    let shape = [1, 1, 9, 16, 4];
    let data: Vec<f32> = (1..=shape.iter().product::<usize>())
        .map(|value| value as f32)
        .collect();
    let input = Tensor::<B, 5>::from_data(TensorData::new(data, shape), &Default::default());
    let mut seen = Vec::new();
    let recorder = |windows: Tensor<B, 5>| {
        seen.push(windows.clone());
        Ok(windows)
    };
    let output = sliding_window(
        input.clone(),
        &config(16, 0.5, Blend::Constant, 1),
        recorder,
    )
    .expect("padded");
    assert_eq!(seen.len(), 1, "one window covers the padded volume");
    let window = seen.pop().expect("window");
    assert_eq!(window.dims(), [1, 1, 16, 16, 16]);
    let interior = window.clone().slice([0..1, 0..1, 3..12, 0..16, 6..10]);
    assert_eq!(values(interior), values(input.clone()));
    let total: f32 = values(window.abs()).iter().sum();
    let inside: f32 = values(input.clone().abs()).iter().sum();
    assert_eq!(total, inside, "everything outside the input is zero");
    // One window of weight 1: the output is the input exactly, padding removed.
    assert_eq!(values(output), values(input));
}

#[test]
fn gaussian_weights_favour_the_window_centre() {
    // Volume 32 × 32 × 64, roi 32, overlap 0.5: x starts 0, 16, 32 (16·2 + 32 = 64), one
    // window along z and y. Window k answers k everywhere (batch 1 → call k is window k).
    let input = random_input([1, 1, 32, 32, 64]);
    let run = |blend| {
        let mut calls = 0.0f32;
        let indexer = |windows: Tensor<B, 5>| {
            let out = Tensor::full(windows.dims(), calls, &windows.device());
            calls += 1.0;
            Ok(out)
        };
        values(sliding_window(input.clone(), &config(32, 0.5, blend, 1), indexer).expect("run"))
    };
    // Voxel (z 16, y 16, x 31): inside windows 0 (x 0..32) and 1 (x 16..48), near the centre
    // of window 1 ((32 − 1)/2 = 15.5 → x 31.5) and at the edge of window 0 (x 15.5).
    let voxel = (16 * 32 + 16) * 64 + 31;
    let constant = run(Blend::Constant)[voxel];
    assert_eq!(constant, 0.5, "constant blending averages windows 0 and 1");
    // MONAI's weights by hand: g(t) = exp(−t²/(2σ²)), σ = 0.125·32 = 4; z and y sit 0.5 from
    // the centre. Window 0: g(0.5)²·g(15.5) ≈ 5.4e-4, below the 1e-3 floor (the corner value
    // g(15.5)³ is far below it) → 1e-3. Window 1: g(0.5)²·g(0.5).
    let g = |t: f64| (-t * t / 32.0).exp();
    let weight_0 = (g(0.5) * g(0.5) * g(15.5)).max(1e-3);
    assert_eq!(weight_0, 1e-3);
    let weight_1 = g(0.5).powi(3);
    let expected = weight_1 / (weight_0 + weight_1);
    let gaussian = run(Blend::Gaussian)[voxel];
    assert!(
        (f64::from(gaussian) - expected).abs() < 1e-5,
        "gaussian {gaussian}, expected {expected}"
    );
    assert!(gaussian > 0.99, "the centre window dominates: {gaussian}");
}

#[test]
fn importance_map_follows_monai() {
    let map = importance_values([4, 4, 4], Blend::Gaussian);
    // σ = 0.5; offsets ±0.5, ±1.5 → g = exp(−t²/0.5): e^-0.5 and e^-4.5.
    let inner = (-0.5f64).exp();
    let outer = (-4.5f64).exp();
    let at = |z: usize, y: usize, x: usize| f64::from(map[(z * 4 + y) * 4 + x]);
    assert!((at(1, 1, 1) - inner.powi(3)).abs() < 1e-6);
    assert!((at(1, 2, 0) - inner * inner * outer).abs() < 1e-6);
    // The corner e^-13.5 ≈ 1.4e-6 is the minimum; the floor is max(min, 1e-3) = 1e-3.
    assert!((at(0, 0, 0) - 1e-3).abs() < 1e-9);
    assert!((at(0, 0, 3) - 1e-3).abs() < 1e-9);
    // Wide windows: the minimum is above 1e-3 and nothing changes.
    let flat = importance_values([2, 2, 2], Blend::Gaussian);
    // σ = 0.25, t = ±0.5 → exp(−0.25/0.125) = e^-2 per axis; e^-6 ≈ 2.5e-3 > 1e-3.
    let per_axis = (-2.0f64).exp();
    assert!(flat
        .iter()
        .all(|&w| (f64::from(w) - per_axis.powi(3).max(1e-3)).abs() < 1e-7));
    assert!(importance_values([3, 5, 7], Blend::Constant)
        .iter()
        .all(|&w| w == 1.0));
}

/// Drives a future to completion on this thread (flex's reads complete without waiting).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::yield_now();
    }
}

#[test]
fn the_async_pass_equals_the_blocking_one() {
    // A position-dependent, non-linear model: any misplaced or re-weighted window would show.
    let input = random_input([1, 2, 41, 30, 53]);
    let model = |windows: Tensor<B, 5>| Ok((windows.clone() * 3.0).exp() - windows);
    let settings = config(16, 0.5, Blend::Gaussian, 3);
    let (mut blocking_progress, mut async_progress) = (Vec::new(), Vec::new());
    let blocking = sliding_window_with_progress(input.clone(), &settings, model, |done, total| {
        blocking_progress.push((done, total))
    })
    .expect("blocking run");
    let awaited = block_on(sliding_window_async(
        input,
        &settings,
        model,
        |done, total| async_progress.push((done, total)),
    ))
    .expect("async run");
    assert_eq!(values(blocking), values(awaited));
    assert_eq!(blocking_progress, async_progress);
    assert!(blocking_progress.len() > 10, "{blocking_progress:?}");
}

#[test]
fn windows_are_batched_and_progress_is_reported() {
    // 100 × 37 × 130 with roi 32, overlap 0.5: 6 · 2 · 8 = 96 windows per image, 2 images
    // → 192 windows; batch 5 → ⌈192/5⌉ = 39 calls, the last with 2 windows.
    let input = random_input([2, 1, 100, 37, 130]);
    let mut sizes = Vec::new();
    let model = |windows: Tensor<B, 5>| {
        sizes.push(windows.dims()[0]);
        Ok(windows)
    };
    let mut progress = Vec::new();
    sliding_window_with_progress(
        input,
        &config(32, 0.5, Blend::Constant, 5),
        model,
        |done, total| progress.push((done, total)),
    )
    .expect("run");
    assert_eq!(sizes.len(), 39);
    assert!(sizes[..38].iter().all(|&size| size == 5));
    assert_eq!(sizes[38], 2);
    assert_eq!(progress.len(), 39);
    assert_eq!(progress[0], (5, 192));
    assert_eq!(progress[38], (192, 192));
    assert!(progress.windows(2).all(|pair| pair[0].0 < pair[1].0));
}

#[test]
fn bad_settings_and_models_are_one_line_errors() {
    let input = || random_input([1, 1, 8, 8, 8]);
    let identity = |windows: Tensor<B, 5>| Ok(windows);
    let bad = [
        SlidingWindowConfig {
            roi: [0, 4, 4],
            ..config(4, 0.5, Blend::Constant, 1)
        },
        config(4, 1.0, Blend::Constant, 1),
        config(4, -0.1, Blend::Constant, 1),
        config(4, f64::NAN, Blend::Constant, 1),
        config(4, 0.5, Blend::Constant, 0),
        config(1 << 10, 0.5, Blend::Constant, 1),
    ];
    for settings in bad {
        let err = sliding_window(input(), &settings, identity).expect_err("refused");
        let text = err.to_string();
        assert!(text.starts_with("sliding window"), "{text}");
        assert!(!text.contains('\n'));
    }
    // A model returning the wrong window size.
    let shrink = |windows: Tensor<B, 5>| Ok(windows.slice([0..1, 0..1, 0..2, 0..4, 0..4]));
    let err = sliding_window(input(), &config(4, 0.5, Blend::Constant, 1), shrink)
        .expect_err("wrong shape");
    assert!(err.to_string().contains("returned shape"), "{err}");
    // A model error is passed through.
    let failing = |_: Tensor<B, 5>| Err(brainmvp_core::Error::new("model", "boom"));
    let err = sliding_window(input(), &config(4, 0.5, Blend::Constant, 1), failing)
        .expect_err("model error");
    assert_eq!(err.to_string(), "model: boom");
}

#[test]
fn config_serde_is_kebab_case_with_defaults() {
    let parsed: SlidingWindowConfig =
        serde_json::from_str(r#"{"blend": "gaussian", "batch": 2}"#).expect("parse");
    assert_eq!(parsed.roi, [96, 96, 96]);
    assert_eq!(parsed.overlap, 0.5);
    assert_eq!(parsed.blend, Blend::Gaussian);
    assert_eq!(parsed.batch, 2);
    let text = serde_json::to_string(&SlidingWindowConfig::default()).expect("write");
    assert!(text.contains(r#""blend":"constant""#), "{text}");
    assert!(serde_json::from_str::<SlidingWindowConfig>(r#"{"rio": [1, 1, 1]}"#).is_err());
}

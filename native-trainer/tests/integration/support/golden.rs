//! Helpers of the golden tests against the official PyTorch code (`official_golden*.rs`): the
//! fixtures of `tests/reference/`, their tensors in our layout, the comparison with its
//! tolerance, and running the `brainmvp` binary.

use brainmvp_core::official::layout::{permute, VOLUME_AXES};
use brainmvp_core::pretext::views::StepViews;
use brainmvp_core::pretrain::StepLosses;
use brainmvp_trainer::torch::read::{read_state_dict, StateDict, StateTensor};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use std::path::PathBuf;

/// Largest error allowed, relative to the largest magnitude of the official output.
pub const RELATIVE_TOLERANCE: f32 = 1e-5;

/// The fixture folder: `tests/reference/fixtures`, or `BRAINMVP_GOLDEN_DIR` (for the full-size
/// fixtures of `make_golden.py --full`, which are not committed).
pub fn fixture(name: &str) -> PathBuf {
    match std::env::var_os("BRAINMVP_GOLDEN_DIR") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => committed(name),
    }
}

/// A committed (tiny) fixture, whatever `BRAINMVP_GOLDEN_DIR` says.
pub fn committed(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/reference/fixtures")
        .join(name)
}

/// `golden.json`: the configuration the fixtures were made with.
pub fn meta() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn meta_usizes(value: &serde_json::Value) -> Vec<usize> {
    let values = value.as_array().unwrap().iter();
    values.map(|v| v.as_u64().unwrap() as usize).collect()
}

pub fn golden() -> StateDict {
    read_state_dict(&fixture("golden.safetensors")).unwrap()
}

pub fn official(golden: &StateDict, name: &str) -> StateTensor {
    golden
        .tensors
        .get(name)
        .unwrap_or_else(|| panic!("fixture has no {name}"))
        .clone()
}

/// An official tensor in our layout (`axes`: the permutation from theirs, `None` for none).
pub fn ours_layout(tensor: &StateTensor, axes: Option<&[usize]>) -> (Vec<usize>, Vec<f32>) {
    match axes {
        Some(axes) => permute(&tensor.shape, &tensor.values, axes).unwrap(),
        None => (tensor.shape.clone(), tensor.values.clone()),
    }
}

pub fn tensor<Bk: Backend, const D: usize>(
    golden: &StateDict,
    name: &str,
    axes: Option<&[usize]>,
) -> Tensor<Bk, D> {
    let (shape, values) = ours_layout(&official(golden, name), axes);
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// The fixture's pre-training views `{prefix}view_a`, `view_b`, `target` in our layout.
pub fn step_views<Bk: Backend>(golden: &StateDict, prefix: &str) -> StepViews<Bk> {
    let view = |name: &str| tensor::<Bk, 5>(golden, &format!("{prefix}{name}"), Some(&VOLUME_AXES));
    StepViews {
        view_a: view("view_a"),
        view_b: view("view_b"),
        target: view("target"),
    }
}

/// `[total, MSE_A, MSE_B, L_CL]`, the order of the fixture's `loss.terms`.
pub fn loss_terms<Bk: Backend>(losses: &StepLosses<Bk>) -> Tensor<Bk, 1> {
    let terms = [
        &losses.total,
        &losses.mse_template,
        &losses.mse_cross_modal,
        &losses.contrastive,
    ];
    Tensor::cat(terms.into_iter().cloned().collect(), 0)
}

/// Max |a − b| over two equally long value lists, and max |b|.
fn max_error_and_scale(got: &[f32], reference: &[f32]) -> (f32, f32) {
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let error = got
        .iter()
        .zip(reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    (error, scale)
}

/// Asserts ours matches the official output (after `axes`) and returns the relative error.
pub fn assert_matches<Bk: Backend, const D: usize>(
    what: &str,
    ours: Tensor<Bk, D>,
    expected: &StateTensor,
    axes: Option<&[usize]>,
) -> f32 {
    assert_matches_within(RELATIVE_TOLERANCE, what, ours, expected, axes)
}

/// [`assert_matches`] with its own relative tolerance.
pub fn assert_matches_within<Bk: Backend, const D: usize>(
    tolerance: f32,
    what: &str,
    ours: Tensor<Bk, D>,
    expected: &StateTensor,
    axes: Option<&[usize]>,
) -> f32 {
    let (shape, values) = ours_layout(expected, axes);
    assert_eq!(ours.dims().to_vec(), shape, "{what}: shape");
    let got = ours.into_data().convert::<f32>().into_vec::<f32>().unwrap();
    let (error, scale) = max_error_and_scale(&got, &values);
    let relative = error / scale.max(f32::MIN_POSITIVE);
    eprintln!("{what}: max abs error {error:.3e}, scale {scale:.3e}, relative {relative:.3e}");
    assert!(
        relative <= tolerance,
        "{what}: max abs error {error} against scale {scale} (relative {relative}, tolerance {tolerance})"
    );
    relative
}

/// Tolerance against a float64 result: the parity target of 1e-4 relative (f32 rounding over millions of
/// terms reaches 1e-5 on either side).
pub const F64_RELATIVE_TOLERANCE: f32 = 1e-4;

/// For an output that is ill-conditioned in f32 and has an official float64 result
/// (`reference64`, after `axes`): asserts ours is within [`F64_RELATIVE_TOLERANCE`] of it, or no
/// farther from it than twice the official f32 result (`official32`) is. Returns ours' relative
/// error to f64.
pub fn assert_as_close_to_f64_as_official<Bk: Backend, const D: usize>(
    what: &str,
    ours: Tensor<Bk, D>,
    official32: &StateTensor,
    reference64: &StateTensor,
    axes: Option<&[usize]>,
) -> f32 {
    let (shape, truth) = ours_layout(reference64, axes);
    assert_eq!(ours.dims().to_vec(), shape, "{what}: shape");
    let got = ours.into_data().convert::<f32>().into_vec::<f32>().unwrap();
    let (_, official) = ours_layout(official32, axes);
    let (ours_error, scale) = max_error_and_scale(&got, &truth);
    let (official_error, _) = max_error_and_scale(&official, &truth);
    let relative = |error: f32| error / scale.max(f32::MIN_POSITIVE);
    eprintln!(
        "{what}: against float64, ours {:.3e}, official f32 {:.3e} (relative)",
        relative(ours_error),
        relative(official_error)
    );
    let allowed = (F64_RELATIVE_TOLERANCE * scale).max(2.0 * official_error);
    assert!(
        ours_error <= allowed,
        "{what}: {ours_error} from float64, the official f32 result {official_error}"
    );
    relative(ours_error)
}

pub fn brainmvp_ok(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_brainmvp"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "brainmvp {args:?}: {stderr}");
    output
}

/// The file of `dir` (recursively) whose name ends with `suffix`.
pub fn find(dir: &std::path::Path, suffix: &str) -> PathBuf {
    search(dir, suffix).unwrap_or_else(|| panic!("no *{suffix} under {}", dir.display()))
}

pub fn search(dir: &std::path::Path, suffix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let path = entry.path();
        match path.is_dir() {
            true => search(&path, suffix),
            false => path.to_string_lossy().ends_with(suffix).then_some(path),
        }
    })
}

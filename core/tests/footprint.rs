//! The memory estimate of a UniUnet window (`brainmvp_core::model::footprint`) against the peak
//! a counting allocator sees while the CPU backend runs the forward pass. Its own test binary:
//! the allocator counts every thread of the process, so nothing else may run beside it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use brainmvp_core::model::footprint::WindowFootprint;
use brainmvp_core::model::{Architecture, UniUnetConfig};
use burn::backend::Flex;
use burn::module::Module;
use burn::tensor::{Tensor, TensorData};

/// Counts live bytes and their high-water mark.
struct Counting;

static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);
/// One measurement at a time (the test harness runs tests on several threads).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            let live =
                LIVE.fetch_add(layout.size() as u64, Ordering::Relaxed) + layout.size() as u64;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak bytes allocated above what was live before one inference forward pass on `batch`
/// windows of `roi`³ (the weights and the input are allocated before).
fn measured_peak(config: &UniUnetConfig, roi: usize, batch: usize) -> (u64, WindowFootprint) {
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let device = Default::default();
    let model = config.init::<Flex>(&device).expect("model");
    let values = model.num_params() as u64;
    let count = batch * config.in_channels * roi * roi * roi;
    let ramp: Vec<f32> = (0..count)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0)
        .collect();
    let input = Tensor::<Flex, 5>::from_data(
        TensorData::new(ramp, [batch, config.in_channels, roi, roi, roi]),
        &device,
    );
    // A first pass so that lazily initialised weights and the kernels' caches exist.
    let _ = model.forward_inference(input.clone()).into_data();
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let output = model.forward_inference(input);
    let peak = PEAK.load(Ordering::Relaxed) - before;
    drop(output);
    (
        peak,
        WindowFootprint::estimate(config, [roi; 3], batch, values),
    )
}

fn assert_close(preset: Architecture, roi: usize, batch: usize) {
    let config = UniUnetConfig::new(4, 3).with_encoder(preset);
    let (measured, estimate) = measured_peak(&config, roi, batch);
    let ratio = estimate.peak_activation_bytes as f64 / measured as f64;
    println!(
        "{preset:?} {roi}³ × {batch}: measured {measured} B, estimated {} B, ratio {ratio:.2}",
        estimate.peak_activation_bytes
    );
    assert!(
        (0.95..=1.35).contains(&ratio),
        "{preset:?} {roi}³ × {batch}: estimate {} B, measured peak {measured} B",
        estimate.peak_activation_bytes
    );
}

#[test]
fn the_tiny_model_peak_is_estimated_within_its_bounds() {
    assert_close(Architecture::UniformerTiny, 32, 1);
    assert_close(Architecture::UniformerTiny, 64, 1);
    assert_close(Architecture::UniformerTiny, 32, 2);
}

#[test]
fn the_official_model_peak_is_estimated_within_its_bounds() {
    assert_close(Architecture::UniformerS, 32, 1);
    assert_close(Architecture::UniformerS, 64, 1);
}

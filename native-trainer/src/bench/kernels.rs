//! `brainmvp bench kernels`: each convolution shape of UniFormer-S UniUnet on one 96³ window,
//! timed on the CPU backend through `brainmvp_core::kernels` and, with `--burn`, through burn's
//! own operations: milliseconds and GFLOP/s of the forward pass, and with `--backward` of the
//! forward + backward pass (input and weight gradients).

use brainmvp_core::kernels;
use burn::backend::{Autodiff, Flex};
use burn::tensor::backend::Backend;
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Distribution, Tensor};
use std::process::ExitCode;
use std::time::Instant;

/// Arguments of `brainmvp bench kernels`.
#[derive(clap::Args)]
pub struct KernelBenchArgs {
    /// Timed runs per layer (after one untimed run).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Also time burn's own operations (slow: minutes for the largest layers).
    #[arg(long)]
    pub burn: bool,
    /// Also time forward + backward (input and weight gradients) on the autodiff backend.
    #[arg(long)]
    pub backward: bool,
    /// Only layers whose name contains this text.
    #[arg(long)]
    pub only: Option<String>,
}

/// One convolution of the model: input and weight shapes, stride, padding, groups.
struct Layer {
    name: String,
    x: [usize; 5],
    weight: [usize; 5],
    transposed: bool,
    stride: usize,
    padding: usize,
    groups: usize,
}

/// A `k³` convolution `cin → cout` with "same" padding on a `size³` input.
fn dense(cin: usize, cout: usize, kernel: usize, size: usize) -> Layer {
    Layer {
        name: format!("dense {kernel}³ {cin}→{cout} @{size}³"),
        x: [1, cin, size, size, size],
        weight: [cout, cin, kernel, kernel, kernel],
        transposed: false,
        stride: 1,
        padding: kernel / 2,
        groups: 1,
    }
}

/// A depthwise `k³` convolution over `channels` on a `size³` input.
fn depthwise(channels: usize, kernel: usize, size: usize) -> Layer {
    Layer {
        name: format!("depthwise {kernel}³ C{channels} @{size}³"),
        weight: [channels, 1, kernel, kernel, kernel],
        groups: channels,
        ..dense(channels, channels, kernel, size)
    }
}

/// A `k2 s2` patch embedding `cin → cout` on a `size³` input.
fn patch_embed(cin: usize, cout: usize, size: usize) -> Layer {
    Layer {
        name: format!("patch-embed {cin}→{cout} k2 @{size}³"),
        stride: 2,
        padding: 0,
        ..dense(cin, cout, 2, size)
    }
}

/// A transposed `2³ s2` convolution `cin → cout` on a `size³` input.
fn up(cin: usize, cout: usize, size: usize) -> Layer {
    Layer {
        name: format!("transposed {cin}→{cout} k2 @{size}³"),
        weight: [cin, cout, 2, 2, 2],
        transposed: true,
        ..patch_embed(cin, cout, size)
    }
}

/// The convolution shapes of UniFormer-S UniUnet (4 → 3) on one 96³ window.
fn layers() -> Vec<Layer> {
    vec![
        patch_embed(4, 64, 96),
        patch_embed(64, 128, 48),
        depthwise(64, 3, 48),
        depthwise(64, 5, 48),
        dense(64, 256, 1, 48),
        depthwise(128, 5, 24),
        depthwise(320, 3, 12),
        up(512, 320, 6),
        up(64, 64, 48),
        dense(640, 320, 3, 12),
        dense(256, 128, 3, 24),
        dense(128, 64, 3, 48),
        dense(4, 64, 3, 96),
        dense(128, 64, 3, 96),
        dense(64, 64, 3, 96),
    ]
}

impl Layer {
    /// Floating-point operations of the forward pass: 2 × output values × multiply–adds per
    /// output value.
    fn flops(&self) -> f64 {
        let [batch, _, d, h, w] = self.x;
        let [w0, w1, kd, kh, kw] = self.weight;
        let taps = kd * kh * kw;
        let (outputs, per_output) = if self.transposed {
            (batch * w1 * d * h * w * taps, w0)
        } else {
            let voxels = d * h * w / self.stride.pow(3);
            (batch * w0 * voxels, w1 * taps)
        };
        2.0 * outputs as f64 * per_output as f64
    }

    fn forward<B: Backend>(&self, x: Tensor<B, 5>, weight: Tensor<B, 5>) -> Tensor<B, 5> {
        if self.transposed {
            let options = ConvTransposeOptions::new([self.stride; 3], [0; 3], [0; 3], [1; 3], 1);
            kernels::conv_transpose3d(x, weight, None, options)
        } else {
            let options =
                ConvOptions::new([self.stride; 3], [self.padding; 3], [1; 3], self.groups);
            kernels::conv3d(x, weight, None, options)
        }
    }
}

/// Mean seconds of `repeats` runs of `work` after one untimed run.
fn time(repeats: usize, mut work: impl FnMut()) -> f64 {
    work();
    let started = Instant::now();
    for _ in 0..repeats {
        work();
    }
    started.elapsed().as_secs_f64() / repeats.max(1) as f64
}

/// `(forward seconds, forward + backward seconds)` of one layer on the CPU backend.
fn time_layer(layer: &Layer, repeats: usize, backward: bool) -> (f64, Option<f64>) {
    let device = Default::default();
    let x = Tensor::<Flex, 5>::random(layer.x, Distribution::Normal(0.0, 1.0), &device);
    let weight = Tensor::<Flex, 5>::random(layer.weight, Distribution::Normal(0.0, 0.1), &device);
    let forward = time(repeats, || {
        let _ = layer.forward(x.clone(), weight.clone()).into_data();
    });
    let both = backward.then(|| {
        let x = Tensor::<Autodiff<Flex>, 5>::from_inner(x.clone()).require_grad();
        let weight = Tensor::<Autodiff<Flex>, 5>::from_inner(weight.clone()).require_grad();
        time(repeats, || {
            let grads = layer.forward(x.clone(), weight.clone()).sum().backward();
            let _ = weight.grad(&grads).map(|g| g.into_data());
        })
    });
    (forward, both)
}

/// Prints the table.
pub fn bench_kernels(args: KernelBenchArgs) -> anyhow::Result<ExitCode> {
    println!(
        "bench kernels: UniFormer-S UniUnet convolutions at 96³, CPU backend (burn-flex), f32, {} threads, mean of {} runs",
        rayon::current_num_threads(),
        args.repeats
    );
    println!("| layer | GFLOP | ours fwd ms | GFLOP/s | burn fwd ms | ours fwd+bwd ms | burn fwd+bwd ms |");
    println!("|---|---|---|---|---|---|---|");
    let selected = layers().into_iter().filter(|layer| {
        args.only
            .as_deref()
            .is_none_or(|text| layer.name.contains(text))
    });
    for layer in selected {
        kernels::set_enabled(true);
        let (ours, ours_both) = time_layer(&layer, args.repeats, args.backward);
        let (plain, plain_both) = if args.burn {
            kernels::set_enabled(false);
            let (forward, both) = time_layer(&layer, args.repeats, args.backward);
            kernels::set_enabled(true);
            (Some(forward), both)
        } else {
            (None, None)
        };
        let ms =
            |seconds: Option<f64>| seconds.map_or("—".to_string(), |s| format!("{:.1}", 1e3 * s));
        println!(
            "| {} | {:.2} | {} | {:.1} | {} | {} | {} |",
            layer.name,
            layer.flops() / 1e9,
            ms(Some(ours)),
            layer.flops() / ours / 1e9,
            ms(plain),
            ms(ours_both),
            ms(plain_both)
        );
    }
    Ok(ExitCode::SUCCESS)
}

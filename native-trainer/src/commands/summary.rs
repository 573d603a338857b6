//! `brainmvp summary --arch uniformer-s|uniformer-tiny|unet3d [--in-channels C] [--decoder]`:
//! learnable parameters per stage of a backbone (and of its pre-training decoder), with each
//! stage's output shape for a 96³ crop. The model is built on the CPU backend; nothing runs.
//!
//! Counts are learnable parameters, as PyTorch's `parameters()` and
//! `Uniformer::num_learnable_params`: burn's `num_params` also counts the BatchNorm running
//! mean and variance, which are skipped here.

use anyhow::{bail, ensure};
use brainmvp_core::model::Architecture;
use brainmvp_core::model::{
    PretrainDecoderConfig, Unet3d, Unet3dConfig, UnetDecoderConfig, Uniformer, UniformerConfig,
};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use std::process::ExitCode;

/// The backend the models are built on (initialised only, never run).
#[cfg(feature = "flex")]
type SummaryBackend = burn::backend::Flex;
#[cfg(all(not(feature = "flex"), feature = "wgpu"))]
type SummaryBackend = burn::backend::Wgpu;
#[cfg(all(not(feature = "flex"), not(feature = "wgpu"), feature = "cuda"))]
type SummaryBackend = burn::backend::Cuda;

/// Crop edge the output-shape column is computed for (the BrainMVP pre-training crop).
const CROP: usize = 96;

/// Most input channels accepted (a modality count; refuses sizes that would allocate absurdly).
const MAX_IN_CHANNELS: usize = 64;

/// Arguments of `brainmvp summary`.
#[derive(clap::Args)]
pub struct SummaryArgs {
    /// Backbone: uniformer-s, uniformer-tiny or unet3d.
    #[arg(long, default_value = "uniformer-s")]
    pub arch: Architecture,
    /// Input channels (modalities); BrainMVP pre-trains with 1.
    #[arg(long, default_value_t = 1)]
    pub in_channels: usize,
    /// Also count the pre-training decoder paired with the backbone.
    #[arg(long)]
    pub decoder: bool,
}

/// Builds the chosen model on the CPU backend and prints its parameter table.
pub fn run(args: SummaryArgs) -> anyhow::Result<ExitCode> {
    if args.in_channels == 0 || args.in_channels > MAX_IN_CHANNELS {
        bail!(
            "--in-channels {}: expected 1 to {MAX_IN_CHANNELS}",
            args.in_channels
        );
    }
    let summary = build_summary(args.arch, args.in_channels, args.decoder)?;
    println!(
        "arch: {}, in_channels: {}, output shapes for a {CROP}³ crop",
        args.arch.name(),
        args.in_channels
    );
    print!("{}", summary.table());
    Ok(ExitCode::SUCCESS)
}

/// One line of the table.
struct Row {
    part: String,
    layers: String,
    output: String,
    params: usize,
}

/// The rows of the encoder, its total, and optionally the decoder.
struct Summary {
    encoder: Vec<Row>,
    decoder: Option<Row>,
}

impl Summary {
    fn encoder_params(&self) -> usize {
        self.encoder.iter().map(|row| row.params).sum()
    }

    /// The aligned table, the totals last.
    fn table(&self) -> String {
        let encoder_total = self.encoder_params();
        let mut rows: Vec<(String, String, String, String)> = vec![header()];
        rows.extend(self.encoder.iter().map(cells));
        rows.push(total_cells("encoder total", encoder_total));
        if let Some(decoder) = &self.decoder {
            rows.push(cells(decoder));
            rows.push(total_cells("total", encoder_total + decoder.params));
        }
        let width = |pick: fn(&(String, String, String, String)) -> &String| {
            rows.iter()
                .map(|row| pick(row).chars().count())
                .max()
                .unwrap_or(0)
        };
        let widths = [
            width(|r| &r.0),
            width(|r| &r.1),
            width(|r| &r.2),
            width(|r| &r.3),
        ];
        let mut out = String::new();
        for (part, layers, output, params) in &rows {
            let line = format!(
                "{part:<w0$}  {layers:<w1$}  {output:<w2$}  {params:>w3$}",
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3]
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn header() -> (String, String, String, String) {
    (
        "part".into(),
        "layers".into(),
        "output".into(),
        "parameters".into(),
    )
}

fn cells(row: &Row) -> (String, String, String, String) {
    (
        row.part.clone(),
        row.layers.clone(),
        row.output.clone(),
        grouped(row.params),
    )
}

fn total_cells(name: &str, params: usize) -> (String, String, String, String) {
    (name.into(), String::new(), String::new(), grouped(params))
}

/// `1234567` → `1,234,567`.
fn grouped(value: usize) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// `[C, s, s, s]` for a stage of the given total stride on a [`CROP`]³ crop.
fn shape(channels: usize, stride: usize) -> String {
    let edge = CROP / stride;
    format!("{channels} x {edge}³")
}

/// Builds the model(s) and counts every stage.
fn build_summary(arch: Architecture, in_channels: usize, decoder: bool) -> anyhow::Result<Summary> {
    let device = Default::default();
    match arch {
        Architecture::UniformerS | Architecture::UniformerTiny => {
            let config = if arch == Architecture::UniformerS {
                UniformerConfig::small(in_channels)
            } else {
                UniformerConfig::tiny(in_channels)
            };
            let model: Uniformer<SummaryBackend> = config.init(&device)?;
            let encoder = uniformer_rows(&config, &model)?;
            let decoder = decoder
                .then(|| transposed_decoder_row(&config, &device))
                .transpose()?;
            Ok(Summary { encoder, decoder })
        }
        Architecture::Unet3d => {
            let config = Unet3dConfig::official(in_channels);
            let model: Unet3d<SummaryBackend> = config.init(&device)?;
            let encoder = unet_rows(&config, &model)?;
            let decoder = decoder
                .then(|| unet_decoder_row(&config, &device))
                .transpose()?;
            Ok(Summary { encoder, decoder })
        }
    }
}

/// Stage `i`: its patch embedding and its blocks; then the final BatchNorm.
fn uniformer_rows<B: Backend>(
    config: &UniformerConfig,
    model: &Uniformer<B>,
) -> anyhow::Result<Vec<Row>> {
    let blocks = [
        learnable(&model.stage1),
        learnable(&model.stage2),
        learnable(&model.stage3),
        learnable(&model.stage4),
    ];
    let mut rows = Vec::with_capacity(5);
    let mut previous = config.in_channels;
    let embeds = blocks.iter().zip(&model.patch_embeds);
    let stages = config.widths.iter().zip(&config.depths).zip(embeds);
    for (stage, ((&width, &depth), (&block_params, embed))) in stages.enumerate() {
        let kind = if stage < 2 { "CBlock" } else { "SABlock" };
        rows.push(Row {
            part: format!("stage {}", stage + 1),
            layers: format!("embed 2³/2 {previous}→{width} + {depth} {kind}({width})"),
            output: shape(width, 2 << stage),
            params: learnable(embed) + block_params,
        });
        previous = width;
    }
    rows.push(Row {
        part: "norm".into(),
        layers: format!("BatchNorm({previous})"),
        output: shape(previous, 16),
        params: learnable(&model.norm),
    });
    let total: usize = rows.iter().map(|row| row.params).sum();
    ensure!(
        total == model.num_learnable_params(),
        "stage counts sum to {total}, the model has {} learnable parameters",
        model.num_learnable_params()
    );
    Ok(rows)
}

/// Level `i`: the convolution entering it (stem or stride-2) and its residual blocks.
fn unet_rows<B: Backend>(config: &Unet3dConfig, model: &Unet3d<B>) -> anyhow::Result<Vec<Row>> {
    let widths = config.widths();
    let mut rows = Vec::with_capacity(4);
    let mut previous = config.in_channels;
    for (level, (&width, &depth)) in widths.iter().zip(&config.depths).enumerate() {
        let (entry, entry_params) = match level.checked_sub(1) {
            None => ("conv 3³", learnable(&model.stem)),
            Some(down) => ("conv 3³/2", learnable(&model.downs[down])),
        };
        rows.push(Row {
            part: format!("level {}", level + 1),
            layers: format!("{entry} {previous}→{width} + {depth} ResBlock({width})"),
            output: shape(width, 1 << level),
            params: entry_params + learnable(&model.levels[level]),
        });
        previous = width;
    }
    let total: usize = rows.iter().map(|row| row.params).sum();
    ensure!(
        total == model.num_learnable_params(),
        "level counts sum to {total}, the model has {} learnable parameters",
        model.num_learnable_params()
    );
    Ok(rows)
}

fn transposed_decoder_row(
    encoder: &UniformerConfig,
    device: &burn::tensor::Device<SummaryBackend>,
) -> anyhow::Result<Row> {
    let config = PretrainDecoderConfig::for_uniformer(encoder);
    let decoder = config.init::<SummaryBackend>(device)?;
    Ok(Row {
        part: "decoder".into(),
        layers: format!(
            "{} transposed 2³/2 {} + conv 1³→{}",
            config.widths.len(),
            chain(config.in_channels, &config.widths),
            config.out_channels
        ),
        output: shape(config.out_channels, 1),
        params: learnable(&decoder),
    })
}

fn unet_decoder_row(
    encoder: &Unet3dConfig,
    device: &burn::tensor::Device<SummaryBackend>,
) -> anyhow::Result<Row> {
    let config = UnetDecoderConfig::for_unet3d(encoder);
    let decoder = config.init::<SummaryBackend>(device)?;
    Ok(Row {
        part: "decoder".into(),
        layers: format!(
            "{} x (conv 1³, up x2, ResBlock) {} + conv 1³→{}",
            config.widths.len(),
            chain(config.in_channels, &config.widths),
            config.out_channels
        ),
        output: shape(config.out_channels, 1),
        params: learnable(&decoder),
    })
}

/// `512→320→128`.
fn chain(first: usize, rest: &[usize]) -> String {
    let mut names = vec![first.to_string()];
    names.extend(rest.iter().map(usize::to_string));
    names.join("→")
}

/// Learnable parameters of `module`: every float tensor except BatchNorm running statistics.
fn learnable<B: Backend, M: Module<B>>(module: &M) -> usize {
    let mut counter = LearnableCounter {
        path: Vec::new(),
        count: 0,
    };
    module.visit(&mut counter);
    counter.count
}

/// Counts float parameters, skipping the `running_mean` / `running_var` fields.
struct LearnableCounter {
    path: Vec<String>,
    count: usize,
}

impl<B: Backend> ModuleVisitor<B> for LearnableCounter {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let running = matches!(
            self.path.last().map(String::as_str),
            Some("running_mean" | "running_var")
        );
        if !running {
            self.count += param.lazy_shape().num_elements();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_digits_by_three() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(22_038_464), "22,038,464");
    }

    #[test]
    fn uniformer_s_stages_add_up_to_the_official_count() {
        let summary = build_summary(Architecture::UniformerS, 1, true).unwrap();
        assert_eq!(summary.encoder_params(), 22_038_464);
        assert_eq!(summary.decoder.map(|row| row.params), Some(1_736_769));
    }

    #[test]
    fn unet_levels_add_up_to_the_analytic_count() {
        let summary = build_summary(Architecture::Unet3d, 1, true).unwrap();
        assert_eq!(summary.encoder_params(), 17_594_112);
        assert_eq!(summary.decoder.map(|row| row.params), Some(1_205_825));
    }

    #[test]
    fn every_architecture_is_summarised() {
        for arch in Architecture::ALL {
            let summary = build_summary(arch, 1, false).unwrap();
            assert!(summary.encoder_params() > 0, "{arch}");
        }
    }
}

//! The pre-training loop: one rank per device (a single rank on one device), each with a full
//! replica, its share of every batch (strided loader), gradients averaged by
//! [`crate::distributed`] before every AdamW step. Global rank 0 logs, plots, checkpoints and
//! exports.

use anyhow::{bail, Context, Result};
use brainmvp_core::cache::CacheReader;
use brainmvp_core::loader::{Batch, Loader};
use brainmvp_core::pretext::views::{build_views, plan_step, ViewSource};
use brainmvp_core::pretrain::BrainMvp;
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::PretrainConfig;
use super::pretrained::export_run;
use super::template_watch::{
    normalised_values, sampled_cohort_means, template_correlations, write_template_slices,
    MEAN_SUBJECTS,
};
use crate::checkpoint::{Checkpoints, TrainState};
use crate::distributed::{
    average_gradients, broadcast_module, check_replicas, finish, gather_features, start_rank,
    Launch, RankHandle, RankStart, ThreadGroup,
};
use crate::job::JobFile;
use crate::report::{plot_metrics, MetricsLog, TrainProgress};
use brainmvp_core::pretext::contrastive::NegativeGather;
use brainmvp_core::pretext::template_init::{CohortMeans, TemplateInit};
use burn::tensor::Tensor;

/// Loss terms written to the metrics log and plotted.
pub const LOSS_KEYS: [&str; 4] = ["loss", "mse_template", "mse_cross_modal", "contrastive"];

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Step the run started from (0, or the resumed checkpoint's).
    pub start_step: u64,
    /// Loss terms of the last step ([`LOSS_KEYS`] order), if a step ran.
    pub last_losses: Option<[f64; 4]>,
}

/// Everything the ranks share (read-only).
struct Shared<'a> {
    config: &'a PretrainConfig,
    reader: Arc<CacheReader>,
    resume: bool,
    /// The cohort's mean images on the template canvas (template init and watch).
    cohort: Option<CohortMeans>,
}

/// Runs (or resumes) the job on `devices` in this process: one rank (thread) per device.
pub fn run_pretrain<B: AutodiffBackend>(
    config: &PretrainConfig,
    devices: Vec<B::Device>,
    resume: bool,
) -> Result<RunSummary> {
    run_pretrain_launched::<B>(config, devices, resume, Launch::single())
}

/// Runs (or resumes) the job as this process's part of `launch` (`mpirun`, `srun`, `torchrun`:
/// one device per process), or, for a single process, on `devices` with one rank per device.
pub fn run_pretrain_launched<B: AutodiffBackend>(
    config: &PretrainConfig,
    devices: Vec<B::Device>,
    resume: bool,
    launch: Launch,
) -> Result<RunSummary> {
    let mut config = config.clone();
    config.distributed.local_ranks = devices.len().max(1);
    if launch.world_size > 1 && devices.len() > 1 {
        bail!(
            "rank {} of {} ({:?} launch): one device per process, got {}; pass --device cuda \
             (each process takes GPU LOCAL_RANK) or one index",
            launch.rank,
            launch.world_size,
            launch.launcher,
            devices.len()
        );
    }
    config.validate()?;
    let world = launch.world_size * devices.len().max(1);
    if resume {
        config.optim.accumulation = micro_batches_on_resume(&config, world as u64)?;
    }
    let reader = Arc::new(CacheReader::open(&config.cache)?);
    check_templates_cover_cache(&config, &reader)?;
    let cohort = cohort_means_if_needed(&config, &reader)?;
    let shared = Shared {
        config: &config,
        reader,
        resume,
        cohort,
    };
    if devices.len() <= 1 {
        let device = devices.into_iter().next().unwrap_or_default();
        return train_rank::<B>(RankStart::Process(launch), device, &shared);
    }
    let members = ThreadGroup::new(
        devices.len(),
        Duration::from_secs(config.distributed.timeout_s),
    );
    std::thread::scope(|scope| {
        let ranks: Vec<_> = devices
            .into_iter()
            .zip(members)
            .map(|(device, member)| {
                let shared = &shared;
                scope.spawn(move || train_rank::<B>(RankStart::Thread(member), device, shared))
            })
            .collect();
        let mut summaries = Vec::new();
        for this_rank in ranks {
            let outcome = this_rank
                .join()
                .map_err(|_| anyhow::anyhow!("a training thread panicked"))?;
            summaries.push(outcome?);
        }
        Ok(summaries.remove(0))
    })
}

/// Micro-batches per rank when resuming on `world` ranks: the checkpoint's global batch (its
/// ranks × micro-batches) split evenly over the ranks, so the run goes on with the same batch
/// and the same data order whatever the world size.
fn micro_batches_on_resume(config: &PretrainConfig, world: u64) -> Result<u64> {
    let configured = config.micro_batches();
    let checkpoints = Checkpoints::new(&config.out, config.checkpoint.keep);
    let Some((dir, state)) = checkpoints.latest()? else {
        return Ok(configured);
    };
    if state.ranks == 0 || state.micro_batches == 0 {
        return Ok(configured);
    }
    let global = state.ranks * state.micro_batches;
    if global == configured * world {
        return Ok(configured);
    }
    if global % world != 0 {
        bail!(
            "{}: written by {} rank(s) x {} micro-batch(es) = {global} micro-batches per step; \
             {world} rank(s) cannot split that evenly: resume on a world size that divides {global}",
            dir.display(),
            state.ranks,
            state.micro_batches
        );
    }
    log::warn!(
        "resuming a run of {} rank(s) x {} micro-batch(es) on {world} rank(s): {} micro-batch(es) \
         per rank keep the batch of {global} micro-batches per step",
        state.ranks,
        state.micro_batches,
        global / world
    );
    Ok(global / world)
}

/// Every modality of the cache needs a template (the views fill masked blocks with it).
fn check_templates_cover_cache(config: &PretrainConfig, reader: &CacheReader) -> Result<()> {
    let templates = &config.model.templates.modalities;
    let missing: Vec<&str> = reader
        .manifest()
        .modalities
        .iter()
        .filter(|m| !templates.contains(m))
        .map(|m| m.name())
        .collect();
    if !missing.is_empty() {
        bail!(
            "{}: the cache has modalities [{}] without a template; add them to [model.templates] modalities",
            config.cache.display(),
            missing.join(", ")
        );
    }
    if reader.is_empty() {
        bail!("{}: the cache holds no subject", config.cache.display());
    }
    Ok(())
}

/// The cohort means, when the templates start from them or are watched.
fn cohort_means_if_needed(
    config: &PretrainConfig,
    reader: &CacheReader,
) -> Result<Option<CohortMeans>> {
    let templates = &config.model.templates;
    let from_mean = templates.init == TemplateInit::CohortMean;
    let watched = config.checkpoint.watch_templates && (templates.learn || from_mean);
    if !(from_mean || watched) {
        return Ok(None);
    }
    log::info!(
        "templates: averaging up to {MEAN_SUBJECTS} subjects of {} for the cohort means",
        reader.len()
    );
    Ok(Some(sampled_cohort_means(reader, templates)?))
}

/// The main rank's run outputs.
struct Reporter {
    metrics: MetricsLog,
    progress: TrainProgress,
    checkpoints: Checkpoints,
}

fn train_rank<B: AutodiffBackend>(
    start: RankStart,
    device: B::Device,
    shared: &Shared<'_>,
) -> Result<RunSummary> {
    let config = shared.config;
    let this_rank = start_rank::<B>(start, device.clone(), &config.distributed)?;
    B::seed(&device, config.seed);
    let mut model = config.model.init::<B>(&device)?;
    if let (TemplateInit::CohortMean, Some(cohort)) = (config.model.templates.init, &shared.cohort)
    {
        model.templates = model.templates.with_cohort_means(cohort)?;
    }
    let optim = config.optim.adamw().init::<B, BrainMvp<B>>();
    let checkpoints = Checkpoints::new(&config.out, config.checkpoint.keep);
    let (model, mut optim, start_step) = match shared.resume {
        true => checkpoints.resume(model, optim, &device)?,
        false => (model, optim, 0),
    };
    let mut model = broadcast_module(&this_rank, model)?;
    let mut reporter = match this_rank.is_main() {
        true => Some(start_reporting(config, start_step, checkpoints)?),
        false => None,
    };
    let world = this_rank.world_size() as u64;
    let first_batch = start_step * config.micro_batches() * world + this_rank.rank() as u64;
    let mut loader = Loader::strided(
        Arc::clone(&shared.reader),
        config.loader(),
        first_batch,
        world,
    )?;
    let mut last_losses = None;
    if let (Some(reporter), 0) = (reporter.as_mut(), start_step) {
        watch_templates(shared, reporter, &model, 0, true)?;
    }
    for step in start_step..config.steps {
        let started = Instant::now();
        let (next_model, record) =
            optimiser_step(shared, &this_rank, model, &mut optim, &mut loader, step)?;
        model = next_model;
        last_losses = Some(record.losses);
        let done = step + 1;
        let checkpoint = done % config.checkpoint.every == 0 || done == config.steps;
        if checkpoint && this_rank.communicates() {
            let checksum = check_replicas(&this_rank, &model)?;
            log::info!(
                "step {done}: the {} replicas are identical (weights checksum {checksum:016x})",
                this_rank.world_size()
            );
        }
        if let Some(reporter) = reporter.as_mut() {
            let seconds = started.elapsed().as_secs_f64();
            report_step(config, reporter, done, &record, seconds, world)?;
            let logged = done % config.checkpoint.log_every.max(1) == 0;
            if logged || checkpoint {
                watch_templates(shared, reporter, &model, done, checkpoint)?;
            }
            if checkpoint {
                let state = train_state(config, done, world);
                reporter
                    .progress
                    .suspend(|| reporter.checkpoints.save(&model, &optim, &state))?;
            }
        }
    }
    if let Some(reporter) = reporter {
        reporter.progress.finish();
        plot_losses(&config.out)?;
        export_run(&model, config.model.arch, &config.out)?;
    }
    finish(this_rank)?;
    Ok(RunSummary {
        start_step,
        last_losses,
    })
}

fn train_state(config: &PretrainConfig, step: u64, ranks: u64) -> TrainState {
    TrainState {
        step,
        total_steps: config.steps,
        version: brainmvp_core::VERSION.to_string(),
        ranks,
        micro_batches: config.micro_batches(),
    }
}

fn start_reporting(
    config: &PretrainConfig,
    start_step: u64,
    checkpoints: Checkpoints,
) -> Result<Reporter> {
    let resume_from = (start_step > 0).then_some(start_step);
    let metrics = MetricsLog::open(&config.out.join("metrics.jsonl"), resume_from)?;
    let progress =
        TrainProgress::new(config.steps, start_step).with_log_every(config.checkpoint.log_every);
    Ok(Reporter {
        metrics,
        progress,
        checkpoints,
    })
}

/// Numbers of one optimiser step (of this rank's micro-batches).
struct StepRecord {
    losses: [f64; 4],
    lr: f64,
    data_wait: Duration,
    /// Time in the gradient all-reduce, waiting for the other ranks included (when it runs).
    all_reduce: Option<Duration>,
}

fn optimiser_step<B: AutodiffBackend, O: Optimizer<BrainMvp<B>, B>>(
    shared: &Shared<'_>,
    this_rank: &RankHandle<B>,
    model: BrainMvp<B>,
    optim: &mut O,
    loader: &mut Loader,
    step: u64,
) -> Result<(BrainMvp<B>, StepRecord)> {
    let config = shared.config;
    let micro_batches = config.micro_batches();
    let cross_modal = !config.views.in_template_warmup(step, config.steps);
    let mut accumulator = GradientsAccumulator::<BrainMvp<B>>::new();
    let mut sums = [0.0f64; 4];
    let mut data_wait = Duration::ZERO;
    for _ in 0..micro_batches {
        let waiting = Instant::now();
        let batch = loader
            .next()
            .context("the loader stopped")?
            .context("reading a batch")?;
        data_wait += waiting.elapsed();
        let sources = view_sources(&batch, &shared.reader)?;
        let crop = batch.crop_size;
        let plans = plan_step(
            &sources,
            crop,
            batch.step,
            config.seed,
            &config.views,
            cross_modal,
        )?;
        let views = build_views(&sources, &plans, crop, &model.templates, this_rank.device())?;
        let negatives = RankNegatives(this_rank);
        let gather = this_rank
            .gathers_negatives()
            .then_some(&negatives as &dyn NegativeGather<B>);
        let losses = model.losses_with(views, &config.loss, gather)?;
        let values = losses.values()?;
        log::debug!(
            "rank {} step {} batch {}: losses {values:?}",
            this_rank.rank(),
            step + 1,
            batch.step
        );
        if values.iter().any(|v| !v.is_finite()) {
            bail!("step {step}: the loss is not finite ({values:?}); lower optim.lr");
        }
        sums.iter_mut().zip(values).for_each(|(sum, v)| *sum += v);
        let gradients = losses.total.div_scalar(micro_batches as f64).backward();
        accumulator.accumulate(&model, GradientsParams::from_grads(gradients, &model));
    }
    // The loss terms ride along with the gradients: every rank logs the mean over all ranks.
    let mut losses = sums.map(|sum| (sum / micro_batches as f64) as f32);
    let reducing = Instant::now();
    let gradients = average_gradients(this_rank, accumulator.grads(), &model, &mut losses)?;
    let all_reduce = this_rank.communicates().then(|| reducing.elapsed());
    let lr = config.schedule().lr(step);
    let model = optim.step(lr, model, gradients);
    let losses = match this_rank.world_size() {
        1 => sums.map(|sum| sum / micro_batches as f64),
        _ => losses.map(f64::from),
    };
    Ok((
        model,
        StepRecord {
            losses,
            lr,
            data_wait,
            all_reduce,
        },
    ))
}

/// Contrastive negatives from every rank (`[distributed] gather_negatives`).
struct RankNegatives<'a, B: AutodiffBackend>(&'a RankHandle<B>);

impl<B: AutodiffBackend> NegativeGather<B> for RankNegatives<'_, B> {
    fn gather(&self, rows: Tensor<B, 2>) -> brainmvp_core::Result<(Tensor<B, 2>, usize)> {
        let [local, _] = rows.dims();
        let all = gather_features(self.0, rows).map_err(|err| {
            brainmvp_core::Error::new("contrastive negatives", format!("{err:#}"))
        })?;
        Ok((all, self.0.rank() * local))
    }
}

/// The crops of a batch with where they lie in their subjects' volumes.
fn view_sources<'a>(batch: &'a Batch, reader: &CacheReader) -> Result<Vec<ViewSource<'a>>> {
    batch
        .samples
        .iter()
        .map(|sample| {
            let entry = reader.subject(sample.subject_index)?;
            Ok(ViewSource {
                images: &sample.images,
                volume_dims: entry.dims,
                crop_start: sample.start,
                flipped: sample.flipped,
            })
        })
        .collect()
}

fn report_step(
    config: &PretrainConfig,
    reporter: &mut Reporter,
    done: u64,
    record: &StepRecord,
    seconds: f64,
    world: u64,
) -> Result<()> {
    let cases = (config.data.batch_size as u64 * config.micro_batches() * world) as f64;
    let cases_per_s = cases / seconds.max(1e-9);
    let mut values: Vec<(&str, f64)> = LOSS_KEYS.iter().copied().zip(record.losses).collect();
    values.push(("lr", record.lr));
    values.push(("step_s", seconds));
    values.push(("data_wait_s", record.data_wait.as_secs_f64()));
    if let Some(all_reduce) = record.all_reduce {
        values.push(("allreduce_s", all_reduce.as_secs_f64()));
    }
    values.push(("cases_per_s", cases_per_s));
    reporter.metrics.log_values(done, "train", &values)?;
    let terms: Vec<(&str, f64)> = values[..4].to_vec();
    reporter.progress.update(done, &terms, cases_per_s);
    if done % config.checkpoint.plot_every.max(1) == 0 {
        plot_losses(&config.out)?;
    }
    Ok(())
}

/// Logs the templates' correlation with the cohort means (and plots it); with `image`, also
/// writes the mid-slice strip of this step.
fn watch_templates<B: AutodiffBackend>(
    shared: &Shared<'_>,
    reporter: &mut Reporter,
    model: &BrainMvp<B>,
    done: u64,
    image: bool,
) -> Result<()> {
    let config = shared.config;
    let Some(cohort) = shared
        .cohort
        .as_ref()
        .filter(|_| config.checkpoint.watch_templates)
    else {
        return Ok(());
    };
    let templates = normalised_values(&model.templates)?;
    let correlations = template_correlations(&model.templates, &templates, cohort);
    let values: Vec<(&str, f64)> = correlations.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    reporter.metrics.log_values(done, "templates", &values)?;
    let keys: Vec<&str> = correlations.iter().map(|(k, _)| k.as_str()).collect();
    let out = &config.out;
    if image || done % config.checkpoint.plot_every.max(1) == 0 {
        let log = out.join("metrics.jsonl");
        plot_metrics(&log, &out.join("templates.png"), &keys)?;
    }
    if image {
        let path = out.join("templates").join(format!("step-{done:06}.png"));
        write_template_slices(&model.templates, &templates, cohort, &path)?;
    }
    Ok(())
}

fn plot_losses(out: &Path) -> Result<()> {
    plot_metrics(
        &out.join("metrics.jsonl"),
        &out.join("loss.png"),
        &LOSS_KEYS,
    )
}

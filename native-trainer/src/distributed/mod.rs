//! Data-parallel training: one model replica per rank, each rank its own share of every batch,
//! gradients averaged over the ranks before every optimiser step, so the replicas stay
//! identical (bit for bit: every rank applies the same averaged gradients).
//!
//! A rank is a process launched by `mpirun`, `srun` or `torchrun` ([`launch`]), or a thread of
//! one process driving one of several devices. Ranks talk through the small [`Collective`] trait
//! (all-reduce, broadcast, all-gather of host buffers) with four engines behind it: [`Solo`] (one
//! rank), [`ThreadGroup`] (threads of one process), MPI (feature `mpi`) and NCCL (feature `nccl`).
//! Gradients travel flattened into buckets of `bucket_mb`, so a step makes a few collective
//! calls, not one per tensor ([`buckets`]). Between processes a rendezvous keeps every rank
//! connected to rank 0 and a watchdog puts a deadline on every call ([`watch`]): a rank that dies
//! stops the others with a message naming it. See `docs/distributed.md`.

pub mod buckets;
pub mod collective;
pub mod launch;
#[cfg(feature = "mpi")]
pub mod mpi;
#[cfg(feature = "nccl")]
pub mod nccl;
pub mod watch;

use anyhow::{bail, Context, Result};
use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::time::Duration;

pub use collective::{Collective, Solo, ThreadGroup};
pub use launch::{Launch, Launcher};
use watch::{Rendezvous, Watchdog};

/// The engine between processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// NCCL on CUDA devices when built with `nccl`, otherwise MPI.
    #[default]
    Auto,
    /// MPI (feature `mpi`): host buffers; every backend.
    Mpi,
    /// NCCL (feature `nccl`): CUDA devices only.
    Nccl,
}

brainmvp_core::config! {
    /// The `[distributed]` section of the pre-training config. How many processes take part
    /// and which one this is come from the launcher's variables ([`Launch`]), not from the file.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    pub struct DistributedConfig {
        /// Ranks (threads) of this process, one per device it drives; the CLI sets it from
        /// `--device` (read as `devices` in configs saved before the rename).
        #[serde(alias = "devices")]
        pub local_ranks: usize = 1,
        /// Engine between processes (launched by `mpirun`, `srun` or `torchrun`).
        pub engine: Engine = Engine::Auto,
        /// Size of a gradient bucket in MB (f32 values): one collective call per bucket, as
        /// PyTorch DDP's default.
        pub bucket_mb: f64 = 25.0,
        /// Seconds a collective call or the start-up rendezvous may wait for the other ranks.
        pub timeout_s: u64 = 600,
        /// Use the features of every rank as contrastive negatives ([`gather_features`]);
        /// otherwise each rank contrasts only against the samples of its own batch.
        pub gather_negatives: bool = false,
    }
}

impl DistributedConfig {
    /// Checks the section; errors name the offending key.
    pub fn validate(&self) -> Result<()> {
        if self.local_ranks == 0 || self.local_ranks > 1024 {
            bail!(
                "[distributed] local_ranks = {}: expected 1 to 1024",
                self.local_ranks
            );
        }
        if !(self.bucket_mb > 0.0 && self.bucket_mb <= 4096.0) {
            bail!(
                "[distributed] bucket_mb = {}: expected more than 0 and at most 4096",
                self.bucket_mb
            );
        }
        if self.timeout_s == 0 {
            bail!("[distributed] timeout_s = 0: expected at least 1 second");
        }
        Ok(())
    }

    /// Values (f32) per gradient bucket.
    pub fn bucket_values(&self) -> usize {
        ((self.bucket_mb * 1e6 / 4.0) as usize).max(1)
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_s)
    }
}

/// How a rank comes into being.
pub enum RankStart {
    /// The only rank.
    Single,
    /// One of the threads of this process ([`ThreadGroup::new`] makes one member per thread).
    Thread(ThreadGroup),
    /// One process of a launched job.
    Process(Launch),
}

/// One rank: its device, its engine, and (between processes) its rendezvous and watchdog.
pub struct RankHandle<B: AutodiffBackend> {
    rank: usize,
    world_size: usize,
    device: B::Device,
    gather_negatives: bool,
    bucket_values: usize,
    collective: RefCell<Box<dyn Collective>>,
    rendezvous: Option<Rendezvous>,
    watchdog: Option<Watchdog>,
}

impl<B: AutodiffBackend> RankHandle<B> {
    /// Global rank of this rank in `0..world_size`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of ranks (model replicas).
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// The device this rank trains on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// True for rank 0, the rank that logs, checkpoints and exports.
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    /// The engine's name (`single`, `threads`, `mpi`, `nccl`).
    pub fn engine(&self) -> &'static str {
        self.collective.borrow().engine()
    }

    /// Whether [`gather_features`] gathers across ranks (`gather_negatives` in the config).
    pub fn gathers_negatives(&self) -> bool {
        self.gather_negatives && self.communicates()
    }

    /// Whether the collective calls run: more than one rank, or an engine chosen in the config
    /// on a world of one (`engine = "nccl"` on one GPU checks the NCCL path end to end).
    pub fn communicates(&self) -> bool {
        self.world_size > 1 || self.engine() != "single"
    }

    /// Runs one collective call (`what` names it in errors), under the watchdog's deadline.
    pub(crate) fn call<T>(
        &self,
        what: &str,
        body: impl FnOnce(&mut dyn Collective) -> Result<T>,
    ) -> Result<T> {
        let mut collective = self.collective.borrow_mut();
        let run = || body(collective.as_mut());
        let result = match &self.watchdog {
            Some(watchdog) => watchdog.guard(what, run),
            None => run(),
        };
        result.with_context(|| format!("rank {}: {what}", self.rank))
    }
}

/// Starts rank `start` on `device`: joins the other ranks (between processes: the engine, the
/// rendezvous with rank 0 and the watchdog). Returns once every rank has joined.
pub fn start_rank<B: AutodiffBackend>(
    start: RankStart,
    device: B::Device,
    config: &DistributedConfig,
) -> Result<RankHandle<B>> {
    config.validate()?;
    let (collective, rendezvous, watchdog): (Box<dyn Collective>, _, _) = match start {
        RankStart::Single => (Box::new(Solo), None, None),
        RankStart::Thread(member) => (Box::new(member), None, None),
        RankStart::Process(launch) if launch.world_size == 1 && config.engine == Engine::Auto => {
            (Box::new(Solo), None, None)
        }
        RankStart::Process(launch) => {
            let (collective, rendezvous) = join_processes::<B>(&launch, config)?;
            let watchdog = Watchdog::start(launch.rank, config.timeout())?;
            (collective, Some(rendezvous), Some(watchdog))
        }
    };
    let this_rank = RankHandle {
        rank: collective.rank(),
        world_size: collective.world_size(),
        device,
        gather_negatives: config.gather_negatives,
        bucket_values: config.bucket_values(),
        collective: RefCell::new(collective),
        rendezvous,
        watchdog,
    };
    if this_rank.world_size > 1 {
        log::info!(
            "rank {} of {} (pid {}, host {}, engine {})",
            this_rank.rank,
            this_rank.world_size,
            std::process::id(),
            watch::host_name(),
            this_rank.engine()
        );
    }
    Ok(this_rank)
}

/// The engine `config.engine` picks for a process on backend `B`.
fn resolve_engine<B: AutodiffBackend>(engine: Engine) -> Engine {
    let on_cuda = std::any::type_name::<B>().contains("Cuda");
    match engine {
        Engine::Auto if on_cuda && cfg!(feature = "nccl") => Engine::Nccl,
        Engine::Auto => Engine::Mpi,
        chosen => chosen,
    }
}

/// Joins the ranks of a launched job: the engine and the rendezvous with rank 0.
fn join_processes<B: AutodiffBackend>(
    launch: &Launch,
    config: &DistributedConfig,
) -> Result<(Box<dyn Collective>, Rendezvous)> {
    match resolve_engine::<B>(config.engine) {
        Engine::Mpi => join_with_mpi(launch, config),
        _ => join_with_nccl::<B>(launch, config),
    }
}

#[cfg(feature = "mpi")]
fn join_with_mpi(
    launch: &Launch,
    config: &DistributedConfig,
) -> Result<(Box<dyn Collective>, Rendezvous)> {
    let mut collective = mpi::MpiCollective::init()?;
    if collective.world_size() != launch.world_size || collective.rank() != launch.rank {
        bail!(
            "MPI says rank {} of {}, the launcher's variables say {} of {}: start brainmvp with \
             mpirun/srun --mpi, one process per rank",
            collective.rank(),
            collective.world_size(),
            launch.rank,
            launch.world_size
        );
    }
    let rendezvous = match &launch.master {
        Some((host, port)) => rendezvous(launch, host, *port, b"", config)?.0,
        None => rendezvous_over_mpi(&mut collective, config)?,
    };
    Ok((Box::new(collective), rendezvous))
}

/// Rank 0 picks a free port and tells the others where it listens through MPI itself.
#[cfg(feature = "mpi")]
fn rendezvous_over_mpi(
    collective: &mut mpi::MpiCollective,
    config: &DistributedConfig,
) -> Result<Rendezvous> {
    let listening = match collective.rank() {
        0 => Some(Rendezvous::listen(0)?),
        _ => None,
    };
    let address = listening
        .as_ref()
        .map(|(_, port)| format!("{}:{port}", mpi::MpiCollective::host_name()))
        .unwrap_or_default();
    let address = broadcast_text(collective, &address)?;
    match listening {
        Some((listener, _)) => {
            Rendezvous::serve(listener, collective.world_size(), b"", config.timeout())
        }
        None => {
            let (host, port) = address
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host, port.parse().ok()?)))
                .with_context(|| format!("rendezvous: rank 0 sent {address:?}"))?;
            Ok(Rendezvous::join(collective.rank(), host, port, config.timeout())?.0)
        }
    }
}

#[cfg(not(feature = "mpi"))]
fn join_with_mpi(
    launch: &Launch,
    _config: &DistributedConfig,
) -> Result<(Box<dyn Collective>, Rendezvous)> {
    engine_not_built(launch, "MPI", "mpi")
}

/// The error of an engine whose cargo feature is off.
#[cfg(not(all(feature = "mpi", feature = "nccl")))]
fn engine_not_built<T>(launch: &Launch, engine: &str, feature: &str) -> Result<T> {
    bail!(
        "rank {} of {}: the {engine} engine needs brainmvp built with the `{feature}` feature \
         (cargo build --release --features {feature})",
        launch.rank,
        launch.world_size
    )
}

#[cfg(feature = "nccl")]
fn join_with_nccl<B: AutodiffBackend>(
    launch: &Launch,
    config: &DistributedConfig,
) -> Result<(Box<dyn Collective>, Rendezvous)> {
    if !std::any::type_name::<B>().contains("Cuda") {
        bail!("[distributed] engine = \"nccl\" needs --device cuda");
    }
    let Some((host, port)) = &launch.master else {
        bail!(
            "rank {}: NCCL needs MASTER_ADDR (and MASTER_PORT, default 29500): where rank 0 \
             hands out the NCCL id (docs/distributed.md)",
            launch.rank
        );
    };
    let id = match launch.rank {
        0 => nccl::new_id()?,
        _ => Vec::new(),
    };
    let rendezvous = rendezvous(launch, host, *port, &id, config)?;
    let id = match launch.rank {
        0 => id,
        _ => rendezvous.1,
    };
    let collective =
        nccl::NcclCollective::init(launch.local_rank, launch.rank, launch.world_size, &id)?;
    Ok((Box::new(collective), rendezvous.0))
}

#[cfg(not(feature = "nccl"))]
fn join_with_nccl<B: AutodiffBackend>(
    launch: &Launch,
    _config: &DistributedConfig,
) -> Result<(Box<dyn Collective>, Rendezvous)> {
    engine_not_built(launch, "NCCL", "nccl")
}

/// Rank 0 serves `payload` at `port`; the others connect to `host:port` and receive it.
#[cfg(any(feature = "mpi", feature = "nccl"))]
fn rendezvous(
    launch: &Launch,
    host: &str,
    port: u16,
    payload: &[u8],
    config: &DistributedConfig,
) -> Result<(Rendezvous, Vec<u8>)> {
    match launch.rank {
        0 => {
            let (listener, _) = Rendezvous::listen(port)?;
            let served = Rendezvous::serve(listener, launch.world_size, payload, config.timeout())?;
            Ok((served, payload.to_vec()))
        }
        rank => Rendezvous::join(rank, host, port, config.timeout()),
    }
}

/// Rank 0's `text` on every rank (bytes travel as exact small floats).
#[cfg(feature = "mpi")]
fn broadcast_text(collective: &mut dyn Collective, text: &str) -> Result<String> {
    let mut length = [text.len() as f32];
    collective.broadcast(&mut length, 0)?;
    let mut bytes = vec![0.0f32; length[0] as usize];
    if collective.rank() == 0 {
        bytes = text.bytes().map(f32::from).collect();
    }
    collective.broadcast(&mut bytes, 0)?;
    Ok(bytes.iter().map(|byte| *byte as u8 as char).collect())
}

/// Replaces every rank's gradients by their mean over the ranks, in buckets of `bucket_mb`;
/// `extra` (the step's loss values) rides along in the last bucket and comes back averaged too.
///
/// Parameters that require a gradient but got none on this rank enter the mean as zeros, so
/// every rank reduces the same values.
pub fn average_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    this_rank: &RankHandle<B>,
    grads: GradientsParams,
    module: &M,
    extra: &mut [f32],
) -> Result<GradientsParams> {
    if !this_rank.communicates() {
        return Ok(grads);
    }
    buckets::average_gradients(this_rank, grads, module, extra)
}

/// Gives every rank rank 0's parameter values, after checking that all ranks hold the same
/// parameters (count and shapes). Call it after building or loading the model and before the
/// first step.
///
/// On every world size, one rank included, it first initialises the parameters in the module's
/// visiting order: burn initialises a parameter lazily, drawing from the global RNG when it is
/// first used, so without this a model's initial weights would depend on whether the forward pass
/// or a visit touched each parameter first, and one process would not start from the weights a
/// launched job starts from.
pub fn broadcast_module<B: AutodiffBackend, M: AutodiffModule<B>>(
    this_rank: &RankHandle<B>,
    module: M,
) -> Result<M> {
    buckets::initialise_in_visiting_order(&module);
    if !this_rank.communicates() {
        return Ok(module);
    }
    buckets::check_same_parameters(this_rank, &module)?;
    buckets::broadcast_module(this_rank, module)
}

/// Checks that every rank holds the same weights, bit for bit; returns their checksum.
pub fn check_replicas<B: AutodiffBackend, M: AutodiffModule<B>>(
    this_rank: &RankHandle<B>,
    module: &M,
) -> Result<u64> {
    buckets::check_replicas(this_rank, module)
}

/// Contrastive negatives across ranks: the `[n, d]` features of every rank stacked in rank order
/// (`[n * world_size, d]`). This rank's rows keep their autodiff graph; the other ranks' rows are
/// constants (their gradients stay on their own ranks, as in a usual all-gather). Every rank must
/// pass the same `[n, d]`. Returns `features` unchanged when gathering is off.
pub fn gather_features<B: AutodiffBackend>(
    this_rank: &RankHandle<B>,
    features: Tensor<B, 2>,
) -> Result<Tensor<B, 2>> {
    if !this_rank.gathers_negatives() {
        return Ok(features);
    }
    let [rows, width] = features.dims();
    let local = features
        .clone()
        .inner()
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|err| anyhow::anyhow!("features: {err:?}"))?;
    let gathered = this_rank.call("feature all-gather", |c| c.all_gather(&local))?;
    let total = rows * this_rank.world_size;
    let gathered = Tensor::<B::InnerBackend, 2>::from_data(
        TensorData::new(gathered, [total, width]),
        &this_rank.device,
    );
    let gathered = Tensor::<B, 2>::from_inner(gathered);
    let start = this_rank.rank * rows;
    let mut parts = Vec::with_capacity(3);
    if start > 0 {
        parts.push(gathered.clone().narrow(0, 0, start));
    }
    parts.push(features);
    if start + rows < total {
        parts.push(gathered.narrow(0, start + rows, total - start - rows));
    }
    Ok(Tensor::cat(parts, 0))
}

/// Leaves the job (every rank calls it once, after its last step): a rank that finished is no
/// longer reported as lost when its process ends.
pub fn finish<B: AutodiffBackend>(this_rank: RankHandle<B>) -> Result<()> {
    this_rank.collective.borrow_mut().finish();
    if let Some(rendezvous) = this_rank.rendezvous {
        rendezvous.finish();
    }
    Ok(())
}

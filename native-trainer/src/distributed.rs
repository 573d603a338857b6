//! Data-parallel training on burn's own collective engine (burn-collective 0.21.0).
//!
//! Every device is a *peer*: one training thread that holds a full replica of the model, draws its
//! own part of each batch, and after the backward pass calls [`average_gradients`], which runs
//! burn's `GradientsParams::all_reduce` with `ReduceOperation::Mean`. All replicas then apply the
//! same averaged gradients, so their weights stay identical. Peers of one machine meet in
//! burn-collective's in-process server; several machines meet through burn's global orchestrator
//! (a websocket server, [`run_orchestrator`]), one node per process.
//!
//! With one peer in total (`devices = 1`, `nodes = 1`) every call is a no-op that returns its input,
//! so the single-device loop calls the same API. More than one peer needs the cargo feature
//! `collective`. See `docs/distributed.md`.

use anyhow::{bail, Context, Result};
use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// All-reduce algorithm (burn-collective's `AllReduceStrategy`); all give the same result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReduceStrategy {
    /// Peers form a tree of arity `tree_arity`: reduce up to the root, send the result down.
    #[default]
    Tree,
    /// Peers form a ring: reduce-scatter then all-gather of slices.
    Ring,
    /// One peer sums everything and sends the result back.
    Centralized,
}

/// The `[distributed]` section of the pre-training config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistributedConfig {
    /// Peers (devices) on this node, one training thread each; the CLI sets it from `--device`.
    pub devices: usize,
    /// Nodes (machines, one process each) taking part; 1 for a single machine.
    pub nodes: u32,
    /// This node's rank in `0..nodes`; its peers get the global ranks
    /// `node_rank * devices .. (node_rank + 1) * devices`.
    pub node_rank: u32,
    /// Address of burn's global orchestrator, `ws://host:port` (several nodes only).
    pub orchestrator: Option<String>,
    /// Address at which the other nodes reach this node, `ws://host:port`; this node's tensor
    /// data service listens on that port on all interfaces (several nodes only).
    pub node_address: Option<String>,
    /// All-reduce algorithm between the peers of one node.
    pub local_strategy: ReduceStrategy,
    /// All-reduce algorithm between nodes.
    pub global_strategy: ReduceStrategy,
    /// Arity of the tree strategies (at least 2).
    pub tree_arity: u32,
    /// Use the features of every peer as contrastive negatives ([`gather_features`]); otherwise
    /// each peer contrasts only against the samples of its own batch.
    pub gather_negatives: bool,
}

impl Default for DistributedConfig {
    fn default() -> Self {
        Self {
            devices: 1,
            nodes: 1,
            node_rank: 0,
            orchestrator: None,
            node_address: None,
            local_strategy: ReduceStrategy::Tree,
            global_strategy: ReduceStrategy::Ring,
            tree_arity: 2,
            gather_negatives: false,
        }
    }
}

impl DistributedConfig {
    /// Total number of peers over all nodes (the number of model replicas).
    pub fn world_size(&self) -> usize {
        self.devices * self.nodes as usize
    }

    /// Global rank of the peer with index `local_index` on this node.
    pub fn global_rank(&self, local_index: usize) -> usize {
        self.node_rank as usize * self.devices + local_index
    }

    /// Samples that contribute to one optimiser step over all peers.
    pub fn effective_batch(&self, batch_per_device: usize, accumulation_steps: usize) -> usize {
        batch_per_device * accumulation_steps * self.world_size()
    }

    /// Checks the section; errors name the offending key.
    pub fn validate(&self) -> Result<()> {
        if self.devices == 0 || self.devices > 1024 {
            bail!(
                "[distributed] devices = {}: expected 1 to 1024",
                self.devices
            );
        }
        if self.nodes == 0 || self.nodes > 4096 {
            bail!("[distributed] nodes = {}: expected 1 to 4096", self.nodes);
        }
        if self.node_rank >= self.nodes {
            bail!(
                "[distributed] node_rank = {} must be below nodes = {}",
                self.node_rank,
                self.nodes
            );
        }
        if self.tree_arity < 2 {
            bail!(
                "[distributed] tree_arity = {}: expected at least 2",
                self.tree_arity
            );
        }
        if self.nodes > 1 {
            let orchestrator = self.orchestrator.as_deref().unwrap_or("");
            ws_port(orchestrator).context("[distributed] orchestrator")?;
            self.data_service_port()?;
        }
        Ok(())
    }

    /// Port of this node's tensor data service: the port of `node_address`.
    pub fn data_service_port(&self) -> Result<u16> {
        let address = self.node_address.as_deref().unwrap_or("");
        ws_port(address).context("[distributed] node_address")
    }
}

/// Port of a `ws://host:port` address (burn-communication accepts only `ws://` addresses).
fn ws_port(address: &str) -> Result<u16> {
    let Some(host_port) = address.strip_prefix("ws://") else {
        bail!("{address:?}: expected ws://host:port (required with nodes > 1)");
    };
    match host_port.trim_end_matches('/').rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .with_context(|| format!("{address:?}: {port:?} is not a port number")),
        _ => bail!("{address:?}: expected ws://host:port"),
    }
}

/// One peer of the collective: a training thread driving one device.
#[derive(Debug)]
pub struct PeerHandle<B: AutodiffBackend> {
    rank: usize,
    world_size: usize,
    device: B::Device,
    gather_negatives: bool,
}

impl<B: AutodiffBackend> PeerHandle<B> {
    /// Global rank of this peer in `0..world_size`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// Number of peers over all nodes.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// The device this peer trains on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// True for global rank 0, the peer that logs, checkpoints and exports.
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    /// Whether [`gather_features`] gathers across peers (`gather_negatives` in the config).
    pub fn gathers_negatives(&self) -> bool {
        self.gather_negatives && self.world_size > 1
    }
}

/// Registers peer `local_index` (in `0..config.devices`) of this node on `device`.
///
/// Call it from every peer's own thread: it returns once all `config.devices` peers of this node
/// have registered (and, with several nodes, once every node has reached the orchestrator).
pub fn start_peer<B: AutodiffBackend>(
    local_index: usize,
    device: B::Device,
    config: &DistributedConfig,
) -> Result<PeerHandle<B>> {
    config.validate()?;
    if local_index >= config.devices {
        bail!(
            "peer index {local_index} out of range: {} device(s) on this node",
            config.devices
        );
    }
    let handle = PeerHandle {
        rank: config.global_rank(local_index),
        world_size: config.world_size(),
        device,
        gather_negatives: config.gather_negatives,
    };
    if handle.world_size > 1 {
        backend::register::<B>(&handle, config)?;
    }
    Ok(handle)
}

/// Replaces every peer's gradients by their mean over all peers (all-reduce, `Mean`).
///
/// Parameters of `module` that require a gradient but got none on this peer (a part of the
/// model its batch did not use) enter the mean as zeros, so every peer reduces the same tensors.
pub fn average_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    peer: &PeerHandle<B>,
    grads: GradientsParams,
    module: &M,
) -> Result<GradientsParams> {
    if peer.world_size == 1 {
        return Ok(grads);
    }
    let mut grads = grads;
    let mut filler = MissingGradients::<B> {
        grads: &mut grads,
        device: &peer.device,
        reduced: Vec::new(),
    };
    module.visit(&mut filler);
    backend::check_same_parameters(peer, filler.fingerprint())?;
    backend::all_reduce_mean(peer, grads)
}

/// Gives every peer the parameters of global rank 0, values and `ParamId`s, so that replicas
/// start identical whatever their initialisation and `GradientsParams::all_reduce` (which
/// reduces in `ParamId` order) pairs the same parameters everywhere. Call it after building or
/// loading the model and before creating the optimiser; [`average_gradients`] refuses replicas
/// whose parameters differ.
pub fn broadcast_module<B: AutodiffBackend, M: AutodiffModule<B>>(
    peer: &PeerHandle<B>,
    module: M,
) -> Result<M> {
    if peer.world_size == 1 {
        return Ok(module);
    }
    backend::broadcast_module(peer, module)
}

/// Contrastive negatives across peers: the `[n, d]` features of every peer stacked in rank order
/// (`[n * world_size, d]`). The rows of this peer keep their autodiff graph; the rows of the
/// other peers are constants (their gradients stay on their own peers, as in a usual all-gather).
/// Every peer must pass the same `[n, d]`. Returns `features` unchanged when gathering is off.
pub fn gather_features<B: AutodiffBackend>(
    peer: &PeerHandle<B>,
    features: Tensor<B, 2>,
) -> Result<Tensor<B, 2>> {
    if !peer.gathers_negatives() {
        return Ok(features);
    }
    backend::gather_features(peer, features)
}

/// Leaves the collective (every peer calls it once, after its last step).
pub fn finish<B: AutodiffBackend>(peer: PeerHandle<B>) -> Result<()> {
    if peer.world_size == 1 {
        return Ok(());
    }
    backend::finish(peer)
}

/// Runs burn's global orchestrator on `port` (all interfaces) until Ctrl-C; the nodes of a
/// multi-node run connect to it (`orchestrator = "ws://this-host:port"`).
#[cfg(feature = "collective")]
pub fn run_orchestrator(port: u16) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("orchestrator: cannot start the async runtime")?;
    runtime.block_on(burn_collective::start_global_orchestrator(port));
    Ok(())
}

/// Registers a zero gradient for each parameter that requires one but has none, and lists the
/// (id, shape) of every gradient that will be reduced.
struct MissingGradients<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    device: &'a B::Device,
    reduced: Vec<(u64, Vec<usize>)>,
}

impl<B: AutodiffBackend> MissingGradients<'_, B> {
    /// FNV-1a hash of the reduced (id, shape) list in id order: the order of
    /// `GradientsParams::all_reduce`.
    fn fingerprint(&mut self) -> u64 {
        self.reduced.sort();
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for (id, shape) in &self.reduced {
            for word in std::iter::once(*id).chain(shape.iter().map(|dim| *dim as u64)) {
                for byte in word.to_le_bytes() {
                    hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
                }
            }
        }
        hash
    }
}

impl<B: AutodiffBackend> ModuleVisitor<B> for MissingGradients<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let has_gradient = self.grads.get::<B::InnerBackend, D>(param.id).is_some();
        if !has_gradient && !param.is_require_grad() {
            return;
        }
        let shape = param.lazy_shape();
        self.reduced.push((param.id.val(), shape.to_vec()));
        if !has_gradient {
            let zeros = Tensor::<B::InnerBackend, D>::zeros(shape, self.device);
            self.grads.register(param.id, zeros);
        }
    }
}

/// Calls into burn-collective (feature `collective`).
#[cfg(feature = "collective")]
mod backend {
    use super::{DistributedConfig, PeerHandle, ReduceStrategy};
    use anyhow::{anyhow, bail, Result};
    use burn::collective::{
        self, AllReduceStrategy, CollectiveConfig, CollectiveError, PeerId, ReduceOperation,
    };
    use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
    use burn::optim::GradientsParams;
    use burn::tensor::backend::AutodiffBackend;
    use burn::tensor::{Tensor, TensorData, TensorPrimitive};

    fn peer_id<B: AutodiffBackend>(peer: &PeerHandle<B>) -> PeerId {
        PeerId::from(peer.rank)
    }

    fn failed(what: &str, peer: usize, err: CollectiveError) -> anyhow::Error {
        anyhow!("collective {what} failed on peer {peer}: {err:?}")
    }

    fn strategy(strategy: ReduceStrategy, arity: u32) -> AllReduceStrategy {
        match strategy {
            ReduceStrategy::Tree => AllReduceStrategy::Tree(arity),
            ReduceStrategy::Ring => AllReduceStrategy::Ring,
            ReduceStrategy::Centralized => AllReduceStrategy::Centralized,
        }
    }

    /// burn-collective's config for this node.
    pub(super) fn collective_config(config: &DistributedConfig) -> Result<CollectiveConfig> {
        let mut collective = CollectiveConfig::default()
            .with_num_devices(config.devices)
            .with_local_all_reduce_strategy(strategy(config.local_strategy, config.tree_arity))
            .with_global_all_reduce_strategy(strategy(config.global_strategy, config.tree_arity));
        if config.nodes > 1 {
            let parse = |address: &Option<String>| {
                address
                    .as_deref()
                    .unwrap_or_default()
                    .parse()
                    .map_err(|err: String| anyhow!("[distributed] address: {err}"))
            };
            collective = collective
                .with_num_nodes(config.nodes)
                .with_global_address(parse(&config.orchestrator)?)
                .with_node_address(parse(&config.node_address)?)
                .with_data_service_port(config.data_service_port()?);
        }
        Ok(collective)
    }

    pub(super) fn register<B: AutodiffBackend>(
        peer: &PeerHandle<B>,
        config: &DistributedConfig,
    ) -> Result<()> {
        let collective = collective_config(config)?;
        collective::register::<B::InnerBackend>(peer_id(peer), peer.device.clone(), collective)
            .map_err(|err| failed("register", peer.rank, err))
    }

    pub(super) fn all_reduce_mean<B: AutodiffBackend>(
        peer: &PeerHandle<B>,
        grads: GradientsParams,
    ) -> Result<GradientsParams> {
        grads
            .all_reduce::<B::InnerBackend>(peer_id(peer), ReduceOperation::Mean)
            .map_err(|err| failed("gradient all-reduce", peer.rank, err))
    }

    /// Replaces each float parameter (in the module's fixed visiting order) by rank 0's
    /// parameter: its value and its `ParamId`, so that `GradientsParams::all_reduce`, which
    /// reduces in sorted-id order, pairs the same parameters on every peer.
    struct Broadcaster<'a, B: AutodiffBackend> {
        peer: &'a PeerHandle<B>,
        root_ids: std::vec::IntoIter<u64>,
        error: Option<anyhow::Error>,
    }

    impl<B: AutodiffBackend> ModuleMapper<B> for Broadcaster<'_, B> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
            let (id, tensor, mapper) = param.consume();
            let root_id = self.root_ids.next();
            let (Some(root_id), None) = (root_id, &self.error) else {
                return Param::from_mapped_value(id, tensor, mapper);
            };
            let require_grad = tensor.is_require_grad();
            match from_main(self.peer, tensor.clone().inner()) {
                Ok(inner) => {
                    let value = Tensor::<B, D>::from_inner(inner).set_require_grad(require_grad);
                    Param::from_mapped_value(ParamId::from(root_id), value, mapper)
                }
                Err(err) => {
                    self.error = Some(failed("broadcast", self.peer.rank, err));
                    Param::from_mapped_value(id, tensor, mapper)
                }
            }
        }
    }

    /// Rank 0's `tensor` on every peer. burn-collective 0.21.0's `broadcast` is not implemented
    /// across nodes (it panics), so this is an all-reduce sum in which every other peer adds
    /// zeros: `x + 0` is exact, the result is rank 0's tensor bit for bit.
    fn from_main<B: AutodiffBackend, const D: usize>(
        peer: &PeerHandle<B>,
        tensor: Tensor<B::InnerBackend, D>,
    ) -> Result<Tensor<B::InnerBackend, D>, CollectiveError> {
        let sent = match peer.is_main() {
            true => tensor,
            false => tensor.zeros_like(),
        };
        let summed = collective::all_reduce::<B::InnerBackend>(
            peer_id(peer),
            sent.into_primitive().tensor(),
            ReduceOperation::Sum,
        )?;
        Ok(Tensor::from_primitive(TensorPrimitive::Float(summed)))
    }

    /// Ids of the float parameters in visiting order.
    struct ParamIds(Vec<u64>);

    impl<B: AutodiffBackend> ModuleVisitor<B> for ParamIds {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            self.0.push(param.id.val());
        }
    }

    /// Rank 0's parameter ids, sent as 16-bit pieces (exact in f32).
    fn broadcast_ids<B: AutodiffBackend>(peer: &PeerHandle<B>, ids: &[u64]) -> Result<Vec<u64>> {
        let pieces: Vec<f32> = ids
            .iter()
            .flat_map(|id| (0..4).map(move |piece| ((id >> (16 * piece)) & 0xffff) as f32))
            .collect();
        let count = pieces.len();
        let local =
            Tensor::<B::InnerBackend, 1>::from_data(TensorData::new(pieces, [count]), &peer.device);
        let received = from_main(peer, local).map_err(|err| match err {
            CollectiveError::AllReduceShapeMismatch => anyhow!(
                "peer {}: the replicas have different numbers of parameters: different models",
                peer.rank
            ),
            err => failed("parameter-id broadcast", peer.rank, err),
        })?;
        let pieces = received
            .into_data()
            .to_vec::<f32>()
            .map_err(|err| anyhow!("parameter-id broadcast: {err:?}"))?;
        Ok(pieces
            .chunks(4)
            .map(|id| {
                (0..4).fold(0u64, |acc, piece| {
                    acc | ((id[piece] as u64) << (16 * piece))
                })
            })
            .collect())
    }

    pub(super) fn broadcast_module<B: AutodiffBackend, M: AutodiffModule<B>>(
        peer: &PeerHandle<B>,
        module: M,
    ) -> Result<M> {
        let mut ids = ParamIds(Vec::new());
        module.visit(&mut ids);
        let root_ids = broadcast_ids(peer, &ids.0)?;
        let mut broadcaster = Broadcaster {
            peer,
            root_ids: root_ids.into_iter(),
            error: None,
        };
        let module = module.map(&mut broadcaster);
        match broadcaster.error {
            Some(err) => Err(err),
            None => Ok(module),
        }
    }

    /// Fails unless every peer holds the same parameters (ids and shapes): compares 8 pieces of a
    /// hash, and their squares, through one all-reduce sum of small integers (exact in f32).
    pub(super) fn check_same_parameters<B: AutodiffBackend>(
        peer: &PeerHandle<B>,
        fingerprint: u64,
    ) -> Result<()> {
        let pieces: Vec<f32> = (0..8)
            .map(|piece| ((fingerprint >> (7 * piece)) & 0x7f) as f32)
            .collect();
        let mut values = pieces.clone();
        values.extend(pieces.iter().map(|piece| piece * piece));
        let local = Tensor::<B::InnerBackend, 1>::from_data(
            TensorData::new(values.clone(), [16]),
            &peer.device,
        );
        let summed = collective::all_reduce::<B::InnerBackend>(
            peer_id(peer),
            local.into_primitive().tensor(),
            ReduceOperation::Sum,
        )
        .map_err(|err| failed("parameter check", peer.rank, err))?;
        let summed = Tensor::<B::InnerBackend, 1>::from_primitive(TensorPrimitive::Float(summed))
            .into_data()
            .to_vec::<f32>()
            .map_err(|err| anyhow!("parameter check: {err:?}"))?;
        let world = peer.world_size as f32;
        if summed
            .iter()
            .zip(&values)
            .any(|(sum, value)| *sum != value * world)
        {
            bail!(
                "peer {}: the replicas hold different parameters (ids or shapes); build one model \
                 and pass every replica through broadcast_module before training",
                peer.rank
            );
        }
        Ok(())
    }

    /// All-gather from an all-reduce (sum) of zero-padded blocks: x + 0 is exact, so every row
    /// arrives bit for bit. burn-collective 0.21.0 has no all-gather of its own.
    pub(super) fn gather_features<B: AutodiffBackend>(
        peer: &PeerHandle<B>,
        features: Tensor<B, 2>,
    ) -> Result<Tensor<B, 2>> {
        let [rows, width] = features.dims();
        let start = peer.rank * rows;
        let total = rows * peer.world_size;
        let padded = Tensor::<B::InnerBackend, 2>::zeros([total, width], &peer.device)
            .slice_assign([start..start + rows, 0..width], features.clone().inner());
        let summed = collective::all_reduce::<B::InnerBackend>(
            peer_id(peer),
            padded.into_primitive().tensor(),
            ReduceOperation::Sum,
        )
        .map_err(|err| failed("feature all-gather", peer.rank, err))?;
        let gathered =
            Tensor::<B, 2>::from_inner(Tensor::from_primitive(TensorPrimitive::Float(summed)));
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

    pub(super) fn finish<B: AutodiffBackend>(peer: PeerHandle<B>) -> Result<()> {
        collective::finish_collective::<B::InnerBackend>(peer_id(&peer))
            .map_err(|err| failed("finish", peer.rank, err))
    }
}

/// Without the `collective` feature only a single peer can run.
#[cfg(not(feature = "collective"))]
mod backend {
    use super::{DistributedConfig, PeerHandle};
    use anyhow::{bail, Result};
    use burn::module::AutodiffModule;
    use burn::optim::GradientsParams;
    use burn::tensor::backend::AutodiffBackend;
    use burn::tensor::Tensor;

    fn unavailable<T>(world_size: usize) -> Result<T> {
        bail!(
            "{world_size} peers requested, but brainmvp was built without the `collective` \
             feature (rebuild with --features collective)"
        )
    }

    pub(super) fn register<B: AutodiffBackend>(
        peer: &PeerHandle<B>,
        _config: &DistributedConfig,
    ) -> Result<()> {
        unavailable(peer.world_size)
    }

    pub(super) fn all_reduce_mean<B: AutodiffBackend>(
        peer: &PeerHandle<B>,
        _grads: GradientsParams,
    ) -> Result<GradientsParams> {
        unavailable(peer.world_size)
    }

    pub(super) fn check_same_parameters<B: AutodiffBackend>(
        peer: &PeerHandle<B>,
        _fingerprint: u64,
    ) -> Result<()> {
        unavailable(peer.world_size)
    }

    pub(super) fn broadcast_module<B: AutodiffBackend, M: AutodiffModule<B>>(
        peer: &PeerHandle<B>,
        _module: M,
    ) -> Result<M> {
        unavailable(peer.world_size)
    }

    pub(super) fn gather_features<B: AutodiffBackend>(
        peer: &PeerHandle<B>,
        _features: Tensor<B, 2>,
    ) -> Result<Tensor<B, 2>> {
        unavailable(peer.world_size)
    }

    pub(super) fn finish<B: AutodiffBackend>(peer: PeerHandle<B>) -> Result<()> {
        unavailable(peer.world_size)
    }
}

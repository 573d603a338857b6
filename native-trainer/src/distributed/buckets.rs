//! Parameters and gradients as flat buckets: the model's float parameters in their fixed
//! visiting order (the same on every rank), concatenated into buckets of `bucket_mb`, one
//! collective call per bucket.

use anyhow::{anyhow, bail, Result};
use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};

use super::RankHandle;

type Flat<B> = Tensor<<B as AutodiffBackend>::InnerBackend, 1>;

/// What a bucket goes through.
#[derive(Clone, Copy)]
enum Exchange {
    /// Sum over the ranks divided by the world size.
    Mean,
    /// Rank 0's values.
    FromRankZero,
}

/// The gradients of the parameters that take part (those that require a gradient, or got one),
/// flattened, in visiting order; `selected` marks which parameters took part.
struct FlattenGradients<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    device: &'a B::Device,
    flat: Vec<Flat<B>>,
    selected: Vec<bool>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for FlattenGradients<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let gradient = self.grads.remove::<B::InnerBackend, D>(param.id);
        let takes_part = gradient.is_some() || param.is_require_grad();
        self.selected.push(takes_part);
        if !takes_part {
            return;
        }
        let shape = param.lazy_shape();
        let values = shape.num_elements();
        let gradient =
            gradient.unwrap_or_else(|| Tensor::<B::InnerBackend, D>::zeros(shape, self.device));
        self.flat.push(gradient.reshape([values]));
    }
}

/// Registers the averaged gradients back, in the same order.
struct RestoreGradients<'a, B: AutodiffBackend> {
    grads: &'a mut GradientsParams,
    selected: std::vec::IntoIter<bool>,
    flat: std::vec::IntoIter<Flat<B>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for RestoreGradients<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.selected.next() != Some(true) {
            return;
        }
        if let Some(flat) = self.flat.next() {
            let dims: [usize; D] = std::array::from_fn(|axis| param.lazy_shape()[axis]);
            self.grads.register(param.id, flat.reshape(dims));
        }
    }
}

/// Every float parameter's value (or only the trainable ones'), flattened, in visiting order.
struct FlattenValues<B: AutodiffBackend> {
    flat: Vec<Flat<B>>,
    shapes: Vec<Vec<usize>>,
    trainable_only: bool,
}

impl<B: AutodiffBackend> FlattenValues<B> {
    fn of<M: AutodiffModule<B>>(module: &M, trainable_only: bool) -> Self {
        let mut values = Self {
            flat: Vec::new(),
            shapes: Vec::new(),
            trainable_only,
        };
        module.visit(&mut values);
        values
    }
}

impl<B: AutodiffBackend> ModuleVisitor<B> for FlattenValues<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.trainable_only && !param.is_require_grad() {
            return;
        }
        let value = param.val().inner();
        let dims = value.dims();
        self.shapes.push(dims.to_vec());
        self.flat
            .push(value.reshape([dims.iter().product::<usize>()]));
    }
}

/// Puts values back into the parameters, in visiting order, keeping ids and `require_grad`.
struct RestoreValues<B: AutodiffBackend> {
    flat: std::vec::IntoIter<Flat<B>>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for RestoreValues<B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(flat) = self.flat.next() else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let require_grad = tensor.is_require_grad();
        let value =
            Tensor::<B, D>::from_inner(flat.reshape(tensor.dims())).set_require_grad(require_grad);
        Param::from_mapped_value(id, value, mapper)
    }
}

/// Touches every float parameter in visiting order (a lazy parameter initialises on first use).
struct Initialise;

impl<B: AutodiffBackend> ModuleVisitor<B> for Initialise {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let _ = param.val();
    }
}

pub(super) fn initialise_in_visiting_order<B: AutodiffBackend, M: AutodiffModule<B>>(module: &M) {
    module.visit(&mut Initialise);
}

pub(super) fn average_gradients<B: AutodiffBackend, M: AutodiffModule<B>>(
    this_rank: &RankHandle<B>,
    grads: GradientsParams,
    module: &M,
    extra: &mut [f32],
) -> Result<GradientsParams> {
    let mut grads = grads;
    let mut flatten = FlattenGradients::<B> {
        grads: &mut grads,
        device: this_rank.device(),
        flat: Vec::new(),
        selected: Vec::new(),
    };
    module.visit(&mut flatten);
    let (flat, selected) = (flatten.flat, flatten.selected);
    let reduced = exchange_buckets(
        this_rank,
        flat,
        extra,
        Exchange::Mean,
        "gradient all-reduce",
    )?;
    let mut restore = RestoreGradients::<B> {
        grads: &mut grads,
        selected: selected.into_iter(),
        flat: reduced.into_iter(),
    };
    module.visit(&mut restore);
    Ok(grads)
}

pub(super) fn broadcast_module<B: AutodiffBackend, M: AutodiffModule<B>>(
    this_rank: &RankHandle<B>,
    module: M,
) -> Result<M> {
    let values = FlattenValues::<B>::of(&module, false);
    let received = exchange_buckets(
        this_rank,
        values.flat,
        &mut [],
        Exchange::FromRankZero,
        "weight broadcast",
    )?;
    Ok(module.map(&mut RestoreValues::<B> {
        flat: received.into_iter(),
    }))
}

/// Runs `exchange` over `flat` in buckets of at most `rank.bucket_values` values (a tensor
/// larger than that is a bucket of its own); `extra` joins the last bucket.
fn exchange_buckets<B: AutodiffBackend>(
    this_rank: &RankHandle<B>,
    flat: Vec<Flat<B>>,
    extra: &mut [f32],
    exchange: Exchange,
    what: &str,
) -> Result<Vec<Flat<B>>> {
    let mut buckets: Vec<Vec<Flat<B>>> = Vec::new();
    let mut filled = usize::MAX;
    for tensor in flat {
        let size = tensor.dims()[0];
        if filled.saturating_add(size) > this_rank.bucket_values {
            buckets.push(Vec::new());
            filled = 0;
        }
        filled += size;
        buckets
            .last_mut()
            .expect("a bucket was pushed")
            .push(tensor);
    }
    if buckets.is_empty() {
        buckets.push(Vec::new());
    }
    let last = buckets.len() - 1;
    let mut out = Vec::new();
    for (index, bucket) in buckets.into_iter().enumerate() {
        let riders: &mut [f32] = if index == last { extra } else { &mut [] };
        out.extend(exchange_bucket(this_rank, bucket, riders, exchange, what)?);
    }
    Ok(out)
}

fn exchange_bucket<B: AutodiffBackend>(
    this_rank: &RankHandle<B>,
    bucket: Vec<Flat<B>>,
    extra: &mut [f32],
    exchange: Exchange,
    what: &str,
) -> Result<Vec<Flat<B>>> {
    let sizes: Vec<usize> = bucket.iter().map(|tensor| tensor.dims()[0]).collect();
    let total: usize = sizes.iter().sum();
    let mut values = match bucket.is_empty() {
        true => Vec::new(),
        false => to_f32(Tensor::cat(bucket, 0))?,
    };
    values.extend_from_slice(extra);
    match exchange {
        Exchange::Mean => {
            this_rank.call(what, |c| c.all_reduce_sum(&mut values))?;
            let world = this_rank.world_size() as f32;
            values.iter_mut().for_each(|value| *value /= world);
        }
        Exchange::FromRankZero => this_rank.call(what, |c| c.broadcast(&mut values, 0))?,
    }
    extra.copy_from_slice(&values[total..]);
    values.truncate(total);
    if total == 0 {
        return Ok(Vec::new());
    }
    let joined = Flat::<B>::from_data(TensorData::new(values, [total]), this_rank.device());
    let mut start = 0;
    Ok(sizes
        .into_iter()
        .map(|size| {
            let part = joined.clone().narrow(0, start, size);
            start += size;
            part
        })
        .collect())
}

fn to_f32<const D: usize, T: burn::tensor::backend::Backend>(
    tensor: Tensor<T, D>,
) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|err| anyhow!("reading tensor values: {err:?}"))
}

/// FNV-1a over 64-bit words.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn word(&mut self, word: u64) {
        for byte in word.to_le_bytes() {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn fnv(words: impl IntoIterator<Item = u64>) -> u64 {
    let mut hash = Fnv::new();
    words.into_iter().for_each(|word| hash.word(word));
    hash.0
}

/// A hash as four exact 16-bit pieces.
fn pieces(hash: u64) -> [f32; 4] {
    std::array::from_fn(|piece| ((hash >> (16 * piece)) & 0xffff) as f32)
}

/// The hash of every rank, gathered.
fn gather_hashes<B: AutodiffBackend>(
    this_rank: &RankHandle<B>,
    hash: u64,
    what: &str,
) -> Result<Vec<u64>> {
    let gathered = this_rank.call(what, |c| c.all_gather(&pieces(hash)))?;
    Ok(gathered
        .chunks(4)
        .map(|piece| (0..4).fold(0u64, |acc, i| acc | ((piece[i] as u64) << (16 * i))))
        .collect())
}

/// Fails unless every rank holds the same parameters (count and shapes, in visiting order).
pub(super) fn check_same_parameters<B: AutodiffBackend, M: AutodiffModule<B>>(
    this_rank: &RankHandle<B>,
    module: &M,
) -> Result<()> {
    let values = FlattenValues::<B>::of(module, false);
    let words = values.shapes.iter().flat_map(|shape| {
        std::iter::once(shape.len() as u64).chain(shape.iter().map(|dim| *dim as u64))
    });
    let hashes = gather_hashes(this_rank, fnv(words), "parameter check")?;
    let differing: Vec<String> = differing_ranks(&hashes);
    if !differing.is_empty() {
        bail!(
            "ranks [{}] hold parameters (count or shapes) different from rank 0's: every rank \
             must build the same model",
            differing.join(", ")
        );
    }
    Ok(())
}

fn differing_ranks(hashes: &[u64]) -> Vec<String> {
    (1..hashes.len())
        .filter(|rank| hashes[*rank] != hashes[0])
        .map(|rank| rank.to_string())
        .collect()
}

/// Every rank's checksum of its trainable weights' bits must equal rank 0's. (Running
/// statistics, such as BatchNorm's, follow each rank's own batches and are not compared.)
pub(super) fn check_replicas<B: AutodiffBackend, M: AutodiffModule<B>>(
    this_rank: &RankHandle<B>,
    module: &M,
) -> Result<u64> {
    let mut checksum = Fnv::new();
    for tensor in FlattenValues::<B>::of(module, true).flat {
        to_f32(tensor)?
            .into_iter()
            .for_each(|value| checksum.word(u64::from(value.to_bits())));
    }
    let checksum = checksum.0;
    if !this_rank.communicates() {
        return Ok(checksum);
    }
    let hashes = gather_hashes(this_rank, checksum, "replica check")?;
    let differing = differing_ranks(&hashes);
    if !differing.is_empty() {
        bail!(
            "the replicas diverged: ranks [{}] hold weights different from rank 0's",
            differing.join(", ")
        );
    }
    Ok(checksum)
}

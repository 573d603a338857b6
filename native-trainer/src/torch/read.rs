//! Reading a state dict: every tensor as f32 values with its shape, keyed by its official name.

use anyhow::{bail, Context, Result};
use burn::tensor::TensorData;
use burn_store::pytorch::PytorchReader;
use std::collections::BTreeMap;
use std::path::Path;

/// Keys under which checkpoints commonly nest their state dict.
pub const NESTING_KEYS: [&str; 3] = ["state_dict", "model", "net"];

/// DDP's prefix on every key of a model saved while wrapped.
pub const DDP_PREFIX: &str = "module.";

/// One tensor of a state dict: row-major f32 values and the shape.
#[derive(Debug, Clone, PartialEq)]
pub struct StateTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// A state dict read from a file, with what had to be unwrapped to reach it.
#[derive(Debug, Clone)]
pub struct StateDict {
    /// Tensors by name (nesting key and `module.` prefix removed).
    pub tensors: BTreeMap<String, StateTensor>,
    /// The key the state dict was nested under, if any.
    pub nested_under: Option<String>,
    /// Whether the keys carried DDP's `module.` prefix.
    pub ddp_prefix: bool,
    /// The file, for messages.
    pub source: String,
}

impl StateDict {
    /// Shape of every tensor by name.
    pub fn shapes(&self) -> BTreeMap<String, Vec<usize>> {
        let shapes = self.tensors.iter();
        shapes
            .map(|(name, t)| (name.clone(), t.shape.clone()))
            .collect()
    }

    /// What was unwrapped, e.g. "nested under `state_dict`, DDP `module.` prefix removed".
    pub fn unwrapping(&self) -> String {
        let mut parts = Vec::new();
        if let Some(key) = &self.nested_under {
            parts.push(format!("nested under `{key}`"));
        }
        if self.ddp_prefix {
            parts.push("DDP `module.` prefix removed".to_string());
        }
        match parts.is_empty() {
            true => "a plain state dict".to_string(),
            false => parts.join(", "),
        }
    }
}

/// Reads the state dict of `path`: `.safetensors` by its header, anything else as a PyTorch
/// checkpoint (zip or legacy pickle). Errors are one line naming the file.
pub fn read_state_dict(path: &Path) -> Result<StateDict> {
    let name = path.display().to_string();
    if !path.is_file() {
        bail!("{name}: no such file");
    }
    let is_safetensors = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("safetensors"));
    let raw = match is_safetensors {
        true => read_safetensors(path)?,
        false => read_pytorch(path)?,
    };
    let (tensors, nested_under) = unnest(raw);
    let ddp_prefix = !tensors.is_empty() && tensors.keys().all(|k| k.starts_with(DDP_PREFIX));
    let tensors: BTreeMap<String, StateTensor> = match ddp_prefix {
        true => tensors
            .into_iter()
            .map(|(k, t)| (k[DDP_PREFIX.len()..].to_string(), t))
            .collect(),
        false => tensors,
    };
    if tensors.is_empty() {
        bail!("{name}: holds no tensors (not a state dict?)");
    }
    Ok(StateDict {
        tensors,
        nested_under,
        ddp_prefix,
        source: name,
    })
}

/// The tensors under the first nesting key present (`state_dict.`, `model.`, `net.`), or all.
fn unnest(raw: BTreeMap<String, StateTensor>) -> (BTreeMap<String, StateTensor>, Option<String>) {
    for key in NESTING_KEYS {
        let prefix = format!("{key}.");
        if raw.keys().any(|name| name.starts_with(&prefix)) {
            let inner = raw
                .into_iter()
                .filter_map(|(name, t)| name.strip_prefix(&prefix).map(|n| (n.to_string(), t)))
                .collect();
            return (inner, Some(key.to_string()));
        }
    }
    (raw, None)
}

fn read_pytorch(path: &Path) -> Result<BTreeMap<String, StateTensor>> {
    let name = path.display();
    let reader = PytorchReader::new(path)
        .map_err(|err| anyhow::anyhow!("{name}: not a readable PyTorch checkpoint: {err}"))?;
    let mut tensors = BTreeMap::new();
    for (key, snapshot) in reader.into_tensors() {
        let data = snapshot
            .to_data()
            .map_err(|err| anyhow::anyhow!("{name}: tensor {key} cannot be read: {err:?}"))?;
        tensors.insert(key.clone(), state_tensor(data, &key, path)?);
    }
    Ok(tensors)
}

fn state_tensor(data: TensorData, key: &str, path: &Path) -> Result<StateTensor> {
    let shape = data.shape.to_vec();
    let values = data
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|err| anyhow::anyhow!("{}: tensor {key}: {err:?}", path.display()))?;
    Ok(StateTensor { shape, values })
}

fn read_safetensors(path: &Path) -> Result<BTreeMap<String, StateTensor>> {
    let name = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("{name}: cannot read"))?;
    let file = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|err| anyhow::anyhow!("{name}: not a safetensors file: {err}"))?;
    let mut tensors = BTreeMap::new();
    for (key, view) in file.tensors() {
        let values = safetensor_values(&view).with_context(|| format!("{name}: tensor {key}"))?;
        let shape = view.shape().to_vec();
        tensors.insert(key, StateTensor { shape, values });
    }
    Ok(tensors)
}

/// The values of a safetensors tensor as f32 (F32, F16, BF16, F64 and I64 are read).
pub fn safetensor_values(view: &safetensors::tensor::TensorView<'_>) -> Result<Vec<f32>> {
    use safetensors::Dtype;
    let bytes = view.data();
    let values = match view.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        // BatchNorm's num_batches_tracked.
        Dtype::I64 => bytes
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        other => bail!("dtype {other:?} is not read"),
    };
    Ok(values)
}

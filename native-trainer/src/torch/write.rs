//! Our models as official state dicts (safetensors): the same name tables as the import, read
//! the other way, so a model trained here loads with `load_state_dict(strict=True)` into the
//! official class.

use anyhow::{Context, Result};
use brainmvp_core::fs::write_atomic;
use brainmvp_core::model::{UniUnet, UniUnetConfig, Uniformer, UniformerConfig};
use brainmvp_core::official::names::{self, TensorPair};
use burn::tensor::backend::Backend;
use burn_store::ModuleSnapshot;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One tensor of an official state dict.
#[derive(Debug, Clone, PartialEq)]
pub enum OfficialTensor {
    /// Float values (row-major) and shape.
    Float(Vec<usize>, Vec<f32>),
    /// BatchNorm's `num_batches_tracked` (a 0-d int64; PyTorch's strict loading wants it).
    StepCounter,
}

/// The state dict of the official `UniUnet` for our `model` of `config` (`multi_scale=True`
/// when the model has deep-supervision heads, else `False`).
pub fn uniunet_state_dict<B: Backend>(
    model: &UniUnet<B>,
    config: &UniUnetConfig,
) -> Result<BTreeMap<String, OfficialTensor>> {
    official_tensors(model, &names::uniunet_pairs(config)?)
}

/// The state dict of an official UniFormer for our `encoder`, its names under `prefix`
/// (`"encoder.uniformer."` as in the pre-training checkpoint, `""` for a bare `UniFormer`).
pub fn uniformer_state_dict<B: Backend>(
    encoder: &Uniformer<B>,
    config: &UniformerConfig,
    prefix: &str,
) -> Result<BTreeMap<String, OfficialTensor>> {
    official_tensors(encoder, &names::uniformer_pairs(config, prefix, ""))
}

fn official_tensors<B: Backend, M: ModuleSnapshot<B>>(
    model: &M,
    pairs: &[TensorPair],
) -> Result<BTreeMap<String, OfficialTensor>> {
    let ours: HashMap<String, _> = model
        .collect(None, None, true)
        .into_iter()
        .map(|snapshot| (snapshot.full_path(), snapshot))
        .collect();
    let mut tensors = BTreeMap::new();
    for pair in pairs {
        let snapshot = ours
            .get(&pair.ours)
            .with_context(|| format!("internal: our model has no {}", pair.ours))?;
        let data = snapshot
            .to_data()
            .map_err(|err| anyhow::anyhow!("{}: {err:?}", pair.ours))?;
        let shape = data.shape.to_vec();
        let values = data
            .convert::<f32>()
            .into_vec::<f32>()
            .map_err(|err| anyhow::anyhow!("{}: {err:?}", pair.ours))?;
        let (shape, values) = pair.transform.apply(&shape, values)?;
        if let Some(norm) = pair.official.strip_suffix(".running_mean") {
            tensors.insert(
                format!("{norm}.num_batches_tracked"),
                OfficialTensor::StepCounter,
            );
        }
        tensors.insert(pair.official.clone(), OfficialTensor::Float(shape, values));
    }
    Ok(tensors)
}

/// Writes `tensors` as a safetensors file (f32; step counters int64), atomically, with
/// `metadata` in its header.
pub fn write_safetensors(
    path: &Path,
    tensors: &BTreeMap<String, OfficialTensor>,
    metadata: HashMap<String, String>,
) -> Result<()> {
    let bytes: Vec<(&String, Vec<u8>, Vec<usize>, Dtype)> = tensors
        .iter()
        .map(|(name, tensor)| match tensor {
            OfficialTensor::Float(shape, values) => {
                let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                (name, bytes, shape.clone(), Dtype::F32)
            }
            OfficialTensor::StepCounter => (name, 0i64.to_le_bytes().to_vec(), vec![], Dtype::I64),
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, data, shape, dtype)| {
            Ok((name.as_str(), TensorView::new(*dtype, shape.clone(), data)?))
        })
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?;
    let file = safetensors::serialize(views, Some(metadata))
        .map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?;
    write_atomic(path, |out| out.write_all(&file))?;
    Ok(())
}

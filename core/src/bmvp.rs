//! `.bmvp`: a fine-tuned segmentation model in one file, what `brainmvp export` writes, the
//! browser loads and downloads after fine-tuning, and `brainmvp segment --model` reads.
//!
//! Layout (little-endian):
//!
//! | bytes | what |
//! |---|---|
//! | 16 | magic `BRAINMVP-BUNDLE\n` |
//! | 4 | format version (`u32`, [`BMVP_VERSION`]) |
//! | 8 + n | JSON header ([`SegmenterManifest`], precision, the shape of every weight tensor in the
//! |        | network's parameter order, the templates' modality, dims and affine) |
//! | 8 + m | values: every weight tensor, then every template, as `f32` or IEEE `f16` |
//! | 4 | CRC-32 of everything before it |
//!
//! The weights are the network's float parameters (BatchNorm running statistics included) in the
//! order burn visits them; loading builds the network of the manifest and checks every shape, so
//! a file and a manifest that disagree are refused, never half-loaded. Reading the tensors back is
//! asynchronous ([`BmvpModel::from_model_async`]) so a model trained on WebGPU in the browser can be
//! saved there.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::inference::segment::{build_model, SegmenterManifest};
use crate::model::UniUnet;
use crate::template_bank::TemplateBank;
use crate::volume::Affine;
use crate::{Error, Modality, Result, Volume};

/// The file extension.
pub const BMVP_EXTENSION: &str = "bmvp";
/// The first bytes of every bmvp.
pub const BMVP_MAGIC: &[u8; 16] = b"BRAINMVP-BUNDLE\n";
/// The current format version.
pub const BMVP_VERSION: u32 = 1;
/// The largest header accepted (bytes).
const MAX_HEADER_BYTES: u64 = 16 << 20;
/// The largest value section accepted (bytes): far above UniFormer-S (22 M parameters).
const MAX_VALUE_BYTES: u64 = 2 << 30;

/// How the values are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightPrecision {
    /// 4 bytes per value, exact.
    F32,
    /// 2 bytes per value (IEEE half), half the size.
    F16,
}

impl WeightPrecision {
    fn bytes_per_value(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
        }
    }
}

/// One weight tensor: its shape and values (row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct WeightTensor {
    /// The shape.
    pub shape: Vec<usize>,
    /// The values.
    pub values: Vec<f32>,
}

/// A model file in memory.
#[derive(Debug, Clone)]
pub struct BmvpModel {
    /// What the network is and how to run it.
    pub manifest: SegmenterManifest,
    /// How the values are stored in the file.
    pub precision: WeightPrecision,
    /// The network's float parameters in burn's visiting order.
    pub tensors: Vec<WeightTensor>,
    /// Learned modality templates (for missing modalities), on the template grid.
    pub templates: Vec<(Modality, Volume<f32>)>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    manifest: SegmenterManifest,
    precision: WeightPrecision,
    tensors: Vec<Vec<usize>>,
    templates: Vec<TemplateHeader>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateHeader {
    modality: Modality,
    dims: [usize; 3],
    affine: Affine,
}

/// Collects every float parameter of a module, flattened, in visiting order.
struct Collect<B: Backend> {
    tensors: Vec<(Vec<usize>, Tensor<B, 1>)>,
}

impl<B: Backend> ModuleVisitor<B> for Collect<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        self.tensors.push((shape, tensor.reshape([-1])));
    }
}

/// Replaces every float parameter by the next stored tensor, checking its shape.
struct Assign<'a, B: Backend> {
    tensors: &'a [WeightTensor],
    next: usize,
    device: B::Device,
    error: Option<String>,
}

impl<B: Backend> ModuleMapper<B> for Assign<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let index = self.next;
        self.next += 1;
        let Some(stored) = self.tensors.get(index) else {
            self.error
                .get_or_insert_with(|| format!("the network has more than {index} weight tensors"));
            return param;
        };
        let expected = param.shape().dims::<D>().to_vec();
        if stored.shape != expected {
            self.error.get_or_insert_with(|| {
                format!(
                    "weight tensor {index} has shape {:?}, the network wants {expected:?}",
                    stored.shape
                )
            });
            return param;
        }
        let device = self.device.clone();
        let values = stored.values.clone();
        param.map(move |old| {
            let fresh = Tensor::<B, D>::from_data(TensorData::new(values, expected), &device);
            if old.is_require_grad() {
                fresh.require_grad()
            } else {
                fresh
            }
        })
    }
}

fn values_of(data: TensorData) -> Result<Vec<f32>> {
    data.convert::<f32>()
        .into_vec::<f32>()
        .map_err(|err| Error::new("model weights", format!("{err:?}")))
}

impl BmvpModel {
    /// The bmvp of a trained `model` (reads the weights synchronously: native backends).
    pub fn from_model<B: Backend>(
        manifest: &SegmenterManifest,
        model: &UniUnet<B>,
        precision: WeightPrecision,
        templates: Vec<(Modality, Volume<f32>)>,
    ) -> Result<Self> {
        let mut collect = Collect {
            tensors: Vec::new(),
        };
        model.visit(&mut collect);
        let tensors = collect
            .tensors
            .into_iter()
            .map(|(shape, tensor)| {
                let values = values_of(tensor.into_data())?;
                Ok(WeightTensor { shape, values })
            })
            .collect::<Result<Vec<_>>>()?;
        Self::checked(manifest, precision, tensors, templates)
    }

    /// [`Self::from_model`] for backends that cannot block on a read (WebGPU in the browser).
    pub async fn from_model_async<B: Backend>(
        manifest: &SegmenterManifest,
        model: &UniUnet<B>,
        precision: WeightPrecision,
        templates: Vec<(Modality, Volume<f32>)>,
    ) -> Result<Self> {
        let mut collect = Collect {
            tensors: Vec::new(),
        };
        model.visit(&mut collect);
        let mut tensors = Vec::with_capacity(collect.tensors.len());
        for (shape, tensor) in collect.tensors {
            let data = tensor
                .into_data_async()
                .await
                .map_err(|err| Error::new("model weights", format!("{err:?}")))?;
            tensors.push(WeightTensor {
                shape,
                values: values_of(data)?,
            });
        }
        Self::checked(manifest, precision, tensors, templates)
    }

    fn checked(
        manifest: &SegmenterManifest,
        precision: WeightPrecision,
        tensors: Vec<WeightTensor>,
        templates: Vec<(Modality, Volume<f32>)>,
    ) -> Result<Self> {
        let mut manifest = manifest.clone();
        manifest.templates = templates.iter().map(|(modality, _)| *modality).collect();
        manifest.validate()?;
        Ok(Self {
            manifest,
            precision,
            tensors,
            templates,
        })
    }

    /// The same model stored at another precision (values rounded to f16 when `F16`).
    pub fn with_precision(&self, precision: WeightPrecision) -> Self {
        let mut bmvp = self.clone();
        bmvp.precision = precision;
        if precision == WeightPrecision::F16 {
            let round = |v: &mut f32| *v = half::f16::from_f32(*v).to_f32();
            bmvp.tensors
                .iter_mut()
                .for_each(|t| t.values.iter_mut().for_each(round));
            bmvp.templates
                .iter_mut()
                .for_each(|(_, v)| v.data.iter_mut().for_each(round));
        }
        bmvp
    }

    /// The network of the manifest with the stored weights, on `device`.
    pub fn load_model<B: Backend>(&self, device: &B::Device) -> Result<UniUnet<B>> {
        let fresh = build_model::<B>(&self.manifest, device)?;
        let mut assign = Assign {
            tensors: &self.tensors,
            next: 0,
            device: device.clone(),
            error: None,
        };
        let model = fresh.map(&mut assign);
        let fail = |cause: String| Err(Error::new("model weights", cause));
        if let Some(cause) = assign.error {
            return fail(cause);
        }
        if assign.next != self.tensors.len() {
            return fail(format!(
                "the file holds {} weight tensors, the network has {}",
                self.tensors.len(),
                assign.next
            ));
        }
        Ok(model)
    }

    /// Float values of the network (parameters and normalisation statistics).
    pub fn weight_values(&self) -> u64 {
        self.tensors.iter().map(|t| t.values.len() as u64).sum()
    }

    /// The largest window batch (at most the manifest's) that fits `limits`, with its memory
    /// estimate; `Err` says why not even one window fits.
    pub fn fitting_window(
        &self,
        limits: &crate::model::footprint::MemoryLimits,
    ) -> std::result::Result<crate::model::footprint::WindowFootprint, String> {
        let window = &self.manifest.window;
        crate::model::footprint::fitting_batch(
            &self.manifest.model,
            window.roi,
            window.batch,
            self.weight_values(),
            limits,
        )
    }

    /// The templates as a bank for filling missing modalities (`None` without templates).
    pub fn template_bank(&self) -> Result<Option<TemplateBank>> {
        match self.templates.is_empty() {
            true => Ok(None),
            false => TemplateBank::new(self.templates.clone()).map(Some),
        }
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = Header {
            manifest: self.manifest.clone(),
            precision: self.precision,
            tensors: self.tensors.iter().map(|t| t.shape.clone()).collect(),
            templates: self
                .templates
                .iter()
                .map(|(modality, volume)| TemplateHeader {
                    modality: *modality,
                    dims: volume.dims,
                    affine: volume.affine,
                })
                .collect(),
        };
        let json = serde_json::to_vec(&header)
            .map_err(|err| Error::new("model file", format!("header: {err}")))?;
        let values = self
            .tensors
            .iter()
            .map(|t| t.values.as_slice())
            .chain(self.templates.iter().map(|(_, v)| v.data.as_slice()));
        let count: usize = self.tensors.iter().map(|t| t.values.len()).sum::<usize>()
            + self
                .templates
                .iter()
                .map(|(_, v)| v.data.len())
                .sum::<usize>();
        let mut bytes = Vec::with_capacity(40 + json.len() + count * 4);
        bytes.extend_from_slice(BMVP_MAGIC);
        bytes.extend_from_slice(&BMVP_VERSION.to_le_bytes());
        bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&json);
        let value_bytes = count * self.precision.bytes_per_value();
        bytes.extend_from_slice(&(value_bytes as u64).to_le_bytes());
        for chunk in values {
            for &value in chunk {
                match self.precision {
                    WeightPrecision::F32 => bytes.extend_from_slice(&value.to_le_bytes()),
                    WeightPrecision::F16 => {
                        bytes.extend_from_slice(&half::f16::from_f32(value).to_le_bytes())
                    }
                }
            }
        }
        let mut crc = flate2::Crc::new();
        crc.update(&bytes);
        bytes.extend_from_slice(&crc.sum().to_le_bytes());
        Ok(bytes)
    }

    /// Reads a file's bytes; `name` (the file name) goes into every error.
    pub fn from_bytes(bytes: &[u8], name: &str) -> Result<Self> {
        read_bmvp(bytes).map_err(|cause| Error::new(name, cause))
    }
}

/// Reads `bytes[*at..*at + len]` and advances `at`.
fn take<'a>(
    bytes: &'a [u8],
    at: &mut usize,
    len: u64,
    what: &str,
) -> std::result::Result<&'a [u8], String> {
    let available = (bytes.len() - *at) as u64;
    if len > available {
        return Err(format!(
            "truncated: the {what} needs {len} bytes, {available} are left"
        ));
    }
    let slice = &bytes[*at..*at + len as usize];
    *at += len as usize;
    Ok(slice)
}

fn take_u64(bytes: &[u8], at: &mut usize, what: &str) -> std::result::Result<u64, String> {
    let raw = take(bytes, at, 8, what)?;
    Ok(u64::from_le_bytes(
        raw.try_into().map_err(|_| "bad length")?,
    ))
}

fn read_bmvp(bytes: &[u8]) -> std::result::Result<BmvpModel, String> {
    if bytes.len() < BMVP_MAGIC.len() || &bytes[..BMVP_MAGIC.len()] != BMVP_MAGIC {
        return Err("not a brainmvp model (.bmvp) file".to_string());
    }
    if bytes.len() < BMVP_MAGIC.len() + 4 + 16 + 4 {
        return Err(format!("truncated: {} bytes", bytes.len()));
    }
    let (body, stored_crc) = bytes.split_at(bytes.len() - 4);
    let mut at = BMVP_MAGIC.len();
    let version = u32::from_le_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
    at += 4;
    if version != BMVP_VERSION {
        return Err(format!(
            "format version {version}; this brainmvp reads version {BMVP_VERSION}"
        ));
    }
    let mut crc = flate2::Crc::new();
    crc.update(body);
    let stored = u32::from_le_bytes([stored_crc[0], stored_crc[1], stored_crc[2], stored_crc[3]]);
    if crc.sum() != stored {
        return Err("damaged: the checksum does not match (truncated or corrupted file)".into());
    }
    let header_len = take_u64(body, &mut at, "header length")?;
    if header_len > MAX_HEADER_BYTES {
        return Err(format!("header of {header_len} bytes is implausibly large"));
    }
    let header: Header = serde_json::from_slice(take(body, &mut at, header_len, "header")?)
        .map_err(|err| format!("bad header: {err}"))?;
    header.manifest.validate().map_err(|err| err.to_string())?;
    let value_len = take_u64(body, &mut at, "value length")?;
    if value_len > MAX_VALUE_BYTES {
        return Err(format!("{value_len} bytes of values is implausibly large"));
    }
    let raw = take(body, &mut at, value_len, "values")?;
    if at != body.len() {
        return Err(format!(
            "{} unexpected bytes after the values",
            body.len() - at
        ));
    }
    let mut values = decode_values(raw, header.precision).into_iter();
    let mut next = |count: usize, what: &str| -> std::result::Result<Vec<f32>, String> {
        let chunk: Vec<f32> = values.by_ref().take(count).collect();
        if chunk.len() != count {
            return Err(format!("the values end inside {what}"));
        }
        Ok(chunk)
    };
    let mut tensors = Vec::with_capacity(header.tensors.len());
    for (index, shape) in header.tensors.into_iter().enumerate() {
        let count = element_count(&shape)
            .ok_or_else(|| format!("tensor {index}: shape {shape:?} overflows"))?;
        let values = next(count, &format!("weight tensor {index}"))?;
        tensors.push(WeightTensor { shape, values });
    }
    let mut templates = Vec::with_capacity(header.templates.len());
    for template in header.templates {
        let count = element_count(&template.dims).ok_or("template dims overflow")?;
        let data = next(count, &format!("the {} template", template.modality))?;
        templates.push((
            template.modality,
            Volume {
                dims: template.dims,
                affine: template.affine,
                data,
            },
        ));
    }
    if values.next().is_some() {
        return Err("more values than the header describes".to_string());
    }
    check_templates(&templates)?;
    let mut manifest = header.manifest;
    manifest.templates = templates.iter().map(|(modality, _)| *modality).collect();
    Ok(BmvpModel {
        manifest,
        precision: header.precision,
        tensors,
        templates,
    })
}

/// Templates share one grid (they fill channels of one input) and name each modality once.
fn check_templates(templates: &[(Modality, Volume<f32>)]) -> std::result::Result<(), String> {
    let Some((_, first)) = templates.first() else {
        return Ok(());
    };
    for (index, (modality, volume)) in templates.iter().enumerate() {
        if volume.dims.contains(&0) || volume.dims != first.dims {
            return Err(format!(
                "the {modality} template has dims {:?}, the first {:?}",
                volume.dims, first.dims
            ));
        }
        if templates[..index]
            .iter()
            .any(|(other, _)| other == modality)
        {
            return Err(format!("two {modality} templates"));
        }
    }
    Ok(())
}

fn element_count(shape: &[usize]) -> Option<usize> {
    shape
        .iter()
        .try_fold(1usize, |count, &d| count.checked_mul(d))
}

fn decode_values(raw: &[u8], precision: WeightPrecision) -> Vec<f32> {
    match precision {
        WeightPrecision::F32 => raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        WeightPrecision::F16 => raw
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
    }
}

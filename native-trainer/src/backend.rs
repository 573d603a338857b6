//! Which burn backend and devices a job runs on, from `--device`:
//! `cpu` (burn-flex, the default), `cpu:N` (N data-parallel CPU ranks, for testing the
//! multi-device path), `cuda` / `cuda:0,1,2,3` (feature `cuda`), and (feature `wgpu`) `wgpu` (the
//! best adapter), `wgpu:0,1` (discrete GPUs by index), `wgpu:integrated`, `wgpu:integrated1`,
//! `wgpu:virtual`, `wgpu:cpu` (a CPU adapter such as Mesa's lavapipe). A wgpu adapter that does not
//! exist is a one-line error listing those that do ([`crate::wgpu_adapters`]).

use anyhow::{bail, Result};

/// A parsed `--device`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    /// `ranks` CPU ranks (1 = plain CPU training).
    Cpu { ranks: usize },
    /// CUDA devices by index.
    Cuda(Vec<usize>),
    /// wgpu adapters.
    Wgpu(Vec<WgpuAdapter>),
}

/// The kinds of wgpu adapter `--device wgpu:…` can name (wgpu's device types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WgpuKind {
    /// The best adapter there is (wgpu's high-performance preference).
    Best,
    /// A discrete GPU.
    Discrete,
    /// A GPU integrated with the CPU (laptops).
    Integrated,
    /// A virtual GPU (virtual machines).
    Virtual,
    /// A CPU implementation (Mesa's lavapipe, SwiftShader, WARP).
    Cpu,
}

/// One wgpu adapter asked for: its kind and its index among the adapters of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WgpuAdapter {
    /// Kind.
    pub kind: WgpuKind,
    /// Index among the adapters of that kind (0 for `Best`).
    pub index: usize,
}

impl WgpuAdapter {
    /// `N` (discrete GPU N), `discrete[N]`, `integrated[N]`, `virtual[N]` or `cpu`.
    fn parse(item: &str) -> Option<Self> {
        let item = item.trim();
        if let Ok(index) = item.parse() {
            return Some(Self {
                kind: WgpuKind::Discrete,
                index,
            });
        }
        let split = item
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(item.len());
        let (name, number) = item.split_at(split);
        let index = if number.is_empty() {
            0
        } else {
            number.parse().ok()?
        };
        let kind = match name {
            "discrete" => WgpuKind::Discrete,
            "integrated" => WgpuKind::Integrated,
            "virtual" => WgpuKind::Virtual,
            "cpu" if number.is_empty() => WgpuKind::Cpu,
            _ => return None,
        };
        Some(Self { kind, index })
    }
}

impl DeviceSpec {
    /// Parses `cpu`, `cpu:N`, `cuda`, `cuda:0,1`, `wgpu`, `wgpu:1`.
    pub fn parse(text: &str) -> Result<Self> {
        let (kind, list) = match text.split_once(':') {
            Some((kind, list)) => (kind, Some(list)),
            None => (text, None),
        };
        let indices = |list: Option<&str>| -> Result<Vec<usize>> {
            let Some(list) = list else { return Ok(vec![0]) };
            let parsed: Result<Vec<usize>, _> = list.split(',').map(|i| i.trim().parse()).collect();
            match parsed {
                Ok(ids) if !ids.is_empty() => Ok(ids),
                _ => bail!("--device {text:?}: expected a comma-separated list of indices"),
            }
        };
        match kind {
            "cpu" => {
                let ranks = match list {
                    None => 1,
                    Some(count) => match count.parse::<usize>() {
                        Ok(ranks) if ranks >= 1 => ranks,
                        _ => bail!("--device {text:?}: expected cpu:N with N >= 1"),
                    },
                };
                Ok(Self::Cpu { ranks })
            }
            "cuda" => Ok(Self::Cuda(indices(list)?)),
            "wgpu" => {
                let Some(list) = list else {
                    let best = WgpuAdapter {
                        kind: WgpuKind::Best,
                        index: 0,
                    };
                    return Ok(Self::Wgpu(vec![best]));
                };
                let adapters: Option<Vec<_>> = list.split(',').map(WgpuAdapter::parse).collect();
                match adapters {
                    Some(adapters) if !adapters.is_empty() => Ok(Self::Wgpu(adapters)),
                    _ => bail!(
                        "--device {text:?}: expected wgpu, wgpu:N,.. (discrete GPUs), \
                         wgpu:integrated[N], wgpu:virtual[N] or wgpu:cpu"
                    ),
                }
            }
            _ => bail!(
                "--device {text:?}: expected cpu, cpu:N, cuda[:i,j,..], wgpu[:i,..], \
                 wgpu:integrated or wgpu:cpu"
            ),
        }
    }
}

impl DeviceSpec {
    /// The device of one process of a launched job (`mpirun`, `srun`, `torchrun`): `cuda` or
    /// `wgpu` without an index take GPU `local_rank`, as `torchrun` does; an explicit single index
    /// stays; several devices or CPU ranks are refused (one device per process).
    pub fn for_local_rank(self, text: &str, local_rank: usize) -> Result<Self> {
        let explicit = text.contains(':');
        match self {
            Self::Cpu { ranks: 1 } => Ok(self),
            Self::Cuda(_) if !explicit => Ok(Self::Cuda(vec![local_rank])),
            Self::Wgpu(_) if !explicit => Ok(Self::Wgpu(vec![WgpuAdapter {
                kind: WgpuKind::Discrete,
                index: local_rank,
            }])),
            Self::Cuda(ref ids) if ids.len() == 1 => Ok(self),
            Self::Wgpu(ref adapters) if adapters.len() == 1 => Ok(self),
            _ => bail!(
                "--device {text:?}: a launched job runs one device per process; use cpu, cuda \
                 (GPU LOCAL_RANK) or one index"
            ),
        }
    }
}

/// Runs `$body` with `$backend` bound to the autodiff backend and `$devices` to the devices of
/// `$spec`; a backend whose cargo feature is off is an error naming the feature.
#[macro_export]
macro_rules! with_autodiff_backend {
    ($spec:expr, |$backend:ident, $devices:ident| $body:expr) => {{
        match $spec {
            $crate::backend::DeviceSpec::Cpu { ranks } => {
                type $backend = burn::backend::Autodiff<burn::backend::Flex>;
                let $devices: Vec<burn::backend::flex::FlexDevice> =
                    (0..ranks).map(|_| Default::default()).collect();
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::backend::DeviceSpec::Cuda(ids) => {
                type $backend = burn::backend::Autodiff<burn::backend::Cuda>;
                let $devices: Vec<burn::backend::cuda::CudaDevice> = ids
                    .iter()
                    .map(|&id| burn::backend::cuda::CudaDevice::new(id))
                    .collect();
                $body
            }
            #[cfg(feature = "wgpu")]
            $crate::backend::DeviceSpec::Wgpu(ids) => {
                type $backend = burn::backend::Autodiff<burn::backend::Wgpu>;
                let $devices: Vec<burn::backend::wgpu::WgpuDevice> =
                    $crate::wgpu_adapters::devices(&ids)?;
                $body
            }
            #[allow(unreachable_patterns)]
            other => anyhow::bail!(
                "--device {:?}: this binary was built without that backend (cargo feature `cuda` or `wgpu`)",
                other
            ),
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lists_parse() {
        assert_eq!(
            DeviceSpec::parse("cpu").unwrap(),
            DeviceSpec::Cpu { ranks: 1 }
        );
        assert_eq!(
            DeviceSpec::parse("cpu:2").unwrap(),
            DeviceSpec::Cpu { ranks: 2 }
        );
        assert_eq!(
            DeviceSpec::parse("cuda").unwrap(),
            DeviceSpec::Cuda(vec![0])
        );
        assert_eq!(
            DeviceSpec::parse("cuda:0,1,3").unwrap(),
            DeviceSpec::Cuda(vec![0, 1, 3])
        );
        let adapter = |kind, index| WgpuAdapter { kind, index };
        assert_eq!(
            DeviceSpec::parse("wgpu:1").unwrap(),
            DeviceSpec::Wgpu(vec![adapter(WgpuKind::Discrete, 1)])
        );
        assert_eq!(
            DeviceSpec::parse("wgpu").unwrap(),
            DeviceSpec::Wgpu(vec![adapter(WgpuKind::Best, 0)])
        );
        assert_eq!(
            DeviceSpec::parse("wgpu:cpu").unwrap(),
            DeviceSpec::Wgpu(vec![adapter(WgpuKind::Cpu, 0)])
        );
        assert_eq!(
            DeviceSpec::parse("wgpu:integrated,integrated1,virtual,discrete2").unwrap(),
            DeviceSpec::Wgpu(vec![
                adapter(WgpuKind::Integrated, 0),
                adapter(WgpuKind::Integrated, 1),
                adapter(WgpuKind::Virtual, 0),
                adapter(WgpuKind::Discrete, 2),
            ])
        );
        for bad in [
            "gpu",
            "cpu:0",
            "cuda:",
            "cuda:a",
            "cpu:x",
            "wgpu:",
            "wgpu:cpu1",
            "wgpu:gpu",
        ] {
            assert!(DeviceSpec::parse(bad).is_err(), "{bad}");
        }
    }
}

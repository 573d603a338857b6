//! `--device wgpu…` (feature `wgpu`): the adapters this machine has, and the burn devices for the
//! ones asked for. cubecl panics with a backtrace when an adapter does not exist ("No Discrete
//! GPU device found, adapters []"); here that is a one-line error that lists what exists, before
//! any device is touched.

use anyhow::{bail, Result};
use burn::backend::wgpu::graphics::{AutoGraphicsApi, GraphicsApi};
use burn::backend::wgpu::WgpuDevice;

use crate::backend::{WgpuAdapter, WgpuKind};

/// What one adapter is, as the listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterInfo {
    /// The driver's name for it (e.g. `llvmpipe (LLVM 15.0.7, 256 bits)`).
    pub name: String,
    /// Its kind, `None` for wgpu's `Other`.
    pub kind: Option<WgpuKind>,
    /// The graphics API it runs on (`Vulkan`, `Metal`, `Dx12`).
    pub api: String,
}

impl AdapterInfo {
    fn describe(&self) -> String {
        let kind = match self.kind {
            Some(WgpuKind::Discrete) => "discrete",
            Some(WgpuKind::Integrated) => "integrated",
            Some(WgpuKind::Virtual) => "virtual",
            Some(WgpuKind::Cpu) => "cpu",
            Some(WgpuKind::Best) | None => "other",
        };
        format!("{} [{kind}, {}]", self.name, self.api)
    }
}

/// The adapters of the graphics API burn's wgpu backend uses here (Vulkan; Metal on macOS).
pub fn adapters() -> Vec<AdapterInfo> {
    let backend = AutoGraphicsApi::backend();
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: backend.into(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let found = futures_lite::future::block_on(instance.enumerate_adapters(backend.into()));
    found
        .iter()
        .map(|adapter| {
            let info = adapter.get_info();
            let kind = match info.device_type {
                wgpu::DeviceType::DiscreteGpu => Some(WgpuKind::Discrete),
                wgpu::DeviceType::IntegratedGpu => Some(WgpuKind::Integrated),
                wgpu::DeviceType::VirtualGpu => Some(WgpuKind::Virtual),
                wgpu::DeviceType::Cpu => Some(WgpuKind::Cpu),
                wgpu::DeviceType::Other => None,
            };
            AdapterInfo {
                name: info.name,
                kind,
                api: format!("{:?}", info.backend),
            }
        })
        .collect()
}

/// Whether `wanted` is among `found`: the best adapter needs any; a kind needs more than `index`
/// adapters of that kind (cubecl also takes wgpu's `Other` adapters in that case).
pub fn exists(wanted: WgpuAdapter, found: &[AdapterInfo]) -> bool {
    let count = |kind: Option<WgpuKind>| found.iter().filter(|a| a.kind == kind).count();
    match wanted.kind {
        WgpuKind::Best => !found.is_empty(),
        kind => count(Some(kind)) > wanted.index || count(None) > wanted.index,
    }
}

/// The one-line refusal of `wanted`, listing `found`.
pub fn missing(wanted: WgpuAdapter, found: &[AdapterInfo]) -> String {
    let asked = match wanted.kind {
        WgpuKind::Best => "wgpu adapter at all".to_string(),
        WgpuKind::Cpu => "CPU adapter".to_string(),
        WgpuKind::Discrete => format!("discrete GPU {}", wanted.index),
        WgpuKind::Integrated => format!("integrated GPU {}", wanted.index),
        WgpuKind::Virtual => format!("virtual GPU {}", wanted.index),
    };
    let listing = if found.is_empty() {
        "none (no Vulkan/Metal driver answered; on Linux a CPU one is Mesa's lavapipe, Debian \
         package mesa-vulkan-drivers)"
            .to_string()
    } else {
        found
            .iter()
            .map(AdapterInfo::describe)
            .collect::<Vec<_>>()
            .join("; ")
    };
    format!("--device wgpu: no {asked}; the adapters here: {listing}")
}

/// burn's devices for the adapters asked for, or the one-line refusal of the first missing one.
pub fn devices(wanted: &[WgpuAdapter]) -> Result<Vec<WgpuDevice>> {
    let found = adapters();
    if let Some(&absent) = wanted.iter().find(|&&adapter| !exists(adapter, &found)) {
        bail!("{}", missing(absent, &found));
    }
    Ok(wanted
        .iter()
        .map(|adapter| match adapter.kind {
            WgpuKind::Best => WgpuDevice::DefaultDevice,
            WgpuKind::Discrete => WgpuDevice::DiscreteGpu(adapter.index),
            WgpuKind::Integrated => WgpuDevice::IntegratedGpu(adapter.index),
            WgpuKind::Virtual => WgpuDevice::VirtualGpu(adapter.index),
            WgpuKind::Cpu => WgpuDevice::Cpu,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lavapipe() -> Vec<AdapterInfo> {
        vec![AdapterInfo {
            name: "llvmpipe (LLVM 15.0.7, 256 bits)".into(),
            kind: Some(WgpuKind::Cpu),
            api: "Vulkan".into(),
        }]
    }

    #[test]
    fn a_missing_adapter_is_named_with_what_exists() {
        let discrete = WgpuAdapter {
            kind: WgpuKind::Discrete,
            index: 0,
        };
        let cpu = WgpuAdapter {
            kind: WgpuKind::Cpu,
            index: 0,
        };
        let best = WgpuAdapter {
            kind: WgpuKind::Best,
            index: 0,
        };
        let found = lavapipe();
        assert!(!exists(discrete, &found));
        assert!(exists(cpu, &found) && exists(best, &found));
        assert!(!exists(best, &[]));
        assert_eq!(
            missing(discrete, &found),
            "--device wgpu: no discrete GPU 0; the adapters here: \
             llvmpipe (LLVM 15.0.7, 256 bits) [cpu, Vulkan]"
        );
        let none = missing(best, &[]);
        assert!(none.starts_with("--device wgpu: no wgpu adapter at all; the adapters here: none"));
        assert!(!none.contains('\n'));
    }
}

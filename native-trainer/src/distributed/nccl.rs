//! The NCCL engine (cargo feature `nccl`): NVIDIA's collective library through `cudarc` (the
//! same `cudarc` burn-cuda builds on; `libnccl.so.2` is loaded at run time, nothing is needed to
//! build). One process per GPU; rank 0 makes the NCCL unique id and the rendezvous
//! ([`super::watch`]) hands it to the other ranks.
//!
//! Buffers are staged through host memory: burn 0.21 does not expose a tensor's CUDA pointer,
//! so a bucket is read from the GPU once, copied to an NCCL buffer, reduced, and read back (two
//! extra PCIe copies per bucket; see docs/distributed.md).

use anyhow::{anyhow, Context, Result};
use cudarc::driver::{CudaContext, CudaStream};
use cudarc::nccl::{Comm, Id, ReduceOp};
use std::sync::Arc;

use super::collective::Collective;

/// Bytes of an NCCL unique id.
pub const ID_BYTES: usize = 128;

/// A fresh NCCL unique id (rank 0 makes it once per job).
pub fn new_id() -> Result<Vec<u8>> {
    let id = Id::new().map_err(|err| anyhow!("NCCL: cannot make the unique id: {err:?} (is libnccl.so.2 installed and on LD_LIBRARY_PATH?)"))?;
    Ok(id.internal().iter().map(|byte| *byte as u8).collect())
}

/// This process's NCCL communicator on GPU `ordinal`.
pub struct NcclCollective {
    comm: Comm,
    stream: Arc<CudaStream>,
}

impl NcclCollective {
    /// Joins the communicator `id` (from [`new_id`] on rank 0) as `rank` of `world_size`.
    pub fn init(ordinal: usize, rank: usize, world_size: usize, id: &[u8]) -> Result<Self> {
        let context = CudaContext::new(ordinal)
            .map_err(|err| anyhow!("NCCL: cannot open GPU {ordinal}: {err:?}"))?;
        let stream = context.default_stream();
        let internal: [core::ffi::c_char; ID_BYTES] =
            std::array::from_fn(|index| id.get(index).copied().unwrap_or(0) as core::ffi::c_char);
        let comm = Comm::from_rank(Arc::clone(&stream), rank, world_size, Id::uninit(internal))
            .map_err(|err| anyhow!("NCCL: rank {rank} of {world_size} cannot join: {err:?}"))?;
        Ok(Self { comm, stream })
    }

    /// Copies `values` to the GPU, runs `op` on that buffer, and copies the result back.
    fn on_device(
        &mut self,
        values: &[f32],
        what: &str,
        op: impl FnOnce(
            &Comm,
            &mut cudarc::driver::CudaSlice<f32>,
        ) -> Result<(), cudarc::nccl::result::NcclError>,
    ) -> Result<Vec<f32>> {
        let mut buffer = self
            .stream
            .clone_htod(values)
            .with_context(|| format!("NCCL {what}: copy to the GPU"))?;
        op(&self.comm, &mut buffer).map_err(|err| anyhow!("NCCL {what} failed: {err:?}"))?;
        let result = self
            .stream
            .clone_dtoh(&buffer)
            .with_context(|| format!("NCCL {what}: copy from the GPU"))?;
        self.stream
            .synchronize()
            .with_context(|| format!("NCCL {what}: waiting for the GPU"))?;
        Ok(result)
    }
}

impl Collective for NcclCollective {
    fn rank(&self) -> usize {
        self.comm.rank()
    }
    fn world_size(&self) -> usize {
        self.comm.world_size()
    }
    fn engine(&self) -> &'static str {
        "nccl"
    }
    fn all_reduce_sum(&mut self, values: &mut [f32]) -> Result<()> {
        let reduced = self.on_device(values, "all-reduce", |comm, buffer| {
            comm.all_reduce_in_place(buffer, &ReduceOp::Sum).map(|_| ())
        })?;
        values.copy_from_slice(&reduced);
        Ok(())
    }
    fn broadcast(&mut self, values: &mut [f32], root: usize) -> Result<()> {
        let root = i32::try_from(root)?;
        let received = self.on_device(values, "broadcast", |comm, buffer| {
            comm.broadcast_in_place(buffer, root).map(|_| ())
        })?;
        values.copy_from_slice(&received);
        Ok(())
    }
    fn all_gather(&mut self, local: &[f32]) -> Result<Vec<f32>> {
        let send = self
            .stream
            .clone_htod(local)
            .context("NCCL all-gather: copy to the GPU")?;
        let mut gathered = self
            .stream
            .alloc_zeros::<f32>(local.len() * self.world_size())
            .context("NCCL all-gather: GPU buffer")?;
        self.comm
            .all_gather(&send, &mut gathered)
            .map_err(|err| anyhow!("NCCL all-gather failed: {err:?}"))?;
        let result = self
            .stream
            .clone_dtoh(&gathered)
            .context("NCCL all-gather: copy from the GPU")?;
        self.stream
            .synchronize()
            .context("NCCL all-gather: waiting for the GPU")?;
        Ok(result)
    }
}

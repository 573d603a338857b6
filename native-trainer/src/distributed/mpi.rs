//! The MPI engine (cargo feature `mpi`, the `mpi` crate over the system's MPI library, OpenMPI
//! on Debian): every rank of `mpirun -np N` / `srun --mpi=pmix` joins `MPI_COMM_WORLD`.
//! Buffers are host memory; this is the engine of the CPU backend and of the tests.

use anyhow::{bail, Result};
use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator, CommunicatorCollectives, Root};
use mpi::Threading;

use super::collective::Collective;

/// This process's membership of `MPI_COMM_WORLD` (MPI is finalised when it is dropped).
pub struct MpiCollective {
    world: SimpleCommunicator,
    rank: usize,
    world_size: usize,
    /// Kept alive until the end: dropping it calls `MPI_Finalize`.
    _universe: Universe,
}

impl MpiCollective {
    /// Initialises MPI (once per process; only this thread makes MPI calls afterwards).
    pub fn init() -> Result<Self> {
        let Some((universe, _threading)) = mpi::initialize_with_threading(Threading::Funneled)
        else {
            bail!("MPI was already initialised in this process");
        };
        let world = universe.world();
        let rank = usize::try_from(world.rank())?;
        let world_size = usize::try_from(world.size())?;
        Ok(Self {
            world,
            rank,
            world_size,
            _universe: universe,
        })
    }

    /// The name of this node as MPI reports it (its host name).
    pub fn host_name() -> String {
        mpi::environment::processor_name().unwrap_or_else(|_| "localhost".into())
    }
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.rank
    }
    fn world_size(&self) -> usize {
        self.world_size
    }
    fn engine(&self) -> &'static str {
        "mpi"
    }
    fn all_reduce_sum(&mut self, values: &mut [f32]) -> Result<()> {
        let sent = values.to_vec();
        self.world
            .all_reduce_into(&sent[..], values, SystemOperation::sum());
        Ok(())
    }
    fn broadcast(&mut self, values: &mut [f32], root: usize) -> Result<()> {
        let root = i32::try_from(root)?;
        self.world.process_at_rank(root).broadcast_into(values);
        Ok(())
    }
    fn all_gather(&mut self, local: &[f32]) -> Result<Vec<f32>> {
        let mut gathered = vec![0.0f32; local.len() * self.world_size];
        self.world.all_gather_into(local, &mut gathered[..]);
        Ok(gathered)
    }
}

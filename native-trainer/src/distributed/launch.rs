//! Where this process sits in a multi-process job, read from the variables the launchers set:
//! `torchrun` (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`), Slurm's `srun` (`SLURM_PROCID`,
//! `SLURM_NTASKS`, `SLURM_LOCALID`) and OpenMPI's `mpirun` (`OMPI_COMM_WORLD_RANK`,
//! `OMPI_COMM_WORLD_SIZE`, `OMPI_COMM_WORLD_LOCAL_RANK`), plus the rendezvous address
//! `MASTER_ADDR`/`MASTER_PORT` where one is given.

use anyhow::{bail, Context, Result};

/// The launcher whose variables gave the ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launcher {
    /// No launcher variables: a single process.
    Single,
    /// `torchrun` or any launcher that sets `RANK`/`WORLD_SIZE`.
    Torchrun,
    /// Slurm (`srun`).
    Slurm,
    /// OpenMPI (`mpirun`/`mpiexec`).
    OpenMpi,
}

impl Launcher {
    /// The variable names (rank, world size, local rank) this launcher sets.
    fn variables(self) -> [&'static str; 3] {
        match self {
            Launcher::Single => ["", "", ""],
            Launcher::Torchrun => ["RANK", "WORLD_SIZE", "LOCAL_RANK"],
            Launcher::Slurm => ["SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"],
            Launcher::OpenMpi => [
                "OMPI_COMM_WORLD_RANK",
                "OMPI_COMM_WORLD_SIZE",
                "OMPI_COMM_WORLD_LOCAL_RANK",
            ],
        }
    }
}

/// This process's place in the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub launcher: Launcher,
    /// Global rank in `0..world_size`.
    pub rank: usize,
    /// Processes in the job.
    pub world_size: usize,
    /// Rank among the processes of this node: the GPU this process drives.
    pub local_rank: usize,
    /// `MASTER_ADDR:MASTER_PORT`, where rank 0 serves the rendezvous (needed by NCCL without MPI).
    pub master: Option<(String, u16)>,
}

impl Launch {
    /// A process on its own.
    pub fn single() -> Self {
        Self {
            launcher: Launcher::Single,
            rank: 0,
            world_size: 1,
            local_rank: 0,
            master: None,
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Reads the variables through `var` (tests pass a map). `torchrun`'s variables win over
    /// Slurm's, which win over OpenMPI's: a `torchrun` started by `srun` sets both, and the
    /// processes are `torchrun`'s.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let launcher = [Launcher::Torchrun, Launcher::Slurm, Launcher::OpenMpi]
            .into_iter()
            .find(|launcher| var(launcher.variables()[1]).is_some());
        let Some(launcher) = launcher else {
            return Ok(Self::single());
        };
        let [rank_name, size_name, local_name] = launcher.variables();
        let number = |name: &str| -> Result<Option<usize>> {
            var(name)
                .map(|text| {
                    text.trim().parse::<usize>().with_context(|| {
                        format!("environment variable {name}={text:?}: not a count")
                    })
                })
                .transpose()
        };
        let world_size = number(size_name)?.unwrap_or(1);
        let Some(rank) = number(rank_name)? else {
            bail!("{size_name} is set but {rank_name} is not: cannot tell this process's rank");
        };
        if world_size == 0 || rank >= world_size {
            bail!("{rank_name}={rank} must be below {size_name}={world_size}");
        }
        let local_rank = number(local_name)?.unwrap_or(0);
        Ok(Self {
            launcher,
            rank,
            world_size,
            local_rank,
            master: master_address(&var)?,
        })
    }
}

/// `MASTER_ADDR` and `MASTER_PORT` (29500, torchrun's default, when only the address is set).
fn master_address(var: &impl Fn(&str) -> Option<String>) -> Result<Option<(String, u16)>> {
    let Some(host) = var("MASTER_ADDR").filter(|host| !host.trim().is_empty()) else {
        return Ok(None);
    };
    let port = match var("MASTER_PORT") {
        None => 29500,
        Some(text) => text
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .with_context(|| format!("environment variable MASTER_PORT={text:?}: not a port"))?,
    };
    Ok(Some((host.trim().to_string(), port)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn launch(pairs: &[(&str, &str)]) -> Result<Launch> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Launch::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn no_variables_is_one_process() {
        assert_eq!(launch(&[]).unwrap(), Launch::single());
    }

    #[test]
    fn each_launcher_gives_ranks() {
        let torchrun = launch(&[
            ("RANK", "5"),
            ("WORLD_SIZE", "8"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "node07"),
            ("MASTER_PORT", "29400"),
        ])
        .unwrap();
        assert_eq!(torchrun.launcher, Launcher::Torchrun);
        assert_eq!(
            (torchrun.rank, torchrun.world_size, torchrun.local_rank),
            (5, 8, 1)
        );
        assert_eq!(torchrun.master, Some(("node07".into(), 29400)));
        let slurm = launch(&[
            ("SLURM_PROCID", "3"),
            ("SLURM_NTASKS", "4"),
            ("SLURM_LOCALID", "1"),
            ("MASTER_ADDR", "n1"),
        ])
        .unwrap();
        assert_eq!(slurm.launcher, Launcher::Slurm);
        assert_eq!((slurm.rank, slurm.world_size, slurm.local_rank), (3, 4, 1));
        assert_eq!(slurm.master, Some(("n1".into(), 29500)));
        let mpi = launch(&[
            ("OMPI_COMM_WORLD_RANK", "1"),
            ("OMPI_COMM_WORLD_SIZE", "2"),
            ("OMPI_COMM_WORLD_LOCAL_RANK", "1"),
        ])
        .unwrap();
        assert_eq!(mpi.launcher, Launcher::OpenMpi);
        assert_eq!(
            (mpi.rank, mpi.world_size, mpi.local_rank, mpi.master),
            (1, 2, 1, None)
        );
    }

    #[test]
    fn torchrun_under_srun_takes_torchrun_ranks() {
        let both = launch(&[
            ("RANK", "2"),
            ("WORLD_SIZE", "4"),
            ("SLURM_PROCID", "0"),
            ("SLURM_NTASKS", "1"),
        ])
        .unwrap();
        assert_eq!(
            (both.launcher, both.rank, both.world_size),
            (Launcher::Torchrun, 2, 4)
        );
    }

    #[test]
    fn inconsistent_variables_are_named() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (&[("WORLD_SIZE", "2")], "RANK is not"),
            (
                &[("RANK", "2"), ("WORLD_SIZE", "2")],
                "RANK=2 must be below WORLD_SIZE=2",
            ),
            (
                &[("SLURM_PROCID", "x"), ("SLURM_NTASKS", "2")],
                "SLURM_PROCID=\"x\"",
            ),
            (
                &[
                    ("RANK", "0"),
                    ("WORLD_SIZE", "2"),
                    ("MASTER_ADDR", "a"),
                    ("MASTER_PORT", "0"),
                ],
                "MASTER_PORT",
            ),
        ];
        for (pairs, expected) in cases {
            let message = format!("{:#}", launch(pairs).unwrap_err());
            assert!(message.contains(expected), "{pairs:?}: {message}");
        }
    }
}

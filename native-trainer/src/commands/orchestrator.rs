//! `brainmvp orchestrator --port N`: burn-collective's global orchestrator for multi-node
//! pre-training (see docs/distributed.md; feature `collective`).

use std::process::ExitCode;

#[derive(clap::Args)]
pub struct OrchestratorArgs {
    /// Port to listen on (all interfaces); the nodes use `orchestrator = "ws://HOST:PORT"`.
    #[arg(long, default_value_t = 3000)]
    pub port: u16,
}

pub fn run(args: OrchestratorArgs) -> anyhow::Result<ExitCode> {
    #[cfg(feature = "collective")]
    {
        log::info!(
            "orchestrator listening on port {} (Ctrl-C stops it)",
            args.port
        );
        crate::distributed::run_orchestrator(args.port)?;
        Ok(ExitCode::SUCCESS)
    }
    #[cfg(not(feature = "collective"))]
    {
        anyhow::bail!(
            "orchestrator on port {}: this binary was built without the `collective` feature",
            args.port
        )
    }
}

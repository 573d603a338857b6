//! `brainmvp serve [DIR]`: the built web page on localhost.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `brainmvp serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// The built site (`trunk build --release` in www/ writes www/dist).
    #[arg(default_value = "www/dist")]
    pub dir: PathBuf,
    /// Port (0: any free port; the URL is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on (127.0.0.1: this machine only).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
}

/// Runs `brainmvp serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    crate::serve::serve(&args.dir, SocketAddr::new(args.host, args.port))?;
    Ok(ExitCode::SUCCESS)
}

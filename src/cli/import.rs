//! `gatehouse import-leads`

use std::process::ExitCode;

use clap::Args;

use super::Cli;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Source database URL (sqlite://, postgres://, mysql://)
    #[arg(long)]
    pub from: String,
}

pub async fn run(_cli: &Cli, _args: &ImportArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("import-leads is not implemented yet")
}

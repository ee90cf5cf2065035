//! `ferrolb-speaker`: see [`ferrolb_speaker::daemon`].
#![forbid(unsafe_code)]

use clap::Parser;
use ferrolb_speaker::cli::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    ferrolb_runtime::logging::init(&cli.log)?;
    ferrolb_speaker::daemon::start(cli).await
}

//! `ferrolb-speaker`: see [`ferrolb_speaker::daemon`].
#![forbid(unsafe_code)]

use clap::Parser;
use ferrolb_speaker::cli::Cli;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    ferrolb_speaker::daemon::init_logging(cli.log.log_format, &cli.log.log_level)?;
    ferrolb_speaker::daemon::start(cli).await
}

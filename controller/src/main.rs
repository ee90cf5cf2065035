//! `ferrolb-controller`: see the crate documentation and docs/controller.md.

#![forbid(unsafe_code)]

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = ferrolb_controller::cli::Args::parse();
    ferrolb_runtime::logging::init(&args.log)?;
    ferrolb_controller::run::run(args).await
}

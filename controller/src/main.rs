//! `ferrolb-controller`: see the crate documentation and docs/controller.md.

#![forbid(unsafe_code)]

use clap::Parser as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ferrolb_controller::run::run(ferrolb_controller::cli::Args::parse()).await
}

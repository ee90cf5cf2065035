//! The kube-test-server binary: serves until interrupted; admin endpoints
//! under `/_test/` inject faults, drop watches, compact, and restart.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// A small Kubernetes API server for tests.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (use port 0 for an ephemeral port).
    #[arg(long, env = "KTS_LISTEN", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write a kubeconfig pointing at the server.
    #[arg(long, env = "KTS_KUBECONFIG_OUT")]
    kubeconfig_out: Option<PathBuf>,
    /// Events kept for resuming watches (older versions get 410 Expired).
    #[arg(long, env = "KTS_HISTORY_LIMIT", default_value_t = 20_000)]
    history_limit: usize,
    /// Log every API request (user, authorization attributes) for
    /// `GET /_test/requests`.
    #[arg(long, env = "KTS_REQUEST_LOG")]
    request_log: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let options = kube_test_server::ServerOptions {
        history_limit: args.history_limit,
        request_log: args.request_log,
        ..Default::default()
    };
    let server = kube_test_server::TestServer::start_with(args.listen, options).await?;
    if let Some(path) = &args.kubeconfig_out {
        server.write_kubeconfig(path)?;
    }
    println!("kube-test-server listening on {}", server.url());
    tokio::signal::ctrl_c().await?;
    server.stop().await;
    Ok(())
}

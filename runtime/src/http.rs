//! The metrics and health HTTP server (`/metrics`, `/healthz`, `/readyz`).
//!
//! `/healthz` answers as long as the process serves HTTP, so a kubelet
//! restarts only a wedged process. `/readyz` asks the binary's own check
//! (caches synced, a usable secret file): 200 `ready`, or 503 with the
//! check's reason. `/metrics` encodes the binary's own registry.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tracing::{error, info};

/// The content type of `/metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The HTTP flags, to `#[command(flatten)]` into a binary's CLI, with that
/// binary's default port (the controller 7472, MetalLB's metrics port, so
/// existing scrape configs keep working; the speaker 7473).
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
#[command(next_help_heading = "HTTP")]
pub struct HttpArgs<const PORT: u16> {
    /// Address serving `/metrics`, `/healthz` and `/readyz`.
    #[arg(
        long = "http-addr",
        env = "FERROLB_HTTP_ADDR",
        default_value_t = SocketAddr::from((Ipv4Addr::UNSPECIFIED, PORT)),
        value_name = "ADDR"
    )]
    pub http_addr: SocketAddr,

    /// Also serve MetalLB's series (`metallb_*`, MetalLB's names, labels
    /// and meanings) next to ferrolb's own, so dashboards and alerts
    /// written for MetalLB keep working. `--metallb-metrics=false`
    /// registers none of them.
    #[arg(
        long = "metallb-metrics",
        env = "FERROLB_METALLB_METRICS",
        default_value_t = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new(),
        value_name = "BOOL"
    )]
    pub metallb_metrics: bool,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address could not be bound (in use, or not ours).
    #[error("binding the metrics/health server to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Serving stopped on an I/O error.
    #[error("serving metrics/health on {addr}: {source}")]
    Serve {
        /// The bound address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A binary's readiness: `Ok` when ready, else why not (the 503 body).
pub trait Readiness: Clone + Send + Sync + 'static {
    /// Checks now; called on every `/readyz` request, so keep it cheap.
    fn check(&self) -> Result<(), String>;
}

impl<F> Readiness for F
where
    F: Fn() -> Result<(), String> + Clone + Send + Sync + 'static,
{
    fn check(&self) -> Result<(), String> {
        self()
    }
}

#[derive(Clone)]
struct Endpoints<R> {
    registry: Arc<Registry>,
    ready: R,
}

/// Binds `addr` and returns the listener with the address actually bound,
/// which differs from `addr` when its port is 0.
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), Error> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    Ok((listener, bound))
}

/// Binds `addr` and serves until `shutdown` completes; see [`serve_on`].
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    ready: impl Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (listener, _) = bind(addr).await?;
    serve_on(listener, registry, ready, shutdown).await
}

/// Serves on an already bound listener until `shutdown` completes, then
/// finishes the requests in flight and returns.
///
/// ```no_run
/// # async fn demo() -> Result<(), ferrolb_runtime::http::Error> {
/// use ferrolb_runtime::http;
/// let (listener, addr) = http::bind("127.0.0.1:0".parse().unwrap()).await?;
/// let registry = std::sync::Arc::new(prometheus_client::registry::Registry::default());
/// println!("metrics on http://{addr}/metrics");
/// http::serve_on(listener, registry, || Ok(()), std::future::pending()).await?;
/// # Ok(()) }
/// ```
pub async fn serve_on(
    listener: TcpListener,
    registry: Arc<Registry>,
    ready: impl Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let bound = listener.local_addr().map_err(|source| Error::Serve {
        addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        source,
    })?;
    info!(addr = %bound, "serving metrics and health");
    axum::serve(listener, router(registry, ready))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| Error::Serve {
            addr: bound,
            source,
        })?;
    info!(addr = %bound, "metrics and health server stopped");
    Ok(())
}

/// The routes, without a listener (for in-process tests or embedding).
pub fn router<R: Readiness>(registry: Arc<Registry>, ready: R) -> Router {
    Router::new()
        .route("/metrics", get(metrics::<R>))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz::<R>))
        .with_state(Endpoints { registry, ready })
}

async fn metrics<R: Readiness>(State(state): State<Endpoints<R>>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response(),
        // Writing to a String cannot fail: an error is a bug in a label
        // encoder, worth a log line and a failed scrape, not a crash.
        Err(e) => {
            error!(error = %e, "encoding metrics failed");
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
        }
    }
}

async fn readyz<R: Readiness>(State(state): State<Endpoints<R>>) -> Response {
    match state.ready.check() {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

#[cfg(test)]
mod tests;

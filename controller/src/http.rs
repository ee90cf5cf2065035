//! The metrics and health HTTP server (`/metrics`, `/healthz`, `/readyz`).
//!
//! `/healthz` answers as long as the process serves HTTP, so a kubelet
//! restarts only a wedged process; `/readyz` follows the caches-synced
//! signal, so a replica is not counted ready before it knows the cluster.

use std::future::Future;
use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

use crate::metrics::Metrics;

/// The content type of `/metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

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

#[derive(Clone, Debug)]
struct AppState {
    metrics: Metrics,
    ready: watch::Receiver<bool>,
}

/// Binds `addr` and returns the listener with the address actually bound,
/// which differs from `addr` when its port is 0.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
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
    metrics: Metrics,
    ready: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (listener, _) = bind(addr).await?;
    serve_on(listener, metrics, ready, shutdown).await
}

/// Serves on an already bound listener until `shutdown` completes, then
/// finishes the requests in flight and returns.
///
/// ```no_run
/// # async fn demo() -> anyhow::Result<()> {
/// use ferrolb_controller::{http, metrics::Metrics};
/// let (listener, addr) = http::bind("127.0.0.1:0".parse()?).await?;
/// let (_ready_tx, ready) = tokio::sync::watch::channel(false);
/// println!("metrics on http://{addr}/metrics");
/// http::serve_on(listener, Metrics::new(), ready, std::future::pending()).await?;
/// # Ok(()) }
/// ```
pub async fn serve_on(
    listener: TcpListener,
    metrics: Metrics,
    ready: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let bound = listener.local_addr().map_err(|source| Error::Serve {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    info!(addr = %bound, "serving metrics and health");
    axum::serve(listener, router(metrics, ready))
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
pub fn router(metrics: Metrics, ready: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz_handler))
        .with_state(AppState { metrics, ready })
}

async fn metrics_handler(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        state.metrics.encode(),
    )
}

async fn readyz_handler(State(state): State<AppState>) -> impl IntoResponse {
    if *state.ready.borrow() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: caches not synced",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    /// One HTTP/1.1 GET over a fresh connection: (status, headers, body).
    async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut raw = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut raw))
            .await
            .expect("response within 5s")
            .expect("read");
        let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
        let status = head
            .split(' ')
            .nth(1)
            .expect("status")
            .parse()
            .expect("numeric status");
        (status, head.to_ascii_lowercase(), body.to_owned())
    }

    struct Running {
        addr: SocketAddr,
        ready: watch::Sender<bool>,
        metrics: Metrics,
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<anyhow::Result<()>>,
    }

    async fn start() -> Running {
        let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        assert_ne!(addr.port(), 0);
        let (ready, ready_rx) = watch::channel(false);
        let (stop, stop_rx) = oneshot::channel::<()>();
        let metrics = Metrics::new();
        let task = tokio::spawn(serve_on(listener, metrics.clone(), ready_rx, async {
            let _ = stop_rx.await;
        }));
        Running {
            addr,
            ready,
            metrics,
            stop,
            task,
        }
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics_text() {
        let server = start().await;
        server.metrics.set_pool("default", 1, 0, 10, 0);
        let (status, head, body) = get(server.addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            head.contains(&format!("content-type: {OPENMETRICS_CONTENT_TYPE}")),
            "{head}"
        );
        assert!(
            body.contains(r#"metallb_allocator_addresses_total{pool="default"} 10"#),
            "{body}"
        );
        assert!(body.contains("# EOF"), "{body}");
    }

    #[tokio::test]
    async fn healthz_answers_ok_whatever_the_readiness() {
        let server = start().await;
        let (status, _, body) = get(server.addr, "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok"));
        server.ready.send_replace(true);
        assert_eq!(get(server.addr, "/healthz").await.0, 200);
    }

    #[tokio::test]
    async fn readiness_follows_the_watch_channel() {
        let server = start().await;
        let (status, _, body) = get(server.addr, "/readyz").await;
        assert_eq!(
            (status, body.as_str()),
            (503, "not ready: caches not synced")
        );
        server.ready.send_replace(true);
        let (status, _, body) = get(server.addr, "/readyz").await;
        assert_eq!((status, body.as_str()), (200, "ready"));
        server.ready.send_replace(false);
        assert_eq!(get(server.addr, "/readyz").await.0, 503);
    }

    #[tokio::test]
    async fn unknown_paths_are_not_found() {
        let server = start().await;
        assert_eq!(get(server.addr, "/nope").await.0, 404);
    }

    #[tokio::test]
    async fn shutdown_ends_the_server_and_frees_the_port() {
        let server = start().await;
        assert_eq!(get(server.addr, "/healthz").await.0, 200);
        server.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server.task)
            .await
            .expect("server ends within 5s")
            .expect("task not panicked")
            .expect("clean shutdown");
        assert!(TcpStream::connect(server.addr).await.is_err());
    }

    #[tokio::test]
    async fn serve_reports_an_address_in_use() {
        let (_held, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let (_tx, rx) = watch::channel(false);
        let err = serve(addr, Metrics::new(), rx, std::future::pending())
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}

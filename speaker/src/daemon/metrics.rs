//! Prometheus metrics and the `/metrics`, `/healthz`, `/readyz` endpoints.

use crate::transport::run::Stats;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

type Labels = Vec<(String, String)>;

/// The speaker's metrics, all prefixed `ferrolb_speaker_`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (IP, interface) pairs announced by this node.
    pub announced: Gauge,
    /// ARP/NDP requests answered, by `protocol`.
    pub requests_answered: Family<Labels, Counter>,
    /// Gratuitous ARP / unsolicited NA frames sent, by `protocol`.
    pub gratuitous_sent: Family<Labels, Counter>,
    /// Live speakers as membership sees them.
    pub members_alive: Gauge,
    /// Services whose owner changed.
    pub leader_changes: Counter,
    /// Services nobody announces, by `reason` (as this node computes it).
    pub unannounced: Family<Labels, Gauge>,
    /// Interfaces advertisements name that this node cannot use.
    pub interface_problems: Gauge,
    /// Events dropped because the writer was behind.
    pub events_dropped: Counter,
    last: Mutex<Stats>,
}

impl Metrics {
    /// Registers every metric in `registry`.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("ferrolb_speaker");
        r.register(
            "announced_ips",
            "(IP, interface) pairs this node announces",
            self.announced.clone(),
        );
        r.register(
            "requests_answered",
            "ARP and NDP requests answered",
            self.requests_answered.clone(),
        );
        r.register(
            "gratuitous_sent",
            "Gratuitous ARP and unsolicited neighbor advertisements sent",
            self.gratuitous_sent.clone(),
        );
        r.register(
            "members_alive",
            "Speakers membership sees alive",
            self.members_alive.clone(),
        );
        r.register(
            "leader_changes",
            "Times a Service changed owner",
            self.leader_changes.clone(),
        );
        r.register(
            "unannounced_services",
            "Services whose IPs nobody announces, by reason",
            self.unannounced.clone(),
        );
        r.register(
            "interface_problems",
            "Interfaces named by L2Advertisements that this node cannot use",
            self.interface_problems.clone(),
        );
        r.register(
            "events_dropped",
            "Events not sent because the queue was full",
            self.events_dropped.clone(),
        );
    }

    /// Adds what the transport did since the last call. Its counters
    /// restart from zero when the transport is rebuilt (interfaces
    /// changed); a value below the last one is taken as such a restart.
    pub fn observe_transport(&self, now: &Stats) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let delta = |new: u64, old: u64| if new >= old { new - old } else { new };
        for (proto, new, old) in [
            (
                "arp",
                now.announcer.requests_answered.arp,
                last.announcer.requests_answered.arp,
            ),
            (
                "ndp",
                now.announcer.requests_answered.ndp,
                last.announcer.requests_answered.ndp,
            ),
        ] {
            self.requests_answered
                .get_or_create(&vec![("protocol".into(), proto.into())])
                .inc_by(delta(new, old));
        }
        for (proto, new, old) in [
            (
                "arp",
                now.announcer.gratuitous_sent.arp,
                last.announcer.gratuitous_sent.arp,
            ),
            (
                "ndp",
                now.announcer.gratuitous_sent.ndp,
                last.announcer.gratuitous_sent.ndp,
            ),
        ] {
            self.gratuitous_sent
                .get_or_create(&vec![("protocol".into(), proto.into())])
                .inc_by(delta(new, old));
        }
        *last = *now;
    }
}

#[derive(Debug)]
struct HttpState {
    registry: Registry,
    ready: watch::Receiver<bool>,
}

/// The router: `/metrics`, `/healthz` (the process runs), `/readyz` (every
/// watch has listed once).
pub fn router(registry: Registry, ready: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(Arc::new(HttpState { registry, ready }))
}

async fn metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    let mut body = String::new();
    match encode(&mut body, &state.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
}

async fn readyz(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    if *state.ready.borrow() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first list of every watched kind",
        )
    }
}

/// Serves [`router`] on `addr` until the task is aborted.
pub async fn serve(addr: SocketAddr, router: Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router).await
}

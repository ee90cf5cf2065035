//! Shared server state and the listener lifecycle (start, stop, restart on
//! the same address with the state kept).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use ipnet::{Ipv4Net, Ipv6Net};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::faults::Faults;
use crate::services::{ServiceAllocator, DEFAULT_IPV4_CIDR, DEFAULT_IPV6_CIDR};
use crate::store::{Store, StoreConfig};

/// Server tuning. The defaults suit tests; see the crate README.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Events kept for watches resuming from a version (older: 410 Expired).
    pub history_limit: usize,
    /// Per-watcher event buffer before a slow watcher is closed.
    pub broadcast_capacity: usize,
    /// Interval between BOOKMARK events for watches that allow them.
    pub bookmark_interval: Duration,
    /// Longest watch when the client gives no `timeoutSeconds`.
    pub max_watch: Duration,
    /// IPv4 ClusterIP range.
    pub service_ipv4_cidr: Ipv4Net,
    /// IPv6 ClusterIP range.
    pub service_ipv6_cidr: Ipv6Net,
    /// NodePort range.
    pub node_ports: RangeInclusive<u16>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            history_limit: 20_000,
            broadcast_capacity: 16_384,
            bookmark_interval: Duration::from_secs(10),
            max_watch: Duration::from_secs(1800),
            service_ipv4_cidr: DEFAULT_IPV4_CIDR.parse().expect("valid default"),
            service_ipv6_cidr: DEFAULT_IPV6_CIDR.parse().expect("valid default"),
            node_ports: 30000..=32767,
        }
    }
}

/// Everything a request handler needs.
#[derive(Debug)]
pub struct App {
    /// Objects, versions, history.
    pub store: Store,
    /// Injected faults.
    pub faults: Faults,
    /// Bumped to end every open watch.
    pub watch_drops: tokio::sync::watch::Sender<u64>,
    /// Options.
    pub options: ServerOptions,
    listener: Mutex<Listener>,
}

#[derive(Debug)]
struct Listener {
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl App {
    /// New state with the built-in namespaces.
    pub fn new(options: ServerOptions, addr: SocketAddr) -> Arc<App> {
        let alloc = ServiceAllocator::new(
            options.service_ipv4_cidr,
            options.service_ipv6_cidr,
            options.node_ports.clone(),
        );
        let store = Store::new(
            &StoreConfig {
                history_limit: options.history_limit,
                broadcast_capacity: options.broadcast_capacity,
            },
            alloc,
        );
        crate::ops::seed(&mut store.lock());
        let (watch_drops, _) = tokio::sync::watch::channel(0);
        Arc::new(App {
            store,
            faults: Faults::default(),
            watch_drops,
            options,
            listener: Mutex::new(Listener { addr, task: None }),
        })
    }

    fn listener(&self) -> std::sync::MutexGuard<'_, Listener> {
        self.listener.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The address served (the bound one once started).
    pub fn addr(&self) -> SocketAddr {
        self.listener().addr
    }

    /// Binds the address and serves until [`App::stop`]. Binding the same
    /// port again after a stop works because tokio listeners set SO_REUSEADDR.
    pub async fn listen(self: &Arc<Self>) -> std::io::Result<SocketAddr> {
        let addr = self.addr();
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let router = crate::http::router(self.clone());
        let task = tokio::spawn(async move {
            // Dropping this set (when the task is aborted) aborts every
            // connection, watches included: what a crashed server looks like.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let svc = TowerToHyperService::new(router.clone());
                            conns.spawn(async move {
                                let conn = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), svc);
                                if let Err(e) = conn.await {
                                    tracing::debug!(error = %e, "connection ended");
                                }
                            });
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    },
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        let mut l = self.listener();
        if let Some(old) = l.task.replace(task) {
            old.abort();
        }
        l.addr = bound;
        Ok(bound)
    }

    /// Stops listening and cuts every open connection; the state is kept.
    pub async fn stop(&self) {
        let task = self.listener().task.take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Aborts the listener without waiting (for `Drop`).
    pub fn abort(&self) {
        if let Some(task) = self.listener().task.take() {
            task.abort();
        }
    }

    /// Ends every open watch cleanly (the stream closes, as when an API
    /// server's watch times out or a load balancer cuts it).
    pub fn drop_watches(&self) {
        self.watch_drops.send_modify(|n| *n += 1);
    }
}

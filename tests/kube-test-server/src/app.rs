//! Shared server state and the listener lifecycle (start, stop, restart on
//! the same address with the state kept).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use ipnet::{Ipv4Net, Ipv6Net};
use tokio::net::TcpSocket;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

use crate::faults::Faults;
use crate::request_log::RequestLog;
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
    /// Record every API request from the start (see
    /// [`crate::TestServer::requests`]); off by default.
    pub request_log: bool,
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
            request_log: false,
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
    /// The opt-in request log.
    pub requests: RequestLog,
    /// Bumped to end every open watch.
    pub watch_drops: tokio::sync::watch::Sender<u64>,
    /// Options.
    pub options: ServerOptions,
    listener: Mutex<Listener>,
    /// Serialises start/stop/restart so two of them never interleave.
    lifecycle: tokio::sync::Mutex<()>,
    /// Open client connections (their serving tasks still alive).
    connections: Arc<AtomicUsize>,
    /// Binds that failed (a restart that could not get its port back).
    bind_failures: AtomicUsize,
}

#[derive(Debug)]
struct Listener {
    addr: SocketAddr,
    running: Option<Running>,
    /// While stopped: a socket bound to the port but not listening, so
    /// connections are refused yet no other socket (an outgoing connection's
    /// source port, another bind) can take the port before the restart.
    reserved: Option<TcpSocket>,
}

/// The accept task of a started server and the signal that ends it.
#[derive(Debug)]
struct Running {
    task: JoinHandle<()>,
    shutdown: oneshot::Sender<()>,
}

/// A TCP socket bound to `addr` with SO_REUSEADDR (so the closed
/// connections' TIME_WAIT entries do not block it), not yet listening.
fn bind_socket(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    // Lets the socket that holds the port while the server is stopped bind
    // it before the listener closes: the port is never free for a moment,
    // so no other socket on the machine (an outgoing connection's
    // ephemeral port included) can take it between stop and listen.
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// Counts a connection for as long as its serving task (and so its socket)
/// lives: dropped when the connection ends or its task is aborted.
struct ConnGuard(Arc<AtomicUsize>);

impl ConnGuard {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        ConnGuard(count.clone())
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
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
            requests: RequestLog::new(options.request_log),
            watch_drops,
            options,
            listener: Mutex::new(Listener {
                addr,
                running: None,
                reserved: None,
            }),
            lifecycle: tokio::sync::Mutex::new(()),
            connections: Arc::new(AtomicUsize::new(0)),
            bind_failures: AtomicUsize::new(0),
        })
    }

    fn listener(&self) -> std::sync::MutexGuard<'_, Listener> {
        self.listener.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The address served (the bound one once started).
    pub fn addr(&self) -> SocketAddr {
        self.listener().addr
    }

    /// Client connections currently open.
    pub fn open_connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Binds that failed since the server was created.
    pub fn bind_failures(&self) -> usize {
        self.bind_failures.load(Ordering::SeqCst)
    }

    /// Binds the address and serves until [`App::stop`] (restarting if it
    /// is already serving). One attempt, no retry: a stop returns only once
    /// the old listener and every socket it accepted are closed, and keeps
    /// the port bound (not listening) until this call listens on it again.
    pub async fn listen(self: &Arc<Self>) -> std::io::Result<SocketAddr> {
        let _lifecycle = self.lifecycle.lock().await;
        self.stop_locked().await;
        self.bind_and_serve()
    }

    /// Stops, then serves again on the same address.
    pub async fn restart(self: &Arc<Self>) -> std::io::Result<SocketAddr> {
        self.listen().await
    }

    fn bind_and_serve(self: &Arc<Self>) -> std::io::Result<SocketAddr> {
        let addr = self.addr();
        let reserved = self.listener().reserved.take();
        let listener = match reserved {
            Some(socket) => socket.listen(1024),
            None => bind_socket(addr).and_then(|s| s.listen(1024)),
        }
        .inspect_err(|e| {
            self.bind_failures.fetch_add(1, Ordering::SeqCst);
            tracing::warn!(%addr, error = %e, "bind failed");
        })?;
        let bound = listener.local_addr()?;
        let router = crate::http::router(self.clone());
        let connections = self.connections.clone();
        let (shutdown, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    biased;
                    // A send or a dropped sender: either way, stop.
                    _ = &mut stopped => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let svc = TowerToHyperService::new(router.clone());
                            let guard = ConnGuard::new(&connections);
                            conns.spawn(async move {
                                let _guard = guard;
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
            // Close the listening socket, then cut every connection (watches
            // included: what a crashed server looks like) and wait until
            // each serving task, and so its socket, is gone.
            drop(listener);
            conns.shutdown().await;
        });
        let mut l = self.listener();
        l.running = Some(Running { task, shutdown });
        l.addr = bound;
        Ok(bound)
    }

    /// Stops listening and cuts every open connection; the state is kept.
    /// Returns once the listening socket and every accepted one are closed.
    pub async fn stop(&self) {
        let _lifecycle = self.lifecycle.lock().await;
        self.stop_locked().await;
    }

    async fn stop_locked(&self) {
        let running = self.listener().running.take();
        if let Some(Running { task, shutdown }) = running {
            // Hold the port first, then close the listener (both sockets
            // have SO_REUSEPORT; a bound socket that does not listen is
            // never handed a connection).
            let addr = self.listener().addr;
            let reserved = bind_socket(addr)
                .inspect_err(
                    |e| tracing::warn!(error = %e, "could not hold the port while stopped"),
                )
                .ok();
            let _ = shutdown.send(());
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "server task ended abnormally");
            }
            self.listener().reserved = reserved;
        }
    }

    /// Aborts the listener without waiting (for `Drop`).
    pub fn abort(&self) {
        if let Some(running) = self.listener().running.take() {
            running.task.abort();
        }
    }

    /// Ends every open watch cleanly (the stream closes, as when an API
    /// server's watch times out or a load balancer cuts it).
    pub fn drop_watches(&self) {
        self.watch_drops.send_modify(|n| *n += 1);
    }
}

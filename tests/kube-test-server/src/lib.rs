//! kube-test-server: a small Kubernetes API server for ferrolb's tests.
//!
//! It serves the resources ferrolb uses (and any CRD applied to it) over
//! plain HTTP on 127.0.0.1, with the real server's list/watch semantics,
//! Status errors, patch flavours, CRD schema validation and Service
//! allocation, so the controller and speaker run unmodified against it.
//! See README.md for exactly what is and is not implemented.
//!
//! ```no_run
//! # async fn demo() -> Result<(), kube_test_server::Error> {
//! let server = kube_test_server::TestServer::start("127.0.0.1:0".parse().unwrap()).await?;
//! let client = server.client().await?;
//! std::fs::write("/tmp/kubeconfig", server.kubeconfig()).unwrap();
//! server.drop_watches();
//! server.stop().await;
//! server.restart().await?;
//! # drop(client);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod admin;
mod app;
mod crd;
mod discovery;
pub mod error;
mod events;
mod faults;
mod http;
mod meta;
mod ops;
mod patch;
mod protobuf;
pub mod rbac;
pub mod request_log;
mod resources;
mod schema;
mod service_validation;
mod services;
mod store;
mod table;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub use app::ServerOptions;
pub use faults::FaultConfig;
pub use request_log::{RequestInfo, RequestRecord};

/// Errors from starting the server or building a client for it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Writing the kubeconfig failed.
    #[error("writing kubeconfig {path}: {source}")]
    WriteKubeconfig {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The kubeconfig did not make a kube client.
    #[error("building a kube client: {0}")]
    Client(String),
}

/// Result alias for this crate's public API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A running (or stopped) test API server. Dropping it stops it.
#[derive(Debug)]
pub struct TestServer {
    app: Arc<app::App>,
}

impl TestServer {
    /// Starts a server on `addr` (use port 0 for an ephemeral port).
    pub async fn start(addr: SocketAddr) -> Result<TestServer> {
        Self::start_with(addr, ServerOptions::default()).await
    }

    /// Starts a server with options.
    pub async fn start_with(addr: SocketAddr, options: ServerOptions) -> Result<TestServer> {
        let app = app::App::new(options, addr);
        app.listen()
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        Ok(TestServer { app })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.app.addr()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// A kubeconfig (YAML) pointing at this server, namespace `default`.
    pub fn kubeconfig(&self) -> String {
        kubeconfig_for(&self.url())
    }

    /// Writes [`TestServer::kubeconfig`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.kubeconfig()).map_err(|source| Error::WriteKubeconfig {
            path: path.display().to_string(),
            source,
        })
    }

    /// The kube client configuration the kubeconfig yields (to adjust
    /// before building a client, e.g. `default_retry = false`).
    pub async fn config(&self) -> Result<kube::Config> {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig())
            .map_err(|e| Error::Client(e.to_string()))?;
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| Error::Client(e.to_string()))
    }

    /// A kube client built from the kubeconfig, as a binary would build it.
    /// Note kube's default retry policy retries 429/503/504 answers.
    pub async fn client(&self) -> Result<kube::Client> {
        kube::Client::try_from(self.config().await?).map_err(|e| Error::Client(e.to_string()))
    }

    /// Stops serving and cuts every connection; objects and versions are kept.
    pub async fn stop(&self) {
        self.app.stop().await;
    }

    /// Serves again on the same address with the same state (after
    /// [`TestServer::stop`]; on a running server it stops it first, waiting
    /// until its listener and connections are closed). Binds once: an error
    /// is a real failure, not something to retry.
    pub async fn restart(&self) -> Result<()> {
        let addr = self.addr();
        self.app
            .restart()
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        Ok(())
    }

    /// Client connections currently open (0 once [`TestServer::stop`]
    /// has returned).
    pub fn open_connections(&self) -> usize {
        self.app.open_connections()
    }

    /// How many binds of the listening socket failed (start, restart, and
    /// the binary's `/_test/restart`); a healthy server reports 0.
    pub fn bind_failures(&self) -> usize {
        self.app.bind_failures()
    }

    /// Ends every open watch stream (clients see a clean end of stream).
    pub fn drop_watches(&self) {
        self.app.drop_watches();
    }

    /// Forgets the event history: watches from older versions get 410.
    pub fn compact(&self) {
        self.app.store.lock().compact();
    }

    /// Sets the injected faults.
    pub fn set_faults(&self, config: FaultConfig) {
        self.app.faults.set(config);
    }

    /// Removes injected faults.
    pub fn clear_faults(&self) {
        self.app.faults.set(FaultConfig::default());
    }

    /// Starts (`true`, keeping what is logged) or stops and empties
    /// (`false`) the request log. [`ServerOptions::request_log`] starts it
    /// with the server, so a client's first requests are logged too.
    pub fn record_requests(&self, on: bool) {
        self.app.requests.set(on);
    }

    /// Every API request logged so far, oldest first: who sent it and its
    /// authorization attributes (see [`request_log`]).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.app.requests.snapshot()
    }

    /// A kubeconfig like [`TestServer::kubeconfig`] whose user sends
    /// `token` as a bearer token; the request log records it as the user
    /// (nothing checks it), e.g. `system:serviceaccount:NS:NAME`.
    pub fn kubeconfig_with_token(&self, token: &str) -> String {
        kubeconfig_with_token(&self.url(), token)
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.app.store.lock().rv()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.app.abort();
    }
}

/// A kubeconfig for a server URL.
pub fn kubeconfig_for(url: &str) -> String {
    kubeconfig_with_user(url, "{}")
}

/// A kubeconfig for a server URL whose user sends `token` as a bearer
/// token (the request log's user name).
pub fn kubeconfig_with_token(url: &str, token: &str) -> String {
    let quoted = serde_json::to_string(token).unwrap_or_default();
    kubeconfig_with_user(url, &format!("{{token: {quoted}}}"))
}

fn kubeconfig_with_user(url: &str, user: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kube-test-server
  cluster:
    server: {url}
users:
- name: kube-test-server
  user: {user}
contexts:
- name: kube-test-server
  context:
    cluster: kube-test-server
    user: kube-test-server
    namespace: default
current-context: kube-test-server
"
    )
}

//! The cluster's API side: the in-process API test server, the relay and
//! kubeconfigs the lab's processes reach it with, what a real cluster
//! would already hold (CRDs, the namespace, Nodes, the example
//! configuration), and the stand-ins for the controllers the test server
//! does not run (EndpointSlices, kube-proxy).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use netlab::Host;

use super::{Cluster, Options};
use crate::topology::{self, API_PORT, API_V4, SYSTEM_NS};
use crate::{endpoints, manifests, objects, proxy, relay, AbortOnDrop};

/// The user the controller's kubeconfig names (its bearer token): the
/// ServiceAccount deploy/ferrolb.yaml runs it as.
pub const CONTROLLER_USER: &str = "system:serviceaccount:ferrolb-system:ferrolb-controller";
/// The user every speaker's kubeconfig names.
pub const SPEAKER_USER: &str = "system:serviceaccount:ferrolb-system:ferrolb-speaker";

/// The API test server, running, and how to reach it.
pub(super) struct ApiServer {
    pub(super) server: kube_test_server::TestServer,
    /// Forwards `API_V4:API_PORT` in the `api` namespace to the server.
    pub(super) relay: AbortOnDrop,
    pub(super) kube: Client,
}

impl ApiServer {
    /// Starts the server on loopback, writes the user's kubeconfig and the
    /// controller's and speakers' (through the relay in `api`) to `dir`.
    pub(super) async fn start(opts: &Options, dir: &Path, api: &Host) -> anyhow::Result<Self> {
        let options = kube_test_server::ServerOptions {
            request_log: opts.record_requests,
            history_limit: opts.history_limit,
            ..Default::default()
        };
        let server = kube_test_server::TestServer::start_with(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            options,
        )
        .await?;
        server.write_kubeconfig(&dir.join("kubeconfig"))?;
        let ns_url = format!("http://{API_V4}:{API_PORT}");
        // Each component as its ServiceAccount in deploy/ferrolb.yaml
        // would be, so the request log tells their calls apart.
        for (file, user) in [
            ("kubeconfig-controller", CONTROLLER_USER),
            ("kubeconfig-speaker", SPEAKER_USER),
        ] {
            std::fs::write(
                dir.join(file),
                kube_test_server::kubeconfig_with_token(&ns_url, user),
            )?;
        }
        let relay = relay::start(api, SocketAddr::from((API_V4, API_PORT)), server.addr())?;
        let kube = server.client().await?;
        Ok(Self {
            server,
            relay,
            kube,
        })
    }
}

impl Cluster {
    pub(super) async fn seed(&self) -> anyhow::Result<()> {
        let pp = PostParams::default();
        for (source, yaml) in manifests::CRDS {
            self.apply(source, yaml).await?;
        }
        let nss: Api<Namespace> = Api::all(self.kube.clone());
        nss.create(
            &pp,
            &serde_json::from_value(serde_json::json!({"metadata": {"name": SYSTEM_NS}}))?,
        )
        .await?;
        let now = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .map_err(|e| anyhow!("{e}"))?
            .to_string();
        let nodes: Api<Node> = Api::all(self.kube.clone());
        for n in &self.nodes {
            let v4 = IpAddr::V4(topology::node_v4(n.index));
            let v6 = IpAddr::V6(topology::node_v6(n.index));
            let obj: Node = serde_json::from_value(objects::node(&n.name, v4, v6, &now))?;
            nodes.create(&pp, &obj).await?;
            let status = serde_json::json!({"status": objects::node_status(&n.name, v4, v6, &now)});
            nodes
                .patch_status(&n.name, &PatchParams::default(), &Patch::Merge(status))
                .await?;
        }
        for (source, yaml) in manifests::CONFIG {
            self.apply(source, yaml).await?;
        }
        Ok(())
    }

    /// Starts the EndpointSlice and kube-proxy stand-ins for every node.
    pub(super) fn start_stand_ins(&mut self) {
        self.endpoints = Some(endpoints::start(
            self.kube.clone(),
            self.nodes
                .iter()
                .map(|n| (n.index, n.name.clone()))
                .collect(),
        ));
        self.proxy = Some(proxy::start(
            self.kube.clone(),
            self.nodes
                .iter()
                .map(|n| (n.name.clone(), n.host.clone()))
                .collect(),
        ));
    }

    /// Server-side applies every object in `yaml` (`source` names it in
    /// errors); returns `kind/name` of each.
    pub async fn apply(&self, source: &str, yaml: &str) -> anyhow::Result<Vec<String>> {
        manifests::apply(&self.kube, source, yaml).await
    }

    /// The kubeconfig for the user (`http://127.0.0.1:PORT`).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Restarts the API server and waits until this lab's client gets
    /// through again. The restart closes every connection; a request that
    /// races such a close on a pooled connection fails once, as any client
    /// sees after an API server restart, so the first requests are retried
    /// here (bounded: 10 s) rather than by whichever call comes next.
    pub async fn restart_api_server(&self) -> anyhow::Result<()> {
        self.server.restart().await?;
        let namespaces: Api<Namespace> = Api::all(self.kube.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match namespaces.list(&ListParams::default().limit(1)).await {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => {
                    bail!("the API server did not answer within 10 s of its restart: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        // Connections closed by the restart and not yet seen closed by
        // the pool are dropped once their EOF is read.
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(())
    }

    /// A client for the lab's API server.
    pub fn kube(&self) -> Client {
        self.kube.clone()
    }

    /// The in-process API server (fault injection, restart).
    pub fn server(&self) -> &kube_test_server::TestServer {
        &self.server
    }
}

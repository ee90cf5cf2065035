//! What the API tests share: the API test server seeded with a pool, an
//! advertisement, two Nodes and a Service with its EndpointSlice, and
//! speakers (the daemon's decision loop over an in-memory L2 segment,
//! with a fixed liveness set).
#![allow(dead_code)] // each test binary uses a different subset

use ferrolb_core::announce::interfaces::{Excludes, HostInterface};
use ferrolb_core::announce::Desired;
use ferrolb_crds::{generate, IPAddressPool, IPAddressPoolSpec, L2Advertisement};
use ferrolb_speaker::announcer::handover::Report;
use ferrolb_speaker::announcer::Config;
use ferrolb_speaker::daemon::metrics::Metrics;
use ferrolb_speaker::daemon::ownership::Claims;
use ferrolb_speaker::daemon::run::Daemon;
use ferrolb_speaker::daemon::{conflicts, events, l2status, watch as watches};
use ferrolb_speaker::links::{self, Links};
use ferrolb_speaker::membership::claims::ClaimsPort;
use ferrolb_speaker::transport::memory::Hub;
use ferrolb_speaker::transport::run::Running;
use ferrolb_speaker::transport::Datalink;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub const NS: &str = "ferrolb-system";
pub const VIP: &str = "192.0.2.10";

/// One up Ethernet interface, never changing.
#[derive(Debug)]
pub struct FixedLinks(pub Vec<HostInterface>);

impl Links for FixedLinks {
    fn list(&self) -> BoxFuture<'_, links::Result<Vec<HostInterface>>> {
        Box::pin(async { Ok(self.0.clone()) })
    }

    fn changes(&self) -> links::Result<BoxStream<'static, ()>> {
        Ok(stream::pending().boxed())
    }
}

pub fn meta(name: &str, ns: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: ns.map(Into::into),
        ..ObjectMeta::default()
    }
}

pub async fn setup(client: &Client) -> TestResult {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in generate::crds() {
        crds.create(&PostParams::default(), &crd).await?;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: meta(NS, None),
                ..Namespace::default()
            },
        )
        .await;
    let nodes: Api<Node> = Api::all(client.clone());
    for n in ["node-a", "node-b"] {
        nodes
            .create(
                &PostParams::default(),
                &Node {
                    metadata: meta(n, None),
                    ..Node::default()
                },
            )
            .await?;
    }
    let pool = IPAddressPool::new(
        "public",
        IPAddressPoolSpec {
            addresses: vec!["192.0.2.0/24".into()],
            ..IPAddressPoolSpec::default()
        },
    );
    Api::<IPAddressPool>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &pool)
        .await?;
    let ad: L2Advertisement = serde_json::from_value(json!({
        "apiVersion": "ferrolb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": "all", "namespace": NS},
    }))?;
    Api::<L2Advertisement>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &ad)
        .await?;
    lb_service(client, "web", VIP, "node-b").await
}

/// Creates LoadBalancer Service `name` (default namespace, pool
/// `public`) at `ip`, with one ready endpoint on `node` (`Cluster`
/// policy: any node may announce it).
pub async fn lb_service(client: &Client, name: &str, ip: &str, node: &str) -> TestResult {
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default",
                     "annotations": {"ferrolb.io/ip-allocated-from-pool": "public"}},
        "spec": {"type": "LoadBalancer", "selector": {"app": name},
                 "ports": [{"port": 80, "protocol": "TCP"}]},
    }))?;
    Api::<Service>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &svc)
        .await?;
    set_ingress(client, name, Some(ip)).await?;
    let slice: EndpointSlice = serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-abcde"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": true},
                       "nodeName": node}],
        "ports": [{"port": 8080, "protocol": "TCP"}],
    }))?;
    Api::<EndpointSlice>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &slice)
        .await?;
    Ok(())
}

pub struct Speaker {
    pub desired: watch::Receiver<Desired>,
    pub stop: oneshot::Sender<()>,
    /// The graceful stop's handover, once the speaker stopped.
    pub stopped: oneshot::Receiver<Report>,
    /// The ServiceL2Status writer, when records are on.
    writer: Option<tokio::task::AbortHandle>,
}

impl Speaker {
    pub fn stop(self) {
        let _ = self.stop.send(());
        if let Some(w) = self.writer {
            w.abort();
        }
    }
}

/// How long the test speakers hold a decision before reporting it.
pub const HOLD: Duration = Duration::from_millis(200);

/// A stop that changes nobody's live set.
pub fn stays() -> BoxFuture<'static, ()> {
    Box::pin(async {})
}

/// What a test speaker may differ in; `Options::default()` is the plain
/// one.
pub struct Options {
    /// Write ServiceL2Status records through this client (a client of its
    /// own, so the request log tells nodes apart).
    pub records: Option<Client>,
    /// What its stop runs (what leaving gossip does to the others' live
    /// set).
    pub leave: BoxFuture<'static, ()>,
    /// Second-announcer timings.
    pub conflicts: conflicts::Settings,
    /// Sticky ownership over this claims port (`None`: the hash).
    pub ownership: Option<(Claims, ClaimsPort)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            records: None,
            leave: stays(),
            conflicts: conflicts::Settings::default(),
            ownership: None,
        }
    }
}

/// A speaker for `node` on `hub` (MAC `02:00:00:00:00:mac`), writing
/// ServiceL2Status records through `records` when given.
#[allow(clippy::too_many_arguments)]
pub fn speaker(
    node: &str,
    mac: u8,
    hub: &Hub,
    client: &Client,
    watched: &watches::Watched,
    live: &watch::Receiver<BTreeSet<String>>,
    tasks: &mut JoinSet<()>,
    records: Option<Client>,
) -> Result<Speaker, Box<dyn std::error::Error>> {
    let options = Options {
        records,
        ..Options::default()
    };
    speaker_with(node, mac, hub, client, watched, live, tasks, options)
}

/// [`speaker`] with the [`Options`] of the test's choosing.
#[allow(clippy::too_many_arguments)]
pub fn speaker_with(
    node: &str,
    mac: u8,
    hub: &Hub,
    client: &Client,
    watched: &watches::Watched,
    live: &watch::Receiver<BTreeSet<String>>,
    tasks: &mut JoinSet<()>,
    options: Options,
) -> Result<Speaker, Box<dyn std::error::Error>> {
    let Options {
        records,
        leave,
        conflicts,
        ownership,
    } = options;
    let mac_bytes = [2, 0, 0, 0, 0, mac];
    let link: Arc<dyn Datalink> =
        Arc::new(hub.endpoint("eth0", ferrolb_speaker::wire::MacAddr(mac_bytes)));
    let (observer, observed) = mpsc::channel(64);
    let running = Running::spawn_observed(vec![link], Config::default(), Some(observer))?;
    let (desired_tx, desired) = watch::channel(Desired::default());
    let (stop, stopping) = oneshot::channel::<()>();
    let (report, stopped) = oneshot::channel();
    let (records, writer) = match records {
        Some(c) => {
            let mut own = JoinSet::new();
            let queue = l2status::spawn_writer(c, watched.world.clone(), &mut own);
            let handle = tasks.spawn(async move { while own.join_next().await.is_some() {} });
            (Some(l2status::Records::new(HOLD, queue)), Some(handle))
        }
        None => (None, None),
    };
    let daemon = Daemon {
        node: node.into(),
        excludes: Excludes::default(),
        rules: Default::default(),
        links: FixedLinks(vec![HostInterface::ethernet("eth0", 2, mac_bytes)]),
        announce: running,
        watched: watched.clone(),
        live: live.clone(),
        events: events::spawn_publisher(client.clone(), node, watched.world.clone(), tasks),
        metrics: Arc::new(Metrics::default()),
        assigned_hold: HOLD,
        records,
        desired: desired_tx,
        observed,
        handover_timeout: Duration::from_secs(3),
        conflicts,
        ownership,
    };
    tasks.spawn(async move {
        let done = daemon
            .run(
                async {
                    let _ = stopping.await;
                },
                leave,
            )
            .await;
        done.announce.stop();
        let _ = report.send(done.handover);
    });
    Ok(Speaker {
        desired,
        stop,
        stopped,
        writer,
    })
}

/// Waits (at most 10 s) until `check` holds for the speaker's state.
pub async fn wait_for(s: &mut Speaker, what: &str, check: impl Fn(&Desired) -> bool) -> TestResult {
    let waited = tokio::time::timeout(Duration::from_secs(10), s.desired.wait_for(|d| check(d)))
        .await
        .map(|r| r.map(|_| ()));
    match waited {
        Ok(r) => Ok(r?),
        Err(_) => Err(format!("timed out waiting for {what}: {:?}", *s.desired.borrow()).into()),
    }
}

/// Sets Service `name`'s `status.loadBalancer.ingress` to `ip`, or clears
/// it.
pub async fn set_ingress(
    client: &Client,
    name: &str,
    ip: Option<&str>,
) -> Result<Service, kube::Error> {
    let ingress = ip.map_or(serde_json::Value::Null, |ip| json!([{ "ip": ip }]));
    Api::<Service>::namespaced(client.clone(), "default")
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": ingress}}})),
        )
        .await
}

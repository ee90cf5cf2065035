//! Sticky ownership through the whole daemon (issue 15): three speakers
//! against the in-process API test server, their claims relayed in memory
//! (the claims channel's loopback tests cover the real sockets). What an
//! operator would check: IPs spread evenly, a node that dies loses its IPs
//! to the least loaded, and when it returns it takes none of them back;
//! new Services then go to it.

mod common;

use common::{lb_service, setup, speaker_with, wait_for, Options, Speaker, TestResult, NS};
use ferrolb_core::announce::model::ObjectKey;
use ferrolb_core::announce::Desired;
use ferrolb_core::ownership::{Config, Node as NodeName};
use ferrolb_speaker::daemon::ownership::Claims;
use ferrolb_speaker::daemon::watch as watches;
use ferrolb_speaker::membership::claims::{ClaimsPort, Incoming, Outgoing, Peers};
use ferrolb_speaker::transport::memory::Hub;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];

/// The timing of these tests: short, so a start listens 300 ms.
fn config() -> Config {
    Config {
        refresh: Duration::from_millis(200),
        listen: Duration::from_millis(300),
        settle: Duration::from_millis(600),
        yield_grace: Duration::from_millis(100),
        ..Config::default()
    }
}

/// The claims channel between the test speakers: who is up (with its
/// incarnation), each one's inbox and peers.
#[derive(Default)]
struct Net {
    up: Mutex<BTreeMap<String, u64>>,
    inboxes: Mutex<HashMap<String, mpsc::Sender<Incoming>>>,
    peers: Mutex<HashMap<String, watch::Sender<Peers>>>,
    /// Our incarnation per node, kept so the watch stays open.
    me: Mutex<HashMap<String, watch::Sender<Option<u64>>>>,
}

impl Net {
    /// `node` starts as incarnation `boot`: its port.
    fn start(self: &Arc<Self>, node: &str, boot: u64) -> ClaimsPort {
        let (in_tx, incoming) = mpsc::channel(1024);
        let (outgoing, mut out_rx) = mpsc::channel::<Outgoing>(1024);
        let (peers_tx, peers) = watch::channel(Peers::new());
        let (me_tx, me) = watch::channel(Some(boot));
        self.inboxes.lock().unwrap().insert(node.into(), in_tx);
        self.peers.lock().unwrap().insert(node.into(), peers_tx);
        self.me.lock().unwrap().insert(node.into(), me_tx);
        self.up.lock().unwrap().insert(node.into(), boot);
        self.publish();
        let net = Arc::clone(self);
        let from = node.to_owned();
        tokio::spawn(async move {
            while let Some(out) = out_rx.recv().await {
                net.deliver(&from, out);
            }
        });
        ClaimsPort {
            incoming,
            outgoing,
            peers,
            me,
        }
    }

    /// `node` dies: the others' membership drops it.
    fn kill(&self, node: &str) {
        self.up.lock().unwrap().remove(node);
        self.publish();
    }

    fn publish(&self) {
        let up = self.up.lock().unwrap().clone();
        for (node, tx) in self.peers.lock().unwrap().iter() {
            let mut peers = up.clone();
            peers.remove(node);
            tx.send_replace(peers);
        }
    }

    fn deliver(&self, from: &str, out: Outgoing) {
        if !self.up.lock().unwrap().contains_key(from) {
            return;
        }
        let (to, msg) = match out {
            Outgoing::Claims { to, message } => (
                to,
                Incoming::Claims {
                    from: from.into(),
                    message,
                },
            ),
            Outgoing::Digest {
                to,
                epoch,
                seq,
                settling,
            } => (
                to,
                Incoming::Digest {
                    from: from.into(),
                    epoch,
                    seq,
                    settling,
                },
            ),
            Outgoing::Pull { to } => (to, Incoming::Pull { from: from.into() }),
        };
        if !self.up.lock().unwrap().contains_key(&to) {
            return;
        }
        if let Some(inbox) = self.inboxes.lock().unwrap().get(&to) {
            let _ = inbox.try_send(msg);
        }
    }
}

struct Cluster {
    client: Client,
    hub: Hub,
    watched: watches::Watched,
    live: watch::Receiver<BTreeSet<String>>,
    _live_tx: watch::Sender<BTreeSet<String>>,
    net: Arc<Net>,
    tasks: JoinSet<()>,
}

impl Cluster {
    fn speaker(
        &mut self,
        node: &str,
        mac: u8,
        boot: u64,
    ) -> Result<Speaker, Box<dyn std::error::Error>> {
        self.speaker_recorded(node, mac, boot, BTreeMap::new())
    }

    /// A speaker that read `records` (the ServiceL2Status owners) at start.
    fn speaker_recorded(
        &mut self,
        node: &str,
        mac: u8,
        boot: u64,
        records: BTreeMap<ObjectKey, NodeName>,
    ) -> Result<Speaker, Box<dyn std::error::Error>> {
        let port = self.net.start(node, boot);
        let options = Options {
            ownership: Some((Claims::new(node, config(), records), port)),
            ..Options::default()
        };
        speaker_with(
            node,
            mac,
            &self.hub,
            &self.client,
            &self.watched,
            &self.live,
            &mut self.tasks,
            options,
        )
    }
}

/// Sets or removes Service `name`'s `ferrolb.io/rebalance` annotation.
async fn rebalance(client: &Client, name: &str, on: bool) -> TestResult {
    let value = if on { json!("true") } else { json!(null) };
    Api::<Service>::namespaced(client.clone(), "default")
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"ferrolb.io/rebalance": value}}})),
        )
        .await?;
    Ok(())
}

/// The owner of every Service in `d`.
fn owners(d: &Desired) -> BTreeMap<ObjectKey, Option<String>> {
    d.services
        .iter()
        .map(|(k, d)| (k.clone(), d.owner().map(str::to_owned)))
        .collect()
}

/// IPs per node.
fn counts(owners: &BTreeMap<ObjectKey, Option<String>>) -> BTreeMap<String, usize> {
    let mut c: BTreeMap<String, usize> = NODES.iter().map(|n| (n.to_string(), 0)).collect();
    for node in owners.values().flatten() {
        *c.entry(node.clone()).or_default() += 1;
    }
    c
}

/// Every Service of `before` not owned by `gone` has the same owner in
/// `after`.
fn kept(
    before: &BTreeMap<ObjectKey, Option<String>>,
    after: &BTreeMap<ObjectKey, Option<String>>,
    gone: Option<&str>,
) {
    for (key, owner) in before {
        if owner.as_deref() != gone || gone.is_none() {
            assert_eq!(&after[key], owner, "{key}: a live owner keeps its IP");
        }
    }
}

/// IPs per node are `want` (node-a, node-b, node-c).
fn expect_counts(owners: &BTreeMap<ObjectKey, Option<String>>, want: [usize; 3], what: &str) {
    let want: BTreeMap<String, usize> = NODES.iter().map(|n| n.to_string()).zip(want).collect();
    assert_eq!(counts(owners), want, "{what}");
}

/// Waits until every speaker in `speakers` knows `services` Services,
/// each with an owner among `up`, and they agree; the owners.
async fn agreed(
    speakers: &mut [&mut Speaker],
    services: usize,
    up: &[&str],
) -> Result<BTreeMap<ObjectKey, Option<String>>, Box<dyn std::error::Error>> {
    let ok = |d: &Desired| {
        d.services.len() == services
            && d.services
                .values()
                .all(|s| s.owner().is_some_and(|o| up.contains(&o)))
    };
    for _ in 0..100 {
        for s in speakers.iter_mut() {
            wait_for(s, "every Service owned by a live node", ok).await?;
        }
        let views: Vec<_> = speakers
            .iter()
            .map(|s| owners(&s.desired.borrow()))
            .collect();
        if views.windows(2).all(|w| w[0] == w[1]) {
            return Ok(views[0].clone());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the speakers never agreed on the owners".into())
}

/// The fixtures' cluster with node-c and `extra` more Services (six IPs
/// with 5); nobody running yet.
async fn three_nodes(
    server: &kube_test_server::TestServer,
    extra: usize,
) -> Result<(Client, Cluster), Box<dyn std::error::Error>> {
    let client = server.client().await?;
    setup(&client).await?;
    Api::<Node>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "node-c"}}))?,
        )
        .await?;
    for i in 1..=extra {
        let ip = format!("192.0.2.{}", 20 + i);
        lb_service(&client, &format!("svc-{i}"), &ip, "node-a").await?;
    }
    let mut tasks = JoinSet::new();
    let watched = watches::spawn(&client, NS, None, &mut tasks);
    let (live_tx, live) = watch::channel(NODES.iter().map(|n| n.to_string()).collect());
    let cluster = Cluster {
        client: client.clone(),
        hub: Hub::new(),
        watched,
        live,
        _live_tx: live_tx,
        net: Arc::new(Net::default()),
        tasks,
    };
    Ok((client, cluster))
}

#[tokio::test]
async fn a_returning_node_takes_nothing_back_and_new_services_go_to_the_fewest() -> TestResult {
    let server = kube_test_server::TestServer::start("127.0.0.1:0".parse()?).await?;
    let (client, mut cluster) = three_nodes(&server, 5).await?;
    let mut a = cluster.speaker("node-a", 0xa, 1)?;
    let mut b = cluster.speaker("node-b", 0xb, 1)?;
    let mut c = cluster.speaker("node-c", 0xc, 1)?;

    let start = agreed(&mut [&mut a, &mut b, &mut c], 6, &NODES).await?;
    expect_counts(&start, [2, 2, 2], "six IPs from scratch spread evenly");

    // node-a dies: its IPs go to the others, one each.
    cluster.net.kill("node-a");
    a.stop();
    let after = agreed(&mut [&mut b, &mut c], 6, &["node-b", "node-c"]).await?;
    kept(&start, &after, Some("node-a"));
    expect_counts(
        &after,
        [0, 3, 3],
        "the dead node's IPs are spread over the others",
    );

    // node-a returns (a new incarnation): it listens, hears the claims and
    // takes nothing.
    let mut a = cluster.speaker("node-a", 0xa, 2)?;
    let back = agreed(&mut [&mut a, &mut b, &mut c], 6, &NODES).await?;
    assert_eq!(back, after, "no IP moves when a dead node returns");
    // Still so after several refreshes.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let later = agreed(&mut [&mut a, &mut b, &mut c], 6, &NODES).await?;
    assert_eq!(later, after, "no IP moves later either");
    assert!(
        a.desired.borrow().announce.is_empty(),
        "node-a announces nothing"
    );

    // New Services go to the node with the fewest: node-a, until even.
    for i in 6..=8 {
        lb_service(
            &client,
            &format!("svc-{i}"),
            &format!("192.0.2.{}", 20 + i),
            "node-a",
        )
        .await?;
    }
    let grown = agreed(&mut [&mut a, &mut b, &mut c], 9, &NODES).await?;
    kept(&after, &grown, None);
    expect_counts(&grown, [3, 3, 3], "new Services even the load");

    // node-a dies again and returns: its three IPs stay on the others
    // (0/4/5 or 0/5/4) until the operator asks for a rebalance.
    cluster.net.kill("node-a");
    a.stop();
    let lopsided = agreed(&mut [&mut b, &mut c], 9, &["node-b", "node-c"]).await?;
    let mut spread: Vec<usize> = counts(&lopsided).into_values().collect();
    spread.sort_unstable();
    assert_eq!(spread, [0, 4, 5], "node-a's three IPs spread: {lopsided:?}");
    let mut a = cluster.speaker("node-a", 0xa, 3)?;
    let back = agreed(&mut [&mut a, &mut b, &mut c], 9, &NODES).await?;
    assert_eq!(back, lopsided, "nothing moves on the return");
    // The operator marks every Service: IPs move only while that evens
    // the load strictly, and then stop.
    for key in back.keys() {
        rebalance(&client, &key.name, true).await?;
    }
    let even = |d: &Desired| counts(&owners(d)).values().all(|n| *n == 3);
    for s in [&mut a, &mut b, &mut c] {
        wait_for(s, "the rebalance to even the load", even).await?;
    }
    let rebalanced = agreed(&mut [&mut a, &mut b, &mut c], 9, &NODES).await?;
    let moved = back.iter().filter(|(k, o)| rebalanced[*k] != **o).count();
    assert_eq!(
        moved, 3,
        "the fewest moves that even the load: {rebalanced:?}"
    );
    // The marker removed, nothing moves.
    for key in back.keys() {
        rebalance(&client, &key.name, false).await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pinned = agreed(&mut [&mut a, &mut b, &mut c], 9, &NODES).await?;
    assert_eq!(pinned, rebalanced);
    for s in [a, b, c] {
        s.stop();
    }
    Ok(())
}

#[tokio::test]
async fn a_restart_of_every_speaker_moves_no_ip() -> TestResult {
    let server = kube_test_server::TestServer::start("127.0.0.1:0".parse()?).await?;
    let (_client, mut cluster) = three_nodes(&server, 5).await?;
    let a = cluster.speaker("node-a", 0xa, 1)?;
    let mut b = cluster.speaker("node-b", 0xb, 1)?;
    let mut c = cluster.speaker("node-c", 0xc, 1)?;
    // An uneven placement, unlike one from scratch (2/2/2): node-a died
    // and came back with nothing.
    cluster.net.kill("node-a");
    a.stop();
    agreed(&mut [&mut b, &mut c], 6, &["node-b", "node-c"]).await?;
    let mut a = cluster.speaker("node-a", 0xa, 2)?;
    let before = agreed(&mut [&mut a, &mut b, &mut c], 6, &NODES).await?;
    expect_counts(&before, [0, 3, 3], "node-a took nothing back");
    // What the ServiceL2Status records say once every owner held 5 s.
    let records: BTreeMap<ObjectKey, NodeName> = before
        .iter()
        .filter_map(|(k, o)| Some((k.clone(), NodeName::from(o.clone()?.as_str()))))
        .collect();
    // A DaemonSet upgrade: every speaker stops, then they start apart
    // (150 ms, against a listen of 300 ms and a settle of 600 ms), the
    // first with nobody to hear.
    for (node, s) in [("node-a", a), ("node-b", b), ("node-c", c)] {
        cluster.net.kill(node);
        s.stop();
    }
    let mut c = cluster.speaker_recorded("node-c", 0xc, 3, records.clone())?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut a = cluster.speaker_recorded("node-a", 0xa, 3, records.clone())?;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut b = cluster.speaker_recorded("node-b", 0xb, 3, records)?;
    let after = agreed(&mut [&mut a, &mut b, &mut c], 6, &NODES).await?;
    assert_eq!(after, before, "every IP is back on its recorded owner");
    // And stays there once the cold start ended.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let later = agreed(&mut [&mut a, &mut b, &mut c], 6, &NODES).await?;
    assert_eq!(later, before);
    for s in [a, b, c] {
        s.stop();
    }
    Ok(())
}

//! The gossip secret changing under running speakers, on 127.0.0.x.
//!
//! - Two members pick up a rotated key at different times (as kubelet
//!   updates nodes up to a minute apart) and never stop seeing each other.
//! - A speaker whose secret file appears after it started leaves the
//!   Node-Ready fallback and joins gossip, without a restart.
//! - A file that breaks later keeps the key in force.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ferrolb_core::announce::model::NodeFacts;
use ferrolb_core::announce::World;
use ferrolb_speaker::cli::Cli;
use ferrolb_speaker::daemon::events::Notice;
use ferrolb_speaker::daemon::liveness::{self, Liveness};
use ferrolb_speaker::daemon::metrics::Metrics;
use ferrolb_speaker::membership::secret_file::watch_file;
use ferrolb_speaker::membership::{LivenessSource, Membership, MembershipConfig, Secret};
use tokio::sync::{mpsc, watch};

const CONVERGE: Duration = Duration::from_secs(10);

fn key(s: &str) -> Secret {
    Secret::from_bytes(s.as_bytes(), "test").unwrap()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

async fn member(name: &str, seeds: &[SocketAddr], secret: Secret, grace: Duration) -> Membership {
    let mut config = MembershipConfig::new(name, "127.0.0.1:0".parse().unwrap(), secret);
    config.seeds = seeds.to_vec();
    config.rotation_grace = grace;
    Membership::start(config).await.expect("bind")
}

async fn sees(rx: &mut watch::Receiver<BTreeSet<String>>, want: &[&str], limit: Duration) -> bool {
    let want = set(want);
    let ok = tokio::time::timeout(limit, rx.wait_for(|s| *s == want))
        .await
        .is_ok();
    if !ok {
        eprintln!("sees {:?}, wanted {want:?}", *rx.borrow());
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_speakers_keep_gossiping_across_a_rotation_they_pick_up_at_different_times() {
    // Scaled down: the skew (1 s) is twice the detection time (~0.5 s),
    // so a speaker that sealed with the new key on sight would be declared
    // dead by the other; the grace (1.5 s) exceeds the skew.
    let grace = Duration::from_millis(1500);
    let skew = Duration::from_secs(1);
    let a = member("node-a", &[], key("old-key-0123456789"), grace).await;
    let b = member(
        "node-b",
        &[a.local_addr()],
        key("old-key-0123456789"),
        grace,
    )
    .await;
    let (mut a_live, mut b_live) = (a.live(), b.live());
    assert!(sees(&mut a_live, &["node-a", "node-b"], CONVERGE).await);
    assert!(sees(&mut b_live, &["node-a", "node-b"], CONVERGE).await);
    a_live.borrow_and_update();
    b_live.borrow_and_update();
    let rejected = (a.stats().rejected, b.stats().rejected);

    a.offer_key(key("new-key-0123456789")).await.unwrap();
    tokio::time::sleep(skew).await;
    b.offer_key(key("new-key-0123456789")).await.unwrap();
    // Through both switches and the old key's expiry on both sides.
    tokio::time::sleep(grace * 2 + Duration::from_millis(500)).await;

    assert!(
        !a_live.has_changed().unwrap() && !b_live.has_changed().unwrap(),
        "a live set changed during the rotation: a {:?}, b {:?}",
        *a_live.borrow(),
        *b_live.borrow()
    );
    assert_eq!(
        (a.stats().rejected, b.stats().rejected),
        rejected,
        "no datagram was refused during the rotation"
    );

    // Both seal with the new key now, and the old one is gone.
    let c = member(
        "node-c",
        &[a.local_addr()],
        key("new-key-0123456789"),
        grace,
    )
    .await;
    let mut c_live = c.live();
    assert!(sees(&mut c_live, &["node-a", "node-b", "node-c"], CONVERGE).await);
    let old = member(
        "node-d",
        &[a.local_addr()],
        key("old-key-0123456789"),
        grace,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        *old.live().borrow(),
        set(&["node-d"]),
        "the old key was dropped"
    );
    assert!(!a.live().borrow().contains("node-d"));
}

/// A UDP port free on both 127.0.0.1 and 127.0.0.2.
fn free_port() -> u16 {
    for _ in 0..50 {
        let one = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = one.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.2", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on both loopback addresses");
}

fn node(name: &str, ip: &str, ready: bool) -> NodeFacts {
    NodeFacts {
        name: name.to_owned(),
        labels: BTreeMap::new(),
        ready,
        network_unavailable: false,
        internal_ip: Some(ip.parse::<IpAddr>().unwrap()),
    }
}

/// node-a (127.0.0.1) is not Ready in the API, node-b (127.0.0.2) is: so
/// the fallback's live set differs from gossip's.
fn world() -> World {
    let mut w = World::default();
    w.set_node(node("node-a", "127.0.0.1", false));
    w.set_node(node("node-b", "127.0.0.2", true));
    w
}

async fn speaker(
    name: &str,
    ip: &str,
    port: u16,
    file: &Path,
    world: &watch::Receiver<World>,
) -> (Liveness, Arc<Metrics>, mpsc::Receiver<Notice>) {
    let port = port.to_string();
    let file = file.to_str().unwrap();
    let cli = Cli::try_parse_from([
        "ferrolb-speaker",
        "--node-name",
        name,
        "--memberlist-bind-addr",
        ip,
        "--memberlist-port",
        &port,
        "--memberlist-secret-file",
        file,
        "--memberlist-secret-poll",
        "50ms",
        "--memberlist-secret-rotation-grace",
        "2s",
    ])
    .unwrap();
    let (secret, _task) = watch_file(
        cli.memberlist.secret_file.clone(),
        cli.memberlist.secret_poll,
    )
    .await;
    let metrics = Arc::new(Metrics::default());
    let (events, notices) = mpsc::channel(8);
    let live = liveness::spawn(
        cli.memberlist,
        name.to_owned(),
        world.clone(),
        secret,
        Arc::clone(&metrics),
        Some(events),
    );
    (live, metrics, notices)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_whose_secret_file_appears_late_joins_gossip() {
    let dir = tempfile::tempdir().unwrap();
    let (file_a, file_b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&file_a, "shared-key-0123456789\n").unwrap();
    let port = free_port();
    let (_world_tx, world) = watch::channel(world());

    let (a, _, _) = speaker("node-a", "127.0.0.1", port, &file_a, &world).await;
    let (b, b_metrics, mut b_events) = speaker("node-b", "127.0.0.2", port, &file_b, &world).await;
    let (mut a_live, mut b_live) = (a.live(), b.live());
    assert!(
        sees(&mut a_live, &["node-a"], CONVERGE).await,
        "a gossips alone"
    );
    assert!(
        sees(&mut b_live, &["node-b"], CONVERGE).await,
        "b has no file: the Node-Ready fallback"
    );
    assert_eq!(*b.source().borrow(), LivenessSource::NodeConditions);
    assert_eq!(b_metrics.memberlist_secret_ok.get(), 0);

    // The Secret is created; kubelet fills b's volume.
    std::fs::write(&file_b, "shared-key-0123456789").unwrap();
    assert!(sees(&mut b_live, &["node-a", "node-b"], CONVERGE).await);
    assert!(sees(&mut a_live, &["node-a", "node-b"], CONVERGE).await);
    assert_eq!(*b.source().borrow(), LivenessSource::Gossip);
    assert_eq!(b_metrics.memberlist_secret_ok.get(), 1);

    // Broken later: b keeps gossiping with the key in force.
    std::fs::write(&file_b, "short").unwrap();
    let broken = tokio::time::timeout(CONVERGE, async {
        while b_metrics.memberlist_secret_ok.get() != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(broken.is_ok(), "the broken file was not noticed");
    match tokio::time::timeout(CONVERGE, b_events.recv()).await {
        Ok(Some(Notice::Secret { node, problem })) => {
            assert_eq!(node, "node-b");
            assert_eq!(problem.reason(), "too_short");
        }
        other => panic!("expected one InvalidMemberlistSecret notice, got {other:?}"),
    }
    b_live.borrow_and_update();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!b_live.has_changed().unwrap(), "{:?}", *b_live.borrow());
    assert_eq!(*b_live.borrow(), set(&["node-a", "node-b"]));
    assert_eq!(*b.source().borrow(), LivenessSource::Gossip);
    assert!(b_events.try_recv().is_err(), "one notice per problem");

    b.leave().await;
    assert!(sees(&mut a_live, &["node-a"], CONVERGE).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claims_port_taken_before_gossip_starts_works_once_the_secret_appears() {
    use ferrolb_speaker::membership::claims::{Incoming, Outgoing};
    let dir = tempfile::tempdir().unwrap();
    let (file_a, file_b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&file_a, "shared-key-0123456789\n").unwrap();
    let port = free_port();
    let (_world_tx, world) = watch::channel(world());
    let (mut a, _, _) = speaker("node-a", "127.0.0.1", port, &file_a, &world).await;
    let (mut b, _, _) = speaker("node-b", "127.0.0.2", port, &file_b, &world).await;
    let mut a_port = a.claims().expect("the port");
    let b_port = b.claims().expect("the port");
    assert!(b.claims().is_none(), "taken once");
    // b has no secret: no gossip, nobody, no incarnation.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*b_port.me.borrow(), None);
    assert!(b_port.peers.borrow().is_empty());

    std::fs::write(&file_b, "shared-key-0123456789").unwrap();
    let mut b_me = b_port.me.clone();
    let started = tokio::time::timeout(CONVERGE, b_me.wait_for(Option::is_some))
        .await
        .is_ok();
    assert!(started, "b's gossip did not start");
    let b_boot = b_me.borrow().expect("checked");
    let mut a_peers = a_port.peers.clone();
    let seen = tokio::time::timeout(
        CONVERGE,
        a_peers.wait_for(|p| p.get("node-b") == Some(&b_boot)),
    )
    .await
    .is_ok();
    assert!(seen, "a sees {:?}", *a_peers.borrow());
    let mut b_peers = b_port.peers.clone();
    let seen = tokio::time::timeout(CONVERGE, b_peers.wait_for(|p| p.contains_key("node-a")))
        .await
        .is_ok();
    assert!(seen, "b sees {:?}", *b_peers.borrow());

    b_port
        .outgoing
        .send(Outgoing::Digest {
            to: "node-a".into(),
            epoch: b_boot,
            seq: 3,
            settling: true,
        })
        .await
        .unwrap();
    let got = tokio::time::timeout(CONVERGE, a_port.incoming.recv()).await;
    assert_eq!(
        got,
        Ok(Some(Incoming::Digest {
            from: "node-b".into(),
            epoch: b_boot,
            seq: 3,
            settling: true,
        }))
    );
    b.leave().await;
    let gone = tokio::time::timeout(CONVERGE, a_peers.wait_for(|p| p.is_empty()))
        .await
        .is_ok();
    assert!(gone, "a still sees {:?}", *a_peers.borrow());
}

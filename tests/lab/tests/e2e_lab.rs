//! End-to-end: the real controller and speakers in network namespaces, a
//! client on the LAN. Root only: `#[ignore = "needs root"]`
//! (docs/testing.md). Tests take turns (one lab at a time: timings on
//! two cores stay meaningful).

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_lab::cluster::Cluster;
use ferrolb_lab::failover::{self, Fault};
use ferrolb_lab::objects::ServiceSpec;
use ferrolb_speaker::wire::MacAddr;

const PORT: u16 = 8080;

async fn lab(test: &str) -> (tokio::sync::MutexGuard<'static, ()>, Cluster) {
    common::lab(test, "flbe2e").await
}

/// Creates `web` (dual stack) and returns its IPv4 and IPv6 addresses.
async fn web(c: &Cluster, name: &str) -> (IpAddr, IpAddr) {
    c.create_service(&ServiceSpec::new(name, PORT), None)
        .await
        .unwrap();
    let ips = c.wait_ips(name, 2, Duration::from_secs(20)).await.unwrap();
    let v4 = *ips.iter().find(|i| i.is_ipv4()).unwrap();
    let v6 = *ips.iter().find(|i| i.is_ipv6()).unwrap();
    (v4, v6)
}

fn mac_of(c: &Cluster, node: &str) -> netlab::MacAddr {
    c.node(node).unwrap().mac
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn a_service_ip_answers_over_both_families_from_the_owner() {
    let (_g, c) = lab("a_service_ip_answers_over_both_families_from_the_owner").await;
    let (v4, v6) = web(&c, "web").await;
    let a4 = c
        .wait_answer(v4, PORT, Duration::from_secs(10))
        .await
        .unwrap();
    let a6 = c
        .wait_answer(v6, PORT, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(a4, a6, "dual-stack IPs stay on one node");
    // The client resolved both addresses to the owner's MAC.
    for ip in [v4, v6] {
        let entry = c.client.neighbour(ip).unwrap().expect("neighbour entry");
        assert_eq!(entry.lladdr, Some(mac_of(&c, &a4)), "{ip}: {entry:?}");
    }
    assert_eq!(c.announced_by(v4).as_deref(), Some(a4.as_str()));
    // `kubectl describe service web` shows who assigned and who announces.
    let deadline = Instant::now() + Duration::from_secs(20); // nodeAssigned waits 5 s (ASSIGNED_HOLD)
    loop {
        let events = c.describe_events("web").await.unwrap();
        let has = |reason: &str| events.iter().any(|(r, _)| r == reason);
        if has("IPAllocated") && has("nodeAssigned") {
            let (_, msg) = events.iter().find(|(r, _)| r == "nodeAssigned").unwrap();
            assert!(
                msg.starts_with(&format!("announcing from node \"{a4}\"")),
                "{msg}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kubectl describe would show {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn exactly_one_node_answers_who_has_for_a_service_ip() {
    let (_g, c) = lab("exactly_one_node_answers_who_has_for_a_service_ip").await;
    let (v4, v6) = web(&c, "web").await;
    let owner = c
        .wait_answer(v4, PORT, Duration::from_secs(10))
        .await
        .unwrap();
    c.wait_answer(v6, PORT, Duration::from_secs(10))
        .await
        .unwrap();
    let owner_mac = MacAddr(mac_of(&c, &owner).0);
    // Every node holds both IPs on lo; only the speaker may answer, neither
    // the kernel's ARP (arp_ignore=1) nor its NDP (addresses on lo are not
    // answered for on eth0).
    for ip in [v4, v6] {
        let answers = common::who_has(&c, ip);
        assert_eq!(answers, vec![owner_mac], "{ip}: answers {answers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn node_death_moves_the_ip_and_gratuitous_arp_updates_the_client() {
    let (_g, mut c) = lab("node_death_moves_the_ip_and_gratuitous_arp_updates_the_client").await;
    let (v4, v6) = web(&c, "web").await;
    c.wait_answer(v6, PORT, Duration::from_secs(10))
        .await
        .unwrap();
    let f = failover::measure(&mut c, v4, PORT, Fault::NodeDeath, Duration::from_secs(10))
        .await
        .unwrap();
    assert_ne!(f.from, f.to);
    assert!(f.gap < Duration::from_secs(3), "{f:?}");
    // The client never asked again: the new owner's gratuitous ARP
    // replaced the dead MAC in its cache.
    let entry = c.client.neighbour(v4).unwrap().expect("neighbour entry");
    assert_eq!(entry.lladdr, Some(mac_of(&c, &f.to)), "{entry:?}");
    // IPv6 moved along (unsolicited NA).
    let a6 = c
        .wait_answer(v6, PORT, Duration::from_secs(3))
        .await
        .unwrap();
    assert_eq!(a6, f.to);
    // The dead node comes back and the lab settles on one owner again.
    c.restore_node(&f.from).unwrap();
    failover::settle(&c, v4, PORT).await.unwrap();
    assert!(c.dead_children().is_empty());
}

/// The numbers of the graceful stop's last line in a speaker's log,
/// `handed over N of M IPs in X ms, K timed out`: (N, M, X, K).
fn handover_line(log: &str) -> Option<(u64, u64, u64, u64)> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("IPs in ") && l.contains("handed over "))?;
    let rest = &line[line.find("handed over ")? + "handed over ".len()..];
    let words: Vec<&str> = rest.split_whitespace().take(8).collect();
    // N of M IPs in X ms, K timed
    match words.as_slice() {
        [n, "of", m, "IPs", "in", x, "ms,", k] => Some((
            n.parse().ok()?,
            m.parse().ok()?,
            x.parse().ok()?,
            k.parse().ok()?,
        )),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn a_graceful_speaker_stop_moves_the_ip_quickly() {
    let (_g, mut c) = lab("a_graceful_speaker_stop_moves_the_ip_quickly").await;
    let (v4, v6) = web(&c, "web").await;
    c.wait_answer(v6, PORT, Duration::from_secs(10))
        .await
        .unwrap();
    let f = failover::measure(
        &mut c,
        v4,
        PORT,
        Fault::GracefulStop,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_ne!(f.from, f.to);
    assert!(f.gap < Duration::from_secs(1), "{f:?}");
    let entry = c.client.neighbour(v4).unwrap().expect("neighbour entry");
    assert_eq!(entry.lladdr, Some(mac_of(&c, &f.to)), "{entry:?}");
    // Make-before-break: the old owner answered until it saw the new
    // owner's gratuitous ARP and unsolicited NA for both IPs, long before
    // its 3 s bound, and says so.
    let log = c.log(&f.from);
    let (handed, total, ms, timed_out) = handover_line(&log).unwrap_or_else(|| {
        panic!(
            "no handover line in {}'s log:\n{}",
            f.from,
            c.log_tail(&f.from, 20)
        )
    });
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("IPs in "))
        .unwrap_or_default();
    println!("{}: {line}", f.from);
    assert_eq!(
        (handed, total, timed_out),
        (2, 2, 0),
        "{}",
        c.log_tail(&f.from, 20)
    );
    assert!(ms < 1000, "the handover took {ms} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn restarting_the_controller_or_the_api_server_keeps_ips_and_answers() {
    let (_g, mut c) =
        lab("restarting_the_controller_or_the_api_server_keeps_ips_and_answers").await;
    let (v4, v6) = web(&c, "web").await;
    let owner = c
        .wait_answer(v4, PORT, Duration::from_secs(10))
        .await
        .unwrap();

    c.start_controller().unwrap();
    // The test server keeps its port bound while stopped, so a restart
    // rebinds at once.
    c.restart_api_server().await.expect("API server restarts");
    // A Service created after both restarts gets a different address...
    let (w4, w6) = web(&c, "web2").await;
    assert!(
        w4 != v4 && w6 != v6,
        "web2 got {w4}/{w6}, web has {v4}/{v6}"
    );
    c.wait_answer(w4, PORT, Duration::from_secs(10))
        .await
        .unwrap();
    // ...and the first one kept its addresses and its owner.
    let svc = c.service("web").await.unwrap();
    let ips = ferrolb_lab::objects::ingress_ips(&svc);
    assert!(ips.contains(&v4) && ips.contains(&v6), "{ips:?}");
    let again = c
        .wait_answer(v4, PORT, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(again, owner);
    assert!(c.dead_children().is_empty());
}

/// Sum of `ferrolb_speaker_announced_ips` over every node.
fn announced_pairs(c: &Cluster) -> f64 {
    c.nodes
        .iter()
        .filter_map(|n| c.speaker_metric(&n.name, "ferrolb_speaker_announced_ips"))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn dropped_and_expired_watches_are_recovered() {
    let (_g, mut c) = lab("dropped_and_expired_watches_are_recovered").await;
    let (v4, _v6) = web(&c, "web").await;
    c.wait_answer(v4, PORT, Duration::from_secs(10))
        .await
        .unwrap();

    // Every watch ends and its resourceVersion is forgotten (410 Gone on
    // resume), and meanwhile web goes and `moved` asks for its IPv4
    // address: only a relist shows the controller and the speakers both.
    c.server().compact();
    c.server().drop_watches();
    c.delete_service("web").await.unwrap();
    let mut moved = ServiceSpec::new("moved", PORT);
    moved.families = ferrolb_lab::objects::Families::V4;
    moved.requested_ips = vec![v4];
    c.create_service(&moved, None).await.unwrap();
    let ips = c
        .wait_ips("moved", 1, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(ips, vec![v4], "the controller saw web's deletion");
    c.wait_answer(v4, PORT, Duration::from_secs(10))
        .await
        .unwrap();
    // web's IPv6 address is announced nowhere any more: one (IP,
    // interface) pair is left, moved's.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pairs = announced_pairs(&c);
        if pairs == 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "{pairs} pairs announced, want 1");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Watches dropped five times in a row while a Service is created.
    let mut later = ServiceSpec::new("later", PORT);
    later.families = ferrolb_lab::objects::Families::V4;
    c.create_service(&later, None).await.unwrap();
    for _ in 0..5 {
        c.server().drop_watches();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ips = c
        .wait_ips("later", 1, Duration::from_secs(20))
        .await
        .unwrap();
    c.wait_answer(ips[0], PORT, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(c.dead_children().is_empty());
}

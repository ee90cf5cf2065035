//! End-to-end: the ServiceL2Status records (issue 15, "which node
//! announces each IP, in kubectl") with the real controller and speakers.
//! The record names the node that answers ARP, moves with a failover,
//! goes when its Service stops being announced or is deleted, shows in
//! `kubectl get`, and a speaker restart that changes nothing writes
//! nothing (the API server's request log counts every write). Root only,
//! with the same `needs root` rule as `e2e_lab.rs`; nextest runs one lab
//! at a time.

// Shared with the other lab tests, which use the helpers this one does not.
#[allow(dead_code)]
mod common;

use std::net::IpAddr;
use std::time::Duration;

use ferrolb_crds::ServiceL2Status;
use ferrolb_lab::cluster::{Cluster, Options};
use ferrolb_lab::failover::{self, Fault};
use ferrolb_lab::l2status::{self, writes};
use ferrolb_lab::objects::{Families, ServiceSpec};
use ferrolb_speaker::wire::MacAddr;

const PORT: u16 = 8080;
/// Long enough for the 5 s hold, the write and a slow two-core machine.
const RECORD_LIMIT: Duration = Duration::from_secs(20);

async fn lab(test: &str) -> (tokio::sync::MutexGuard<'static, ()>, Cluster) {
    let opts = Options {
        prefix: "flbst".into(),
        record_requests: true,
        ..Options::default()
    };
    common::lab_with(test, opts).await
}

/// Creates the IPv4 Service `name`; returns its IP and the node answering.
async fn service(c: &Cluster, name: &str) -> (IpAddr, String) {
    let mut spec = ServiceSpec::new(name, PORT);
    spec.families = Families::V4;
    c.create_service(&spec, None).await.unwrap();
    let ip = c.wait_ips(name, 1, Duration::from_secs(20)).await.unwrap()[0];
    let owner = c
        .wait_answer(ip, PORT, Duration::from_secs(10))
        .await
        .unwrap();
    (ip, owner)
}

/// The node whose MAC alone answers who-has for `ip`.
fn arp_owner(c: &Cluster, ip: IpAddr) -> String {
    let answers = common::who_has(c, ip);
    assert_eq!(
        answers.len(),
        1,
        "one node answers ARP for {ip}: {answers:?}"
    );
    c.nodes
        .iter()
        .find(|n| MacAddr(n.mac.0) == answers[0])
        .map(|n| n.name.clone())
        .unwrap_or_else(|| panic!("{:?} is no node's MAC", answers[0]))
}

fn verbs(w: &[(String, String)]) -> Vec<&str> {
    w.iter().map(|(verb, _)| verb.as_str()).collect()
}

fn check_record(r: &ServiceL2Status, name: &str, node: &str, ip: IpAddr) {
    let status = r.status.as_ref().expect("status");
    assert_eq!(r.node(), Some(node));
    assert_eq!(r.interface_names(), ["eth0"], "the example advertisement's");
    assert_eq!(status.ips, [ip.to_string()]);
    assert_eq!(
        (
            status.service_name.as_str(),
            status.service_namespace.as_str()
        ),
        (name, "default")
    );
    let labels = r.metadata.labels.clone().unwrap_or_default();
    for (key, value) in [
        ("ferrolb.io/node", node),
        ("ferrolb.io/service-name", name),
        ("ferrolb.io/service-namespace", "default"),
    ] {
        assert_eq!(labels.get(key).map(String::as_str), Some(value), "{key}");
    }
    let owners = r.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].name.as_str()),
        ("Service", name)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn the_record_names_the_node_answering_arp_and_moves_with_a_failover() {
    const TEST: &str = "the_record_names_the_node_answering_arp_and_moves_with_a_failover";
    let (_g, mut c) = lab(TEST).await;
    let (ip, owner) = service(&c, "web").await;
    assert_eq!(arp_owner(&c, ip), owner);
    let r = l2status::wait_record_node(&c, "web", &owner, RECORD_LIMIT)
        .await
        .unwrap();
    check_record(&r, "web", &owner, ip);
    assert_eq!(verbs(&writes(&c)), ["create"]);

    // The owner dies: the new owner answers ARP, then takes the record
    // over in one request.
    let d = l2status::record_delay(&mut c, "web", ip, PORT, Fault::NodeDeath, RECORD_LIMIT)
        .await
        .unwrap();
    let to = d.failover.to.clone();
    assert_ne!(d.failover.from, to);
    assert_eq!(arp_owner(&c, ip), to);
    let r = l2status::record(&c, "web")
        .await
        .unwrap()
        .expect("a record");
    check_record(&r, "web", &to, ip);
    println!(
        "record names {to} {:?} after its first answer ({:?} after its decision)",
        d.after_answer, d.after_decision
    );
    // The hold (5 s) and the write, not more.
    assert!(d.after_answer < Duration::from_secs(10), "{d:?}");
    assert_eq!(verbs(&writes(&c)), ["create", "patch"]);

    // The dead node comes back; wherever the IP settles, the record
    // follows it, one write per move.
    c.restore_node(&d.failover.from).unwrap();
    let settled = failover::settle(&c, ip, PORT).await.unwrap();
    l2status::wait_record_node(&c, "web", &settled, RECORD_LIMIT)
        .await
        .unwrap();
    assert_eq!(arp_owner(&c, ip), settled);
    let moves = if settled == to { 0 } else { 1 };
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(writes(&c).len(), 2 + moves, "{:?}", writes(&c));
    assert!(c.dead_children().is_empty(), "{:?}", c.dead_children());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn restarting_a_speaker_that_owns_ips_writes_nothing() {
    let (_g, mut c) = lab("restarting_a_speaker_that_owns_ips_writes_nothing").await;
    let (ip, owner) = service(&c, "web").await;
    service(&c, "api").await;
    for name in ["web", "api"] {
        l2status::wait_record(&c, name, "a record", RECORD_LIMIT, |r| r.is_some())
            .await
            .unwrap();
    }
    let before = l2status::record(&c, "web")
        .await
        .unwrap()
        .expect("a record");
    let written = writes(&c);
    assert_eq!(verbs(&written), ["create", "create"]);

    // The owner's speaker restarts as in a rolling update: SIGTERM (it
    // leaves gossip, a peer announces meanwhile), then a new process.
    c.term_speaker(&owner).unwrap();
    let status = c.reap_speaker(&owner).unwrap();
    assert!(status.contains("exit status: 0"), "{status}");
    c.start_speaker(&owner).unwrap();
    let settled = failover::settle(&c, ip, PORT).await.unwrap();
    // Every speaker's record hold (5 s) has passed since the restart.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let after = l2status::record(&c, "web")
        .await
        .unwrap()
        .expect("a record");
    if settled == owner {
        // Today's hash election gives the IP back to the restarted node
        // within the hold: nothing changed, nothing is written.
        assert_eq!(writes(&c), written, "a restart writes nothing");
        assert_eq!(
            after.metadata.resource_version, before.metadata.resource_version,
            "the record is untouched"
        );
    } else {
        // An election that leaves the IP where it went (issue 15 part 1)
        // makes this a real move: one write, by the new owner.
        assert_eq!(after.node(), Some(settled.as_str()));
        assert_eq!(writes(&c).len(), written.len() + 1);
    }

    // A speaker that owns nothing restarts: nothing either.
    let api_owner = l2status::recorded_node(&c, "api").await.unwrap();
    let idle = c
        .nodes
        .iter()
        .map(|n| n.name.clone())
        .find(|n| *n != settled && Some(n) != api_owner.as_ref())
        .expect("a node owning neither Service");
    let written = writes(&c);
    c.term_speaker(&idle).unwrap();
    c.reap_speaker(&idle).unwrap();
    c.start_speaker(&idle).unwrap();
    c.wait_converged(Duration::from_secs(15)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(writes(&c), written, "a restart writes nothing");
    assert!(c.dead_children().is_empty(), "{:?}", c.dead_children());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn the_record_goes_when_its_service_is_no_longer_announced_or_is_deleted() {
    const TEST: &str = "the_record_goes_when_its_service_is_no_longer_announced_or_is_deleted";
    let (_g, mut c) = lab(TEST).await;
    let (ip, owner) = service(&c, "web").await;
    l2status::wait_record_node(&c, "web", &owner, RECORD_LIMIT)
        .await
        .unwrap();

    // No ready endpoint anywhere: nobody announces web, its record goes.
    c.set_endpoint_nodes("web", PORT, false, &[]).await.unwrap();
    l2status::wait_no_record(&c, "web", RECORD_LIMIT)
        .await
        .unwrap();
    // Endpoints again: announced and recorded again.
    c.set_endpoint_nodes("web", PORT, false, &["node-1", "node-2", "node-3"])
        .await
        .unwrap();
    let owner = c
        .wait_answer(ip, PORT, Duration::from_secs(10))
        .await
        .unwrap();
    l2status::wait_record_node(&c, "web", &owner, RECORD_LIMIT)
        .await
        .unwrap();

    // Deleted: the record goes with it (the janitor deletes it; a real
    // cluster's garbage collector would too, through the ownerReference).
    c.delete_service("web").await.unwrap();
    l2status::wait_no_record(&c, "web", RECORD_LIMIT)
        .await
        .unwrap();
    assert_eq!(verbs(&writes(&c)), ["create", "delete", "create", "delete"]);
    assert!(c.dead_children().is_empty(), "{:?}", c.dead_children());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and kubectl"]
async fn kubectl_get_servicel2statuses_shows_the_node_ips_and_interfaces() {
    const TEST: &str = "kubectl_get_servicel2statuses_shows_the_node_ips_and_interfaces";
    netlab::require_tool(TEST, "kubectl", &["version", "--client"]);
    let (_g, c) = lab(TEST).await;
    let (ip, owner) = service(&c, "web").await;
    l2status::wait_record_node(&c, "web", &owner, RECORD_LIMIT)
        .await
        .unwrap();
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(c.kubeconfig())
            .args(args)
            .output()
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let table = kubectl(&["get", "servicel2statuses", "-o", "wide"]);
    println!("{table}");
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "NODE",
            "IPS",
            "INTERFACES",
            "SINCE",
            "SERVICE",
            "NAME",
            "SERVICE",
            "NAMESPACE",
            "AGE"
        ]
    );
    let row: Vec<&str> = lines.next().expect("a row").split_whitespace().collect();
    assert_eq!(
        row[..4],
        [
            "web",
            owner.as_str(),
            &format!("[\"{ip}\"]"),
            "[{\"name\":\"eth0\"}]"
        ]
    );
    assert_eq!(row[5..7], ["web", "default"]);
    // MetalLB's labels find it, across namespaces and by node.
    for selector in [
        "ferrolb.io/service-name=web,ferrolb.io/service-namespace=default".to_owned(),
        format!("ferrolb.io/node={owner}"),
    ] {
        let names = kubectl(&[
            "get",
            "servicel2statuses",
            "-A",
            "-l",
            &selector,
            "-o",
            "name",
        ]);
        assert_eq!(names.trim(), "servicel2status.ferrolb.io/web", "{selector}");
    }
    // The short name, and the category with pools and advertisements.
    let short = kubectl(&["get", "l2status", "web", "-o", "name"]);
    assert_eq!(short.trim(), "servicel2status.ferrolb.io/web");
    let all = kubectl(&["get", "ferrolb", "-A", "-o", "name"]);
    assert!(all.contains("servicel2status.ferrolb.io/web"), "{all}");
}

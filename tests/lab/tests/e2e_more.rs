//! More end-to-end scenarios on the lab: `externalTrafficPolicy: Local`
//! (and a rolling update under it),
//! L2Advertisement node selectors and interfaces, IP sharing, pool exhaustion and invalid
//! pools, a request that cannot be met, and a flood of malformed frames at
//! a speaker. Root only, with the same `needs root` rule as `e2e_lab.rs`;
//! nextest runs one lab at a time.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ferrolb_lab::cluster::{Cluster, Options};
use ferrolb_lab::objects::{Families, Pod, ServiceSpec};
use ferrolb_speaker::transport::packet::PacketLink;
use ferrolb_speaker::transport::Datalink;
use ferrolb_speaker::wire::MacAddr;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use netlab::Host;
use serde_json::json;

const PORT: u16 = 8080;

async fn lab(test: &str) -> (tokio::sync::MutexGuard<'static, ()>, Cluster) {
    common::lab(test, "flbe2m").await
}

/// An IPv4-only Service spec.
fn v4_spec(name: &str, port: u16) -> ServiceSpec {
    let mut spec = ServiceSpec::new(name, port);
    spec.families = Families::V4;
    spec
}

/// Requests until `want` answers for `ip:port`; fails with the last
/// outcome after `limit`.
async fn wait_for_node(c: &Cluster, ip: IpAddr, port: u16, want: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        match c.probe(ip, port, Duration::from_millis(100)).await {
            Ok(a) if a == want => return,
            Ok(a) => last = format!("answer {a}"),
            Err(e) => last = format!("error {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{ip}:{port} not answered by {want} within {limit:?} (last: {last})");
}

/// Probes `ip:port` every 20 ms for `span`; returns the failed probes,
/// each with its error.
async fn failures_over(c: &Cluster, ip: IpAddr, port: u16, span: Duration) -> Vec<String> {
    let deadline = Instant::now() + span;
    let mut failed = Vec::new();
    while Instant::now() < deadline {
        if let Err(e) = c.probe(ip, port, Duration::from_millis(200)).await {
            failed.push(e.to_string());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    failed
}

fn mac_of(c: &Cluster, node: &str) -> MacAddr {
    MacAddr(c.node(node).unwrap().mac.0)
}

/// An ARP who-has for `ip` from the client ([`common::who_has`]).
fn who_has(c: &Cluster, ip: Ipv4Addr) -> Vec<MacAddr> {
    common::who_has(c, ip.into())
}

fn v4_of(ips: &[IpAddr]) -> Ipv4Addr {
    match ips.iter().find(|i| i.is_ipv4()) {
        Some(IpAddr::V4(a)) => *a,
        _ => panic!("no IPv4 address in {ips:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn local_policy_follows_the_ready_endpoint() {
    let (_g, mut c) = lab("local_policy_follows_the_ready_endpoint").await;
    let mut spec = v4_spec("local", PORT);
    spec.local = true;
    c.create_service(&spec, Some(&["node-3"])).await.unwrap();
    let ip = IpAddr::V4(v4_of(
        &c.wait_ips("local", 1, Duration::from_secs(20))
            .await
            .unwrap(),
    ));
    wait_for_node(&c, ip, PORT, "node-3", Duration::from_secs(15)).await;
    assert_eq!(c.announced_by(ip).as_deref(), Some("node-3"));

    // The only ready endpoint moves to node-2: so does the IP.
    c.set_endpoint_nodes("local", PORT, false, &["node-2"])
        .await
        .unwrap();
    wait_for_node(&c, ip, PORT, "node-2", Duration::from_secs(15)).await;
    assert_eq!(c.announced_by(ip).as_deref(), Some("node-2"));
    let IpAddr::V4(ip4) = ip else { unreachable!() };
    assert_eq!(who_has(&c, ip4), vec![mac_of(&c, "node-2")]);
    assert!(c.dead_children().is_empty());
}

/// A rolling update under `externalTrafficPolicy: Local`, step by step as
/// the Deployment and EndpointSlice controllers write it when the old Pod
/// goes before its replacement is ready (`maxSurge: 0`): the old Pod
/// drains (terminating, still serving) while the new one starts. kube-proxy
/// still delivers to the draining Pod, so the IP must stay announced from
/// its node until a ready Pod exists, then move to the ready one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn a_rolling_update_under_local_policy_keeps_the_ip_answered() {
    let (_g, mut c) = lab("a_rolling_update_under_local_policy_keeps_the_ip_answered").await;
    let mut spec = v4_spec("rolling", PORT);
    spec.local = true;
    c.create_service(&spec, Some(&["node-3"])).await.unwrap();
    let ip4 = v4_of(
        &c.wait_ips("rolling", 1, Duration::from_secs(20))
            .await
            .unwrap(),
    );
    let ip = IpAddr::V4(ip4);
    wait_for_node(&c, ip, PORT, "node-3", Duration::from_secs(15)).await;

    // The old Pod drains on node-3; its replacement starts on node-2.
    c.set_endpoints(
        "rolling",
        PORT,
        false,
        &[("node-3", Pod::Draining), ("node-2", Pod::Starting)],
    )
    .await
    .unwrap();
    let failed = failures_over(&c, ip, PORT, Duration::from_secs(2)).await;
    assert!(failed.is_empty(), "while draining: {failed:?}");
    assert_eq!(
        who_has(&c, ip4),
        vec![mac_of(&c, "node-3")],
        "the draining Pod's node still answers ARP"
    );

    // The replacement is ready: the IP moves there while node-3 drains.
    c.set_endpoints(
        "rolling",
        PORT,
        false,
        &[("node-3", Pod::Draining), ("node-2", Pod::Ready)],
    )
    .await
    .unwrap();
    wait_for_node(&c, ip, PORT, "node-2", Duration::from_secs(15)).await;
    assert_eq!(who_has(&c, ip4), vec![mac_of(&c, "node-2")]);

    // The old Pod is gone.
    c.set_endpoints("rolling", PORT, false, &[("node-2", Pod::Ready)])
        .await
        .unwrap();
    let failed = failures_over(&c, ip, PORT, Duration::from_secs(1)).await;
    assert!(failed.is_empty(), "after the update: {failed:?}");
    assert_eq!(who_has(&c, ip4), vec![mac_of(&c, "node-2")]);
    assert!(c.dead_children().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn an_advertisement_announces_only_from_the_nodes_it_selects() {
    let (_g, mut c) = lab("an_advertisement_announces_only_from_the_nodes_it_selects").await;
    const LABEL: &str = "ferrolb.io/announce";
    c.label_node("node-2", LABEL, Some("yes")).await.unwrap();
    c.patch_custom(
        "L2Advertisement",
        "l2advertisements",
        ferrolb_lab::topology::POOL_NAME,
        json!({"spec": {"nodeSelectors": [{"matchLabels": {LABEL: "yes"}}]}}),
    )
    .await
    .unwrap();
    // Let the speakers see the edit before the Service exists, so the first
    // election already honours the selector.
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.create_service(&v4_spec("sel", PORT), None).await.unwrap();
    let ip4 = v4_of(&c.wait_ips("sel", 1, Duration::from_secs(20)).await.unwrap());
    let ip = IpAddr::V4(ip4);
    wait_for_node(&c, ip, PORT, "node-2", Duration::from_secs(15)).await;
    assert_eq!(c.announced_by(ip).as_deref(), Some("node-2"));
    assert_eq!(who_has(&c, ip4), vec![mac_of(&c, "node-2")]);

    // No node selected any more: nobody answers a who-has, and a speaker
    // says why on the Service.
    c.label_node("node-2", LABEL, None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answers = who_has(&c, ip4);
        if answers.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{ip4} still answered by {answers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let events = c.service_events("sel").await.unwrap();
        if events
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "NotSelected")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no NotSelected Warning on sel: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(c.dead_children().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn services_sharing_a_key_share_an_ip_and_both_ports_answer() {
    let (_g, c) = lab("services_sharing_a_key_share_an_ip_and_both_ports_answer").await;
    let mut a = v4_spec("share-a", 8080);
    a.sharing_key = Some("k".into());
    let mut b = v4_spec("share-b", 8081);
    b.sharing_key = Some("k".into());
    c.create_service(&a, None).await.unwrap();
    let ip_a = c
        .wait_ips("share-a", 1, Duration::from_secs(20))
        .await
        .unwrap();
    c.create_service(&b, None).await.unwrap();
    let ip_b = c
        .wait_ips("share-b", 1, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(ip_a, ip_b, "a sharing key gives one IP");
    let ip = ip_a[0];
    let on_a = c
        .wait_answer(ip, 8080, Duration::from_secs(10))
        .await
        .unwrap();
    let on_b = c
        .wait_answer(ip, 8081, Duration::from_secs(10))
        .await
        .unwrap();
    // The election is keyed by the IP, so both Services have one owner.
    assert_eq!(on_a, on_b);
    let IpAddr::V4(ip4) = ip else {
        panic!("{ip} is not IPv4")
    };
    assert_eq!(who_has(&c, ip4), vec![mac_of(&c, &on_a)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn an_exhausted_pool_and_a_reversed_range_are_reported() {
    let (_g, mut c) = lab("an_exhausted_pool_and_a_reversed_range_are_reported").await;
    c.patch_custom(
        "IPAddressPool",
        "ipaddresspools",
        ferrolb_lab::topology::POOL_NAME,
        json!({"spec": {"addresses": ["198.51.100.10/32"]}}),
    )
    .await
    .unwrap();
    // The controller has taken the edit once the pool's status counts one
    // address.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pool = c
            .custom(
                "IPAddressPool",
                "ipaddresspools",
                ferrolb_lab::topology::POOL_NAME,
            )
            .await
            .unwrap();
        if pool["status"]["availableIPv4"] == 1 && pool["status"]["availableIPv6"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "pool lab status: {}",
            pool["status"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.create_service(&v4_spec("one", PORT), None).await.unwrap();
    let ips = c.wait_ips("one", 1, Duration::from_secs(20)).await.unwrap();
    assert_eq!(ips, vec!["198.51.100.10".parse::<IpAddr>().unwrap()]);
    c.create_service(&v4_spec("two", PORT), None).await.unwrap();
    let want = "Failed to allocate IP for \"default/two\": \
                no available IPv4 IPs in any IPAddressPool this Service may use";
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let events = c.service_events("two").await.unwrap();
        if events
            .iter()
            .any(|(t, r, n)| t == "Warning" && r == "AllocationFailed" && n == want)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no AllocationFailed {want:?} on two: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let two = c.service("two").await.unwrap();
    assert!(ferrolb_lab::objects::ingress_ips(&two).is_empty(), "{two}");

    // A range with start > end: the schema takes it, the controller refuses.
    const BAD: &str = "198.51.100.200-198.51.100.100";
    c.create_custom_object(
        json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "reversed", "namespace": ferrolb_lab::topology::SYSTEM_NS},
            "spec": {"addresses": [BAD]},
        }),
        "IPAddressPool",
        "ipaddresspools",
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let pool = c
            .custom("IPAddressPool", "ipaddresspools", "reversed")
            .await
            .unwrap();
        let valid = pool["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Valid").cloned());
        if let Some(v) = &valid {
            if v["status"] == "False" {
                assert_eq!(v["reason"], "InvalidRange", "{v}");
                let msg = v["message"].as_str().unwrap_or_default();
                assert!(msg.contains(BAD), "{msg}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "pool reversed has no Valid=False: {}",
            pool["status"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The valid pool and its Service are untouched.
    let one = c.service("one").await.unwrap();
    assert_eq!(ferrolb_lab::objects::ingress_ips(&one), ips);
    assert!(c.dead_children().is_empty());
}

/// Sends `count` garbage frames to `dst` from the client's eth0: mostly
/// ARP- and IPv6-typed frames with random, often truncated, payloads, some
/// with random EtherTypes and random or broadcast destinations.
fn flood(client: &netlab::Host, dst: MacAddr, count: usize) -> usize {
    client
        .run_in(move || {
            let link = PacketLink::open("eth0").unwrap();
            let mut sent = 0;
            for i in 0..count {
                let len = 14 + (rand::random::<u16>() % 120) as usize;
                let mut frame: Vec<u8> = (0..len).map(|_| rand::random::<u8>()).collect();
                let dst = match i % 10 {
                    0 => [0xff; 6],
                    1 => rand::random::<[u8; 6]>(),
                    _ => dst.0,
                };
                frame[..6].copy_from_slice(&dst);
                frame[6] &= 0xfe; // a unicast source
                let ethertype: [u8; 2] = match i % 4 {
                    0 | 1 => [0x08, 0x06],
                    2 => [0x86, 0xdd],
                    _ => frame[12..14].try_into().unwrap(),
                };
                frame[12..14].copy_from_slice(&ethertype);
                if link.send(&frame).is_ok() {
                    sent += 1;
                }
            }
            sent
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn a_flood_of_malformed_frames_does_not_stop_the_owner() {
    let (_g, mut c) = lab("a_flood_of_malformed_frames_does_not_stop_the_owner").await;
    c.create_service(&v4_spec("web", PORT), None).await.unwrap();
    let ip4 = v4_of(&c.wait_ips("web", 1, Duration::from_secs(20)).await.unwrap());
    let ip = IpAddr::V4(ip4);
    let owner = c
        .wait_answer(ip, PORT, Duration::from_secs(10))
        .await
        .unwrap();
    let owner_mac = mac_of(&c, &owner);
    let pid = c.speaker_pid(&owner).unwrap();

    let client = c.client.clone();
    let sender = tokio::task::spawn_blocking(move || flood(&client, owner_mac, 5_000));
    // Keep requesting while the flood runs.
    let mut answered = 0;
    while !sender.is_finished() {
        if let Ok(a) = c.probe(ip, PORT, Duration::from_millis(200)).await {
            assert_eq!(a, owner, "the IP moved during the flood");
            answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent = sender.await.unwrap();
    assert!(sent > 4_000, "only {sent} frames sent");
    eprintln!("{sent} garbage frames sent, {answered} answers meanwhile");

    // Afterwards: the same speaker process is alive, answers a who-has,
    // and the client still gets answers from it.
    assert!(c.dead_children().is_empty());
    assert_eq!(c.speaker_pid(&owner), Some(pid));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answers = who_has(&c, ip4);
        if answers == vec![owner_mac] {
            break;
        }
        assert!(Instant::now() < deadline, "who-has answers {answers:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for_node(&c, ip, PORT, &owner, Duration::from_secs(10)).await;
    // The garbage was seen and counted, not silently swallowed (the
    // speaker publishes its transport counters every 5 s).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let malformed = c.speaker_metric_with(
            &owner,
            "ferrolb_speaker_frames_dropped_total",
            "reason=\"malformed\"",
        );
        if malformed.is_some_and(|m| m > 0.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no malformed frames counted: {malformed:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(c.dead_children().is_empty());
}

/// Waits until `host`'s who-has for `ip` gets exactly the replies `want`.
async fn wait_who_has(host: &Host, sender: Ipv4Addr, ip: Ipv4Addr, want: &[MacAddr]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = common::who_has_from(host, sender.into(), ip.into());
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "who-has {ip} from {}: replies {got:?}, want {want:?}",
            host.name()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn an_advertisement_announces_only_on_the_interfaces_it_names() {
    const TEST: &str = "an_advertisement_announces_only_on_the_interfaces_it_names";
    let opts = Options {
        prefix: "flbe2m".into(),
        second_lan: true,
        ..Options::default()
    };
    let (_g, c) = common::lab_with(TEST, opts).await;
    let client2 = c.client2.clone().expect("a second LAN");
    let (lan1, lan2) = (
        Ipv4Addr::new(192, 0, 2, 100),
        Ipv4Addr::new(203, 0, 113, 100),
    );
    let ad = ferrolb_lab::topology::POOL_NAME;
    c.patch_custom(
        "L2Advertisement",
        "l2advertisements",
        ad,
        json!({"spec": {"interfaces": ["eth1"]}}),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.create_service(&v4_spec("if", PORT), None).await.unwrap();
    let ip4 = v4_of(&c.wait_ips("if", 1, Duration::from_secs(20)).await.unwrap());

    // The owner answers on lan2 from eth1's MAC, and traffic flows there.
    let deadline = Instant::now() + Duration::from_secs(20); // nodeAssigned waits 5 s (ASSIGNED_HOLD)
    let owner = loop {
        let events = c.node_assigned_events("if").await.unwrap();
        if let Some((node, msg)) = events.last() {
            assert!(msg.ends_with("on interface \"eth1\""), "{msg}");
            break node.clone();
        }
        assert!(Instant::now() < deadline, "no nodeAssigned Event for if");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let owner_eth1 = MacAddr(c.node(&owner).unwrap().host.mac_of("eth1").unwrap().0);
    wait_who_has(&client2, lan2, ip4, &[owner_eth1]).await;
    let addr = std::net::SocketAddr::new(IpAddr::V4(ip4), PORT);
    let answer = client2
        .run_in(move || ferrolb_lab::client::probe_blocking(addr, Duration::from_secs(2)))
        .unwrap()
        .unwrap();
    assert_eq!(answer, owner);
    // Nobody answers on the first LAN, where the advertisement is not.
    assert_eq!(who_has(&c, ip4), vec![]);

    // Back to eth0: the first LAN gets the answers, lan2 none.
    c.patch_custom(
        "L2Advertisement",
        "l2advertisements",
        ad,
        json!({"spec": {"interfaces": ["eth0"]}}),
    )
    .await
    .unwrap();
    wait_who_has(&c.client, lan1, ip4, &[mac_of(&c, &owner)]).await;
    wait_who_has(&client2, lan2, ip4, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn a_request_that_cannot_be_met_keeps_the_working_ip_until_it_can() {
    let (_g, mut c) = lab("a_request_that_cannot_be_met_keeps_the_working_ip_until_it_can").await;
    let limit = Duration::from_secs(20);
    c.create_service(&v4_spec("web", PORT), None).await.unwrap();
    let old = IpAddr::V4(v4_of(&c.wait_ips("web", 1, limit).await.unwrap()));
    c.create_service(&v4_spec("holder", PORT), None)
        .await
        .unwrap();
    let taken = IpAddr::V4(v4_of(&c.wait_ips("holder", 1, limit).await.unwrap()));
    assert_ne!(old, taken);
    c.wait_answer(old, PORT, limit).await.unwrap();

    // web asks for holder's address: it cannot have it, keeps its own and
    // says so once.
    let services: Api<Service> = Api::namespaced(c.kube(), "default");
    let patch =
        json!({"metadata": {"annotations": {"ferrolb.io/loadBalancerIPs": taken.to_string()}}});
    services
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let want = format!(
        "Cannot give \"default/web\" requested IP [\"{taken}\"]: IP {taken} is already used by \
         default/holder and sharing is not allowed: default/holder has no sharing key; it keeps \
         IP [\"{old}\"] from pool \"{}\" until the request can be met",
        ferrolb_lab::topology::POOL_NAME
    );
    let deadline = Instant::now() + limit;
    loop {
        let events = c.service_events("web").await.unwrap();
        if events
            .iter()
            .any(|(t, r, n)| t == "Warning" && r == "RequestNotSatisfiable" && *n == want)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no RequestNotSatisfiable {want:?} on web: {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The client keeps reaching web on its old address the whole time.
    for _ in 0..10 {
        c.probe(old, PORT, Duration::from_secs(1))
            .await
            .expect("web still answers on its old IP");
        let svc = c.service("web").await.unwrap();
        assert_eq!(ferrolb_lab::objects::ingress_ips(&svc), vec![old]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // holder goes: web moves to the address it asked for, which answers,
    // and its old one is released (nobody answers a who-has for it).
    c.delete_service("holder").await.unwrap();
    let deadline = Instant::now() + limit;
    loop {
        let svc = c.service("web").await.unwrap();
        if ferrolb_lab::objects::ingress_ips(&svc) == vec![taken] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "web did not move: {}",
            svc["status"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.wait_answer(taken, PORT, limit).await.unwrap();
    let IpAddr::V4(old4) = old else {
        unreachable!()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answers = who_has(&c, old4);
        if answers.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{old4} still answered by {answers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let warnings = c
        .service_events("web")
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, r, _)| r == "RequestNotSatisfiable")
        .count();
    assert_eq!(warnings, 1);
    assert!(c.dead_children().is_empty());
}

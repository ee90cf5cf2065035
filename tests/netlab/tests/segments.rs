//! Root tests for labs with more than one L2 segment: isolation between
//! bridges, hosts with an interface on each, and teardown.

mod common;

use std::{
    net::IpAddr,
    process::Command,
    time::{Duration, Instant},
};

use common::{addr, assert_echoes, client, echoes, Echo, ECHO_ATTEMPTS, PORT};
use netlab::{list_namespaces, Host, Lab, Segment};

/// Attempts for traffic that must not get through; with 200 ms each this
/// stays well under [`QUIET_WITHIN`].
const NO_ECHO_ATTEMPTS: u32 = 3;
const QUIET_WITHIN: Duration = Duration::from_secs(2);

/// Asserts that nothing comes back from `to`, and quickly.
fn assert_no_echo(from: &Host, ip: &str, to: &str) {
    let socket = client(from, ip);
    let started = Instant::now();
    assert!(
        !echoes(&socket, addr(to, PORT), NO_ECHO_ATTEMPTS),
        "{ip} reached {to} across segments"
    );
    assert!(started.elapsed() < QUIET_WITHIN, "{:?}", started.elapsed());
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A lab with segment `lan2` and host `n`: `eth0` on br0, `eth1` on lan2.
fn dual_homed(test: &str) -> (Lab, Segment, Host) {
    let mut lab = Lab::for_test(test);
    let lan2 = lab.add_segment("lan2").unwrap();
    let n = lab.add_host("n").unwrap();
    lab.attach(&n, &lan2, "eth1").unwrap();
    (lab, lan2, n)
}

#[test]
#[ignore = "needs root"]
fn hosts_on_different_segments_cannot_reach_each_other() {
    let mut lab = Lab::for_test("hosts_on_different_segments_cannot_reach_each_other");
    let lan2 = lab.add_segment("lan2").unwrap();
    // Same subnets on both segments: only L2 could tell them apart.
    let a = lab.add_host("a").unwrap();
    let c = lab.add_host_on(&lan2, "c").unwrap();
    let d = lab.add_host_on(&lan2, "d").unwrap();
    for (host, v4, v6) in [
        (&a, "203.0.113.11", "2001:db8:2::11"),
        (&c, "203.0.113.13", "2001:db8:2::13"),
        (&d, "203.0.113.14", "2001:db8:2::14"),
    ] {
        host.add_addr(&format!("{v4}/24")).unwrap();
        host.add_addr(&format!("{v6}/64")).unwrap();
    }
    let _echo4 = Echo::start(&c, addr("203.0.113.13", PORT));
    let _echo6 = Echo::start(&c, addr("2001:db8:2::13", PORT));

    // C answers on its own segment, so the silence below is the bridges'.
    assert_echoes(
        &[&d, &c],
        &client(&d, "203.0.113.14"),
        addr("203.0.113.13", PORT),
        ECHO_ATTEMPTS,
    );
    assert_echoes(
        &[&d, &c],
        &client(&d, "2001:db8:2::14"),
        addr("2001:db8:2::13", PORT),
        ECHO_ATTEMPTS,
    );
    assert_no_echo(&a, "203.0.113.11", "203.0.113.13");
    assert_no_echo(&a, "2001:db8:2::11", "2001:db8:2::13");
    // Neither ARP nor NDP resolved C from br0.
    for target in ["203.0.113.13", "2001:db8:2::13"] {
        let entry = a.neighbour(ip(target)).unwrap();
        assert!(
            entry.as_ref().is_none_or(|n| n.lladdr.is_none()),
            "{target}: {entry:?}"
        );
    }
    assert_eq!(c.neighbour(ip("203.0.113.11")).unwrap(), None);
}

#[test]
#[ignore = "needs root"]
fn a_host_attached_to_two_segments_reaches_a_peer_on_each() {
    let (mut lab, lan2, n) = dual_homed("a_host_attached_to_two_segments_reaches_a_peer_on_each");
    let a = lab.add_host("a").unwrap();
    let c = lab.add_host_on(&lan2, "c").unwrap();
    n.add_addr("198.51.100.10/24").unwrap();
    n.add_addr("2001:db8:1::10/64").unwrap();
    n.add_addr_dev("eth1", "203.0.113.10/24").unwrap();
    n.add_addr_dev("eth1", "2001:db8:2::10/64").unwrap();
    for (host, v4, v6) in [
        (&a, "198.51.100.11/24", "2001:db8:1::11/64"),
        (&c, "203.0.113.13/24", "2001:db8:2::13/64"),
    ] {
        host.add_addr(v4).unwrap();
        host.add_addr(v6).unwrap();
    }
    let peers = [
        (&a, "198.51.100.10", "198.51.100.11"),
        (&a, "2001:db8:1::10", "2001:db8:1::11"),
        (&c, "203.0.113.10", "203.0.113.13"),
        (&c, "2001:db8:2::10", "2001:db8:2::13"),
    ];
    let _echos: Vec<Echo> = peers
        .iter()
        .map(|(peer, _, to)| Echo::start(peer, addr(to, PORT)))
        .collect();
    for (peer, from, to) in peers {
        assert_echoes(
            &[&n, peer],
            &client(&n, from),
            addr(to, PORT),
            ECHO_ATTEMPTS,
        );
    }

    // Each peer learned the MAC of the interface on its own segment.
    let (eth0, eth1) = (n.mac().unwrap(), n.mac_of("eth1").unwrap());
    assert_eq!(n.mac_of("eth0").unwrap(), eth0);
    assert_ne!(eth0, eth1);
    for (peer, from, mac) in [
        (&a, "198.51.100.10", eth0),
        (&a, "2001:db8:1::10", eth0),
        (&c, "203.0.113.10", eth1),
        (&c, "2001:db8:2::10", eth1),
    ] {
        let entry = peer.neighbour(ip(from)).unwrap().expect("an entry for n");
        assert_eq!(entry.lladdr, Some(mac), "{from}");
    }
    let out = Command::new("ip")
        .args(["-n", lab.switch(), "-o", "link", "show", "dev", "v1-n"])
        .output()
        .unwrap();
    let port = String::from_utf8_lossy(&out.stdout);
    assert!(port.contains("master lan2"), "{port}");

    // Cutting eth1 cuts lan2 only.
    n.link_down_dev("eth1").unwrap();
    assert_no_echo(&n, "203.0.113.10", "203.0.113.13");
    assert_echoes(
        &[&n, &a],
        &client(&n, "198.51.100.10"),
        addr("198.51.100.11", PORT),
        ECHO_ATTEMPTS,
    );
    n.link_up_dev("eth1").unwrap();
    assert_echoes(
        &[&n, &c],
        &client(&n, "203.0.113.10"),
        addr("203.0.113.13", PORT),
        ECHO_ATTEMPTS,
    );
}

#[test]
#[ignore = "needs root"]
fn tearing_down_a_lab_with_two_segments_leaves_no_namespaces() {
    let (mut lab, _, n) = dual_homed("tearing_down_a_lab_with_two_segments_leaves_no_namespaces");
    let lan3 = lab.add_segment("lan3").unwrap();
    lab.attach(&n, &lan3, "eth2").unwrap();
    lab.add_host_on(&lan3, "c").unwrap();
    assert_eq!(lan3.name(), "lan3");
    let names = lab.namespaces().to_vec();
    assert_eq!(names.len(), 3);
    let links = Command::new("ip")
        .args(["-n", lab.switch(), "-o", "link", "show"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    for link in ["br0:", "lan2:", "lan3:", "v-n@", "v1-n@", "v2-n@", "v-c@"] {
        assert!(links.contains(link), "{link} missing from\n{links}");
    }

    lab.teardown().unwrap();
    let listed = list_namespaces().unwrap();
    assert!(
        names.iter().all(|n| !listed.contains(n)),
        "left behind: {listed:?}"
    );
}

#[test]
#[ignore = "needs root"]
fn bad_segments_and_attachments_are_rejected_before_anything_is_created() {
    let (mut lab, lan2, n) =
        dual_homed("bad_segments_and_attachments_are_rejected_before_anything_is_created");
    for bad in ["br0", "lan2", "Lan3", "lo", "lan-3", "much-too-long-name"] {
        assert!(lab.add_segment(bad).is_err(), "{bad}");
    }
    // eth1 again, and lan1 would also be switch port v1-n.
    for bad in ["eth1", "lan1", "uplink", "Eth2"] {
        assert!(lab.attach(&n, &lan2, bad).is_err(), "{bad}");
    }

    let Ok(mut other) = Lab::new() else {
        panic!("a second lab could not be built");
    };
    let stranger = other.add_host("n").unwrap();
    let foreign = other.add_segment("lan2").unwrap();
    assert!(lab.attach(&stranger, &lan2, "eth2").is_err());
    assert!(lab.attach(&n, &foreign, "eth2").is_err());
    assert!(lab.add_host_on(&foreign, "c").is_err());
    assert_eq!(lab.namespaces().len(), 2);
    assert_eq!(other.namespaces().len(), 2);
}

//! Root tests: real namespaces, a real bridge, real packets.
//!
//! Each test builds its own lab (nextest runs them as separate processes,
//! `cargo test` as threads of one; both are fine since names carry pid and a
//! per-process counter) and bounds every wait.

mod common;

use std::{
    net::{IpAddr, UdpSocket},
    panic::{catch_unwind, AssertUnwindSafe},
    process::Command,
    thread,
    time::{Duration, Instant},
};

use common::{addr, assert_echoes, client, echoes, Echo, ECHO_ATTEMPTS, PORT};
use netlab::{list_namespaces, ChildGuard, Host, Lab};

const A_V4: &str = "198.51.100.11";
const B_V4: &str = "198.51.100.12";
const A_V6: &str = "2001:db8:100::11";
const B_V6: &str = "2001:db8:100::12";

fn two_hosts(test: &str) -> (Lab, Host, Host) {
    let mut lab = Lab::for_test(test);
    let a = lab.add_host("a").unwrap();
    let b = lab.add_host("b").unwrap();
    a.add_addr(&format!("{A_V4}/24")).unwrap();
    b.add_addr(&format!("{B_V4}/24")).unwrap();
    a.add_addr(&format!("{A_V6}/64")).unwrap();
    b.add_addr(&format!("{B_V6}/64")).unwrap();
    (lab, a, b)
}

#[test]
#[ignore = "needs root"]
fn host_a_reaches_host_b_over_udp_on_ipv4() {
    let (_lab, a, b) = two_hosts("host_a_reaches_host_b_over_udp_on_ipv4");
    let _echo = Echo::start(&b, addr(B_V4, PORT));
    assert_echoes(
        &[&a, &b],
        &client(&a, A_V4),
        addr(B_V4, PORT),
        ECHO_ATTEMPTS,
    );
}

#[test]
#[ignore = "needs root"]
fn host_a_reaches_host_b_over_udp_on_ipv6() {
    let (_lab, a, b) = two_hosts("host_a_reaches_host_b_over_udp_on_ipv6");
    let _echo = Echo::start(&b, addr(B_V6, PORT));
    assert_echoes(
        &[&a, &b],
        &client(&a, A_V6),
        addr(B_V6, PORT),
        ECHO_ATTEMPTS,
    );
}

#[test]
#[ignore = "needs root"]
fn a_closure_thread_inside_a_host_serves_udp() {
    let (_lab, a, b) = two_hosts("a_closure_thread_inside_a_host_serves_udp");
    // Here the socket is created on the namespace thread itself.
    let server = b
        .spawn_in(|| {
            let s = UdpSocket::bind(addr(B_V4, PORT)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = s.recv_from(&mut buf).unwrap();
            s.send_to(&buf[..n], from).unwrap();
            from.ip()
        })
        .unwrap();
    assert_echoes(
        &[&a, &b],
        &client(&a, A_V4),
        addr(B_V4, PORT),
        ECHO_ATTEMPTS,
    );
    assert_eq!(server.join(), A_V4.parse::<IpAddr>().unwrap());
}

#[test]
#[ignore = "needs root"]
fn traffic_stops_within_a_bounded_time_when_a_link_or_port_goes_down() {
    let (_lab, a, b) =
        two_hosts("traffic_stops_within_a_bounded_time_when_a_link_or_port_goes_down");
    let _echo = Echo::start(&b, addr(B_V4, PORT));
    let socket = client(&a, A_V4);
    let to = addr(B_V4, PORT);
    assert_echoes(&[&a, &b], &socket, to, ECHO_ATTEMPTS);

    b.link_down().unwrap();
    let started = Instant::now();
    assert!(!echoes(&socket, to, 3), "echo through a downed host link");
    assert!(started.elapsed() < Duration::from_secs(2));
    b.link_up().unwrap();
    assert_echoes(&[&a, &b], &socket, to, ECHO_ATTEMPTS);

    b.port_down().unwrap();
    let started = Instant::now();
    assert!(!echoes(&socket, to, 3), "echo through a downed switch port");
    assert!(started.elapsed() < Duration::from_secs(2));
    b.port_up().unwrap();
    assert_echoes(&[&a, &b], &socket, to, ECHO_ATTEMPTS);
}

#[test]
#[ignore = "needs root"]
fn a_blocked_port_stops_traffic_while_the_host_keeps_its_carrier() {
    let (_lab, a, b) = two_hosts("a_blocked_port_stops_traffic_while_the_host_keeps_its_carrier");
    let _echo = Echo::start(&b, addr(B_V4, PORT));
    let socket = client(&a, A_V4);
    let to = addr(B_V4, PORT);
    assert_echoes(&[&a, &b], &socket, to, ECHO_ATTEMPTS);

    b.port_block().unwrap();
    let started = Instant::now();
    assert!(
        !echoes(&socket, to, 3),
        "echo through a blocked switch port"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // Unlike port_down, the host sees no carrier loss.
    let link = b
        .exec("ip", &["-o", "link", "show", "dev", "eth0"])
        .unwrap();
    assert!(link.contains("LOWER_UP"), "{link}");
    b.port_unblock().unwrap();
    assert_echoes(&[&a, &b], &socket, to, ECHO_ATTEMPTS);
}

#[test]
#[ignore = "needs root"]
fn the_neighbour_table_shows_the_peers_mac_after_traffic() {
    let (_lab, a, b) = two_hosts("the_neighbour_table_shows_the_peers_mac_after_traffic");
    let b_v4: IpAddr = B_V4.parse().unwrap();
    let b_v6: IpAddr = B_V6.parse().unwrap();
    assert_eq!(a.neighbour(b_v4).unwrap(), None);

    let _echo4 = Echo::start(&b, addr(B_V4, PORT));
    let _echo6 = Echo::start(&b, addr(B_V6, PORT));
    assert_echoes(
        &[&a, &b],
        &client(&a, A_V4),
        addr(B_V4, PORT),
        ECHO_ATTEMPTS,
    );
    assert_echoes(
        &[&a, &b],
        &client(&a, A_V6),
        addr(B_V6, PORT),
        ECHO_ATTEMPTS,
    );

    let mac_b = b.mac().unwrap();
    assert_ne!(mac_b, a.mac().unwrap());
    // `ip netns exec` remounts /sys, so this is the namespace's own view.
    let sys_index = b.exec("cat", &["/sys/class/net/eth0/ifindex"]).unwrap();
    assert_eq!(sys_index.trim(), b.ifindex().unwrap().to_string());
    for ip in [b_v4, b_v6] {
        let entry = a.neighbour(ip).unwrap().expect("an entry for B");
        assert_eq!(entry.lladdr, Some(mac_b), "{ip}");
        assert!(
            entry.has_state("REACHABLE") || entry.has_state("DELAY"),
            "{entry:?}"
        );
    }

    a.flush_neighbours().unwrap();
    let left = a.neighbour(b_v4).unwrap();
    assert!(left.as_ref().is_none_or(|n| n.lladdr.is_none()), "{left:?}");
}

#[test]
#[ignore = "needs root"]
fn sysctls_and_vips_stay_inside_their_namespace() {
    let (_lab, a, b) = two_hosts("sysctls_and_vips_stay_inside_their_namespace");
    let key = "net.ipv4.conf.all.arp_ignore";
    let root_before = std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/arp_ignore").unwrap();
    b.sysctl(key, "1").unwrap();
    assert_eq!(b.sysctl_value(key).unwrap(), "1");
    assert_eq!(a.sysctl_value(key).unwrap(), "0");
    // Read back through a separate process too, not only our own threads.
    assert_eq!(
        b.exec("cat", &["/proc/sys/net/ipv4/conf/all/arp_ignore"])
            .unwrap()
            .trim(),
        "1"
    );
    let root_after = std::fs::read_to_string("/proc/sys/net/ipv4/conf/all/arp_ignore").unwrap();
    assert_eq!(root_before, root_after);
    assert_eq!(
        b.sysctl_value("net.ipv6.conf.eth0.accept_dad").unwrap(),
        "0"
    );

    // A VIP on B's lo, in A's on-link subnet: with arp_ignore=1 B would not
    // answer ARP for it on eth0, so put it back to 0 (the kernel default).
    b.sysctl(key, "0").unwrap();
    let vip = "198.51.100.100";
    b.add_vip(vip.parse().unwrap()).unwrap();
    let _echo = Echo::start(&b, addr(vip, PORT));
    assert_echoes(&[&a, &b], &client(&a, A_V4), addr(vip, PORT), ECHO_ATTEMPTS);
    b.del_vip(vip.parse().unwrap()).unwrap();
}

#[test]
#[ignore = "needs root"]
fn thousands_of_vips_change_in_one_batch() {
    let mut lab = Lab::for_test("thousands_of_vips_change_in_one_batch");
    let h = lab.add_host("h").unwrap();
    let lo = || {
        h.exec("ip", &["-o", "address", "show", "dev", "lo"])
            .unwrap()
    };
    let v6: Vec<IpAddr> = (0x1000u16..0x1000 + 2000)
        .map(|k| IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, k)))
        .collect();
    let v4: IpAddr = "198.51.100.7".parse().unwrap();
    let mut all = v6.clone();
    all.push(v4);
    h.change_vips(&all, &[]).unwrap();
    let out = lo();
    assert_eq!(out.matches("2001:db8:0:1::").count(), 2000);
    assert!(out.contains(" 198.51.100.7/32 "), "{out}");
    // Adding again is not an error; removing some, and some twice, neither.
    h.change_vips(&all[..10], &v6[1000..]).unwrap();
    h.change_vips(&[], &v6[1000..]).unwrap();
    let out = lo();
    assert_eq!(out.matches("2001:db8:0:1::").count(), 1000);
    assert!(out.contains(" 2001:db8:0:1::1000/128 "), "{out}");
    assert!(!out.contains(" 2001:db8:0:1::15dc/128 "), "{out}");
}

#[test]
#[ignore = "needs root"]
fn dropping_the_lab_removes_every_namespace_and_process() {
    let mut lab = Lab::for_test("dropping_the_lab_removes_every_namespace_and_process");
    let a = lab.add_host("a").unwrap();
    lab.add_host("b").unwrap();
    let names = lab.namespaces().to_vec();
    assert_eq!(names.len(), 3);
    let listed = list_namespaces().unwrap();
    assert!(
        names.iter().all(|n| listed.contains(n)),
        "{names:?} not in {listed:?}"
    );

    // Deliberately unguarded: the lab must kill it.
    let mut sleeper = a.command("sleep").arg("30").spawn().unwrap();
    drop(lab);

    let listed = list_namespaces().unwrap();
    assert!(
        names.iter().all(|n| !listed.contains(n)),
        "left behind: {listed:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while sleeper.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "process in the namespace survived the lab"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs root"]
fn a_panic_in_the_test_body_still_removes_the_namespaces() {
    netlab::require_root("a_panic_in_the_test_body_still_removes_the_namespaces");
    let mut names = Vec::new();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut lab = Lab::new().unwrap();
        lab.add_host("a").unwrap();
        names = lab.namespaces().to_vec();
        panic!("deliberate failure inside the test body");
    }));
    assert!(outcome.is_err());
    assert_eq!(names.len(), 2);
    let listed = list_namespaces().unwrap();
    assert!(
        names.iter().all(|n| !listed.contains(n)),
        "left behind: {listed:?}"
    );
}

/// Deletes a hand-made namespace even if the test fails.
struct NsGuard(String);

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .output();
    }
}

#[test]
#[ignore = "needs root"]
fn sweep_removes_namespaces_whose_owner_pid_is_dead() {
    netlab::require_root("sweep_removes_namespaces_whose_owner_pid_is_dead");
    // Our own prefix, so labs of concurrent tests never sweep it first.
    let prefix = "flbsweep";
    let mut dead = Command::new("true").spawn().unwrap();
    dead.wait().unwrap();
    let stale = NsGuard(format!("{prefix}-{}-0-sw", dead.id()));
    let alive = NsGuard(format!("{prefix}-{}-0-sw", std::process::id()));
    for ns in [&stale.0, &alive.0] {
        let out = Command::new("ip")
            .args(["netns", "add", ns])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // What a crashed run leaves: a process still inside.
    let mut leftover =
        ChildGuard::spawn(Command::new("ip").args(["netns", "exec", &stale.0, "sleep", "30"]))
            .unwrap();
    thread::sleep(Duration::from_millis(50));

    let removed = netlab::sweep_stale(prefix).unwrap();
    // Not `removed == [stale]`: a concurrent run of this test may sweep ours
    // first (and we theirs); what matters is that it is gone.
    assert!(!removed.contains(&alive.0), "{removed:?}");
    let listed = list_namespaces().unwrap();
    assert!(!listed.contains(&stale.0));
    assert!(
        listed.contains(&alive.0),
        "a live owner's namespace was swept"
    );
    assert!(
        leftover
            .wait_timeout(Duration::from_secs(2))
            .unwrap()
            .is_some(),
        "the process inside the stale namespace survived"
    );
}

#[test]
#[ignore = "needs root"]
fn bad_host_names_are_rejected_before_anything_is_created() {
    let mut lab = Lab::for_test("bad_host_names_are_rejected_before_anything_is_created");
    lab.add_host("a").unwrap();
    for bad in ["a", "sw", "far-too-long-name", "A"] {
        assert!(lab.add_host(bad).is_err(), "{bad}");
    }
    assert_eq!(lab.namespaces().len(), 2);
}

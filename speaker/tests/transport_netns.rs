//! Real raw sockets in network namespaces (netlab): two speakers and a
//! client on one bridge. Needs root, so the tests are
//! `#[ignore = "needs root"]` (docs/testing.md). Every namespace is
//! deleted when the lab drops, panics included; every wait is bounded.

use ferrolb_speaker::announcer::Config;
use ferrolb_speaker::transport::packet::PacketLink;
use ferrolb_speaker::transport::run::Running;
use ferrolb_speaker::transport::Datalink;
use ferrolb_speaker::wire::{ArpFrame, ArpOperation, ArpRepr, MacAddr};
use netlab::{Host, Lab};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

type TestResult = Result<(), Box<dyn std::error::Error>>;

const CLIENT_V4: &str = "198.51.100.2/24";
const VIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 100);

struct Speakers {
    a: Running,
    b: Running,
    mac_a: MacAddr,
    mac_b: MacAddr,
}

/// Starts a speaker loop over a raw socket opened inside each host.
fn speakers(a: &Host, b: &Host) -> Result<Speakers, Box<dyn std::error::Error>> {
    let start = |host: &Host| -> Result<(Running, MacAddr), Box<dyn std::error::Error>> {
        let link = host.run_in(|| PacketLink::open("eth0"))??;
        let mac = link.info().mac;
        assert_eq!(mac.0, host.mac()?.0, "the link reports the interface MAC");
        let link: Arc<dyn Datalink> = Arc::new(link);
        Ok((Running::spawn(vec![link], Config::default())?, mac))
    };
    let (a, mac_a) = start(a)?;
    let (b, mac_b) = start(b)?;
    Ok(Speakers { a, b, mac_a, mac_b })
}

fn own(speaker: &Running, ips: &[IpAddr]) {
    speaker.set_desired(ips.iter().map(|ip| (*ip, "eth0".to_string())).collect());
}

/// Polls `check` every 50 ms for at most `limit`.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        sleep(Duration::from_millis(50));
    }
}

/// The MAC the client's kernel has for `ip`, if resolved.
fn kernel_mac(client: &Host, ip: IpAddr) -> Option<[u8; 6]> {
    client.neighbour(ip).ok().flatten()?.lladdr.map(|m| m.0)
}

/// Makes the client's kernel resolve `ip`: a UDP datagram to it (nobody
/// listens; only the neighbour resolution matters).
fn poke(client: &Host, ip: IpAddr) -> Result<(), Box<dyn std::error::Error>> {
    client.run_in(move || {
        let any: SocketAddr = match ip {
            IpAddr::V4(_) => "0.0.0.0:0".parse().unwrap(),
            IpAddr::V6(_) => "[::]:0".parse().unwrap(),
        };
        let socket = UdpSocket::bind(any)?;
        socket.send_to(b"ferrolb", SocketAddr::new(ip, 9))
    })??;
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn arp_in_namespaces_is_answered_once_resolves_in_the_kernel_and_follows_a_takeover() -> TestResult
{
    let mut lab = Lab::for_test("arp_in_namespaces");
    let client = lab.add_host("client")?;
    let (host_a, host_b) = (lab.add_host("spk-a")?, lab.add_host("spk-b")?);
    client.add_addr(CLIENT_V4)?;
    host_a.add_addr("198.51.100.11/24")?;
    host_b.add_addr("198.51.100.12/24")?;
    let s = speakers(&host_a, &host_b)?;
    own(&s.a, &[VIP.into()]);
    own(&s.b, &[]);

    // A who-has from the client's own raw socket gets one reply, from A.
    let raw = client.run_in(|| PacketLink::open("eth0"))??;
    let me = raw.info().mac;
    let who_has = ArpFrame::new(
        MacAddr::BROADCAST,
        me,
        ArpRepr {
            operation: ArpOperation::Request,
            sender_mac: me,
            sender_ip: Ipv4Addr::new(198, 51, 100, 2),
            target_mac: MacAddr::ZERO,
            target_ip: VIP,
        },
    );
    raw.send(&who_has.to_bytes())?;
    let until = Instant::now() + Duration::from_millis(700);
    let mut replies = vec![];
    while Instant::now() < until {
        let Some(frame) = raw.recv()? else { continue };
        let Ok(arp) = ArpFrame::parse(&frame) else {
            continue;
        };
        if arp.arp.operation == ArpOperation::Reply
            && !arp.arp.is_gratuitous()
            && arp.arp.target_mac == me
        {
            replies.push(arp.arp.sender_mac);
        }
    }
    assert_eq!(replies, [s.mac_a], "exactly one reply, from the owner");

    // The client's kernel resolves the VIP to A's MAC.
    poke(&client, VIP.into())?;
    assert!(
        eventually(Duration::from_secs(3), || kernel_mac(&client, VIP.into())
            == Some(s.mac_a.0)),
        "kernel did not resolve the VIP to A:\n{}",
        client.dump()
    );

    // Takeover: the client sees B's gratuitous ARP, and its kernel follows.
    own(&s.a, &[]);
    own(&s.b, &[VIP.into()]);
    let until = Instant::now() + Duration::from_millis(1500);
    let mut garp_from_b = false;
    while Instant::now() < until && !garp_from_b {
        let Some(frame) = raw.recv()? else { continue };
        if let Ok(arp) = ArpFrame::parse(&frame) {
            garp_from_b = arp.arp.is_gratuitous()
                && arp.arp.sender_ip == VIP
                && arp.arp.sender_mac == s.mac_b;
        }
    }
    assert!(garp_from_b, "no gratuitous ARP from the new owner");
    assert!(
        eventually(Duration::from_secs(4), || kernel_mac(&client, VIP.into())
            == Some(s.mac_b.0)),
        "kernel kept the old owner:\n{}",
        client.dump()
    );
    assert_eq!(s.a.stats().send_errors + s.b.stats().send_errors, 0);
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn ndp_in_namespaces_resolves_the_vip_in_the_kernel_and_follows_a_takeover() -> TestResult {
    let mut lab = Lab::for_test("ndp_in_namespaces");
    let client = lab.add_host("client")?;
    let (host_a, host_b) = (lab.add_host("spk-a")?, lab.add_host("spk-b")?);
    client.add_addr("2001:db8::2/64")?;
    host_a.add_addr("2001:db8::11/64")?;
    host_b.add_addr("2001:db8::12/64")?;
    let vip: IpAddr = "2001:db8::100".parse()?;
    let s = speakers(&host_a, &host_b)?;
    own(&s.a, &[vip]);
    own(&s.b, &[]);

    poke(&client, vip)?;
    assert!(
        eventually(Duration::from_secs(4), || kernel_mac(&client, vip)
            == Some(s.mac_a.0)),
        "kernel did not resolve the VIP to A:\n{}",
        client.dump()
    );
    // The reply goes out before the counter moves: the kernel may have
    // the entry a moment before the count shows.
    assert!(
        eventually(Duration::from_secs(2), || s
            .a
            .stats()
            .announcer
            .requests_answered
            .ndp
            >= 1),
        "{:?}",
        s.a.stats()
    );

    own(&s.a, &[]);
    own(&s.b, &[vip]);
    assert!(
        eventually(Duration::from_secs(4), || kernel_mac(&client, vip)
            == Some(s.mac_b.0)),
        "kernel kept the old owner after the unsolicited NA:\n{}",
        client.dump()
    );
    let (a, b) = (s.a.stats(), s.b.stats());
    assert_eq!(a.multicast_errors + b.multicast_errors, 0, "{a:?} {b:?}");
    assert!(b.announcer.gratuitous_sent.ndp >= 1);
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn the_raw_link_sees_only_arp_and_ndp_and_never_its_own_frames() -> TestResult {
    let mut lab = Lab::for_test("raw_link_filter");
    let client = lab.add_host("client")?;
    let other = lab.add_host("other")?;
    client.add_addr(CLIENT_V4)?;
    other.add_addr("198.51.100.11/24")?;
    let raw = client.run_in(|| PacketLink::open("eth0"))??;
    let me = raw.info().mac;
    // Traffic the filter must drop: IPv4 UDP to the client (after the ARP
    // exchange it causes, which must pass), and our own broadcast.
    other.run_in(|| -> std::io::Result<()> {
        let socket = UdpSocket::bind("198.51.100.11:0")?;
        for _ in 0..20 {
            socket.send_to(b"not for the speaker", "198.51.100.2:9")?;
        }
        Ok(())
    })??;
    raw.send(&ArpFrame::gratuitous_request(me, Ipv4Addr::new(198, 51, 100, 2)).to_bytes())?;
    let until = Instant::now() + Duration::from_millis(500);
    let mut seen = vec![];
    while Instant::now() < until {
        if let Some(frame) = raw.recv()? {
            seen.push(frame);
        }
    }
    assert!(
        seen.iter().any(|f| ArpFrame::parse(f).is_ok()),
        "the ARP exchange before the datagrams passes the filter"
    );
    for frame in &seen {
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        assert!(
            ethertype == 0x0806 || (ethertype == 0x86dd && frame[20] == 58),
            "{frame:02x?}"
        );
        assert_ne!(frame[6..12], me.0, "own frame looped back");
    }
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn the_packet_announcer_keeps_its_counts_when_it_reopens_its_sockets() -> TestResult {
    use ferrolb_core::announce::interfaces::HostInterface;
    use ferrolb_speaker::daemon::sockets::{Announce, PacketAnnouncer};
    use ferrolb_speaker::transport::packet::PacketConfig;
    use std::collections::BTreeSet;

    let mut lab = Lab::for_test("packet_announcer_counts");
    let node = lab.add_host("node")?;
    let client = lab.add_host("client")?;
    client.add_addr(CLIENT_V4)?;
    let eth0 = HostInterface::ethernet("eth0", node.ifindex()?, node.mac()?.0);
    let wanted = BTreeSet::from(["eth0".to_string()]);
    // Sockets are opened in the caller's namespace: the node's.
    let mut ann = node.run_in(|| {
        let mut ann = PacketAnnouncer::new(Config::default(), PacketConfig::default());
        ann.set_interfaces(std::slice::from_ref(&eth0), &wanted);
        ann.set_desired(vec![(VIP.into(), "eth0".into())]);
        ann
    })?;
    let answered = |ann: &PacketAnnouncer| ann.stats().announcer.requests_answered.arp;
    poke(&client, VIP.into())?;
    assert!(
        eventually(Duration::from_secs(5), || answered(&ann) >= 1),
        "the who-has was answered"
    );
    let before = ann.stats();
    // Every interface gone, then back: two transports replaced.
    node.run_in(|| {
        ann.set_interfaces(&[], &BTreeSet::new());
        ann.set_interfaces(std::slice::from_ref(&eth0), &wanted);
    })?;
    let after = ann.stats();
    assert!(
        after.announcer.requests_answered.arp >= before.announcer.requests_answered.arp
            && after.announcer.gratuitous_sent.arp >= before.announcer.gratuitous_sent.arp,
        "counts went back: {before:?} -> {after:?}"
    );
    // And the reopened socket still answers, adding to the total.
    client.flush_neighbours()?;
    poke(&client, VIP.into())?;
    assert!(
        eventually(Duration::from_secs(5), || answered(&ann)
            > before.announcer.requests_answered.arp),
        "the reopened transport answered"
    );
    // The per-address tally keeps the closed transport's counts as well.
    let tally = ann.take_per_ip().get(VIP.into());
    assert!(
        tally.requests_received > before.announcer.requests_answered.arp
            && tally.responses_sent > before.announcer.requests_answered.arp
            && tally.gratuitous_sent >= before.announcer.gratuitous_sent.arp,
        "per-address counts went back: {before:?} -> {tally:?}"
    );
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn closing_one_interface_leaves_the_others_transport_alone() -> TestResult {
    use ferrolb_core::announce::interfaces::HostInterface;
    use ferrolb_speaker::daemon::sockets::{Announce, PacketAnnouncer};
    use ferrolb_speaker::transport::packet::PacketConfig;
    use std::collections::BTreeSet;

    let mut lab = Lab::for_test("announcer_per_interface");
    let node = lab.add_host("node")?;
    let client = lab.add_host("client")?;
    client.add_addr(CLIENT_V4)?;
    let lan2 = lab.add_segment("lan2")?;
    lab.attach(&node, &lan2, "eth1")?;
    let eth0 = HostInterface::ethernet("eth0", node.ifindex()?, node.mac()?.0);
    let eth1_index: u32 = node
        .exec("cat", &["/sys/class/net/eth1/ifindex"])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let eth1 = HostInterface::ethernet("eth1", eth1_index, node.mac_of("eth1")?.0);
    let both = BTreeSet::from(["eth0".to_string(), "eth1".to_string()]);
    let vip2 = Ipv4Addr::new(198, 51, 100, 101);
    let mut ann = node.run_in(|| {
        let mut ann = PacketAnnouncer::new(Config::default(), PacketConfig::default());
        ann.set_interfaces(&[eth0.clone(), eth1.clone()], &both);
        ann.set_desired(vec![
            (VIP.into(), "eth0".into()),
            (vip2.into(), "eth1".into()),
        ]);
        ann
    })?;
    // The takeover burst on eth0 (now, then 3 x 1.1 s) is over 3.3 s after
    // the transport started, which was before `started`.
    let started = Instant::now();
    let raw = client.run_in(|| PacketLink::open("eth0"))??;
    let garps = |window: Duration| -> usize {
        let until = Instant::now() + window;
        let mut n = 0;
        while Instant::now() < until {
            if let Ok(Some(frame)) = raw.recv() {
                if ArpFrame::parse(&frame)
                    .is_ok_and(|f| f.arp.is_gratuitous() && f.arp.sender_ip == VIP)
                {
                    n += 1;
                }
            }
        }
        n
    };
    let rest_of_burst =
        (started + Duration::from_millis(3900)).saturating_duration_since(Instant::now());
    assert!(garps(rest_of_burst) >= 1, "eth0's burst is seen");
    assert_eq!(garps(Duration::from_millis(300)), 0, "the burst is over");
    // eth1 goes; eth0's transport must not restart (no new burst).
    let only_eth0 = BTreeSet::from(["eth0".to_string()]);
    node.run_in(|| ann.set_interfaces(std::slice::from_ref(&eth0), &only_eth0))?;
    assert_eq!(
        garps(Duration::from_millis(1500)),
        0,
        "eth0 announced again: its socket was reopened"
    );
    // eth0 still answers.
    poke(&client, VIP.into())?;
    assert!(
        eventually(Duration::from_secs(5), || kernel_mac(&client, VIP.into())
            == Some(node.mac().map(|m| m.0).unwrap_or_default())),
        "eth0 answers after eth1 went"
    );
    drop(ann);
    Ok(())
}

//! The announcer's schedule and answers, on a fake clock: every instant is
//! `t0` plus a duration, and nothing sleeps.

use ferrolb_speaker::announcer::{Announcer, Config, Frame, Outgoing, Protocol};
use ferrolb_speaker::wire::{ArpFrame, ArpOperation, ArpRepr, MacAddr, NdpFrame, NdpRepr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

const MAC: MacAddr = MacAddr([0x02, 0, 0x5e, 0x10, 0, 0x0a]);
const ASKER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const OTHER_VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

fn vip6() -> Ipv6Addr {
    "2001:db8::10".parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn announcer(config: Config, t0: Instant) -> Announcer {
    let mut a = Announcer::new(config);
    a.set_link("eth0", MAC, t0);
    a
}

fn take(a: &mut Announcer, ips: &[IpAddr], now: Instant) {
    a.set_desired(ips.iter().map(|ip| (*ip, "eth0")), now);
}

/// Polls at each instant and returns how many frames came out at each.
fn frames_at(a: &mut Announcer, t0: Instant, offsets_ms: &[u64]) -> Vec<usize> {
    offsets_ms
        .iter()
        .map(|o| a.poll(t0 + ms(*o)).len())
        .collect()
}

fn who_has(target: Ipv4Addr) -> Vec<u8> {
    ArpFrame::new(
        MacAddr::BROADCAST,
        ASKER,
        ArpRepr {
            operation: ArpOperation::Request,
            sender_mac: ASKER,
            sender_ip: Ipv4Addr::new(192, 0, 2, 1),
            target_mac: MacAddr::ZERO,
            target_ip: target,
        },
    )
    .to_bytes()
}

#[test]
fn takeover_announces_at_once_then_three_more_times_1_1_seconds_apart() {
    let t0 = Instant::now();
    let mut a = announcer(Config::default(), t0);
    take(&mut a, &[VIP.into()], t0);
    let first = a.poll(t0);
    assert_eq!(first.len(), 2, "gratuitous request and reply");
    let Frame::Arp(request) = first[0].frame else {
        panic!("expected ARP, got {first:?}")
    };
    assert_eq!(request, ArpFrame::gratuitous_request(MAC, VIP));
    assert_eq!(
        first[1].frame,
        Frame::Arp(ArpFrame::gratuitous_reply(MAC, VIP))
    );
    assert!(first.iter().all(|o| o.link == "eth0"));
    let mut deadlines = vec![];
    while let Some(at) = a.next_deadline() {
        deadlines.push(at - t0);
        assert_eq!(a.poll(at - ms(1)).len(), 0, "nothing before the deadline");
        assert_eq!(a.poll(at).len(), 2);
    }
    assert_eq!(deadlines, [ms(1100), ms(2200), ms(3300)]);
    assert_eq!(a.counters().gratuitous_sent.arp, 8);
}

#[test]
fn the_spacing_and_count_are_configurable() {
    let t0 = Instant::now();
    let config = Config {
        repeats: 1,
        spacing: ms(2000),
        ..Config::default()
    };
    let mut a = announcer(config, t0);
    take(&mut a, &[VIP.into()], t0);
    assert_eq!(
        frames_at(&mut a, t0, &[0, 1999, 2000, 4000, 9000]),
        [2, 0, 2, 0, 0]
    );
}

#[test]
fn losing_the_address_cancels_its_pending_announcements_and_answers() {
    let t0 = Instant::now();
    let mut a = announcer(Config::default(), t0);
    take(&mut a, &[VIP.into()], t0);
    a.poll(t0);
    assert!(a.handle("eth0", &who_has(VIP)).is_some());
    take(&mut a, &[], t0 + ms(500));
    assert_eq!(a.next_deadline(), None);
    assert_eq!(a.pending(), 0);
    assert_eq!(
        frames_at(&mut a, t0, &[1100, 2200, 3300, 60_000]),
        [0, 0, 0, 0]
    );
    assert_eq!(a.handle("eth0", &who_has(VIP)), None);
}

#[test]
fn retaking_an_address_restarts_its_schedule_from_the_new_takeover() {
    let t0 = Instant::now();
    let mut a = announcer(Config::default(), t0);
    take(&mut a, &[VIP.into()], t0);
    assert_eq!(frames_at(&mut a, t0, &[0, 1100]), [2, 2]);
    take(&mut a, &[], t0 + ms(1500));
    let t1 = t0 + ms(5000);
    take(&mut a, &[VIP.into()], t1);
    assert_eq!(a.next_deadline(), Some(t1));
    assert_eq!(
        frames_at(&mut a, t1, &[0, 1100, 2200, 3300, 4400]),
        [2, 2, 2, 2, 0]
    );
}

#[test]
fn an_address_still_owned_keeps_its_schedule_when_others_change() {
    let t0 = Instant::now();
    let mut a = announcer(Config::default(), t0);
    take(&mut a, &[VIP.into()], t0);
    a.poll(t0);
    take(&mut a, &[VIP.into(), OTHER_VIP.into()], t0 + ms(500));
    let at_500: Vec<Outgoing> = a.poll(t0 + ms(500));
    assert!(at_500
        .iter()
        .all(|o| o.frame.claimed_ip() == IpAddr::V4(OTHER_VIP)));
    assert_eq!(at_500.len(), 2);
    let at_1100 = a.poll(t0 + ms(1100));
    assert!(at_1100
        .iter()
        .all(|o| o.frame.claimed_ip() == IpAddr::V4(VIP)));
}

#[test]
fn periodic_reannounce_follows_the_takeover_burst_when_enabled() {
    let t0 = Instant::now();
    let config = Config {
        reannounce: Some(Duration::from_secs(60)),
        ..Config::default()
    };
    let mut a = announcer(config, t0);
    take(&mut a, &[VIP.into()], t0);
    assert_eq!(frames_at(&mut a, t0, &[0, 1100, 2200, 3300]), [2, 2, 2, 2]);
    assert_eq!(a.next_deadline(), Some(t0 + ms(63_300)));
    assert_eq!(
        frames_at(&mut a, t0, &[63_299, 63_300, 123_300, 183_300]),
        [0, 2, 2, 2]
    );
}

#[test]
fn a_late_poll_announces_once_and_keeps_the_spacing_from_then() {
    let t0 = Instant::now();
    let mut a = announcer(Config::default(), t0);
    take(&mut a, &[VIP.into()], t0);
    a.poll(t0);
    // The shell overslept past two deadlines: one announcement, not a burst.
    assert_eq!(a.poll(t0 + ms(2500)).len(), 2);
    assert_eq!(a.next_deadline(), Some(t0 + ms(3600)));
}

#[test]
fn ipv6_takeover_sends_unsolicited_advertisements_on_the_same_schedule() {
    let t0 = Instant::now();
    let mut a = announcer(Config::default(), t0);
    take(&mut a, &[vip6().into()], t0);
    for at in [0, 1100, 2200, 3300] {
        let out = a.poll(t0 + ms(at));
        assert_eq!(out.len(), 1, "at +{at} ms");
        assert_eq!(
            out[0].frame,
            Frame::Ndp(NdpFrame::unsolicited_advert(MAC, vip6()))
        );
    }
    assert_eq!(a.next_deadline(), None);
    assert_eq!(a.counters().gratuitous_sent.get(Protocol::Ndp), 4);
    assert_eq!(a.counters().gratuitous_sent.get(Protocol::Arp), 0);
}

#[test]
fn ipv6_addresses_need_their_solicited_node_groups() {
    let t0 = Instant::now();
    let mut a = announcer(Config::default(), t0);
    take(&mut a, &[vip6().into(), VIP.into()], t0);
    let groups: Vec<Ipv6Addr> = a.solicited_node_groups("eth0").into_iter().collect();
    assert_eq!(groups, ["ff02::1:ff00:10".parse::<Ipv6Addr>().unwrap()]);
    take(&mut a, &[VIP.into()], t0);
    assert!(a.solicited_node_groups("eth0").is_empty());
}

#[test]
fn replies_go_only_to_questions_about_owned_addresses() {
    let t0 = Instant::now();
    let mut a = announcer(Config::default(), t0);
    take(&mut a, &[VIP.into(), vip6().into()], t0);
    let reply = a
        .handle("eth0", &who_has(VIP))
        .expect("owned address is answered");
    let Frame::Arp(arp) = reply.frame else {
        panic!("{reply:?}")
    };
    assert_eq!(
        (arp.arp.operation, arp.arp.sender_mac, arp.arp.sender_ip),
        (ArpOperation::Reply, MAC, VIP)
    );
    assert_eq!(arp.ethernet.dst, ASKER);
    assert_eq!(a.handle("eth0", &who_has(OTHER_VIP)), None);
    assert_eq!(a.handle("eth1", &who_has(VIP)), None, "unknown interface");

    let asker6: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let ns = NdpFrame::solicitation(ASKER, asker6, vip6()).to_bytes();
    let reply = a
        .handle("eth0", &ns)
        .expect("owned IPv6 address is answered");
    let Frame::Ndp(na) = reply.frame else {
        panic!("{reply:?}")
    };
    assert!(matches!(na.ndp, NdpRepr::NeighborAdvert { target_lladdr: Some(m), .. } if m == MAC));
    let ns_other =
        NdpFrame::solicitation(ASKER, asker6, "2001:db8::11".parse().unwrap()).to_bytes();
    assert_eq!(a.handle("eth0", &ns_other), None);

    let c = a.counters();
    assert_eq!((c.requests_answered.arp, c.requests_answered.ndp), (1, 1));
    assert_eq!(c.frames_ignored, 3);
}

#[test]
fn unicast_reachability_probes_are_answered_too() {
    let t0 = Instant::now();
    let mut a = announcer(Config::default(), t0);
    take(&mut a, &[VIP.into()], t0);
    let mut probe = who_has(VIP);
    probe[..6].copy_from_slice(&MAC.0);
    assert!(a.handle("eth0", &probe).is_some());
}

#[test]
fn malformed_frames_are_counted_and_dropped() {
    let t0 = Instant::now();
    let mut a = announcer(Config::default(), t0);
    take(&mut a, &[VIP.into()], t0);
    let mut bad_arp = who_has(VIP);
    bad_arp[14] = 9; // hardware type
    let truncated = &who_has(VIP)[..20];
    for frame in [&bad_arp[..], truncated, &[0u8; 3][..]] {
        assert_eq!(a.handle("eth0", frame), None);
    }
    assert_eq!(a.counters().frames_malformed, 3);
    assert!(a.handle("eth0", &who_has(VIP)).is_some(), "still answering");
}

#[test]
fn addresses_on_an_interface_not_yet_known_wait_for_it() {
    let t0 = Instant::now();
    let mut a = Announcer::new(Config::default());
    a.set_desired([(IpAddr::V4(VIP), "eth0")], t0);
    assert_eq!(a.next_deadline(), None);
    assert!(!a.owns("eth0", VIP.into()));
    a.set_link("eth0", MAC, t0 + ms(10));
    assert!(a.owns("eth0", VIP.into()));
    assert_eq!(a.poll(t0 + ms(10)).len(), 2);
}

#[test]
fn a_new_mac_on_the_interface_is_announced_like_a_takeover() {
    let t0 = Instant::now();
    let mut a = announcer(Config::default(), t0);
    take(&mut a, &[VIP.into()], t0);
    assert_eq!(frames_at(&mut a, t0, &[0, 1100, 2200, 3300]), [2, 2, 2, 2]);
    let new_mac = MacAddr([0x02, 0, 0, 0, 0, 0x0c]);
    a.set_link("eth0", new_mac, t0 + ms(9000));
    let out = a.poll(t0 + ms(9000));
    assert_eq!(
        out[0].frame,
        Frame::Arp(ArpFrame::gratuitous_request(new_mac, VIP))
    );
}

#[test]
fn polling_with_nothing_due_does_not_walk_thousands_of_addresses() {
    let t0 = Instant::now();
    let config = Config {
        reannounce: Some(Duration::from_secs(300)),
        ..Config::default()
    };
    let mut a = announcer(config, t0);
    let ips: Vec<IpAddr> = (0..10_000u32)
        .map(|i| IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i))))
        .collect();
    take(&mut a, &ips, t0);
    assert_eq!(a.poll(t0).len(), 10_000);
    assert_eq!(a.pending(), 10_000);
    let started = Instant::now();
    for i in 1..100_000u64 {
        // Nothing is due between the first announcement and +1.1 s.
        assert!(a.poll(t0 + Duration::from_nanos(i * 10_000)).is_empty());
    }
    let spent = started.elapsed();
    // An O(n) poll would walk 10^9 entries here: tens of seconds in debug.
    assert!(
        spent < Duration::from_secs(3),
        "100k idle polls took {spent:?}"
    );
}

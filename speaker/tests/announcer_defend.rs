//! A second announcer, as the announcer sees it, on a fake clock: another
//! station announcing an owned address gets this node's announcement
//! again (a spacing later, rate-limited, never during the takeover burst,
//! never once withdrawn or handing over), and owned addresses are probed
//! for silent duplicates with frames that claim nothing; two announcers
//! that both own an address find each other by probing.

use ferrolb_speaker::announcer::{Announcer, Config, Frame, Held, Kind, Outgoing};
use ferrolb_speaker::wire::foreign::{self, Kind as Seen};
use ferrolb_speaker::wire::{ipv6, ArpFrame, ArpOperation, MacAddr, NdpFrame, NdpRepr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

const MAC: MacAddr = MacAddr([0x02, 0, 0x5e, 0x10, 0, 0x0a]);
const ROGUE: MacAddr = MacAddr([0x02, 0, 0x5e, 0x10, 0, 0x99]);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

fn vip6() -> Ipv6Addr {
    "2001:db8::10".parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn owning_with(config: Config, mac: MacAddr, ips: &[IpAddr], t0: Instant) -> Announcer {
    let mut a = Announcer::new(config);
    a.set_link("eth0", mac, t0);
    a.set_desired(ips.iter().map(|ip| (*ip, "eth0")), t0);
    a
}

/// Owns `ips` from `t0` and has sent its takeover burst (to +3.3 s).
fn settled(ips: &[IpAddr], t0: Instant) -> Announcer {
    let mut a = owning_with(Config::default(), MAC, ips, t0);
    while let Some(at) = a.next_deadline().filter(|at| *at <= t0 + ms(3300)) {
        a.poll(at);
    }
    assert_eq!(a.next_deadline(), None, "the burst is over");
    a
}

fn garp(mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    ArpFrame::gratuitous_request(mac, ip).to_bytes()
}

#[test]
fn another_station_announcing_an_owned_address_gets_ours_again_a_spacing_later() {
    let t0 = Instant::now();
    let mut a = settled(&[VIP.into(), vip6().into()], t0);
    let before = a.counters().gratuitous_sent;
    let seen = a
        .receive("eth0", &garp(ROGUE, VIP), t0 + ms(10_000))
        .seen
        .expect("observed");
    assert_eq!(seen.held, Held::Owned);
    assert_eq!(a.reassertions_pending(), 1);
    assert_eq!(a.next_deadline(), Some(t0 + ms(11_100)));
    assert!(a.poll(t0 + ms(11_099)).is_empty());
    let out = a.poll(t0 + ms(11_100));
    let frames: Vec<Frame> = out.iter().map(|o| o.frame).collect();
    assert_eq!(
        frames,
        [
            Frame::Arp(ArpFrame::gratuitous_request(MAC, VIP)),
            Frame::Arp(ArpFrame::gratuitous_reply(MAC, VIP)),
        ]
    );
    assert!(out.iter().all(|o| o.kind == Kind::Announcement));
    assert_eq!(a.counters().reasserted.arp, 2);
    assert_eq!(a.counters().gratuitous_sent.arp, before.arp + 2);
    assert_eq!(a.next_deadline(), None, "once");
    // IPv6: an unsolicited advertisement with override from another MAC.
    let na = NdpFrame::unsolicited_advert(ROGUE, vip6()).to_bytes();
    a.receive("eth0", &na, t0 + ms(20_000));
    let out = a.poll(t0 + ms(21_100));
    assert_eq!(
        out.iter().map(|o| o.frame).collect::<Vec<_>>(),
        [Frame::Ndp(NdpFrame::unsolicited_advert(MAC, vip6()))]
    );
    assert_eq!(a.counters().reasserted.ndp, 1);
}

#[test]
fn a_station_that_keeps_announcing_is_answered_at_a_growing_gap() {
    let t0 = Instant::now();
    let mut a = settled(&[VIP.into()], t0);
    let mut sent = Vec::new();
    // A gratuitous ARP every 500 ms for two minutes.
    for step in 0..240u64 {
        let now = t0 + ms(10_000 + step * 500);
        a.receive("eth0", &garp(ROGUE, VIP), now);
        while let Some(at) = a.next_deadline().filter(|at| *at <= now + ms(499)) {
            if !a.poll(at).is_empty() {
                sent.push(at - t0);
            }
        }
    }
    let gaps: Vec<Duration> = sent.windows(2).map(|p| p[1] - p[0]).collect();
    assert!(gaps.windows(2).all(|g| g[1] >= g[0]), "{gaps:?}");
    assert!(
        gaps.iter().all(|g| *g <= Duration::from_secs(30)),
        "{gaps:?}"
    );
    assert!(sent.len() <= 10, "{sent:?}");
}

#[test]
fn nothing_is_answered_during_the_takeover_burst_or_once_the_address_is_gone() {
    let t0 = Instant::now();
    let mut a = owning_with(Config::default(), MAC, &[VIP.into()], t0);
    a.poll(t0);
    a.receive("eth0", &garp(ROGUE, VIP), t0 + ms(500));
    assert_eq!(a.reassertions_pending(), 0, "the burst answers it");
    let mut a = settled(&[VIP.into()], t0);
    a.receive("eth0", &garp(ROGUE, VIP), t0 + ms(10_000));
    // The new owner's decision reaches this node before the re-announcement.
    a.set_desired(Vec::<(IpAddr, &str)>::new(), t0 + ms(10_300));
    assert_eq!(a.reassertions_pending(), 0);
    assert!(a.poll(t0 + ms(20_000)).is_empty());
    let mut a = settled(&[VIP.into()], t0);
    a.receive("eth0", &garp(ROGUE, VIP), t0 + ms(10_000));
    a.hand_over();
    assert_eq!(
        a.next_deadline(),
        None,
        "a stopping speaker never takes back"
    );
}

fn probing(every: Duration) -> Config {
    Config {
        probe: Some(every),
        ..Config::default()
    }
}

/// Polls `a` at each deadline up to `until` and returns the probes.
fn probes_until(a: &mut Announcer, until: Instant) -> Vec<(Instant, Outgoing)> {
    let mut out = Vec::new();
    while let Some(at) = a.next_deadline().filter(|at| *at <= until) {
        for o in a.poll(at) {
            if o.kind == Kind::Probe {
                out.push((at, o));
            }
        }
    }
    out
}

#[test]
fn owned_addresses_are_probed_with_frames_that_claim_nothing() {
    let t0 = Instant::now();
    let mut a = owning_with(
        probing(Duration::from_secs(60)),
        MAC,
        &[VIP.into(), vip6().into()],
        t0,
    );
    let probes = probes_until(&mut a, t0 + Duration::from_secs(76));
    assert_eq!(probes.len(), 2, "{probes:?}");
    for (at, _) in &probes {
        assert!(*at - t0 >= Duration::from_secs(45), "{:?}", *at - t0);
    }
    for (_, p) in &probes {
        match p.frame {
            Frame::Arp(f) => {
                assert_eq!(f.ethernet.dst, MacAddr::BROADCAST);
                assert_eq!(f.arp.operation, ArpOperation::Request);
                assert!(f.arp.is_probe(), "sender 0.0.0.0: {f:?}");
                assert_eq!(f.arp.target_ip, VIP);
                assert_eq!(f.arp.sender_mac, MAC);
            }
            Frame::Ndp(f) => {
                assert_eq!(f.src_ip, Ipv6Addr::UNSPECIFIED);
                assert_eq!(f.dst_ip, ipv6::solicited_node(&vip6()));
                assert!(matches!(
                    f.ndp,
                    NdpRepr::NeighborSolicit {
                        source_lladdr: None,
                        ..
                    }
                ));
            }
        }
        // Nobody takes a probe for an announcement of ours.
        assert_eq!(foreign::announcement(&p.frame.to_bytes(), ROGUE), None);
    }
    let c = a.counters();
    assert_eq!((c.probes_sent.arp, c.probes_sent.ndp), (1, 1));
    assert!(a.take_per_ip().iter().all(|(ip, _)| !ip.is_unspecified()));
    // Withdrawn: probed no more.
    a.set_desired(Vec::<(IpAddr, &str)>::new(), t0 + Duration::from_secs(80));
    assert!(probes_until(&mut a, t0 + Duration::from_secs(300)).is_empty());
}

#[test]
fn two_owners_of_one_address_find_each_other_by_probing() {
    // Split brain: both announcers own the address, neither announces
    // after its burst, so only the probe tells them apart.
    let t0 = Instant::now();
    let every = Duration::from_secs(30);
    for ip in [IpAddr::from(VIP), vip6().into()] {
        let mut a = owning_with(probing(every), MAC, &[ip], t0);
        let mut b = owning_with(Config::default(), ROGUE, &[ip], t0);
        let probes = probes_until(&mut a, t0 + Duration::from_secs(40));
        let (at, probe) = probes.first().expect("probed");
        let answer = b
            .handle("eth0", &probe.frame.to_bytes())
            .expect("the other owner defends the address");
        let seen = a
            .receive("eth0", &answer.frame.to_bytes(), *at + ms(1))
            .seen
            .expect("the answer is observed");
        assert_eq!(seen.held, Held::Owned);
        assert_eq!(seen.announcement.mac, ROGUE);
        let kind = seen.announcement.kind;
        assert!(
            matches!(
                kind,
                Seen::ArpReply | Seen::NeighborAdvert { solicited: false }
            ),
            "{kind:?}"
        );
        assert_eq!(a.reassertions_pending(), 1, "{ip}");
    }
}

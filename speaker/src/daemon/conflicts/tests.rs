use super::*;
use crate::wire::foreign::Announcement;
use ferrolb_core::announce::{ServiceChange, Verdict};

const ROGUE: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x99]);
const OTHER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x98]);
const ME: &str = "node-a";

fn v4() -> IpAddr {
    "192.0.2.10".parse().unwrap()
}

fn v6() -> IpAddr {
    "2001:db8::10".parse().unwrap()
}

fn t0() -> Instant {
    static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *T0.get_or_init(Instant::now)
}

fn at(ms: u64) -> Instant {
    t0() + Duration::from_millis(ms)
}

fn secs(s: u64) -> u64 {
    s * 1000
}

fn settings() -> Settings {
    Settings {
        settle: Duration::from_secs(5),
        grace: Duration::from_secs(5),
        forget_after: Duration::from_secs(300),
    }
}

fn owned(name: &str, ips: &[IpAddr], node: &str) -> ServiceChange {
    ServiceChange {
        key: ObjectKey::new("default", name),
        before: None,
        after: Some(Decision {
            ips: ips.to_vec(),
            verdict: Verdict::Owner {
                node: node.into(),
                interfaces: vec!["eth0".into()],
            },
        }),
    }
}

/// `me` took `services` (name, IPs) on eth0 at `when`.
fn taken(c: &mut Conflicts, services: &[(&str, &[IpAddr])], when: Instant) {
    let mut delta = Delta::default();
    for (name, ips) in services {
        delta.services.push(owned(name, ips, ME));
        for ip in *ips {
            if !delta.announced.iter().any(|(i, _)| i == ip) {
                delta.announced.push((*ip, "eth0".into()));
            }
        }
    }
    c.update(ME, &delta, when);
}

fn web() -> Conflicts {
    let mut c = Conflicts::new(settings());
    taken(&mut c, &[("web", &[v4(), v6()])], t0());
    c
}

fn frame(ip: IpAddr, mac: MacAddr, when: Instant) -> Observation {
    Observation {
        link: "eth0".into(),
        announcement: Announcement {
            ip,
            mac,
            kind: if ip.is_ipv4() {
                Kind::GratuitousArp
            } else {
                Kind::NeighborAdvert { solicited: false }
            },
        },
        held: Held::Owned,
        at: when,
    }
}

#[test]
fn a_burst_from_a_foreign_mac_is_reported_once_after_the_settle_time() {
    let mut c = web();
    assert_eq!(
        c.observe(&frame(v4(), ROGUE, at(secs(60)))),
        Sighting::Started
    );
    for i in 1..50 {
        let seen = frame(v4(), ROGUE, at(secs(60) + i * 100));
        assert_eq!(c.observe(&seen), Sighting::Continued);
    }
    assert_eq!(c.next_deadline(), Some(at(secs(65))));
    assert_eq!(c.poll(at(secs(65) - 1)), Due::default(), "settling");
    let due = c.poll(at(secs(65)));
    assert_eq!(due.reports.len(), 1, "{due:?}");
    let r = &due.reports[0];
    assert_eq!((r.ip, r.mac, r.link.as_str()), (v4(), ROGUE, "eth0"));
    assert_eq!(r.kind, Kind::GratuitousArp);
    assert_eq!(r.frames, 50);
    assert_eq!(r.notify, vec![ObjectKey::new("default", "web")]);
    assert_eq!(c.on(v4()), 1);
    // More of the same episode: nothing new to report.
    c.observe(&frame(v4(), ROGUE, at(secs(100))));
    assert!(c.poll(at(secs(200))).reports.is_empty());
    assert_eq!(c.on(v4()), 1);
}

#[test]
fn an_episode_ends_when_the_mac_is_quiet_and_a_later_frame_starts_another() {
    let mut c = web();
    c.observe(&frame(v4(), ROGUE, at(secs(60))));
    c.observe(&frame(v4(), ROGUE, at(secs(70))));
    assert_eq!(c.poll(at(secs(65))).reports.len(), 1);
    // Quiet from +70 s: over at +370 s, not before.
    assert_eq!(c.next_deadline(), Some(at(secs(370))));
    assert!(c.poll(at(secs(369))).ended.is_empty());
    let due = c.poll(at(secs(370)));
    assert_eq!(due.ended.len(), 1);
    let ended = &due.ended[0];
    assert_eq!((ended.ip, ended.mac, ended.frames), (v4(), ROGUE, 2));
    assert_eq!(ended.lasted, Duration::from_secs(10));
    assert_eq!(due.touched(), [v4()].into());
    assert_eq!(c.on(v4()), 0);
    assert_eq!(c.next_deadline(), None);
    // It comes back: a new episode, reported again.
    assert_eq!(
        c.observe(&frame(v4(), ROGUE, at(secs(400)))),
        Sighting::Started
    );
    assert_eq!(c.poll(at(secs(405))).reports.len(), 1);
}

#[test]
fn the_old_owner_does_not_report_the_new_owners_announcement() {
    // node-b's view elects it a moment before node-a's does: node-a sees
    // node-b's gratuitous ARP while it still announces the IP.
    let mut c = web();
    assert_eq!(
        c.observe(&frame(v4(), OTHER, at(secs(60)))),
        Sighting::Started
    );
    let mut moved = Delta::default();
    moved.services.push(ServiceChange {
        before: owned("web", &[v4(), v6()], ME).after,
        ..owned("web", &[v4(), v6()], "node-b")
    });
    moved.withdrawn = vec![(v4(), "eth0".into()), (v6(), "eth0".into())];
    c.update(ME, &moved, at(secs(60) + 300));
    let due = c.poll(at(secs(65)));
    assert!(due.reports.is_empty(), "{due:?}");
    assert_eq!(due.moved, vec![(v4(), OTHER)]);
    assert_eq!(c.next_deadline(), None);
    // Late frames of the move arrive after the withdrawal.
    assert_eq!(
        c.observe(&frame(v4(), OTHER, at(secs(61)))),
        Sighting::Ignored("no longer announced here")
    );
}

#[test]
fn the_new_owner_ignores_the_previous_owner_right_after_taking_the_ip() {
    let mut c = Conflicts::new(settings());
    taken(&mut c, &[("web", &[v4()])], at(secs(100)));
    let previous = frame(v4(), OTHER, at(secs(102)));
    assert!(matches!(c.observe(&previous), Sighting::Ignored(_)));
    assert_eq!(c.next_deadline(), None);
    // Still announcing well after the takeover: a conflict.
    assert_eq!(
        c.observe(&frame(v4(), OTHER, at(secs(106)))),
        Sighting::Started
    );
}

#[test]
fn a_handover_is_not_a_conflict() {
    let mut c = web();
    let mut seen = frame(v4(), OTHER, at(secs(60)));
    for held in [Held::HandingOver, Held::Withdrawn] {
        seen.held = held;
        assert!(matches!(c.observe(&seen), Sighting::Ignored(_)));
    }
    assert_eq!(c.next_deadline(), None);
}

#[test]
fn a_dual_stack_service_gets_one_event_per_foreign_mac() {
    let mut c = web();
    c.observe(&frame(v4(), ROGUE, at(secs(60))));
    c.observe(&frame(v6(), ROGUE, at(secs(60) + 10)));
    c.observe(&frame(v6(), OTHER, at(secs(61))));
    let due = c.poll(at(secs(70)));
    assert_eq!(due.reports.len(), 3, "a warning line each");
    let notified: Vec<(IpAddr, MacAddr, usize)> = due
        .reports
        .iter()
        .map(|r| (r.ip, r.mac, r.notify.len()))
        .collect();
    let events: usize = notified.iter().map(|(_, _, n)| n).sum();
    assert_eq!(events, 2, "one per MAC: {notified:?}");
    assert!(notified.contains(&(v6(), OTHER, 1)));
    assert_eq!((c.on(v4()), c.on(v6())), (1, 2));
}

#[test]
fn every_service_sharing_the_ip_is_warned() {
    let mut c = Conflicts::new(settings());
    taken(&mut c, &[("web", &[v4()]), ("dns", &[v4()])], t0());
    c.observe(&frame(v4(), ROGUE, at(secs(60))));
    let due = c.poll(at(secs(65)));
    let r = &due.reports[0];
    assert_eq!(
        r.notify,
        vec![
            ObjectKey::new("default", "dns"),
            ObjectKey::new("default", "web")
        ]
    );
    assert_eq!(r.services, r.notify);
}

#[test]
fn a_service_that_moved_away_is_not_warned() {
    let mut c = Conflicts::new(settings());
    taken(&mut c, &[("web", &[v4()]), ("dns", &[v4()])], t0());
    let mut dns_gone = Delta::default();
    dns_gone.services.push(ServiceChange {
        key: ObjectKey::new("default", "dns"),
        before: owned("dns", &[v4()], ME).after,
        after: None,
    });
    c.update(ME, &dns_gone, at(secs(1)));
    c.observe(&frame(v4(), ROGUE, at(secs(60))));
    let due = c.poll(at(secs(65)));
    assert_eq!(
        due.reports[0].notify,
        vec![ObjectKey::new("default", "web")]
    );
}

#[test]
fn forged_macs_cannot_grow_the_table_or_the_events() {
    let mut c = web();
    let mut started = 0;
    for i in 0..=255u8 {
        let mac = MacAddr([0x02, 0, 0, 0, 1, i]);
        if c.observe(&frame(v4(), mac, at(secs(60)))) == Sighting::Started {
            started += 1;
        }
    }
    assert_eq!(started, MAX_MACS_PER_IP);
    assert_eq!(c.episodes().len(), MAX_MACS_PER_IP);
    let due = c.poll(at(secs(65)));
    assert_eq!(due.reports.len(), MAX_MACS_PER_IP);
}

#[test]
fn the_table_holds_at_most_max_episodes() {
    let mut c = Conflicts::new(settings());
    let ips: Vec<IpAddr> = (0..400u32)
        .map(|i| match i {
            0..250 => IpAddr::from([198, 51, 100, i as u8]),
            _ => IpAddr::from([203, 0, 113, (i - 250) as u8]),
        })
        .collect();
    let services: Vec<(String, Vec<IpAddr>)> =
        ips.iter().map(|ip| (format!("s{ip}"), vec![*ip])).collect();
    let named: Vec<(&str, &[IpAddr])> = services
        .iter()
        .map(|(n, i)| (n.as_str(), i.as_slice()))
        .collect();
    taken(&mut c, &named, t0());
    for ip in &ips {
        for m in 0..4u8 {
            c.observe(&frame(*ip, MacAddr([2, 0, 0, 0, 2, m]), at(secs(60))));
        }
    }
    assert_eq!(c.episodes().len(), MAX_EPISODES);
}

#[test]
fn a_mac_is_matched_to_the_node_whose_internal_ip_the_neighbour_table_holds_it_for() {
    let b_ip: IpAddr = "192.0.2.12".parse().unwrap();
    let neighbours = vec![
        ("192.0.2.1".parse().unwrap(), MacAddr([2, 0, 0, 0, 0, 1])),
        (b_ip, OTHER),
        ("fe80::1".parse().unwrap(), OTHER),
    ];
    let nodes = || {
        [
            ("node-a", Some("192.0.2.11".parse().unwrap())),
            ("node-b", Some(b_ip)),
            ("node-c", None),
        ]
    };
    assert_eq!(
        peer_of(OTHER, &neighbours, nodes(), ME).as_deref(),
        Some("node-b")
    );
    assert_eq!(
        peer_of(ROGUE, &neighbours, nodes(), ME),
        None,
        "unknown MAC"
    );
    assert_eq!(
        peer_of(OTHER, &neighbours, nodes(), "node-b"),
        None,
        "never this node itself"
    );
    let gateway = MacAddr([2, 0, 0, 0, 0, 1]);
    assert_eq!(
        peer_of(gateway, &neighbours, nodes(), ME),
        None,
        "a known host that is no node"
    );
}

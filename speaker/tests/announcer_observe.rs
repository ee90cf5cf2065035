//! The announcer on a graceful stop and as an observer of other stations,
//! on a fake clock: handing over keeps answers and stops announcements;
//! another station's announcement of an address owned, handed over or
//! just withdrawn is reported with that state, and counted when owned.

use ferrolb_speaker::announcer::{
    Announcer, Config, Held, Kind, Observation, Protocol, RECENTLY_WITHDRAWN,
};
use ferrolb_speaker::wire::foreign::Kind as Seen;
use ferrolb_speaker::wire::{ArpFrame, MacAddr, NdpFrame};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

const MAC: MacAddr = MacAddr([0x02, 0, 0x5e, 0x10, 0, 0x0a]);
const NEW_OWNER: MacAddr = MacAddr([0x02, 0, 0x5e, 0x10, 0, 0x0b]);
const ASKER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

fn vip6() -> Ipv6Addr {
    "2001:db8::10".parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn owning(ips: &[IpAddr], t0: Instant) -> Announcer {
    let mut a = Announcer::new(Config::default());
    a.set_link("eth0", MAC, t0);
    a.set_desired(ips.iter().map(|ip| (*ip, "eth0")), t0);
    a
}

fn who_has(target: Ipv4Addr) -> Vec<u8> {
    ArpFrame::request(ASKER, Ipv4Addr::new(192, 0, 2, 1), target).to_bytes()
}

fn garp(mac: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
    ArpFrame::gratuitous_request(mac, ip).to_bytes()
}

fn seen(a: &mut Announcer, frame: &[u8], now: Instant) -> Option<Observation> {
    a.receive("eth0", frame, now).seen
}

#[test]
fn handing_over_stops_every_announcement_but_keeps_answering() {
    let t0 = Instant::now();
    let mut a = owning(&[VIP.into(), vip6().into()], t0);
    assert_eq!(a.poll(t0).len(), 3, "the takeover burst started");
    a.hand_over();
    assert!(a.handing_over());
    assert_eq!(a.next_deadline(), None, "no repeat of the burst");
    assert_eq!(a.pending(), 0);
    assert!(a.poll(t0 + Duration::from_secs(10)).is_empty());
    let reply = a.handle("eth0", &who_has(VIP)).expect("still answered");
    assert_eq!(reply.kind, Kind::Reply);
    // A MAC change (which would restart the burst) announces nothing now.
    a.set_link("eth0", MacAddr([0x02, 0, 0, 0, 0, 0x0c]), t0 + ms(5));
    assert_eq!(a.next_deadline(), None);
}

#[test]
fn a_pair_withdrawn_while_handing_over_is_answered_no_more() {
    let t0 = Instant::now();
    let other = Ipv4Addr::new(192, 0, 2, 11);
    let mut a = owning(&[VIP.into(), other.into()], t0);
    a.hand_over();
    a.set_desired([(IpAddr::from(other), "eth0")], t0 + ms(30));
    assert!(a.handle("eth0", &who_has(VIP)).is_none());
    assert!(a.handle("eth0", &who_has(other)).is_some());
    assert_eq!(a.next_deadline(), None, "narrowing announces nothing");
}

#[test]
fn the_new_owners_announcement_is_reported_as_a_handover() {
    let t0 = Instant::now();
    let mut a = owning(&[VIP.into(), vip6().into()], t0);
    a.hand_over();
    let v4 = seen(&mut a, &garp(NEW_OWNER, VIP), t0 + ms(20)).expect("reported");
    assert_eq!(v4.held, Held::HandingOver);
    assert_eq!(v4.link, "eth0");
    assert_eq!(v4.ip(), IpAddr::from(VIP));
    assert_eq!(v4.announcement.mac, NEW_OWNER);
    assert_eq!(v4.announcement.kind, Seen::GratuitousArp);
    assert_eq!(v4.at, t0 + ms(20));
    let na = NdpFrame::unsolicited_advert(NEW_OWNER, vip6()).to_bytes();
    let v6 = seen(&mut a, &na, t0 + ms(21)).expect("reported");
    assert_eq!(v6.held, Held::HandingOver);
    assert_eq!(
        v6.announcement.kind,
        Seen::NeighborAdvert { solicited: false }
    );
    let c = a.counters().foreign_announcements;
    assert_eq!((c.arp, c.ndp), (0, 0), "a handover is no foreign claim");
}

#[test]
fn another_station_announcing_an_owned_address_is_reported_and_counted() {
    let t0 = Instant::now();
    let mut a = owning(&[VIP.into()], t0);
    let rogue = seen(&mut a, &garp(NEW_OWNER, VIP), t0).expect("reported");
    assert_eq!(rogue.held, Held::Owned);
    let reply = ArpFrame::gratuitous_reply(NEW_OWNER, VIP).to_bytes();
    assert!(seen(&mut a, &reply, t0).is_some());
    assert_eq!(
        a.counters().foreign_announcements.get(Protocol::Arp),
        2,
        "{:?}",
        a.counters()
    );
}

#[test]
fn a_withdrawn_address_is_watched_for_a_while_then_forgotten() {
    let t0 = Instant::now();
    let mut a = owning(&[VIP.into()], t0);
    a.set_desired(Vec::<(IpAddr, &str)>::new(), t0 + ms(100));
    assert_eq!(a.recently_withdrawn(), 1);
    let after = seen(&mut a, &garp(NEW_OWNER, VIP), t0 + ms(150)).expect("reported");
    assert_eq!(after.held, Held::Withdrawn);
    let late = t0 + ms(100) + RECENTLY_WITHDRAWN;
    assert_eq!(seen(&mut a, &garp(NEW_OWNER, VIP), late), None);
    // A later change forgets it altogether.
    a.set_desired(Vec::<(IpAddr, &str)>::new(), late);
    assert_eq!(a.recently_withdrawn(), 0);
    assert_eq!(a.counters().foreign_announcements.arp, 0);
}

#[test]
fn taking_an_address_back_ends_its_withdrawn_watch() {
    let t0 = Instant::now();
    let mut a = owning(&[VIP.into()], t0);
    a.set_desired(Vec::<(IpAddr, &str)>::new(), t0 + ms(10));
    a.set_desired([(IpAddr::from(VIP), "eth0")], t0 + ms(20));
    assert_eq!(a.recently_withdrawn(), 0);
    let now = seen(&mut a, &garp(NEW_OWNER, VIP), t0 + ms(30)).expect("reported");
    assert_eq!(now.held, Held::Owned);
}

#[test]
fn our_own_frames_and_addresses_never_ours_are_not_reported() {
    let t0 = Instant::now();
    let mut a = owning(&[VIP.into()], t0);
    assert_eq!(seen(&mut a, &garp(MAC, VIP), t0), None, "our own MAC");
    let unrelated = Ipv4Addr::new(192, 0, 2, 99);
    assert_eq!(seen(&mut a, &garp(NEW_OWNER, unrelated), t0), None);
    // On another interface than the one owning it.
    a.set_link("eth1", MacAddr([0x02, 0, 0, 0, 0, 0x0d]), t0);
    let r = a.receive("eth1", &garp(NEW_OWNER, VIP), t0);
    assert_eq!(r.seen, None);
    // A question about an owned address is answered, not observed.
    let r = a.receive("eth0", &who_has(VIP), t0);
    assert!(r.reply.is_some() && r.seen.is_none());
}

//! The responder answers who-has for owned addresses only, and never for
//! anything else.

use ferrolb_speaker::wire::ipv6::{multicast_mac, solicited_node, ALL_NODES};
use ferrolb_speaker::wire::respond::{arp_reply, ndp_reply, reply_to, Interface, Reply};
use ferrolb_speaker::wire::{
    ArpFrame, ArpOperation, ArpRepr, MacAddr, NdpFrame, NdpRepr, NeighborFlags, VlanTag,
};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const OURS: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
const ASKER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const OTHER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0b]);
const OWNED_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const NOT_OWNED_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const ASKER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn owned() -> BTreeSet<IpAddr> {
    [IpAddr::V4(OWNED_V4), IpAddr::V6(v6("2001:db8::10"))]
        .into_iter()
        .collect()
}

fn who_has(dst: MacAddr, sender_ip: Ipv4Addr, target_ip: Ipv4Addr) -> ArpFrame {
    ArpFrame::new(
        dst,
        ASKER,
        ArpRepr {
            operation: ArpOperation::Request,
            sender_mac: ASKER,
            sender_ip,
            target_mac: MacAddr::ZERO,
            target_ip,
        },
    )
}

#[test]
fn a_broadcast_who_has_for_an_owned_ip_gets_a_unicast_reply() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    let reply = arp_reply(&who_has(MacAddr::BROADCAST, ASKER_V4, OWNED_V4), &iface).unwrap();
    assert_eq!(reply.ethernet.dst, ASKER);
    assert_eq!(reply.ethernet.src, OURS);
    assert_eq!(
        reply.arp,
        ArpRepr {
            operation: ArpOperation::Reply,
            sender_mac: OURS,
            sender_ip: OWNED_V4,
            target_mac: ASKER,
            target_ip: ASKER_V4,
        }
    );
}

#[test]
fn a_unicast_reachability_probe_is_answered() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    assert!(arp_reply(&who_has(OURS, ASKER_V4, OWNED_V4), &iface).is_some());
}

#[test]
fn a_unicast_request_to_another_station_is_not_answered() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    assert_eq!(arp_reply(&who_has(OTHER, ASKER_V4, OWNED_V4), &iface), None);
}

#[test]
fn an_ip_we_do_not_own_is_never_answered() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    assert_eq!(
        arp_reply(&who_has(MacAddr::BROADCAST, ASKER_V4, NOT_OWNED_V4), &iface),
        None
    );
}

#[test]
fn an_rfc_5227_probe_for_an_owned_ip_is_defended() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    let probe = who_has(MacAddr::BROADCAST, Ipv4Addr::UNSPECIFIED, OWNED_V4);
    let reply = arp_reply(&probe, &iface).unwrap();
    assert_eq!(reply.ethernet.dst, ASKER);
    assert_eq!(reply.arp.sender_ip, OWNED_V4);
    assert_eq!(reply.arp.target_ip, Ipv4Addr::UNSPECIFIED);
}

#[test]
fn our_own_frames_are_ignored() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    let mut own = who_has(MacAddr::BROADCAST, ASKER_V4, OWNED_V4);
    own.ethernet.src = OURS;
    assert_eq!(arp_reply(&own, &iface), None);
    let mut relayed = who_has(MacAddr::BROADCAST, ASKER_V4, OWNED_V4);
    relayed.arp.sender_mac = OURS;
    assert_eq!(arp_reply(&relayed, &iface), None);
}

#[test]
fn gratuitous_arp_and_replies_from_others_are_ignored() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    let mut garp = ArpFrame::gratuitous_request(OTHER, OWNED_V4);
    assert_eq!(arp_reply(&garp, &iface), None);
    garp = ArpFrame::gratuitous_reply(OTHER, OWNED_V4);
    assert_eq!(arp_reply(&garp, &iface), None);
    let mut reply = who_has(OURS, ASKER_V4, OWNED_V4);
    reply.arp.operation = ArpOperation::Reply;
    assert_eq!(arp_reply(&reply, &iface), None);
}

#[test]
fn vlan_tagged_and_multicast_sourced_requests_are_ignored() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    let mut tagged = who_has(MacAddr::BROADCAST, ASKER_V4, OWNED_V4);
    tagged.ethernet.vlan = Some(VlanTag::new(100));
    assert_eq!(arp_reply(&tagged, &iface), None);
    let mut bogus = who_has(MacAddr::BROADCAST, ASKER_V4, OWNED_V4);
    bogus.arp.sender_mac = MacAddr::BROADCAST;
    assert_eq!(arp_reply(&bogus, &iface), None);
}

#[test]
fn reply_to_parses_raw_arp_bytes_and_pads_the_answer() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    let bytes = who_has(MacAddr::BROADCAST, ASKER_V4, OWNED_V4).to_bytes();
    let reply = reply_to(&bytes, &iface).unwrap();
    assert_eq!(reply.claimed_ip(), IpAddr::V4(OWNED_V4));
    let wire = reply.to_bytes();
    assert_eq!(wire.len(), 60);
    assert_eq!(reply_to(&wire, &iface), None, "a reply is not a question");
    assert_eq!(reply_to(&bytes[..30], &iface), None);
}

fn ns(src_ip: Ipv6Addr, target: Ipv6Addr) -> NdpFrame {
    NdpFrame::solicitation(ASKER, src_ip, target)
}

#[test]
fn a_multicast_solicitation_for_an_owned_ip_gets_a_solicited_advert() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    let target = v6("2001:db8::10");
    let reply = ndp_reply(&ns(v6("2001:db8::1"), target), &iface).unwrap();
    assert_eq!(reply.ethernet.dst, ASKER);
    assert_eq!(reply.ethernet.src, OURS);
    assert_eq!(reply.src_ip, target);
    assert_eq!(reply.dst_ip, v6("2001:db8::1"));
    assert_eq!(
        reply.ndp,
        NdpRepr::NeighborAdvert {
            flags: NeighborFlags {
                router: false,
                solicited: true,
                override_: true
            },
            target,
            target_lladdr: Some(OURS),
        }
    );
    let bytes = reply.to_bytes();
    assert_eq!(bytes[21], 255, "hop limit");
    assert_eq!(NdpFrame::parse(&bytes), Ok(reply));
}

#[test]
fn a_unicast_solicitation_for_an_owned_ip_is_answered() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    let target = v6("2001:db8::10");
    let mut probe = ns(v6("2001:db8::1"), target);
    probe.dst_ip = target;
    probe.ethernet.dst = OURS;
    assert!(ndp_reply(&probe, &iface).is_some());
    probe.ethernet.dst = OTHER;
    assert_eq!(ndp_reply(&probe, &iface), None, "sent to another station");
}

#[test]
fn a_solicitation_without_link_layer_option_is_answered_to_the_frame_source() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    let mut probe = ns(v6("2001:db8::1"), v6("2001:db8::10"));
    probe.ndp = NdpRepr::NeighborSolicit {
        target: v6("2001:db8::10"),
        source_lladdr: None,
    };
    assert_eq!(ndp_reply(&probe, &iface).unwrap().ethernet.dst, ASKER);
}

#[test]
fn a_dad_solicitation_is_answered_to_all_nodes_unsolicited() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    let reply = ndp_reply(&ns(Ipv6Addr::UNSPECIFIED, v6("2001:db8::10")), &iface).unwrap();
    assert_eq!(reply.dst_ip, ALL_NODES);
    assert_eq!(reply.ethernet.dst, multicast_mac(&ALL_NODES));
    let NdpRepr::NeighborAdvert { flags, .. } = reply.ndp else {
        panic!("not an advertisement");
    };
    assert!(!flags.solicited && flags.override_);
}

#[test]
fn a_dad_solicitation_with_a_link_layer_option_is_ignored() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    let mut bad = ns(Ipv6Addr::UNSPECIFIED, v6("2001:db8::10"));
    bad.ndp = NdpRepr::NeighborSolicit {
        target: v6("2001:db8::10"),
        source_lladdr: Some(ASKER),
    };
    assert_eq!(ndp_reply(&bad, &iface), None);
    assert_eq!(reply_to(&bad.to_bytes(), &iface), None);
}

#[test]
fn a_solicitation_for_an_ip_we_do_not_own_is_never_answered() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    assert_eq!(
        ndp_reply(&ns(v6("2001:db8::1"), v6("2001:db8::11")), &iface),
        None
    );
}

#[test]
fn a_solicitation_to_the_wrong_group_is_ignored() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    let mut wrong = ns(v6("2001:db8::1"), v6("2001:db8::10"));
    wrong.dst_ip = solicited_node(&v6("2001:db8::99"));
    wrong.ethernet.dst = multicast_mac(&wrong.dst_ip);
    assert_eq!(ndp_reply(&wrong, &iface), None);
}

#[test]
fn our_own_solicitations_and_adverts_from_others_are_ignored() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    let own = NdpFrame::solicitation(OURS, v6("2001:db8::2"), v6("2001:db8::10"));
    assert_eq!(ndp_reply(&own, &iface), None);
    let advert = NdpFrame::unsolicited_advert(OTHER, v6("2001:db8::10"));
    assert_eq!(reply_to(&advert.to_bytes(), &iface), None);
}

#[test]
fn reply_to_parses_raw_ndp_bytes() {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    let bytes = ns(v6("2001:db8::1"), v6("2001:db8::10")).to_bytes();
    let reply = reply_to(&bytes, &iface).unwrap();
    assert!(matches!(reply, Reply::Ndp(_)));
    assert_eq!(reply.claimed_ip(), IpAddr::V6(v6("2001:db8::10")));
    let mut corrupt = bytes.clone();
    corrupt[60] ^= 0xff;
    assert_eq!(
        reply_to(&corrupt, &iface),
        None,
        "checksum no longer matches"
    );
}

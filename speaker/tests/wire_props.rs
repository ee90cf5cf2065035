//! Fuzz-style properties of the wire formats, the responder and the
//! foreign-announcement classifier: no input panics, emit-then-parse is
//! the identity, no input makes the speaker answer for an address it does
//! not own, and no input is taken for another station's announcement when
//! it comes from our own MAC or does not claim what it is reported to.

use ferrolb_speaker::wire::foreign::{self, Announcement, Kind};
use ferrolb_speaker::wire::ipv6::solicited_node;
use ferrolb_speaker::wire::respond::{reply_to, Interface};
use ferrolb_speaker::wire::{
    ArpFrame, ArpOperation, ArpRepr, EtherType, EthernetRepr, MacAddr, NdpFrame, NdpRepr,
    NeighborFlags, VlanTag,
};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const OURS: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);

fn arb_mac() -> impl Strategy<Value = MacAddr> {
    prop_oneof![
        any::<[u8; 6]>().prop_map(MacAddr),
        Just(OURS),
        Just(MacAddr::BROADCAST),
        Just(MacAddr::ZERO),
        Just(MacAddr([0x02, 0, 0, 0, 0, 0x01])),
    ]
}

fn arb_vlan() -> impl Strategy<Value = Option<VlanTag>> {
    prop::option::of(
        (
            prop_oneof![Just(EtherType::VLAN), Just(EtherType::QINQ)],
            0u8..8,
            any::<bool>(),
            0u16..4096,
        )
            .prop_map(|(tpid, pcp, dei, vid)| VlanTag {
                tpid,
                pcp,
                dei,
                vid,
            }),
    )
}

/// IPv4 addresses from a small pool so that owned ones come up often.
fn arb_v4() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        (8u8..14).prop_map(|d| Ipv4Addr::new(192, 0, 2, d)),
        Just(Ipv4Addr::UNSPECIFIED),
        any::<[u8; 4]>().prop_map(Ipv4Addr::from),
    ]
}

fn arb_v6() -> impl Strategy<Value = Ipv6Addr> {
    prop_oneof![
        (8u16..14).prop_map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)),
        Just(Ipv6Addr::UNSPECIFIED),
        any::<[u8; 16]>().prop_map(Ipv6Addr::from),
    ]
}

/// Half of the pool (.8 to .10 and ::8 to ::a) is owned.
fn owned() -> BTreeSet<IpAddr> {
    (8u8..11)
        .map(|d| IpAddr::V4(Ipv4Addr::new(192, 0, 2, d)))
        .chain((8u16..11).map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i))))
        .collect()
}

fn arb_arp_frame() -> impl Strategy<Value = ArpFrame> {
    (
        arb_mac(),
        arb_mac(),
        arb_vlan(),
        any::<bool>(),
        arb_mac(),
        arb_v4(),
        arb_mac(),
        arb_v4(),
    )
        .prop_map(
            |(dst, src, vlan, reply, sender_mac, sender_ip, target_mac, target_ip)| {
                let mut frame = ArpFrame::new(
                    dst,
                    src,
                    ArpRepr {
                        operation: if reply {
                            ArpOperation::Reply
                        } else {
                            ArpOperation::Request
                        },
                        sender_mac,
                        sender_ip,
                        target_mac,
                        target_ip,
                    },
                );
                frame.ethernet.vlan = vlan;
                frame
            },
        )
}

/// NDP frames that satisfy RFC 4861 7.1 (what the parser accepts).
fn arb_valid_ndp_frame() -> impl Strategy<Value = NdpFrame> {
    (
        arb_mac(),
        arb_mac(),
        arb_vlan(),
        arb_v6(),
        arb_v6(),
        arb_v6(),
        prop::option::of(arb_mac()),
        any::<bool>(),
        any::<[bool; 3]>(),
        any::<bool>(),
    )
        .prop_map(
            |(
                dst_mac,
                src_mac,
                vlan,
                src_ip,
                dst_ip,
                target,
                lladdr,
                solicit,
                [r, s, o],
                to_group,
            )| {
                // A multicast target is invalid; drop the group bits.
                let target = if target.is_multicast() {
                    Ipv6Addr::from(u128::from(target) & !(0xff << 120))
                } else {
                    target
                };
                let mut dst_ip = if to_group {
                    solicited_node(&target)
                } else {
                    dst_ip
                };
                let ndp = if solicit {
                    if src_ip.is_unspecified() {
                        dst_ip = solicited_node(&target);
                    }
                    NdpRepr::NeighborSolicit {
                        target,
                        source_lladdr: lladdr.filter(|_| !src_ip.is_unspecified()),
                    }
                } else {
                    NdpRepr::NeighborAdvert {
                        flags: NeighborFlags {
                            router: r,
                            solicited: s && !dst_ip.is_multicast(),
                            override_: o,
                        },
                        target,
                        target_lladdr: lladdr,
                    }
                };
                let mut frame = NdpFrame::new(dst_mac, src_mac, src_ip, dst_ip, ndp);
                frame.ethernet.vlan = vlan;
                frame
            },
        )
}

/// Flips, truncates or extends a frame.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    for (at, xor) in edits {
        if !bytes.is_empty() {
            let at = at % bytes.len();
            bytes[at] ^= xor;
        }
    }
    bytes.truncate(bytes.len().saturating_sub(cut % 4));
    bytes
}

fn check_reply_is_for_owned(bytes: &[u8]) -> Result<(), TestCaseError> {
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    if let Some(reply) = reply_to(bytes, &iface) {
        prop_assert!(
            owned.contains(&reply.claimed_ip()),
            "answered for {}",
            reply.claimed_ip()
        );
        let wire = reply.to_bytes();
        let (eth, _) = EthernetRepr::parse(&wire).unwrap();
        prop_assert_eq!(eth.src, OURS);
        prop_assert!(eth.src != EthernetRepr::parse(bytes).unwrap().0.src);
    }
    Ok(())
}

/// What a reported announcement must satisfy, checked against the frame
/// parsed independently: never ours, always a unicast station, and the
/// address and MAC the frame really claims.
fn check_announcement(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Some(seen) = foreign::announcement(bytes, OURS) else {
        return Ok(());
    };
    let Announcement { ip, mac, kind } = seen;
    prop_assert!(mac != OURS && mac.is_unicast(), "{seen:?}");
    let (eth, _) = EthernetRepr::parse(bytes).unwrap();
    prop_assert!(eth.src != OURS && eth.vlan.is_none(), "{seen:?}");
    match kind {
        Kind::ArpReply | Kind::GratuitousArp => {
            let arp = ArpFrame::parse(bytes).unwrap().arp;
            prop_assert_eq!(ip, IpAddr::V4(arp.sender_ip));
            prop_assert_eq!(mac, arp.sender_mac);
            prop_assert!(arp.operation == ArpOperation::Reply || arp.is_gratuitous());
        }
        Kind::NeighborAdvert { solicited } => {
            let NdpRepr::NeighborAdvert {
                flags,
                target,
                target_lladdr,
            } = NdpFrame::parse(bytes).unwrap().ndp
            else {
                return Err(TestCaseError::fail(format!(
                    "not an advertisement: {seen:?}"
                )));
            };
            prop_assert!(flags.override_);
            prop_assert_eq!(flags.solicited, solicited);
            prop_assert_eq!(ip, IpAddr::V6(target));
            prop_assert_eq!(Some(mac), target_lladdr);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes_never_panic_any_parser(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = EthernetRepr::parse(&bytes);
        let _ = ArpFrame::parse(&bytes);
        let _ = ArpRepr::parse(&bytes);
        let _ = NdpFrame::parse(&bytes);
        check_reply_is_for_owned(&bytes)?;
        check_announcement(&bytes)?;
    }

    #[test]
    fn arbitrary_arp_bytes_never_panic_the_classifier(
        tail in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        // An Ethernet header announcing ARP, so the random rest reaches
        // the ARP parser and the classifier's own checks.
        let mut bytes = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 0x0b, 0x08, 0x06];
        bytes.extend_from_slice(&tail);
        check_announcement(&bytes)?;
    }

    #[test]
    fn no_frame_is_taken_for_a_foreign_announcement_it_is_not(
        arp in arb_arp_frame(),
        ndp in arb_valid_ndp_frame(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        cut in any::<usize>(),
    ) {
        for bytes in [arp.to_bytes(), ndp.to_bytes()] {
            check_announcement(&bytes)?;
            check_announcement(&mutate(bytes, &edits, cut))?;
        }
    }

    #[test]
    fn arp_emit_then_parse_is_the_identity(frame in arb_arp_frame()) {
        let bytes = frame.to_bytes();
        prop_assert!(bytes.len() >= 60);
        prop_assert_eq!(ArpFrame::parse(&bytes), Ok(frame));
    }

    #[test]
    fn ndp_emit_then_parse_is_the_identity(frame in arb_valid_ndp_frame()) {
        let bytes = frame.to_bytes();
        prop_assert_eq!(NdpFrame::parse(&bytes), Ok(frame));
    }

    #[test]
    fn ethernet_emit_then_parse_is_the_identity(
        dst in arb_mac(),
        src in arb_mac(),
        vlan in arb_vlan(),
        ethertype in any::<u16>().prop_filter("not a tag", |t| *t != 0x8100 && *t != 0x88a8),
        payload in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        let eth = EthernetRepr { dst, src, vlan, ethertype: EtherType(ethertype) };
        let mut bytes = vec![0; eth.header_len()];
        eth.emit(&mut bytes).unwrap();
        bytes.extend_from_slice(&payload);
        let (parsed, rest) = EthernetRepr::parse(&bytes).unwrap();
        prop_assert_eq!(parsed, eth);
        prop_assert_eq!(rest, &payload[..]);
    }

    #[test]
    fn no_arp_frame_makes_it_answer_for_an_ip_it_does_not_own(
        frame in arb_arp_frame(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        cut in any::<usize>(),
    ) {
        check_reply_is_for_owned(&frame.to_bytes())?;
        check_reply_is_for_owned(&mutate(frame.to_bytes(), &edits, cut))?;
    }

    #[test]
    fn no_ndp_frame_makes_it_answer_for_an_ip_it_does_not_own(
        frame in arb_valid_ndp_frame(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        cut in any::<usize>(),
    ) {
        check_reply_is_for_owned(&frame.to_bytes())?;
        check_reply_is_for_owned(&mutate(frame.to_bytes(), &edits, cut))?;
    }
}

#[test]
fn the_generators_do_reach_the_classifier() {
    // As below: the property must not pass only because nothing is ever
    // classified. Plain frames from another station are announcements.
    let theirs = MacAddr([0x02, 0, 0, 0, 0, 0x0b]);
    let garp = ArpFrame::gratuitous_request(theirs, Ipv4Addr::new(192, 0, 2, 9));
    assert!(foreign::announcement(&garp.to_bytes(), OURS).is_some());
    let na = NdpFrame::unsolicited_advert(theirs, Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9));
    assert!(foreign::announcement(&na.to_bytes(), OURS).is_some());
}

#[test]
fn the_generators_do_reach_the_answering_path() {
    // Guard against a property that passes only because nothing is ever
    // answered: a plain who-has for an owned address must get a reply.
    let owned = owned();
    let iface = Interface {
        mac: OURS,
        owned: &owned,
    };
    let asker = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    let arp = ArpFrame::new(
        MacAddr::BROADCAST,
        asker,
        ArpRepr {
            operation: ArpOperation::Request,
            sender_mac: asker,
            sender_ip: Ipv4Addr::new(192, 0, 2, 1),
            target_mac: MacAddr::ZERO,
            target_ip: Ipv4Addr::new(192, 0, 2, 9),
        },
    );
    assert!(reply_to(&arp.to_bytes(), &iface).is_some());
    let ns = NdpFrame::solicitation(
        asker,
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9),
    );
    assert!(reply_to(&ns.to_bytes(), &iface).is_some());
}

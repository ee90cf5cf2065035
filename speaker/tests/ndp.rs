//! NDP frames against literal bytes whose checksums were computed outside
//! this crate (Python's `struct`, RFC 1071 sum), and the RFC 4861 7.1
//! validity checks.

use ferrolb_speaker::wire::ipv6::{multicast_mac, solicited_node, ALL_NODES};
use ferrolb_speaker::wire::{Error, MacAddr, NdpFrame, NdpRepr, NeighborFlags};
use std::net::Ipv6Addr;

const ASKER: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const OURS: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// NS from 2001:db8::1 (02:00:00:00:00:01) for 2001:db8::10, to its
/// solicited-node group, with a source link-layer option. Checksum 0x1c0b.
const NS: [u8; 86] = [
    0x33, 0x33, 0xff, 0x00, 0x00, 0x10, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x86, 0xdd, //
    0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, //
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, //
    0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0xff, 0x00, 0x00,
    0x10, //
    0x87, 0x00, 0x1c, 0x0b, 0x00, 0x00, 0x00, 0x00, //
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x10, //
    0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
];

/// Unsolicited NA for 2001:db8::10 at 02:00:00:00:00:0a to ff02::1,
/// override set. Checksum 0xf903.
const UNSOLICITED_NA: [u8; 86] = [
    0x33, 0x33, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x86, 0xdd, //
    0x60, 0x00, 0x00, 0x00, 0x00, 0x20, 0x3a, 0xff, //
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x10, //
    0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, //
    0x88, 0x00, 0xf9, 0x03, 0x20, 0x00, 0x00, 0x00, //
    0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x10, //
    0x02, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x0a,
];

/// Offsets into the frames above.
const HOP_LIMIT: usize = 21;
const ICMP: usize = 54;
const OPTIONS: usize = ICMP + 24;

/// Rewrites the ICMPv6 checksum of `frame` so only the change under test
/// makes it invalid.
fn fix_checksum(frame: &mut [u8]) {
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[22..38]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[38..54]).unwrap());
    let len = frame.len() - ICMP;
    frame[18..20].copy_from_slice(&(len as u16).to_be_bytes());
    frame[ICMP + 2..ICMP + 4].fill(0);
    let sum = ferrolb_speaker::wire::ipv6::icmpv6_checksum(&src, &dst, &frame[ICMP..]);
    frame[ICMP + 2..ICMP + 4].copy_from_slice(&sum.to_be_bytes());
}

#[test]
fn a_literal_solicitation_parses_to_its_fields() {
    let frame = NdpFrame::parse(&NS).unwrap();
    assert_eq!(frame.ethernet.dst, MacAddr([0x33, 0x33, 0xff, 0, 0, 0x10]));
    assert_eq!(frame.ethernet.src, ASKER);
    assert_eq!(frame.src_ip, v6("2001:db8::1"));
    assert_eq!(frame.dst_ip, v6("ff02::1:ff00:10"));
    assert_eq!(
        frame.ndp,
        NdpRepr::NeighborSolicit {
            target: v6("2001:db8::10"),
            source_lladdr: Some(ASKER),
        }
    );
}

#[test]
fn the_solicitation_builder_emits_the_literal_bytes() {
    let built = NdpFrame::solicitation(ASKER, v6("2001:db8::1"), v6("2001:db8::10"));
    assert_eq!(built.to_bytes(), NS);
}

#[test]
fn the_unsolicited_advert_emits_the_literal_bytes() {
    let built = NdpFrame::unsolicited_advert(OURS, v6("2001:db8::10"));
    assert_eq!(built.to_bytes(), UNSOLICITED_NA);
    let parsed = NdpFrame::parse(&UNSOLICITED_NA).unwrap();
    assert_eq!(parsed, built);
    assert_eq!(parsed.dst_ip, ALL_NODES);
    assert_eq!(parsed.ethernet.dst, multicast_mac(&ALL_NODES));
    let NdpRepr::NeighborAdvert { flags, .. } = parsed.ndp else {
        panic!("not an advertisement");
    };
    assert_eq!(
        flags,
        NeighborFlags {
            router: false,
            solicited: false,
            override_: true
        }
    );
}

#[test]
fn a_dad_solicitation_carries_no_link_layer_option() {
    let built = NdpFrame::solicitation(ASKER, Ipv6Addr::UNSPECIFIED, v6("2001:db8::10"));
    assert_eq!(built.dst_ip, solicited_node(&v6("2001:db8::10")));
    assert_eq!(
        built.ndp,
        NdpRepr::NeighborSolicit {
            target: v6("2001:db8::10"),
            source_lladdr: None
        }
    );
    assert_eq!(NdpFrame::parse(&built.to_bytes()), Ok(built));
}

#[test]
fn a_bad_checksum_is_rejected_with_both_values() {
    let mut bad = NS;
    bad[ICMP + 3] ^= 0x01;
    assert_eq!(
        NdpFrame::parse(&bad),
        Err(Error::Checksum {
            expected: 0x1c0b,
            found: 0x1c0a
        })
    );
}

#[test]
fn a_hop_limit_other_than_255_is_rejected() {
    let mut bad = NS;
    bad[HOP_LIMIT] = 64;
    assert_eq!(NdpFrame::parse(&bad), Err(Error::HopLimit(64)));
}

#[test]
fn a_nonzero_icmp_code_is_rejected() {
    let mut bad = NS.to_vec();
    bad[ICMP + 1] = 1;
    fix_checksum(&mut bad);
    assert_eq!(NdpFrame::parse(&bad), Err(Error::IcmpCode(1)));
}

#[test]
fn other_icmpv6_types_are_rejected() {
    let mut bad = NS.to_vec();
    bad[ICMP] = 128;
    fix_checksum(&mut bad);
    assert_eq!(NdpFrame::parse(&bad), Err(Error::IcmpType(128)));
}

#[test]
fn an_option_of_length_zero_is_rejected() {
    let mut bad = NS.to_vec();
    bad[OPTIONS + 1] = 0;
    fix_checksum(&mut bad);
    assert_eq!(NdpFrame::parse(&bad), Err(Error::ZeroLengthOption(1)));
}

#[test]
fn an_option_longer_than_the_message_is_rejected() {
    let mut bad = NS.to_vec();
    bad[OPTIONS + 1] = 2;
    fix_checksum(&mut bad);
    assert_eq!(
        NdpFrame::parse(&bad),
        Err(Error::TruncatedOption {
            kind: 1,
            needed: 16,
            got: 8
        })
    );
    let mut stub = NS.to_vec();
    stub.push(0x05);
    fix_checksum(&mut stub);
    assert!(matches!(
        NdpFrame::parse(&stub),
        Err(Error::TruncatedOption { kind: 5, .. })
    ));
}

#[test]
fn unknown_options_are_skipped() {
    let mut frame = NS.to_vec();
    // A nonce option (type 14, RFC 3971) before the link-layer option.
    frame.splice(OPTIONS..OPTIONS, [14, 1, 1, 2, 3, 4, 5, 6]);
    fix_checksum(&mut frame);
    let parsed = NdpFrame::parse(&frame).unwrap();
    assert_eq!(
        parsed.ndp,
        NdpRepr::NeighborSolicit {
            target: v6("2001:db8::10"),
            source_lladdr: Some(ASKER)
        }
    );
}

#[test]
fn a_multicast_target_is_rejected() {
    let mut bad = NS.to_vec();
    bad[ICMP + 8] = 0xff;
    fix_checksum(&mut bad);
    assert_eq!(NdpFrame::parse(&bad), Err(Error::MulticastTarget));
}

#[test]
fn a_dad_solicitation_with_a_link_layer_option_is_invalid() {
    let mut bad = NS.to_vec();
    bad[22..38].fill(0);
    fix_checksum(&mut bad);
    assert_eq!(
        NdpFrame::parse(&bad),
        Err(Error::UnspecifiedSourceWithLinkLayer)
    );
}

#[test]
fn a_dad_solicitation_must_go_to_a_solicited_node_group() {
    let mut frame =
        NdpFrame::solicitation(ASKER, Ipv6Addr::UNSPECIFIED, v6("2001:db8::10")).to_bytes();
    frame[38..54].copy_from_slice(&ALL_NODES.octets());
    fix_checksum(&mut frame);
    assert_eq!(
        NdpFrame::parse(&frame),
        Err(Error::UnspecifiedSourceNotToSolicitedNode)
    );
}

#[test]
fn a_solicited_advert_to_a_multicast_group_is_invalid() {
    let mut bad = UNSOLICITED_NA.to_vec();
    bad[ICMP + 4] = 0x60;
    fix_checksum(&mut bad);
    assert_eq!(NdpFrame::parse(&bad), Err(Error::SolicitedToMulticast));
}

#[test]
fn non_icmpv6_and_truncated_packets_are_rejected() {
    let mut udp = NS;
    udp[20] = 17;
    assert_eq!(NdpFrame::parse(&udp), Err(Error::NextHeader(17)));
    assert!(matches!(
        NdpFrame::parse(&NS[..80]),
        Err(Error::Truncated {
            what: "IPv6 payload",
            ..
        })
    ));
}

#[test]
fn emit_into_a_short_buffer_is_an_error() {
    let frame = NdpFrame::parse(&NS).unwrap();
    assert!(matches!(
        frame.emit(&mut [0; 85]),
        Err(Error::BufferTooSmall { needed: 86, .. })
    ));
}

#[test]
fn errors_read_as_sentences() {
    assert_eq!(
        Error::HopLimit(64).to_string(),
        "NDP hop limit 64 is not 255, so the message may come from off-link"
    );
    assert_eq!(
        Error::ZeroLengthOption(1).to_string(),
        "NDP option of type 1 has length 0"
    );
}

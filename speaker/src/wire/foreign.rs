//! Which received frames announce an address for another station: what
//! the speaker watches for when it hands its addresses over on a graceful
//! stop (the new owner's gratuitous ARP or unsolicited advertisement), and
//! what reveals a second station answering for an address we own.
//!
//! An announcement is a frame that makes a neighbour cache point `ip` at
//! `mac`:
//!
//! - an ARP reply with sender `ip` (solicited, or the broadcast gratuitous
//!   reply) or a gratuitous ARP request (sender = target = `ip`), with
//!   `mac` the sender hardware address;
//! - a Neighbor Advertisement for target `ip` with the override flag and a
//!   target link-layer address option `mac`, solicited or not. Without
//!   override a host does not replace an existing entry (RFC 4861 7.2.5),
//!   and without the option it has no address to learn: neither claims
//!   anything.
//!
//! Frames from `own` (our interface's MAC, as Ethernet source or as the
//! announced address), VLAN-tagged frames (they belong to a VLAN
//! interface's own transport), probes, ordinary requests and anything
//! malformed are not announcements. Classifying never panics.
//!
//! ```
//! use ferrolb_speaker::wire::foreign::{announcement, Kind};
//! use ferrolb_speaker::wire::{ArpFrame, MacAddr};
//! use std::net::Ipv4Addr;
//!
//! let ours: MacAddr = "02:00:00:00:00:0a".parse().unwrap();
//! let theirs: MacAddr = "02:00:00:00:00:0b".parse().unwrap();
//! let vip = Ipv4Addr::new(192, 0, 2, 10);
//! let garp = ArpFrame::gratuitous_request(theirs, vip).to_bytes();
//! let seen = announcement(&garp, ours).unwrap();
//! assert_eq!((seen.ip, seen.mac, seen.kind), (vip.into(), theirs, Kind::GratuitousArp));
//! let mine = ArpFrame::gratuitous_request(ours, vip).to_bytes();
//! assert_eq!(announcement(&mine, ours), None);
//! ```

use super::arp::{ArpFrame, ArpOperation};
use super::ethernet::{EtherType, EthernetRepr};
use super::ndp::{NdpFrame, NdpRepr};
use super::MacAddr;
use std::fmt;
use std::net::IpAddr;

/// The form of an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An ARP reply that is not gratuitous (an answer to someone).
    ArpReply,
    /// A gratuitous ARP request or reply (sender = target address).
    GratuitousArp,
    /// A Neighbor Advertisement with override set.
    NeighborAdvert {
        /// Solicited (an answer) rather than unsolicited (a takeover).
        solicited: bool,
    },
}

impl Kind {
    /// `arp` or `ndp`, as the metric label.
    pub fn protocol(self) -> &'static str {
        match self {
            Self::ArpReply | Self::GratuitousArp => "arp",
            Self::NeighborAdvert { .. } => "ndp",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ArpReply => "ARP reply",
            Self::GratuitousArp => "gratuitous ARP",
            Self::NeighborAdvert { solicited: true } => "solicited neighbor advertisement",
            Self::NeighborAdvert { solicited: false } => "unsolicited neighbor advertisement",
        })
    }
}

/// Another station announcing `ip` at `mac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Announcement {
    /// The address claimed.
    pub ip: IpAddr,
    /// The MAC the frame tells neighbours to use for it.
    pub mac: MacAddr,
    /// How it was announced.
    pub kind: Kind,
}

/// The announcement `frame` makes, if it is one and not from `own`.
pub fn announcement(frame: &[u8], own: MacAddr) -> Option<Announcement> {
    let (eth, _) = EthernetRepr::parse(frame).ok()?;
    match eth.ethertype {
        EtherType::ARP => of_arp(&ArpFrame::parse(frame).ok()?, own),
        EtherType::IPV6 => of_ndp(&NdpFrame::parse(frame).ok()?, own),
        _ => None,
    }
}

/// The announcement a parsed ARP frame makes, if any (see the module).
pub fn of_arp(frame: &ArpFrame, own: MacAddr) -> Option<Announcement> {
    let arp = &frame.arp;
    if !from_other_station(&frame.ethernet, arp.sender_mac, own) {
        return None;
    }
    let ip = arp.sender_ip;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return None;
    }
    let kind = if arp.is_gratuitous() {
        Kind::GratuitousArp
    } else if arp.operation == ArpOperation::Reply {
        Kind::ArpReply
    } else {
        // An ordinary request asks; it does not claim its sender address.
        return None;
    };
    Some(Announcement {
        ip: IpAddr::V4(ip),
        mac: arp.sender_mac,
        kind,
    })
}

/// The announcement a parsed NDP frame makes, if any (see the module).
pub fn of_ndp(frame: &NdpFrame, own: MacAddr) -> Option<Announcement> {
    let NdpRepr::NeighborAdvert {
        flags,
        target,
        target_lladdr: Some(mac),
    } = frame.ndp
    else {
        return None;
    };
    if !flags.override_ || !from_other_station(&frame.ethernet, mac, own) {
        return None;
    }
    if target.is_unspecified() || target.is_loopback() {
        return None;
    }
    Some(Announcement {
        ip: IpAddr::V6(target),
        mac,
        kind: Kind::NeighborAdvert {
            solicited: flags.solicited,
        },
    })
}

/// Untagged, sent by a real station that is not us, announcing a real
/// station's address that is not ours.
fn from_other_station(eth: &EthernetRepr, announced: MacAddr, own: MacAddr) -> bool {
    eth.vlan.is_none()
        && eth.src.is_unicast()
        && eth.src != own
        && announced.is_unicast()
        && announced != own
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::arp::ArpRepr;
    use crate::wire::ndp::NeighborFlags;
    use crate::wire::VlanTag;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const OURS: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
    const THEIRS: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0b]);
    const CLIENT: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

    fn vip6() -> Ipv6Addr {
        "2001:db8::10".parse().unwrap()
    }

    /// B's gratuitous request for 192.0.2.10, byte for byte.
    const GARP_REQUEST: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x0b, 0x08, 0x06, //
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x02, 0, 0, 0, 0, 0x0b, 192, 0, 2, 10, //
        0, 0, 0, 0, 0, 0, 192, 0, 2, 10, //
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
    ];

    /// B's reply to the client's who-has 192.0.2.10, byte for byte.
    const ARP_REPLY: [u8; 60] = [
        0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x0b, 0x08, 0x06, //
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, //
        0x02, 0, 0, 0, 0, 0x0b, 192, 0, 2, 10, //
        0x02, 0, 0, 0, 0, 0x01, 192, 0, 2, 1, //
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
    ];

    fn na(flags: NeighborFlags, lladdr: Option<MacAddr>) -> Vec<u8> {
        let mut frame = NdpFrame::unsolicited_advert(THEIRS, vip6());
        frame.ndp = NdpRepr::NeighborAdvert {
            flags,
            target: vip6(),
            target_lladdr: lladdr,
        };
        if flags.solicited {
            // A solicited advertisement goes back to the asker, unicast.
            frame.dst_ip = "2001:db8::1".parse().unwrap();
            frame.ethernet.dst = CLIENT;
        }
        frame.to_bytes()
    }

    fn flags(solicited: bool, override_: bool) -> NeighborFlags {
        NeighborFlags {
            router: false,
            solicited,
            override_,
        }
    }

    #[test]
    fn a_gratuitous_arp_request_announces_its_sender_address() {
        assert_eq!(
            announcement(&GARP_REQUEST, OURS),
            Some(Announcement {
                ip: VIP.into(),
                mac: THEIRS,
                kind: Kind::GratuitousArp
            })
        );
    }

    #[test]
    fn a_gratuitous_arp_reply_is_gratuitous_too() {
        let frame = ArpFrame::gratuitous_reply(THEIRS, VIP).to_bytes();
        let seen = announcement(&frame, OURS).unwrap();
        assert_eq!((seen.ip, seen.mac), (VIP.into(), THEIRS));
        assert_eq!(seen.kind, Kind::GratuitousArp);
    }

    #[test]
    fn an_arp_reply_to_someone_announces_its_sender_address() {
        let seen = announcement(&ARP_REPLY, OURS).unwrap();
        assert_eq!((seen.ip, seen.mac), (VIP.into(), THEIRS));
        assert_eq!(seen.kind, Kind::ArpReply);
        assert_eq!(seen.kind.protocol(), "arp");
    }

    #[test]
    fn questions_and_probes_announce_nothing() {
        let who_has = ArpFrame::request(CLIENT, Ipv4Addr::new(192, 0, 2, 1), VIP).to_bytes();
        assert_eq!(announcement(&who_has, OURS), None);
        let probe = ArpFrame::request(CLIENT, Ipv4Addr::UNSPECIFIED, VIP).to_bytes();
        assert_eq!(announcement(&probe, OURS), None);
        let ns = NdpFrame::solicitation(CLIENT, "2001:db8::1".parse().unwrap(), vip6());
        assert_eq!(announcement(&ns.to_bytes(), OURS), None);
    }

    #[test]
    fn our_own_mac_is_never_another_station() {
        let garp = ArpFrame::gratuitous_request(OURS, VIP).to_bytes();
        assert_eq!(announcement(&garp, OURS), None);
        let na = NdpFrame::unsolicited_advert(OURS, vip6()).to_bytes();
        assert_eq!(announcement(&na, OURS), None);
        // Our MAC as the Ethernet source only, or as the claimed address only.
        let mut relayed = ArpFrame::gratuitous_request(THEIRS, VIP);
        relayed.ethernet.src = OURS;
        assert_eq!(announcement(&relayed.to_bytes(), OURS), None);
        let mut forged = ArpFrame::gratuitous_request(THEIRS, VIP);
        forged.arp.sender_mac = OURS;
        assert_eq!(announcement(&forged.to_bytes(), OURS), None);
    }

    #[test]
    fn an_unsolicited_advertisement_with_override_announces_its_target() {
        let seen = announcement(&na(flags(false, true), Some(THEIRS)), OURS).unwrap();
        assert_eq!((seen.ip, seen.mac), (vip6().into(), THEIRS));
        assert_eq!(seen.kind, Kind::NeighborAdvert { solicited: false });
        assert_eq!(seen.kind.protocol(), "ndp");
        assert_eq!(seen.kind.to_string(), "unsolicited neighbor advertisement");
    }

    #[test]
    fn a_solicited_advertisement_with_override_announces_its_target() {
        let seen = announcement(&na(flags(true, true), Some(THEIRS)), OURS).unwrap();
        assert_eq!(seen.kind, Kind::NeighborAdvert { solicited: true });
        assert_eq!(seen.mac, THEIRS);
    }

    #[test]
    fn an_advertisement_without_override_or_link_layer_option_claims_nothing() {
        assert_eq!(
            announcement(&na(flags(false, false), Some(THEIRS)), OURS),
            None
        );
        assert_eq!(
            announcement(&na(flags(true, false), Some(THEIRS)), OURS),
            None
        );
        assert_eq!(announcement(&na(flags(false, true), None), OURS), None);
    }

    #[test]
    fn the_advertised_link_layer_address_is_the_one_reported() {
        // Sent by a router or bridge on the owner's behalf: the cache
        // learns the option's address, not the frame's source.
        let other = MacAddr([0x02, 0, 0, 0, 0, 0x0c]);
        let seen = announcement(&na(flags(false, true), Some(other)), OURS).unwrap();
        assert_eq!(seen.mac, other);
    }

    #[test]
    fn tagged_frames_belong_to_their_vlan_interface() {
        let mut garp = ArpFrame::gratuitous_request(THEIRS, VIP);
        garp.ethernet.vlan = Some(VlanTag {
            tpid: EtherType::VLAN,
            pcp: 0,
            dei: false,
            vid: 10,
        });
        assert_eq!(announcement(&garp.to_bytes(), OURS), None);
    }

    #[test]
    fn group_or_zero_addresses_claim_nothing() {
        for mac in [
            MacAddr::BROADCAST,
            MacAddr::ZERO,
            MacAddr([0x33, 0x33, 0, 0, 0, 1]),
        ] {
            let mut garp = ArpFrame::gratuitous_request(THEIRS, VIP);
            garp.arp.sender_mac = mac;
            assert_eq!(announcement(&garp.to_bytes(), OURS), None, "{mac}");
        }
        for ip in [Ipv4Addr::BROADCAST, Ipv4Addr::new(224, 0, 0, 1)] {
            let garp = ArpFrame::new(
                MacAddr::BROADCAST,
                THEIRS,
                ArpRepr {
                    operation: ArpOperation::Reply,
                    sender_mac: THEIRS,
                    sender_ip: ip,
                    target_mac: THEIRS,
                    target_ip: ip,
                },
            );
            assert_eq!(announcement(&garp.to_bytes(), OURS), None, "{ip}");
        }
    }

    #[test]
    fn truncated_frames_claim_nothing() {
        for len in 0..GARP_REQUEST.len() {
            let seen = announcement(&GARP_REQUEST[..len], OURS);
            // The ARP packet ends at byte 42; padding may go.
            assert_eq!(seen.is_some(), len >= 42, "{len} bytes");
        }
        let na = na(flags(false, true), Some(THEIRS));
        for len in 0..na.len() {
            assert_eq!(announcement(&na[..len], OURS), None, "{len} bytes");
        }
    }
}

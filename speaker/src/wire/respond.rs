//! Which received frames the speaker answers, and the answer.
//!
//! The rules are conservative: answering for an address this node does not
//! own steals traffic from its real owner, while a missed answer only costs
//! the asker a retry. So every decision starts from "no" and answers only a
//! well-formed question about an owned address, addressed to us.
//!
//! Frames with a VLAN tag are never answered: the owned set describes one
//! interface, and a tagged frame seen on it belongs to a VLAN interface that
//! has its own responder and its own owned set.

use super::arp::{ArpFrame, ArpOperation, ArpRepr};
use super::ethernet::{EtherType, EthernetRepr};
use super::ipv6::{self, ALL_NODES};
use super::ndp::{NdpFrame, NdpRepr, NeighborFlags};
use super::MacAddr;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// What the speaker knows about the interface a frame arrived on.
#[derive(Debug, Clone, Copy)]
pub struct Interface<'a> {
    /// The interface's MAC: replies come from it, and frames from it are
    /// our own and ignored.
    pub mac: MacAddr,
    /// The IPs this node owns (won the election for) on this interface.
    pub owned: &'a BTreeSet<IpAddr>,
}

impl Interface<'_> {
    fn owns(&self, ip: IpAddr) -> bool {
        self.owned.contains(&ip)
    }

    /// Frames we can answer: untagged, from a real other station, and sent
    /// to us directly or to a group (checked by the caller).
    fn accepts_from(&self, eth: &EthernetRepr) -> bool {
        eth.vlan.is_none() && eth.src != self.mac && eth.src.is_unicast()
    }
}

/// A reply to send back on the interface the question came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reply {
    /// An ARP reply.
    Arp(ArpFrame),
    /// A Neighbor Advertisement.
    Ndp(NdpFrame),
}

impl Reply {
    /// The reply as bytes ready for the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Arp(frame) => frame.to_bytes(),
            Self::Ndp(frame) => frame.to_bytes(),
        }
    }

    /// The address the reply claims for this node.
    pub fn claimed_ip(&self) -> IpAddr {
        match self {
            Self::Arp(frame) => IpAddr::V4(frame.arp.sender_ip),
            Self::Ndp(frame) => IpAddr::V6(frame.ndp.target()),
        }
    }
}

/// Parses a raw Ethernet frame and returns the reply it deserves, if any.
/// Frames that are not ARP or NDP, or do not parse, get no reply.
pub fn reply_to(frame: &[u8], iface: &Interface<'_>) -> Option<Reply> {
    let (eth, _) = EthernetRepr::parse(frame).ok()?;
    match eth.ethertype {
        EtherType::ARP => {
            let request = ArpFrame::parse(frame).ok()?;
            arp_reply(&request, iface).map(Reply::Arp)
        }
        EtherType::IPV6 => {
            let solicitation = NdpFrame::parse(frame).ok()?;
            ndp_reply(&solicitation, iface).map(Reply::Ndp)
        }
        _ => None,
    }
}

/// The ARP reply to `request`, if it asks who has an address we own.
///
/// Answers broadcast and unicast requests (neighbour reachability probes
/// are unicast, RFC 1122 2.3.2.1) and RFC 5227 probes from 0.0.0.0, which
/// get a reply to the prober's MAC so it sees the address is taken. Ignores
/// replies, gratuitous ARP (an announcement, not a question), our own
/// frames, and frames sent to another station's MAC.
pub fn arp_reply(request: &ArpFrame, iface: &Interface<'_>) -> Option<ArpFrame> {
    let eth = &request.ethernet;
    let arp = &request.arp;
    if !iface.accepts_from(eth) || !(eth.dst.is_broadcast() || eth.dst == iface.mac) {
        return None;
    }
    if arp.operation != ArpOperation::Request
        || arp.is_gratuitous()
        || arp.sender_mac == iface.mac
        || !arp.sender_mac.is_unicast()
        || !iface.owns(IpAddr::V4(arp.target_ip))
    {
        return None;
    }
    Some(ArpFrame::new(
        arp.sender_mac,
        iface.mac,
        ArpRepr {
            operation: ArpOperation::Reply,
            sender_mac: iface.mac,
            sender_ip: arp.target_ip,
            target_mac: arp.sender_mac,
            target_ip: arp.sender_ip,
        },
    ))
}

/// The Neighbor Advertisement answering `solicitation`, if it asks for an
/// address we own (RFC 4861 7.2.3, 7.2.4).
///
/// The solicitation must be sent to the target's solicited-node group or to
/// the target itself, at the matching Ethernet address. The reply carries
/// override set and our MAC as target link-layer option. It goes back to
/// the asker with solicited set; when the asker is `::` (duplicate address
/// detection) it goes to all nodes with solicited clear.
pub fn ndp_reply(solicitation: &NdpFrame, iface: &Interface<'_>) -> Option<NdpFrame> {
    let eth = &solicitation.ethernet;
    let NdpRepr::NeighborSolicit {
        target,
        source_lladdr,
    } = solicitation.ndp
    else {
        return None;
    };
    if !iface.accepts_from(eth) || source_lladdr == Some(iface.mac) {
        return None;
    }
    let to_group = solicitation.dst_ip == ipv6::solicited_node(&target);
    let to_target = solicitation.dst_ip == target;
    let expected_mac = if to_group {
        ipv6::multicast_mac(&solicitation.dst_ip)
    } else {
        iface.mac
    };
    if !(to_group || to_target) || eth.dst != expected_mac {
        return None;
    }
    // RFC 4861 7.1.1: DAD carries no source link-layer option; the parser
    // rejects it too, this guards frames built by hand.
    let dad_with_lladdr = solicitation.src_ip.is_unspecified() && source_lladdr.is_some();
    if dad_with_lladdr || solicitation.src_ip.is_multicast() || !iface.owns(IpAddr::V6(target)) {
        return None;
    }
    let (dst_mac, dst_ip, solicited) = if solicitation.src_ip.is_unspecified() {
        (ipv6::multicast_mac(&ALL_NODES), ALL_NODES, false)
    } else {
        // Without a source link-layer option RFC 4861 7.2.4 would resolve
        // the asker first; the frame's own source is the address it just
        // used, so answer there rather than start a resolution of our own.
        let mac = source_lladdr.unwrap_or(eth.src);
        if !mac.is_unicast() {
            return None;
        }
        (mac, solicitation.src_ip, true)
    };
    Some(NdpFrame::new(
        dst_mac,
        iface.mac,
        target,
        dst_ip,
        NdpRepr::NeighborAdvert {
            flags: NeighborFlags {
                router: false,
                solicited,
                override_: true,
            },
            target,
            target_lladdr: Some(iface.mac),
        },
    ))
}

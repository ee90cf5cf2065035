//! Neighbor Discovery (RFC 4861): Neighbor Solicitation and Neighbor
//! Advertisement inside ICMPv6 inside IPv6 inside Ethernet.

use super::ethernet::{EtherType, EthernetRepr};
use super::ipv6::{self, icmpv6_checksum, Ipv6Repr, ALL_NODES, NEXT_HEADER_ICMPV6};
use super::{be16, need, room, Error, MacAddr, Result};
use std::net::Ipv6Addr;

/// ICMPv6 type of a Neighbor Solicitation.
pub const TYPE_NEIGHBOR_SOLICIT: u8 = 135;
/// ICMPv6 type of a Neighbor Advertisement.
pub const TYPE_NEIGHBOR_ADVERT: u8 = 136;
/// The hop limit every NDP message is sent with and must arrive with, so
/// that a router cannot have forwarded it (RFC 4861 7.1.1).
pub const HOP_LIMIT: u8 = 255;

/// The fixed part of NS and NA: type, code, checksum, flags/reserved, target.
const FIXED_LEN: usize = 24;
const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;
/// A link-layer address option for Ethernet: type, length 1, six bytes.
const LLADDR_OPT_LEN: usize = 8;

/// The flags of a Neighbor Advertisement (RFC 4861 4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NeighborFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in response to a solicitation.
    pub solicited: bool,
    /// O: replace an existing cache entry.
    pub override_: bool,
}

impl NeighborFlags {
    fn bits(self) -> u8 {
        (u8::from(self.router) << 7)
            | (u8::from(self.solicited) << 6)
            | (u8::from(self.override_) << 5)
    }

    fn from_bits(bits: u8) -> Self {
        Self {
            router: bits & 0x80 != 0,
            solicited: bits & 0x40 != 0,
            override_: bits & 0x20 != 0,
        }
    }
}

/// An NDP message the speaker handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NdpRepr {
    /// "Who has `target`?" (RFC 4861 4.3).
    NeighborSolicit {
        /// The address being resolved.
        target: Ipv6Addr,
        /// The asker's MAC, absent when the asker has no address yet (DAD).
        source_lladdr: Option<MacAddr>,
    },
    /// "`target` is at `target_lladdr`" (RFC 4861 4.4).
    NeighborAdvert {
        /// R, S and O flags.
        flags: NeighborFlags,
        /// The address advertised.
        target: Ipv6Addr,
        /// The MAC it lives at.
        target_lladdr: Option<MacAddr>,
    },
}

impl NdpRepr {
    /// The target address of either message.
    pub fn target(&self) -> Ipv6Addr {
        match self {
            Self::NeighborSolicit { target, .. } | Self::NeighborAdvert { target, .. } => *target,
        }
    }

    /// Validates and parses the ICMPv6 `message` carried by `ip` with the
    /// checks of RFC 4861 7.1.1 and 7.1.2: hop limit 255, correct checksum,
    /// code 0, a non-multicast target, options of non-zero length that fit
    /// the message. Unknown options are skipped.
    pub fn parse(ip: &Ipv6Repr, message: &[u8]) -> Result<Self> {
        if ip.next_header != NEXT_HEADER_ICMPV6 {
            return Err(Error::NextHeader(ip.next_header));
        }
        if ip.hop_limit != HOP_LIMIT {
            return Err(Error::HopLimit(ip.hop_limit));
        }
        need("ICMPv6 header", message, 4)?;
        let kind = message.first().copied().unwrap_or_default();
        if kind != TYPE_NEIGHBOR_SOLICIT && kind != TYPE_NEIGHBOR_ADVERT {
            return Err(Error::IcmpType(kind));
        }
        need("NDP message", message, FIXED_LEN)?;
        if icmpv6_checksum(&ip.src, &ip.dst, message) != 0 {
            let mut zeroed = message.to_vec();
            zeroed[2..4].fill(0);
            return Err(Error::Checksum {
                expected: icmpv6_checksum(&ip.src, &ip.dst, &zeroed),
                found: be16(message, 2),
            });
        }
        let code = message.get(1).copied().unwrap_or_default();
        if code != 0 {
            return Err(Error::IcmpCode(code));
        }
        let target = Ipv6Addr::from(super::array::<16>(message, 8));
        if target.is_multicast() {
            return Err(Error::MulticastTarget);
        }
        let options = message.get(FIXED_LEN..).unwrap_or_default();
        if kind == TYPE_NEIGHBOR_SOLICIT {
            let source_lladdr = lladdr_option(options, OPT_SOURCE_LLADDR)?;
            if ip.src.is_unspecified() {
                if source_lladdr.is_some() {
                    return Err(Error::UnspecifiedSourceWithLinkLayer);
                }
                if !ipv6::is_solicited_node(&ip.dst) {
                    return Err(Error::UnspecifiedSourceNotToSolicitedNode);
                }
            }
            Ok(Self::NeighborSolicit {
                target,
                source_lladdr,
            })
        } else {
            let flags = NeighborFlags::from_bits(message.get(4).copied().unwrap_or_default());
            if flags.solicited && ip.dst.is_multicast() {
                return Err(Error::SolicitedToMulticast);
            }
            Ok(Self::NeighborAdvert {
                flags,
                target,
                target_lladdr: lladdr_option(options, OPT_TARGET_LLADDR)?,
            })
        }
    }

    /// The length of the ICMPv6 message [`emit`](Self::emit) writes.
    pub fn len(&self) -> usize {
        let lladdr = match self {
            Self::NeighborSolicit { source_lladdr, .. } => source_lladdr,
            Self::NeighborAdvert { target_lladdr, .. } => target_lladdr,
        };
        FIXED_LEN + lladdr.map_or(0, |_| LLADDR_OPT_LEN)
    }

    /// Always false: a message has a fixed part. Present for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the ICMPv6 message, with its checksum for `src` -> `dst`.
    pub fn emit(&self, src: &Ipv6Addr, dst: &Ipv6Addr, buf: &mut [u8]) -> Result<usize> {
        let len = self.len();
        room("NDP message", buf, len)?;
        let out = &mut buf[..len];
        out.fill(0);
        let (kind, flags, target, option) = match *self {
            Self::NeighborSolicit {
                target,
                source_lladdr,
            } => (
                TYPE_NEIGHBOR_SOLICIT,
                0,
                target,
                source_lladdr.map(|m| (OPT_SOURCE_LLADDR, m)),
            ),
            Self::NeighborAdvert {
                flags,
                target,
                target_lladdr,
            } => (
                TYPE_NEIGHBOR_ADVERT,
                flags.bits(),
                target,
                target_lladdr.map(|m| (OPT_TARGET_LLADDR, m)),
            ),
        };
        out[0] = kind;
        out[4] = flags;
        out[8..24].copy_from_slice(&target.octets());
        if let Some((opt, mac)) = option {
            out[24] = opt;
            out[25] = 1;
            out[26..32].copy_from_slice(&mac.0);
        }
        let sum = icmpv6_checksum(src, dst, out);
        out[2..4].copy_from_slice(&sum.to_be_bytes());
        Ok(len)
    }
}

/// The first Ethernet link-layer address option of `kind` in `options`,
/// after checking every option is well formed (RFC 4861 4.6: length is in
/// units of 8 bytes and 0 is invalid).
fn lladdr_option(options: &[u8], kind: u8) -> Result<Option<MacAddr>> {
    let mut found = None;
    let mut rest = options;
    while let [opt, units, ..] = *rest {
        if units == 0 {
            return Err(Error::ZeroLengthOption(opt));
        }
        let len = usize::from(units) * 8;
        let Some(body) = rest.get(..len) else {
            return Err(Error::TruncatedOption {
                kind: opt,
                needed: len,
                got: rest.len(),
            });
        };
        // Only the Ethernet form (one unit) carries a MAC we can use; other
        // sizes, like unknown options, are skipped.
        if opt == kind && len == LLADDR_OPT_LEN && found.is_none() {
            found = Some(MacAddr(super::array(body, 2)));
        }
        rest = rest.get(len..).unwrap_or_default();
    }
    if !rest.is_empty() {
        return Err(Error::TruncatedOption {
            kind: rest.first().copied().unwrap_or_default(),
            needed: 2,
            got: rest.len(),
        });
    }
    Ok(found)
}

/// An NDP message in its IPv6 packet and Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NdpFrame {
    /// The Ethernet header; its EtherType is IPv6.
    pub ethernet: EthernetRepr,
    /// IPv6 source address.
    pub src_ip: Ipv6Addr,
    /// IPv6 destination address.
    pub dst_ip: Ipv6Addr,
    /// The NDP message.
    pub ndp: NdpRepr,
}

impl NdpFrame {
    /// Wraps `ndp` in untagged Ethernet and IPv6 headers.
    pub fn new(
        dst_mac: MacAddr,
        src_mac: MacAddr,
        src_ip: Ipv6Addr,
        dst_ip: Ipv6Addr,
        ndp: NdpRepr,
    ) -> Self {
        Self {
            ethernet: EthernetRepr {
                dst: dst_mac,
                src: src_mac,
                vlan: None,
                ethertype: EtherType::IPV6,
            },
            src_ip,
            dst_ip,
            ndp,
        }
    }

    /// The unsolicited advertisement a new owner sends on takeover: to all
    /// nodes, override set, solicited clear (RFC 4861 7.2.6), from the
    /// address itself.
    pub fn unsolicited_advert(mac: MacAddr, ip: Ipv6Addr) -> Self {
        Self::new(
            ipv6::multicast_mac(&ALL_NODES),
            mac,
            ip,
            ALL_NODES,
            NdpRepr::NeighborAdvert {
                flags: NeighborFlags {
                    router: false,
                    solicited: false,
                    override_: true,
                },
                target: ip,
                target_lladdr: Some(mac),
            },
        )
    }

    /// A solicitation for `target` sent to its solicited-node address, with
    /// a source link-layer option unless `src_ip` is unspecified (DAD).
    pub fn solicitation(src_mac: MacAddr, src_ip: Ipv6Addr, target: Ipv6Addr) -> Self {
        let group = ipv6::solicited_node(&target);
        Self::new(
            ipv6::multicast_mac(&group),
            src_mac,
            src_ip,
            group,
            NdpRepr::NeighborSolicit {
                target,
                source_lladdr: (!src_ip.is_unspecified()).then_some(src_mac),
            },
        )
    }

    /// Parses and validates an Ethernet frame carrying NS or NA.
    pub fn parse(frame: &[u8]) -> Result<Self> {
        let (ethernet, payload) = EthernetRepr::parse(frame)?;
        if ethernet.ethertype != EtherType::IPV6 {
            return Err(Error::WrongEtherType {
                expected: EtherType::IPV6,
                found: ethernet.ethertype,
            });
        }
        let (ip, message) = Ipv6Repr::parse(payload)?;
        let ndp = NdpRepr::parse(&ip, message)?;
        Ok(Self {
            ethernet,
            src_ip: ip.src,
            dst_ip: ip.dst,
            ndp,
        })
    }

    /// The length [`emit`](Self::emit) writes.
    pub fn len(&self) -> usize {
        self.ethernet.header_len() + ipv6::HEADER_LEN + self.ndp.len()
    }

    /// Always false. Present for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the frame with hop limit 255 and the ICMPv6 checksum, and
    /// returns its length. NDP frames are always longer than the Ethernet
    /// minimum, so no padding is needed.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.len();
        room("NDP frame", buf, len)?;
        let mut ethernet = self.ethernet;
        ethernet.ethertype = EtherType::IPV6;
        let mut at = ethernet.emit(buf)?;
        let ip = Ipv6Repr {
            src: self.src_ip,
            dst: self.dst_ip,
            next_header: NEXT_HEADER_ICMPV6,
            hop_limit: HOP_LIMIT,
            // At most 32 bytes, far below u16::MAX.
            payload_len: self.ndp.len() as u16,
        };
        at += ip.emit(&mut buf[at..])?;
        at += self.ndp.emit(&self.src_ip, &self.dst_ip, &mut buf[at..])?;
        Ok(at)
    }

    /// The frame as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = vec![0; self.len()];
        // The buffer is sized by `len`, so emit cannot run out of room.
        let written = self.emit(&mut buf).unwrap_or(0);
        buf.truncate(written);
        buf
    }
}

//! Ethernet II header (IEEE 802.3 with EtherType), with an optional single
//! IEEE 802.1Q VLAN tag.

use super::{be16, need, room, Error, MacAddr, Result};
use std::fmt;

/// The length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// The length of an 802.1Q tag.
pub const VLAN_TAG_LEN: usize = 4;
/// The smallest Ethernet frame without its frame check sequence; shorter
/// frames must be padded (IEEE 802.3 clause 3.2.8).
pub const MIN_FRAME_LEN: usize = 60;

/// The EtherType field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EtherType(pub u16);

impl EtherType {
    /// IPv4.
    pub const IPV4: EtherType = EtherType(0x0800);
    /// ARP.
    pub const ARP: EtherType = EtherType(0x0806);
    /// IPv6.
    pub const IPV6: EtherType = EtherType(0x86dd);
    /// An IEEE 802.1Q VLAN tag follows.
    pub const VLAN: EtherType = EtherType(0x8100);
    /// An IEEE 802.1ad service tag (QinQ outer tag) follows.
    pub const QINQ: EtherType = EtherType(0x88a8);

    fn is_tag(self) -> bool {
        self == Self::VLAN || self == Self::QINQ
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IPV4 => f.write_str("IPv4 (0x0800)"),
            Self::ARP => f.write_str("ARP (0x0806)"),
            Self::IPV6 => f.write_str("IPv6 (0x86dd)"),
            Self::VLAN => f.write_str("802.1Q (0x8100)"),
            Self::QINQ => f.write_str("802.1ad (0x88a8)"),
            EtherType(other) => write!(f, "{other:#06x}"),
        }
    }
}

/// An 802.1Q tag: priority, drop-eligible bit and VLAN id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// The tag protocol identifier the tag was found under (0x8100 or 0x88a8).
    pub tpid: EtherType,
    /// Priority code point (3 bits).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier (12 bits).
    pub vid: u16,
}

impl VlanTag {
    /// An 802.1Q tag for `vid` with priority 0. Bits above 12 are dropped.
    pub fn new(vid: u16) -> Self {
        Self {
            tpid: EtherType::VLAN,
            pcp: 0,
            dei: false,
            vid: vid & 0x0fff,
        }
    }

    fn tci(&self) -> u16 {
        (u16::from(self.pcp & 0x7) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff)
    }
}

/// A parsed Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Destination address.
    pub dst: MacAddr,
    /// Source address.
    pub src: MacAddr,
    /// The VLAN tag, when the frame carries one.
    pub vlan: Option<VlanTag>,
    /// The EtherType of the payload (after any tag).
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// The header length: 14 bytes, 18 with a VLAN tag.
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.vlan.map_or(0, |_| VLAN_TAG_LEN)
    }

    /// Parses the header at the start of `frame` and returns it with the
    /// payload that follows (which may include Ethernet padding).
    pub fn parse(frame: &[u8]) -> Result<(Self, &[u8])> {
        need("Ethernet header", frame, HEADER_LEN)?;
        let dst = MacAddr(super::array(frame, 0));
        let src = MacAddr(super::array(frame, 6));
        let first = EtherType(be16(frame, 12));
        let (vlan, ethertype, len) = if first.is_tag() {
            need(
                "802.1Q-tagged Ethernet header",
                frame,
                HEADER_LEN + VLAN_TAG_LEN,
            )?;
            let tci = be16(frame, 14);
            let inner = EtherType(be16(frame, 16));
            if inner.is_tag() {
                return Err(Error::StackedVlan);
            }
            let tag = VlanTag {
                tpid: first,
                pcp: (tci >> 13) as u8,
                dei: tci & 0x1000 != 0,
                vid: tci & 0x0fff,
            };
            (Some(tag), inner, HEADER_LEN + VLAN_TAG_LEN)
        } else {
            (None, first, HEADER_LEN)
        };
        let repr = Self {
            dst,
            src,
            vlan,
            ethertype,
        };
        Ok((repr, frame.get(len..).unwrap_or_default()))
    }

    /// Writes the header at the start of `buf` and returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.header_len();
        room("Ethernet header", buf, len)?;
        buf[0..6].copy_from_slice(&self.dst.0);
        buf[6..12].copy_from_slice(&self.src.0);
        match self.vlan {
            Some(tag) => {
                buf[12..14].copy_from_slice(&tag.tpid.0.to_be_bytes());
                buf[14..16].copy_from_slice(&tag.tci().to_be_bytes());
                buf[16..18].copy_from_slice(&self.ethertype.0.to_be_bytes());
            }
            None => buf[12..14].copy_from_slice(&self.ethertype.0.to_be_bytes()),
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNTAGGED: [u8; 16] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x08, 0x06, // ARP
        0xaa, 0xbb, // payload
    ];

    const TAGGED: [u8; 19] = [
        0x02, 0x00, 0x00, 0x00, 0x00, 0x02, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, // src
        0x81, 0x00, 0xb0, 0x64, // 802.1Q, pcp 5, dei 1, vid 100
        0x86, 0xdd, // IPv6
        0x60,
    ];

    #[test]
    fn an_untagged_header_parses_to_its_fields_and_payload() {
        let (eth, payload) = EthernetRepr::parse(&UNTAGGED).unwrap();
        assert_eq!(eth.dst, MacAddr::BROADCAST);
        assert_eq!(eth.src, MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(eth.ethertype, EtherType::ARP);
        assert_eq!(eth.vlan, None);
        assert_eq!(payload, &[0xaa, 0xbb]);
    }

    #[test]
    fn a_vlan_tag_is_reported_and_skipped() {
        let (eth, payload) = EthernetRepr::parse(&TAGGED).unwrap();
        let tag = eth.vlan.unwrap();
        assert_eq!(
            (tag.tpid, tag.pcp, tag.dei, tag.vid),
            (EtherType::VLAN, 5, true, 100)
        );
        assert_eq!(eth.ethertype, EtherType::IPV6);
        assert_eq!(payload, &[0x60]);
    }

    #[test]
    fn emit_writes_the_literal_bytes_back() {
        for frame in [&UNTAGGED[..], &TAGGED[..]] {
            let (eth, payload) = EthernetRepr::parse(frame).unwrap();
            let mut buf = vec![0; eth.header_len()];
            assert_eq!(eth.emit(&mut buf), Ok(eth.header_len()));
            buf.extend_from_slice(payload);
            assert_eq!(buf, frame);
        }
    }

    #[test]
    fn short_frames_and_stacked_tags_are_errors() {
        assert!(matches!(
            EthernetRepr::parse(&UNTAGGED[..13]),
            Err(Error::Truncated {
                needed: 14,
                got: 13,
                ..
            })
        ));
        assert!(matches!(
            EthernetRepr::parse(&TAGGED[..17]),
            Err(Error::Truncated { needed: 18, .. })
        ));
        let mut qinq = TAGGED;
        qinq[12..14].copy_from_slice(&[0x88, 0xa8]);
        qinq[16..18].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(EthernetRepr::parse(&qinq), Err(Error::StackedVlan));
    }

    #[test]
    fn emit_into_a_short_buffer_is_an_error() {
        let (eth, _) = EthernetRepr::parse(&TAGGED).unwrap();
        assert!(matches!(
            eth.emit(&mut [0; 14]),
            Err(Error::BufferTooSmall { needed: 18, .. })
        ));
    }

    #[test]
    fn ethertypes_print_by_name() {
        assert_eq!(EtherType::ARP.to_string(), "ARP (0x0806)");
        assert_eq!(EtherType(0x1234).to_string(), "0x1234");
    }
}

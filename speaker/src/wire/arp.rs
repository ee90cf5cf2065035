//! ARP for IPv4 over Ethernet (RFC 826), with the gratuitous forms the
//! speaker sends on takeover and the probe form of RFC 5227.

use super::ethernet::{EtherType, EthernetRepr, MIN_FRAME_LEN};
use super::{be16, need, room, Error, MacAddr, Result};
use std::net::Ipv4Addr;

/// The length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;

/// The ARP operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// Who has `target_ip`? (1)
    Request,
    /// `sender_ip` is at `sender_mac`. (2)
    Reply,
}

impl ArpOperation {
    fn code(self) -> u16 {
        match self {
            Self::Request => 1,
            Self::Reply => 2,
        }
    }
}

/// An ARP packet for IPv4 over Ethernet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// Request or reply.
    pub operation: ArpOperation,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address (0.0.0.0 in an RFC 5227 probe).
    pub sender_ip: Ipv4Addr,
    /// Target hardware address (zero in a request).
    pub target_mac: MacAddr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Parses an ARP packet; bytes after the 28 it needs (Ethernet padding)
    /// are ignored.
    pub fn parse(packet: &[u8]) -> Result<Self> {
        need("ARP packet", packet, PACKET_LEN)?;
        let htype = be16(packet, 0);
        if htype != HTYPE_ETHERNET {
            return Err(Error::ArpHardwareType(htype));
        }
        let ptype = be16(packet, 2);
        if ptype != PTYPE_IPV4 {
            return Err(Error::ArpProtocolType(ptype));
        }
        let hlen = packet.get(4).copied().unwrap_or_default();
        if hlen != 6 {
            return Err(Error::ArpHardwareLength(hlen));
        }
        let plen = packet.get(5).copied().unwrap_or_default();
        if plen != 4 {
            return Err(Error::ArpProtocolLength(plen));
        }
        let operation = match be16(packet, 6) {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => return Err(Error::ArpOperation(other)),
        };
        Ok(Self {
            operation,
            sender_mac: MacAddr(super::array(packet, 8)),
            sender_ip: Ipv4Addr::from(super::array::<4>(packet, 14)),
            target_mac: MacAddr(super::array(packet, 18)),
            target_ip: Ipv4Addr::from(super::array::<4>(packet, 24)),
        })
    }

    /// Writes the 28-byte packet at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        room("ARP packet", buf, PACKET_LEN)?;
        buf[0..2].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        buf[2..4].copy_from_slice(&PTYPE_IPV4.to_be_bytes());
        buf[4] = 6;
        buf[5] = 4;
        buf[6..8].copy_from_slice(&self.operation.code().to_be_bytes());
        buf[8..14].copy_from_slice(&self.sender_mac.0);
        buf[14..18].copy_from_slice(&self.sender_ip.octets());
        buf[18..24].copy_from_slice(&self.target_mac.0);
        buf[24..28].copy_from_slice(&self.target_ip.octets());
        Ok(PACKET_LEN)
    }

    /// Whether this announces the sender's own binding rather than asking:
    /// sender IP equals target IP (RFC 5227 section 3 "ARP Announcement",
    /// RFC 5944 4.6).
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip && !self.sender_ip.is_unspecified()
    }

    /// Whether this is an RFC 5227 probe: a request from 0.0.0.0 by a host
    /// checking that `target_ip` is free.
    pub fn is_probe(&self) -> bool {
        self.operation == ArpOperation::Request && self.sender_ip.is_unspecified()
    }
}

/// An ARP packet in its Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpFrame {
    /// The Ethernet header; its EtherType is ARP.
    pub ethernet: EthernetRepr,
    /// The ARP packet.
    pub arp: ArpRepr,
}

impl ArpFrame {
    /// Wraps `arp` in an untagged Ethernet header from `src` to `dst`.
    pub fn new(dst: MacAddr, src: MacAddr, arp: ArpRepr) -> Self {
        Self {
            ethernet: EthernetRepr {
                dst,
                src,
                vlan: None,
                ethertype: EtherType::ARP,
            },
            arp,
        }
    }

    /// The broadcast request "who has `target`? tell `ip` at `mac`", with
    /// an all-zero target MAC, as a host asking for an address sends it.
    ///
    /// ```
    /// use ferrolb_speaker::wire::{ArpFrame, ArpOperation, MacAddr};
    /// let mac = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    /// let f = ArpFrame::request(mac, "192.0.2.1".parse().unwrap(), "192.0.2.10".parse().unwrap());
    /// assert_eq!(f.arp.operation, ArpOperation::Request);
    /// assert_eq!(f.ethernet.dst, MacAddr::BROADCAST);
    /// ```
    pub fn request(mac: MacAddr, ip: Ipv4Addr, target: Ipv4Addr) -> Self {
        Self::new(
            MacAddr::BROADCAST,
            mac,
            ArpRepr {
                operation: ArpOperation::Request,
                sender_mac: mac,
                sender_ip: ip,
                target_mac: MacAddr::ZERO,
                target_ip: target,
            },
        )
    }

    /// The gratuitous ARP request a new owner broadcasts: "who has `ip`?
    /// tell `ip`", with an all-zero target MAC (RFC 5227 section 3). Hosts
    /// that already cache `ip` update their entry to `mac`.
    pub fn gratuitous_request(mac: MacAddr, ip: Ipv4Addr) -> Self {
        Self::request(mac, ip, ip)
    }

    /// The gratuitous ARP reply form, broadcast with sender and target both
    /// `ip` at `mac`, for hosts that only learn from replies.
    pub fn gratuitous_reply(mac: MacAddr, ip: Ipv4Addr) -> Self {
        Self::new(
            MacAddr::BROADCAST,
            mac,
            ArpRepr {
                operation: ArpOperation::Reply,
                sender_mac: mac,
                sender_ip: ip,
                target_mac: mac,
                target_ip: ip,
            },
        )
    }

    /// Parses an Ethernet frame carrying ARP.
    pub fn parse(frame: &[u8]) -> Result<Self> {
        let (ethernet, payload) = EthernetRepr::parse(frame)?;
        if ethernet.ethertype != EtherType::ARP {
            return Err(Error::WrongEtherType {
                expected: EtherType::ARP,
                found: ethernet.ethertype,
            });
        }
        let arp = ArpRepr::parse(payload)?;
        Ok(Self { ethernet, arp })
    }

    /// The length [`emit`](Self::emit) writes, padding included.
    pub fn len(&self) -> usize {
        (self.ethernet.header_len() + PACKET_LEN).max(MIN_FRAME_LEN)
    }

    /// Always false: a frame has a header. Present for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Writes the frame, zero-padded to the 60-byte Ethernet minimum, and
    /// returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.len();
        room("ARP frame", buf, len)?;
        let mut ethernet = self.ethernet;
        ethernet.ethertype = EtherType::ARP;
        let at = ethernet.emit(buf)?;
        let end = at + self.arp.emit(&mut buf[at..])?;
        buf[end..len].fill(0);
        Ok(len)
    }

    /// The frame as bytes, padded to the Ethernet minimum.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut buf = vec![0; self.len()];
        // The buffer is sized by `len`, so emit cannot run out of room.
        let written = self.emit(&mut buf).unwrap_or(0);
        buf.truncate(written);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: MacAddr = MacAddr([0x02, 0x00, 0x00, 0x00, 0x00, 0x0a]);

    /// Who has 192.0.2.10? Tell 192.0.2.1 (02:00:00:00:00:01), padded.
    const REQUEST: [u8; 60] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, //
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 192, 0, 2, 1, //
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 0, 2, 10, //
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
    ];

    #[test]
    fn a_literal_request_parses_to_its_fields() {
        let frame = ArpFrame::parse(&REQUEST).unwrap();
        assert_eq!(frame.ethernet.dst, MacAddr::BROADCAST);
        assert_eq!(frame.arp.operation, ArpOperation::Request);
        assert_eq!(frame.arp.sender_mac, MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(frame.arp.sender_ip, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(frame.arp.target_mac, MacAddr::ZERO);
        assert_eq!(frame.arp.target_ip, Ipv4Addr::new(192, 0, 2, 10));
        assert!(!frame.arp.is_gratuitous() && !frame.arp.is_probe());
    }

    #[test]
    fn emit_reproduces_the_literal_request_with_padding() {
        let frame = ArpFrame::parse(&REQUEST).unwrap();
        assert_eq!(frame.to_bytes(), REQUEST);
    }

    #[test]
    fn the_gratuitous_request_matches_rfc_5227_announcement_bytes() {
        let bytes = ArpFrame::gratuitous_request(OURS, Ipv4Addr::new(192, 0, 2, 10)).to_bytes();
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x0a, 0x08, 0x06, //
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, //
            0x02, 0, 0, 0, 0, 0x0a, 192, 0, 2, 10, //
            0, 0, 0, 0, 0, 0, 192, 0, 2, 10,
        ];
        assert_eq!(bytes.len(), 60);
        assert_eq!(&bytes[..42], &expected);
        assert!(bytes[42..].iter().all(|b| *b == 0));
    }

    #[test]
    fn the_gratuitous_reply_is_a_broadcast_reply_about_itself() {
        let frame = ArpFrame::gratuitous_reply(OURS, Ipv4Addr::new(192, 0, 2, 10));
        let parsed = ArpFrame::parse(&frame.to_bytes()).unwrap();
        assert_eq!(parsed, frame);
        assert_eq!(parsed.ethernet.dst, MacAddr::BROADCAST);
        assert_eq!(parsed.arp.operation, ArpOperation::Reply);
        assert_eq!(parsed.arp.target_mac, OURS);
        assert!(parsed.arp.is_gratuitous());
    }

    #[test]
    fn wrong_header_fields_are_rejected_with_the_value_found() {
        let mut bad = REQUEST;
        bad[14..16].copy_from_slice(&[0x00, 0x06]);
        assert_eq!(ArpFrame::parse(&bad), Err(Error::ArpHardwareType(6)));
        let mut bad = REQUEST;
        bad[16..18].copy_from_slice(&[0x86, 0xdd]);
        assert_eq!(ArpFrame::parse(&bad), Err(Error::ArpProtocolType(0x86dd)));
        let mut bad = REQUEST;
        bad[18] = 8;
        assert_eq!(ArpFrame::parse(&bad), Err(Error::ArpHardwareLength(8)));
        let mut bad = REQUEST;
        bad[19] = 16;
        assert_eq!(ArpFrame::parse(&bad), Err(Error::ArpProtocolLength(16)));
        let mut bad = REQUEST;
        bad[21] = 3;
        assert_eq!(ArpFrame::parse(&bad), Err(Error::ArpOperation(3)));
        assert_eq!(
            Error::ArpOperation(3).to_string(),
            "ARP operation 3 is neither request (1) nor reply (2)"
        );
    }

    #[test]
    fn a_truncated_packet_or_other_ethertype_is_rejected() {
        assert!(matches!(
            ArpFrame::parse(&REQUEST[..41]),
            Err(Error::Truncated {
                needed: 28,
                got: 27,
                ..
            })
        ));
        let mut ipv4 = REQUEST;
        ipv4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert!(matches!(
            ArpFrame::parse(&ipv4),
            Err(Error::WrongEtherType {
                found: EtherType::IPV4,
                ..
            })
        ));
    }

    #[test]
    fn emit_into_a_short_buffer_is_an_error_not_a_panic() {
        let frame = ArpFrame::parse(&REQUEST).unwrap();
        assert!(matches!(
            frame.emit(&mut [0; 59]),
            Err(Error::BufferTooSmall { needed: 60, .. })
        ));
        assert!(frame.arp.emit(&mut [0; 27]).is_err());
    }

    #[test]
    fn a_probe_is_a_request_from_the_unspecified_address() {
        let mut probe = REQUEST;
        probe[28..32].copy_from_slice(&[0, 0, 0, 0]);
        let frame = ArpFrame::parse(&probe).unwrap();
        assert!(frame.arp.is_probe());
        assert!(!frame.arp.is_gratuitous());
    }
}

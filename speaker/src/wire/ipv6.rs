//! The fixed IPv6 header (RFC 8200 section 3), the ICMPv6 checksum
//! (RFC 4443 section 2.3) and the multicast address helpers NDP needs.

use super::{be16, need, room, Error, MacAddr, Result};
use std::net::Ipv6Addr;

/// The length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// The next-header value of ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;

/// The all-nodes link-local multicast address `ff02::1`.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A fixed IPv6 header. Traffic class and flow label are dropped on parse
/// and written as zero, which NDP does not care about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// The protocol of the payload.
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Payload length in bytes.
    pub payload_len: u16,
}

impl Ipv6Repr {
    /// Parses the header and returns it with exactly `payload_len` bytes of
    /// payload; trailing bytes (Ethernet padding) are dropped.
    pub fn parse(packet: &[u8]) -> Result<(Self, &[u8])> {
        need("IPv6 header", packet, HEADER_LEN)?;
        let version = packet.first().copied().unwrap_or_default() >> 4;
        if version != 6 {
            return Err(Error::IpVersion(version));
        }
        let payload_len = be16(packet, 4);
        let end = HEADER_LEN + usize::from(payload_len);
        need("IPv6 payload", packet, end)?;
        let repr = Self {
            payload_len,
            next_header: packet.get(6).copied().unwrap_or_default(),
            hop_limit: packet.get(7).copied().unwrap_or_default(),
            src: Ipv6Addr::from(super::array::<16>(packet, 8)),
            dst: Ipv6Addr::from(super::array::<16>(packet, 24)),
        };
        Ok((repr, packet.get(HEADER_LEN..end).unwrap_or_default()))
    }

    /// Writes the 40-byte header at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        room("IPv6 header", buf, HEADER_LEN)?;
        buf[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
        buf[4..6].copy_from_slice(&self.payload_len.to_be_bytes());
        buf[6] = self.next_header;
        buf[7] = self.hop_limit;
        buf[8..24].copy_from_slice(&self.src.octets());
        buf[24..40].copy_from_slice(&self.dst.octets());
        Ok(HEADER_LEN)
    }
}

/// The ICMPv6 checksum of `message` (with its checksum field as found)
/// between `src` and `dst`: the ones' complement of the ones' complement
/// sum over the pseudo-header (RFC 8200 8.1) and the message. A message
/// whose checksum field is correct yields 0.
pub fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let word = match pair {
                [hi, lo] => u16::from_be_bytes([*hi, *lo]),
                [hi] => u16::from_be_bytes([*hi, 0]),
                _ => 0,
            };
            sum += u32::from(word);
            // Fold as we go so the sum never overflows on any length.
            sum = (sum & 0xffff) + (sum >> 16);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    // Upper-layer length is 32 bits; NDP messages always fit, others are
    // clamped rather than wrapped.
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    add(&len.to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    add(message);
    !(sum as u16)
}

/// The solicited-node multicast address of `addr`: `ff02::1:ffXX:XXXX` with
/// the low 24 bits of `addr` (RFC 4291 2.7.1).
pub fn solicited_node(addr: &Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// Whether `addr` is a solicited-node multicast address.
pub fn is_solicited_node(addr: &Ipv6Addr) -> bool {
    addr.octets()[..13] == solicited_node(&Ipv6Addr::UNSPECIFIED).octets()[..13]
}

/// The Ethernet address a multicast IPv6 address maps to:
/// `33:33` followed by its low 32 bits (RFC 2464 section 7). For the
/// solicited-node address this is `33:33:ff:XX:XX:XX`.
pub fn multicast_mac(group: &Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn the_solicited_node_address_keeps_the_low_24_bits() {
        assert_eq!(
            solicited_node(&v6("2001:db8::12:3456:789a")),
            v6("ff02::1:ff56:789a")
        );
        assert!(is_solicited_node(&v6("ff02::1:ff56:789a")));
        assert!(!is_solicited_node(&v6("ff02::1")));
        assert!(!is_solicited_node(&v6("2001:db8::1")));
    }

    #[test]
    fn multicast_addresses_map_to_33_33_macs() {
        assert_eq!(
            multicast_mac(&v6("ff02::1:ff56:789a")),
            MacAddr([0x33, 0x33, 0xff, 0x56, 0x78, 0x9a])
        );
        assert_eq!(multicast_mac(&ALL_NODES), MacAddr([0x33, 0x33, 0, 0, 0, 1]));
    }

    #[test]
    fn a_header_round_trips_through_literal_bytes() {
        let mut bytes = vec![
            0x60, 0, 0, 0, 0x00, 0x02, 58, 255, //
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, //
            0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, //
            0xaa, 0xbb, 0xcc, // two payload bytes and one of padding
        ];
        let (ip, payload) = Ipv6Repr::parse(&bytes).unwrap();
        assert_eq!(ip.src, v6("2001:db8::1"));
        assert_eq!(ip.dst, ALL_NODES);
        assert_eq!((ip.next_header, ip.hop_limit, ip.payload_len), (58, 255, 2));
        assert_eq!(payload, &[0xaa, 0xbb]);
        let mut out = [0; HEADER_LEN];
        ip.emit(&mut out).unwrap();
        bytes.truncate(HEADER_LEN);
        assert_eq!(&out[..], &bytes[..]);
    }

    #[test]
    fn a_wrong_version_or_short_payload_is_rejected() {
        let mut bytes = [0u8; 40];
        bytes[0] = 0x45;
        assert_eq!(Ipv6Repr::parse(&bytes), Err(Error::IpVersion(4)));
        bytes[0] = 0x60;
        bytes[5] = 8;
        assert!(matches!(
            Ipv6Repr::parse(&bytes),
            Err(Error::Truncated {
                needed: 48,
                got: 40,
                ..
            })
        ));
    }

    #[test]
    fn the_checksum_matches_a_value_computed_by_hand() {
        // Echo request, id 0, seq 0, no data, from ::1 to ::1:
        // sum = 1 + 1 + 8 (length) + 58 + 0x8000 = 0x8044 -> !0x8044 = 0x7fbb.
        let msg = [128, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            icmpv6_checksum(&Ipv6Addr::LOCALHOST, &Ipv6Addr::LOCALHOST, &msg),
            0x7fbb
        );
        let with_sum = [128, 0, 0x7f, 0xbb, 0, 0, 0, 0];
        assert_eq!(
            icmpv6_checksum(&Ipv6Addr::LOCALHOST, &Ipv6Addr::LOCALHOST, &with_sum),
            0
        );
    }
}

//! Packet formats the speaker reads and writes, in the style of smoltcp's
//! `wire` module: each format has a typed representation (`*Repr`) with
//! `parse(&[u8])` and `emit(&mut [u8])`, and parsing never panics on any
//! input.
//!
//! - [`ethernet`]: Ethernet II header, with an optional 802.1Q tag.
//! - [`arp`]: ARP for IPv4 over Ethernet (RFC 826, RFC 5227).
//! - [`ipv6`]: the fixed IPv6 header and the ICMPv6 checksum (RFC 8200, RFC 4443).
//! - [`ndp`]: Neighbor Solicitation and Advertisement (RFC 4861).
//! - [`respond`]: which received frames the speaker answers, and with what.
//! - [`foreign`]: which received frames announce an address for another
//!   station (the new owner's gratuitous ARP or advertisement).

pub mod arp;
pub mod ethernet;
pub mod foreign;
pub mod ipv6;
pub mod ndp;
pub mod respond;

use std::fmt;
use std::str::FromStr;

pub use arp::{ArpFrame, ArpOperation, ArpRepr};
pub use ethernet::{EtherType, EthernetRepr, VlanTag};
pub use ipv6::Ipv6Repr;
pub use ndp::{NdpFrame, NdpRepr, NeighborFlags};

/// Why a frame could not be parsed or emitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input ends before the structure it should hold.
    #[error("{what} is truncated: needs {needed} bytes, got {got}")]
    Truncated {
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// The output buffer cannot hold the frame.
    #[error("buffer too small to emit {what}: needs {needed} bytes, got {got}")]
    BufferTooSmall {
        /// What was being written.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        got: usize,
    },
    /// Two VLAN tags (QinQ); the speaker only reads a single 802.1Q tag.
    #[error("stacked VLAN tags (QinQ) are not supported")]
    StackedVlan,
    /// The Ethernet frame carries another protocol than the one expected.
    #[error("expected EtherType {expected}, found {found}")]
    WrongEtherType {
        /// The EtherType the parser handles.
        expected: EtherType,
        /// The EtherType in the frame.
        found: EtherType,
    },
    /// ARP hardware type is not Ethernet (1).
    #[error("ARP hardware type {0} is not Ethernet (1)")]
    ArpHardwareType(u16),
    /// ARP protocol type is not IPv4 (0x0800).
    #[error("ARP protocol type {0:#06x} is not IPv4 (0x0800)")]
    ArpProtocolType(u16),
    /// ARP hardware address length is not 6.
    #[error("ARP hardware address length {0} is not 6")]
    ArpHardwareLength(u8),
    /// ARP protocol address length is not 4.
    #[error("ARP protocol address length {0} is not 4")]
    ArpProtocolLength(u8),
    /// ARP operation is neither request (1) nor reply (2).
    #[error("ARP operation {0} is neither request (1) nor reply (2)")]
    ArpOperation(u16),
    /// The IP version field is not 6.
    #[error("IP version {0} is not 6")]
    IpVersion(u8),
    /// The IPv6 next header is not ICMPv6 (58); extension headers are not
    /// followed.
    #[error("IPv6 next header {0} is not ICMPv6 (58)")]
    NextHeader(u8),
    /// The ICMPv6 checksum does not match the packet.
    #[error("ICMPv6 checksum {found:#06x} does not match the computed {expected:#06x}")]
    Checksum {
        /// The checksum the packet should carry.
        expected: u16,
        /// The checksum the packet carries.
        found: u16,
    },
    /// An NDP message whose hop limit is not 255 may come from off-link
    /// (RFC 4861 7.1.1).
    #[error("NDP hop limit {0} is not 255, so the message may come from off-link")]
    HopLimit(u8),
    /// ICMPv6 code is not 0 for an NDP message.
    #[error("ICMPv6 code {0} is not 0 for an NDP message")]
    IcmpCode(u8),
    /// The ICMPv6 type is not Neighbor Solicitation (135) or Advertisement (136).
    #[error("ICMPv6 type {0} is not a neighbor solicitation (135) or advertisement (136)")]
    IcmpType(u8),
    /// The NDP target address is multicast.
    #[error("NDP target address is multicast")]
    MulticastTarget,
    /// An NDP option has length 0 (RFC 4861 4.6).
    #[error("NDP option of type {0} has length 0")]
    ZeroLengthOption(u8),
    /// An NDP option runs past the end of the message.
    #[error("NDP option of type {kind} needs {needed} bytes but only {got} remain")]
    TruncatedOption {
        /// The option type.
        kind: u8,
        /// The length the option claims.
        needed: usize,
        /// The bytes left in the message.
        got: usize,
    },
    /// A solicitation from the unspecified address carries a source
    /// link-layer address option (RFC 4861 7.1.1).
    #[error(
        "neighbor solicitation from the unspecified address carries a source link-layer address"
    )]
    UnspecifiedSourceWithLinkLayer,
    /// A solicitation from the unspecified address is not sent to a
    /// solicited-node multicast address (RFC 4861 7.1.1).
    #[error("neighbor solicitation from the unspecified address is not sent to a solicited-node address")]
    UnspecifiedSourceNotToSolicitedNode,
    /// A solicited advertisement sent to a multicast address (RFC 4861 7.1.2).
    #[error("solicited neighbor advertisement is sent to a multicast address")]
    SolicitedToMulticast,
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Checks that `buf` holds at least `needed` bytes.
fn need(what: &'static str, buf: &[u8], needed: usize) -> Result<()> {
    if buf.len() < needed {
        Err(Error::Truncated {
            what,
            needed,
            got: buf.len(),
        })
    } else {
        Ok(())
    }
}

/// Checks that the output `buf` can hold `needed` bytes.
fn room(what: &'static str, buf: &[u8], needed: usize) -> Result<()> {
    if buf.len() < needed {
        Err(Error::BufferTooSmall {
            what,
            needed,
            got: buf.len(),
        })
    } else {
        Ok(())
    }
}

/// Reads a big-endian u16 at `at`; callers have checked the length.
fn be16(buf: &[u8], at: usize) -> u16 {
    match buf.get(at..at + 2) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    }
}

/// Copies `N` bytes at `at`; callers have checked the length.
fn array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    if let Some(src) = buf.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

/// A 48-bit Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// `00:00:00:00:00:00`, the "unknown" target of an ARP request.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// The address bytes.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Whether this is the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether the group bit is set (multicast, including broadcast).
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }

    /// Whether this is a unicast address other than all zeros, i.e. one a
    /// real interface can have.
    pub fn is_unicast(&self) -> bool {
        !self.is_multicast() && *self != Self::ZERO
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A string that is not a MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MAC address like 02:00:5e:10:00:01")]
pub struct ParseMacError(pub String);

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let bad = || ParseMacError(s.to_string());
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses_print_and_parse_in_colon_form() {
        let mac: MacAddr = "02:00:5E:10:00:01".parse().unwrap();
        assert_eq!(mac, MacAddr([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]));
        assert_eq!(mac.to_string(), "02:00:5e:10:00:01");
        assert_eq!("02-00-5e-10-00-01".parse(), Ok(mac));
    }

    #[test]
    fn malformed_mac_addresses_are_rejected_with_the_input_in_the_message() {
        for bad in [
            "",
            "02:00:5e:10:00",
            "02:00:5e:10:00:01:02",
            "2:00:5e:10:00:01",
            "zz:00:5e:10:00:01",
            "+1:00:5e:10:00:01",
        ] {
            let err = bad.parse::<MacAddr>().unwrap_err();
            assert!(err.to_string().contains("is not a MAC address"), "{bad}");
        }
    }

    #[test]
    fn mac_kinds_are_classified() {
        assert!(MacAddr::BROADCAST.is_broadcast() && MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr([0x33, 0x33, 0, 0, 0, 1]).is_multicast());
        assert!(!MacAddr::ZERO.is_unicast());
        assert!(MacAddr([0x02, 0, 0, 0, 0, 1]).is_unicast());
    }
}

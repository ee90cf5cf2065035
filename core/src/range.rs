//! IP address families and address ranges: the one parser of
//! `IPAddressPool.spec.addresses` entries and the one containment test,
//! shared by the controller (which allocates from the ranges and reports
//! entries that do not parse on the pool's `Valid` condition) and the
//! speaker (which finds the pool holding a Service's IPs), so both sides
//! always agree on which addresses a pool owns.
//!
//! Pure: std and `ipnet` only.
//!
//! An address can also be seen as a `(Family, u128)` pair ([`to_u128`]):
//! IPv4 addresses are widened to `u128` so that one interval arithmetic
//! serves both families, and the family keeps the two number spaces apart.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// Why an address, CIDR or range string cannot be used. The text quotes
/// the string and says what is wrong: `invalid address "198.51.100.300":
/// it is not an IP address, a CIDR or a start-end range`. The controller
/// turns it into its own `InvalidAddress` error with the same text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid address {input:?}: {detail}")]
pub struct Error {
    /// The string as given.
    pub input: String,
    /// What is wrong with it.
    pub detail: String,
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The other family.
    pub fn other(self) -> Family {
        match self {
            Family::V4 => Family::V6,
            Family::V6 => Family::V4,
        }
    }

    /// The spelling Kubernetes uses in `spec.ipFamilies`.
    pub fn as_k8s_str(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_k8s_str())
    }
}

/// An address as a number within its family.
pub fn to_u128(ip: IpAddr) -> (Family, u128) {
    match ip {
        IpAddr::V4(v4) => (Family::V4, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (Family::V6, u128::from(v6)),
    }
}

/// The address with number `n` in `family`, the inverse of [`to_u128`].
/// An IPv4 number above `u32::MAX` (which [`to_u128`] never gives)
/// saturates to `255.255.255.255`.
pub fn from_u128(family: Family, n: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// True for IPv4 addresses ending in `.0` or `.255`, which some old
/// routers' smurf protection drops. Never true for IPv6 (as in MetalLB).
pub fn is_buggy(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => matches!(v4.octets()[3], 0 | 255),
        IpAddr::V6(_) => false,
    }
}

/// An inclusive range of addresses of one family, `start <= end`.
///
/// Built from a CIDR (`198.51.100.0/24`), a single address, or a
/// `start-end` range; see [`AddressRange::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AddressRange {
    start: IpAddr,
    end: IpAddr,
}

impl AddressRange {
    /// The range from `start` to `end` inclusive.
    ///
    /// Fails when the families differ or `start > end`.
    pub fn new(start: IpAddr, end: IpAddr) -> Result<Self> {
        let input = format!("{start}-{end}");
        Self::checked(start, end, &input)
    }

    fn checked(start: IpAddr, end: IpAddr, input: &str) -> Result<Self> {
        if Family::of(start) != Family::of(end) {
            return Err(Error {
                input: input.to_string(),
                detail: format!("{start} and {end} are of different families"),
            });
        }
        if to_u128(start).1 > to_u128(end).1 {
            return Err(Error {
                input: input.to_string(),
                detail: format!("the start {start} comes after the end {end}"),
            });
        }
        Ok(AddressRange { start, end })
    }

    /// Parses one entry of `IPAddressPool.spec.addresses`.
    ///
    /// Accepted forms:
    /// - a CIDR, `198.51.100.0/24` or `2001:db8::/120`. Host bits are
    ///   allowed and dropped (`198.51.100.1/24` means `198.51.100.0/24`):
    ///   MetalLB reads CIDRs with Go's `net.ParseCIDR`, which masks them
    ///   the same way, so configurations that work there work here;
    /// - a single address, meaning `/32` or `/128`;
    /// - a range `198.51.100.10-198.51.100.20`, both ends of one family and
    ///   `start <= end`, with optional spaces around the `-`.
    ///
    /// ```
    /// use ferrolb_core::range::AddressRange;
    /// let r = AddressRange::parse("198.51.100.10 - 198.51.100.20").unwrap();
    /// assert_eq!(r.len(), 11);
    /// assert!(r.contains("198.51.100.20".parse().unwrap()));
    /// assert!(!r.contains("198.51.100.21".parse().unwrap()));
    ///
    /// let err = AddressRange::parse("198.51.100.300").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid address \"198.51.100.300\": it is not an IP address, a CIDR or a start-end range",
    /// );
    /// ```
    pub fn parse(input: &str) -> Result<Self> {
        let text = input.trim();
        let bad = |detail: String| Error {
            input: input.to_string(),
            detail,
        };
        if text.is_empty() {
            return Err(bad("it is empty".to_string()));
        }
        if let Some((left, right)) = text.split_once('-') {
            let start = parse_ip(left.trim())
                .ok_or_else(|| bad(format!("the start {:?} is not an IP address", left.trim())))?;
            let end = parse_ip(right.trim())
                .ok_or_else(|| bad(format!("the end {:?} is not an IP address", right.trim())))?;
            return Self::checked(start, end, input);
        }
        if text.contains('/') {
            let net = IpNet::from_str(text)
                .map_err(|_| bad("it is not a valid CIDR".to_string()))?
                .trunc();
            return Ok(AddressRange {
                start: net.network(),
                end: net.broadcast(),
            });
        }
        let ip = parse_ip(text).ok_or_else(|| {
            bad("it is not an IP address, a CIDR or a start-end range".to_string())
        })?;
        Ok(AddressRange { start: ip, end: ip })
    }

    /// First address.
    pub fn start(&self) -> IpAddr {
        self.start
    }

    /// Last address.
    pub fn end(&self) -> IpAddr {
        self.end
    }

    /// The family of both ends.
    pub fn family(&self) -> Family {
        Family::of(self.start)
    }

    /// Whether `ip` lies in the range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (family, n) = to_u128(ip);
        let (lo, hi) = self.bounds();
        family == self.family() && lo <= n && n <= hi
    }

    /// Number of addresses, saturating at `u128::MAX` for `::/0`.
    pub fn len(&self) -> u128 {
        let (lo, hi) = self.bounds();
        (hi - lo).saturating_add(1)
    }

    /// Never true: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The shared addresses of two ranges, if any.
    pub fn intersection(&self, other: &AddressRange) -> Option<AddressRange> {
        if self.family() != other.family() {
            return None;
        }
        let (a, b) = self.bounds();
        let (c, d) = other.bounds();
        let (lo, hi) = (a.max(c), b.min(d));
        (lo <= hi).then(|| AddressRange {
            start: from_u128(self.family(), lo),
            end: from_u128(self.family(), hi),
        })
    }

    /// Both ends as numbers within the family (see [`to_u128`]).
    pub fn bounds(&self) -> (u128, u128) {
        (to_u128(self.start).1, to_u128(self.end).1)
    }
}

impl fmt::Display for AddressRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl FromStr for AddressRange {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        AddressRange::parse(s)
    }
}

fn parse_ip(text: &str) -> Option<IpAddr> {
    IpAddr::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_cidr_covers_its_whole_network() {
        let r = AddressRange::parse("198.51.100.0/24").unwrap();
        assert_eq!(r.start(), ip("198.51.100.0"));
        assert_eq!(r.end(), ip("198.51.100.255"));
        assert_eq!(r.len(), 256);
    }

    #[test]
    fn an_ipv6_cidr_parses() {
        let r = AddressRange::parse("2001:db8::/120").unwrap();
        assert_eq!(r.start(), ip("2001:db8::"));
        assert_eq!(r.end(), ip("2001:db8::ff"));
        assert_eq!(r.family(), Family::V6);
    }

    #[test]
    fn a_cidr_with_host_bits_is_masked_to_its_network() {
        let r = AddressRange::parse("198.51.100.77/24").unwrap();
        assert_eq!(r, AddressRange::parse("198.51.100.0/24").unwrap());
    }

    #[test]
    fn a_single_address_is_a_slash_32_or_slash_128() {
        assert_eq!(AddressRange::parse("192.0.2.7").unwrap().len(), 1);
        assert_eq!(AddressRange::parse("2001:db8::7").unwrap().len(), 1);
        assert_eq!(AddressRange::parse("192.0.2.7/32").unwrap().len(), 1);
    }

    #[test]
    fn a_range_tolerates_spaces_around_the_dash() {
        let a = AddressRange::parse("198.51.100.10-198.51.100.20").unwrap();
        let b = AddressRange::parse(" 198.51.100.10 -  198.51.100.20 ").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), 11);
    }

    #[test]
    fn a_range_of_mixed_families_is_refused_naming_the_input() {
        let err = AddressRange::parse("198.51.100.1-2001:db8::1").unwrap_err();
        assert_eq!(err.input, "198.51.100.1-2001:db8::1");
        assert!(
            err.to_string().contains("198.51.100.1-2001:db8::1"),
            "{err}"
        );
        assert!(err.to_string().contains("different families"), "{err}");
    }

    #[test]
    fn a_backwards_range_is_refused() {
        let err = AddressRange::parse("198.51.100.20-198.51.100.10").unwrap_err();
        assert!(err.to_string().contains("comes after"), "{err}");
    }

    #[test]
    fn garbage_is_refused_naming_the_string() {
        for bad in [
            "",
            "banana",
            "198.51.100.0/33",
            "198.51.100.300",
            "192.0.2.4-",
            "/24",
        ] {
            let err = AddressRange::parse(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn the_whole_ipv6_space_saturates_its_length() {
        assert_eq!(AddressRange::parse("::/0").unwrap().len(), u128::MAX);
    }

    #[test]
    fn intersection_finds_the_shared_addresses() {
        let a = AddressRange::parse("198.51.100.0/25").unwrap();
        let b = AddressRange::parse("198.51.100.100-198.51.100.200").unwrap();
        let both = a.intersection(&b).unwrap();
        assert_eq!(both.to_string(), "198.51.100.100-198.51.100.127");
        let v6 = AddressRange::parse("2001:db8::/64").unwrap();
        assert_eq!(a.intersection(&v6), None);
    }

    #[test]
    fn buggy_addresses_are_ipv4_dot_zero_and_dot_255_only() {
        assert!(is_buggy(ip("198.51.100.0")));
        assert!(is_buggy(ip("198.51.100.255")));
        assert!(!is_buggy(ip("198.51.100.1")));
        assert!(!is_buggy(ip("2001:db8::")));
        assert!(!is_buggy(ip("2001:db8::ff")));
    }

    #[test]
    fn contains_includes_both_ends_and_nothing_of_the_other_family() {
        let r = AddressRange::parse("198.51.100.10-198.51.100.20").unwrap();
        assert!(r.contains(ip("198.51.100.10")));
        assert!(r.contains(ip("198.51.100.20")));
        assert!(!r.contains(ip("198.51.100.9")));
        assert!(!r.contains(ip("198.51.100.21")));
        // ::ffff:198.51.100.15 and 198.51.100.15 are different addresses here.
        assert!(!r.contains(ip("::ffff:198.51.100.15")));
        assert!(!AddressRange::parse("::/0")
            .unwrap()
            .contains(ip("198.51.100.15")));
    }

    #[test]
    fn the_error_text_quotes_the_input_and_says_what_is_wrong() {
        let err = AddressRange::parse("198.51.100.20-198.51.100.10").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid address \"198.51.100.20-198.51.100.10\": the start 198.51.100.20 comes after the end 198.51.100.10"
        );
    }

    fn any_v4_range() -> impl Strategy<Value = (u32, u32)> {
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| (a.min(b), a.max(b)))
    }

    proptest! {
        #[test]
        fn contains_agrees_with_the_numeric_bounds((lo, hi) in any_v4_range(), n in any::<u32>()) {
            let text = format!("{}-{}", Ipv4Addr::from(lo), Ipv4Addr::from(hi));
            let r = AddressRange::parse(&text).unwrap();
            prop_assert_eq!(r.contains(IpAddr::V4(Ipv4Addr::from(n))), lo <= n && n <= hi);
            prop_assert_eq!(r.len(), u128::from(hi - lo) + 1);
        }

        #[test]
        fn a_cidr_contains_exactly_the_addresses_sharing_its_prefix(
            base in any::<u128>(), prefix in 0u8..=128, n in any::<u128>(),
        ) {
            let net = ipnet::Ipv6Net::new(Ipv6Addr::from(base), prefix).unwrap();
            let r = AddressRange::parse(&net.to_string()).unwrap();
            let addr = Ipv6Addr::from(n);
            prop_assert_eq!(r.contains(IpAddr::V6(addr)), net.contains(&addr));
        }

        #[test]
        fn to_and_from_u128_are_inverse(v4 in any::<u32>(), v6 in any::<u128>()) {
            for ip in [IpAddr::V4(Ipv4Addr::from(v4)), IpAddr::V6(Ipv6Addr::from(v6))] {
                let (family, n) = to_u128(ip);
                prop_assert_eq!(from_u128(family, n), ip);
            }
        }
    }
}

//! Names and addresses of the lab, all from the documentation ranges.
//!
//! ```text
//!   api      192.0.2.1    2001:db8::1     API relay :6443, controller
//!   node-N   192.0.2.1N   2001:db8::1N    speaker, kube-proxy stand-in
//!   client   192.0.2.100  2001:db8::100   on-link routes to the pool ranges
//!   lan2     node eth1 203.0.113.1N, 2001:db8:3::1N; client2 .100 (optional)
//!   pool     198.51.100.0/24, 2001:db8:0:1::10-2001:db8:0:1::ff (deploy/examples)
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Namespace prefix of the lab binary (`flblab-<pid>-<n>-<role>`); `down`
/// sweeps it.
pub const PREFIX: &str = "flblab";
/// Where the relay listens inside the `api` namespace.
pub const API_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The relay's port.
pub const API_PORT: u16 = 6443;
/// The client's addresses.
pub const CLIENT_V4: &str = "192.0.2.100/24";
/// The client's IPv6 address.
pub const CLIENT_V6: &str = "2001:db8::100/64";
/// The second client's addresses (on `lan2`, with `--second-lan`).
pub const CLIENT2_V4: &str = "203.0.113.100/24";
/// The second client's IPv6 address.
pub const CLIENT2_V6: &str = "2001:db8:3::100/64";
/// On-link routes the client gets, as a LAN host on the same segment would.
pub const CLIENT_ROUTES: [&str; 2] = ["198.51.100.0/24", "2001:db8:0:1::/64"];
/// Namespace of pools, advertisements and the controller's Lease.
pub const SYSTEM_NS: &str = "ferrolb-system";
/// Name of the pool and of the advertisement the lab applies from
/// `deploy/examples/`.
pub const POOL_NAME: &str = "default";
/// Gossip port of the speakers.
pub const MEMBERLIST_PORT: u16 = 7946;
/// Metrics port of the speakers (on the node IP).
pub const SPEAKER_HTTP_PORT: u16 = 7473;

/// Name of node `i` (1-based): `node-1`.
pub fn node_name(i: usize) -> String {
    format!("node-{i}")
}

/// IPv4 address of node `i` (1-based): `192.0.2.11`.
pub fn node_v4(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 10 + i as u8)
}

/// IPv6 address of node `i` (1-based): `2001:db8::11` (the digits read as
/// the IPv4 ones).
pub fn node_v6(i: usize) -> Ipv6Addr {
    let digits = u16::from_str_radix(&(10 + i).to_string(), 16).unwrap_or(0x10);
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, digits)
}

/// IPv4 address of node `i`'s `eth1` on the second LAN: `203.0.113.1N`.
pub fn lan2_v4(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(203, 0, 113, 10 + i as u8)
}

/// IPv6 address of node `i`'s `eth1` on the second LAN: `2001:db8:3::1N`.
pub fn lan2_v6(i: usize) -> Ipv6Addr {
    let v6 = node_v6(i);
    Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, v6.segments()[7])
}

/// Address of the `k`-th fake Pod of a Service on node `i` (for
/// EndpointSlices): `203.0.113.<100+i*10+k>` (never configured on an interface) / `2001:db8:2::<i>:<k>`.
pub fn pod_ip(i: usize, k: usize, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, i as u16, k as u16))
    } else {
        IpAddr::V4(Ipv4Addr::new(203, 0, 113, (100 + i * 10 + k) as u8))
    }
}

/// Whether `ip` is inside the lab's pool ranges' subnets.
pub fn in_pool_subnet(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == [198, 51, 100],
        IpAddr::V6(v6) => v6.segments()[..4] == [0x2001, 0xdb8, 0, 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_read_alike_in_both_families() {
        assert_eq!(node_v4(1).to_string(), "192.0.2.11");
        assert_eq!(node_v6(1).to_string(), "2001:db8::11");
        assert_eq!(node_v6(5).to_string(), "2001:db8::15");
        assert_eq!(node_name(3), "node-3");
        assert_eq!(lan2_v4(2).to_string(), "203.0.113.12");
        assert_eq!(lan2_v6(2).to_string(), "2001:db8:3::12");
    }

    #[test]
    fn pool_addresses_are_recognised_and_nothing_else() {
        assert!(in_pool_subnet("198.51.100.10".parse().unwrap()));
        assert!(in_pool_subnet("2001:db8:0:1::10".parse().unwrap()));
        assert!(!in_pool_subnet("192.0.2.11".parse().unwrap()));
        assert!(!in_pool_subnet("2001:db8::11".parse().unwrap()));
    }

    #[test]
    fn pod_ips_stay_in_documentation_ranges() {
        assert_eq!(pod_ip(2, 1, false).to_string(), "203.0.113.121");
        assert_eq!(pod_ip(2, 1, true).to_string(), "2001:db8:2::2:1");
    }
}

//! Helpers shared by the integration tests.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// 2,000 distinct documentation addresses, IPv4 and IPv6 mixed.
pub fn many_ips() -> Vec<IpAddr> {
    let v4 = [[192, 0, 2], [198, 51, 100], [203, 0, 113]]
        .into_iter()
        .flat_map(|[a, b, c]| (0..=255u8).map(move |d| IpAddr::V4(Ipv4Addr::new(a, b, c, d))));
    let v6 = (0u16..).map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 7, i)));
    v4.chain(v6).take(2_000).collect()
}

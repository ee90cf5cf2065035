//! MAC addresses and neighbour (ARP/NDP cache) entries as `ip -j` prints them.

use std::{fmt, net::IpAddr, str::FromStr};

use serde::Deserialize;

use crate::{Error, Result};

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

/// A MAC address that is not six `:`-separated hex octets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}")]
pub struct MacParseError(pub String);

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, MacParseError> {
        let bad = || MacParseError(s.to_owned());
        let mut octets = [0u8; 6];
        let mut parts = s.split(':');
        for octet in &mut octets {
            let part = parts.next().ok_or_else(bad)?;
            if part.is_empty() || part.len() > 2 {
                return Err(bad());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self(octets))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// One entry of a namespace's neighbour table (`ip neigh`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    /// The neighbour's IP address.
    pub dst: IpAddr,
    /// Its link-layer address; absent while `INCOMPLETE` or once `FAILED`.
    pub lladdr: Option<MacAddr>,
    /// NUD states as the kernel reports them, e.g. `["REACHABLE"]`, `["STALE"]`.
    pub states: Vec<String>,
}

impl Neighbour {
    /// Whether the entry is in NUD state `state` (case-insensitive), e.g. `"REACHABLE"`.
    pub fn has_state(&self, state: &str) -> bool {
        self.states.iter().any(|s| s.eq_ignore_ascii_case(state))
    }
}

#[derive(Deserialize)]
struct RawNeighbour {
    dst: String,
    #[serde(default)]
    lladdr: Option<String>,
    #[serde(default)]
    state: Vec<String>,
}

#[derive(Deserialize)]
struct RawLink {
    ifindex: u32,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    flags: Vec<String>,
}

/// What netlab reads about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) ifindex: u32,
    pub(crate) mac: MacAddr,
    /// Up and with carrier: the kernel can send and receive on it.
    pub(crate) running: bool,
}

fn parse_error(command: &str, reason: impl fmt::Display) -> Error {
    Error::Parse {
        command: command.to_owned(),
        reason: reason.to_string(),
    }
}

/// Parses the JSON of `ip -j neigh show`.
pub(crate) fn parse_neighbours(json: &str, command: &str) -> Result<Vec<Neighbour>> {
    // `ip -j` prints nothing at all (not `[]`) for an empty table on some versions.
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<RawNeighbour> = serde_json::from_str(json).map_err(|e| parse_error(command, e))?;
    raw.into_iter()
        .map(|r| {
            let dst = r.dst.parse().map_err(|e| parse_error(command, e))?;
            let lladdr = r
                .lladdr
                .map(|m| m.parse())
                .transpose()
                .map_err(|e| parse_error(command, e))?;
            Ok(Neighbour {
                dst,
                lladdr,
                states: r.state,
            })
        })
        .collect()
}

/// Parses the single link in the JSON of `ip -j link show dev X`.
pub(crate) fn parse_link(json: &str, command: &str) -> Result<Link> {
    let raw: Vec<RawLink> = serde_json::from_str(json).map_err(|e| parse_error(command, e))?;
    let link = raw
        .into_iter()
        .next()
        .ok_or_else(|| parse_error(command, "no link"))?;
    let address = link
        .address
        .ok_or_else(|| parse_error(command, "no link address"))?;
    let mac = address.parse().map_err(|e| parse_error(command, e))?;
    let has = |flag: &str| link.flags.iter().any(|f| f == flag);
    Ok(Link {
        ifindex: link.ifindex,
        mac,
        running: has("UP") && has("LOWER_UP"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses_round_trip_through_text() {
        let mac: MacAddr = "02:aB:00:0c:1:ff".parse().unwrap();
        assert_eq!(mac, MacAddr([0x02, 0xab, 0x00, 0x0c, 0x01, 0xff]));
        assert_eq!(mac.to_string(), "02:ab:00:0c:01:ff");
    }

    #[test]
    fn malformed_mac_addresses_are_rejected() {
        for bad in [
            "",
            "02:ab:00:0c:01",
            "02:ab:00:0c:01:ff:00",
            "02:ab:00:0c:01:fg",
            "002:ab:00:0c:01:ff",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn neighbour_json_yields_addresses_macs_and_states() {
        let json = r#"[
            {"dst":"198.51.100.12","dev":"eth0","lladdr":"02:00:00:00:00:0b","state":["REACHABLE"]},
            {"dst":"2001:db8::12","dev":"eth0","lladdr":"02:00:00:00:00:0b","router":null,"state":["STALE"]},
            {"dst":"198.51.100.99","dev":"eth0","state":["FAILED"]}
        ]"#;
        let n = parse_neighbours(json, "ip -j neigh").unwrap();
        assert_eq!(n.len(), 3);
        assert_eq!(n[0].dst, "198.51.100.12".parse::<IpAddr>().unwrap());
        assert_eq!(n[0].lladdr, Some(MacAddr([2, 0, 0, 0, 0, 0x0b])));
        assert!(n[0].has_state("reachable"));
        assert!(n[1].has_state("STALE"));
        assert_eq!(n[2].lladdr, None);
        assert!(n[2].has_state("FAILED"));
    }

    #[test]
    fn an_empty_neighbour_table_may_print_nothing() {
        assert_eq!(parse_neighbours("\n", "ip").unwrap(), vec![]);
        assert_eq!(parse_neighbours("[]", "ip").unwrap(), vec![]);
    }

    #[test]
    fn link_json_yields_the_ifindex_and_mac() {
        let json = r#"[{"ifindex":2,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"address":"02:00:00:00:00:0a","broadcast":"ff:ff:ff:ff:ff:ff"}]"#;
        let link = parse_link(json, "ip").unwrap();
        assert_eq!(link.ifindex, 2);
        assert_eq!(link.mac, MacAddr([2, 0, 0, 0, 0, 0x0a]));
        assert!(link.running);
    }

    #[test]
    fn a_link_without_carrier_is_not_running() {
        let json = r#"[{"ifindex":2,"ifname":"eth0","flags":["NO-CARRIER","UP"],"address":"02:00:00:00:00:0a"}]"#;
        assert!(!parse_link(json, "ip").unwrap().running);
    }
}

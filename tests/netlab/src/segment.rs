//! L2 segments: bridges in the switch namespace, and the veths that plug
//! host interfaces into them.

use crate::{cmd::ip, Error, Result};

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

/// One bridge of a lab's switch namespace: an L2 segment (LAN) that hosts
/// are wired to. Made by [`crate::Lab::add_segment`] or, for the lab's first
/// bridge [`crate::BRIDGE`], [`crate::Lab::main_segment`]; only accepted by
/// the lab that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    switch: String,
    bridge: String,
}

impl Segment {
    pub(crate) fn new(switch: &str, bridge: &str) -> Self {
        Self {
            switch: switch.to_owned(),
            bridge: bridge.to_owned(),
        }
    }

    /// The bridge's name inside the switch namespace, e.g. `br0`.
    pub fn name(&self) -> &str {
        &self.bridge
    }

    pub(crate) fn switch(&self) -> &str {
        &self.switch
    }

    /// Creates the bridge. No snooping: without a multicast querier,
    /// snooping can drop the solicited-node multicast NDP relies on. No STP,
    /// no forward delay: ports forward as soon as they are up.
    pub(crate) fn create(&self) -> Result<()> {
        let (sw, br) = (self.switch.as_str(), self.bridge.as_str());
        ip(&[
            "-n",
            sw,
            "link",
            "add",
            br,
            "type",
            "bridge",
            "stp_state",
            "0",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", sw, "link", "set", br, "up"]).map(drop)
    }

    /// Creates veth `ifname` in namespace `ns` with its peer `port` placed
    /// straight into the switch and enslaved to this bridge, both ends up.
    /// The pair never exists in the root namespace, so names cannot clash
    /// with anything there.
    pub(crate) fn plug(&self, ns: &str, ifname: &str, port: &str) -> Result<()> {
        let sw = self.switch.as_str();
        ip(&[
            "-n", ns, "link", "add", ifname, "type", "veth", "peer", "name", port, "netns", sw,
        ])?;
        ip(&["-n", sw, "link", "set", port, "master", &self.bridge, "up"])?;
        ip(&["-n", ns, "link", "set", ifname, "up"]).map(drop)
    }
}

fn invalid(name: &str, reason: &'static str) -> Error {
    Error::InvalidName {
        name: name.to_owned(),
        reason,
    }
}

/// A letter, then letters and digits, at most IFNAMSIZ - 1 bytes.
fn validate_ifname(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_IFNAME {
        return Err(invalid(name, "must be 1 to 15 characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase())
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(invalid(name, "must be a-z then a-z, 0-9"));
    }
    if name == "lo" {
        return Err(invalid(name, "\"lo\" is the loopback interface"));
    }
    Ok(())
}

/// Checks a segment (bridge) name. Switch ports always contain a '-', so a
/// valid segment name never collides with one.
pub(crate) fn validate_segment_name(name: &str) -> Result<()> {
    validate_ifname(name)?;
    if name == crate::BRIDGE {
        return Err(invalid(name, "\"br0\" is the lab's main segment"));
    }
    Ok(())
}

/// The switch-side name for host `host`'s interface `ifname`:
/// `v<digits>-<host>`, the digits being those `ifname` ends in (`eth1` of
/// `node-1` is `v1-node-1`). Distinct from the `v-<host>` of `eth0` links.
pub(crate) fn port_name(host: &str, ifname: &str) -> Result<String> {
    validate_ifname(ifname)?;
    let digits = &ifname[ifname.trim_end_matches(|c: char| c.is_ascii_digit()).len()..];
    if digits.is_empty() {
        return Err(invalid(
            ifname,
            "must end in a digit: its switch port is v<digits>-<host>",
        ));
    }
    let port = format!("v{digits}-{host}");
    if port.len() > MAX_IFNAME {
        return Err(invalid(
            ifname,
            "switch port v<digits>-<host> would exceed 15 characters",
        ));
    }
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_lowercase_segment_names_are_accepted() {
        for name in ["lan2", "b", "br1", "abcdefghijklmno"] {
            validate_segment_name(name).unwrap();
        }
    }

    #[test]
    fn segment_names_that_are_long_odd_or_reserved_are_rejected() {
        for name in [
            "",
            "abcdefghijklmnop",
            "Lan",
            "lan-2",
            "lan_2",
            "2lan",
            "br0",
            "lo",
        ] {
            assert!(validate_segment_name(name).is_err(), "{name:?} accepted");
        }
    }

    #[test]
    fn ports_are_named_after_the_interface_number_and_the_host() {
        assert_eq!(port_name("node-1", "eth1").unwrap(), "v1-node-1");
        assert_eq!(port_name("a", "lan12").unwrap(), "v12-a");
        assert_eq!(
            port_name("abcdefghijkl", "eth1").unwrap(),
            "v1-abcdefghijkl"
        );
    }

    #[test]
    fn ports_that_cannot_be_named_are_rejected() {
        assert!(port_name("a", "uplink").is_err());
        assert!(port_name("a", "Eth1").is_err());
        assert!(port_name("abcdefghijkl", "eth12").is_err());
    }
}

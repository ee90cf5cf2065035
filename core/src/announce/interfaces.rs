//! Which of this host's interfaces an L2Advertisement announces on: the
//! pure selection rules over the interfaces the kernel reports
//! ([`HostInterface`]; the speaker lists them over rtnetlink) and the
//! `--exclude-interfaces` patterns. Every interface an advertisement names
//! but that cannot be used becomes a [`LinkProblem`], which the speaker
//! logs and reports as an Event and a metric.
//!
//! ```
//! use ferrolb_core::announce::interfaces::{select, Excludes, HostInterface};
//!
//! let links = vec![
//!     HostInterface::ethernet("eth0", 2, [2, 0, 0, 0, 0, 1]),
//!     HostInterface::ethernet("veth1234", 3, [2, 0, 0, 0, 0, 2]),
//! ];
//! let chosen = select(&links, &[], &Excludes::default());
//! assert_eq!(chosen.names, vec!["eth0".to_string()]);
//! ```

use regex::Regex;
use std::collections::BTreeSet;
use std::fmt;

/// An exclude pattern that is not a valid regular expression.
#[derive(Debug, thiserror::Error)]
#[error("invalid interface exclude pattern {pattern:?}: {source}")]
pub struct Error {
    /// The pattern as given.
    pub pattern: String,
    /// The parse error.
    #[source]
    pub source: regex::Error,
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One of this host's network interfaces as the kernel reports it: the
/// facts the selection rules need, and the index and MAC the speaker opens
/// its raw socket with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInterface {
    /// The interface name, e.g. `eth0`.
    pub name: String,
    /// The interface index.
    pub index: u32,
    /// The hardware address; `None` for links without one (tunnels).
    pub mac: Option<[u8; 6]>,
    /// Administratively up (`IFF_UP`) with a carrier (`IFF_LOWER_UP`): a
    /// frame sent there can reach the LAN.
    pub up: bool,
    /// `IFF_LOOPBACK`.
    pub loopback: bool,
    /// `IFF_NOARP`: the link does not do neighbour resolution, so answering
    /// ARP/NDP there makes no sense.
    pub noarp: bool,
    /// Enslaved to a bridge, bond or VRF (`IFLA_MASTER` set): frames for
    /// it are delivered to the master, which is where to answer.
    pub has_master: bool,
    /// The link kind (`veth`, `bridge`, `bond`, `vlan`...), `None` for
    /// plain hardware interfaces.
    pub kind: Option<String>,
}

impl HostInterface {
    /// An up, ARP-capable, unenslaved Ethernet interface (for tests and
    /// examples).
    pub fn ethernet(name: &str, index: u32, mac: [u8; 6]) -> Self {
        Self {
            name: name.to_owned(),
            index,
            mac: Some(mac),
            up: true,
            loopback: false,
            noarp: false,
            has_master: false,
            kind: None,
        }
    }
}

/// Interfaces never announced on unless an L2Advertisement names them:
/// container and overlay plumbing (pod veths, CNI bridges and tunnels,
/// kube-proxy's IPVS dummy) and loopback. Answering ARP there either
/// reaches no LAN or leaks the address into pod networks.
pub const DEFAULT_EXCLUDES: &[&str] = &[
    "^veth",
    "^cali",
    "^flannel",
    "^kube-ipvs",
    "^docker",
    "^cni",
    "^lo$",
    "^cilium",
    "^vxlan",
    "^tunl",
];

/// The compiled `--exclude-interfaces` patterns.
#[derive(Debug, Clone)]
pub struct Excludes(Vec<Regex>);

impl Excludes {
    /// Compiles `patterns`; an empty list excludes nothing.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self> {
        patterns
            .iter()
            .map(|p| {
                Regex::new(p.as_ref()).map_err(|source| Error {
                    pattern: p.as_ref().to_owned(),
                    source,
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Self)
    }

    /// The first pattern matching `name`.
    pub fn matching(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|r| r.is_match(name)).map(Regex::as_str)
    }
}

impl Default for Excludes {
    /// [`DEFAULT_EXCLUDES`].
    fn default() -> Self {
        Self::new(DEFAULT_EXCLUDES).unwrap_or_else(|_| Self(Vec::new()))
    }
}

/// Why an interface is not announced on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// A loopback interface: nothing on the LAN can hear it.
    Loopback,
    /// No hardware address to answer with.
    NoMac,
    /// `IFF_NOARP`: the link does no neighbour resolution.
    NoArp,
    /// Enslaved to a bridge or bond: the master receives its frames.
    HasMaster,
    /// The name matches this exclude pattern (only for interfaces an
    /// advertisement does not name).
    Excluded(String),
    /// Administratively down or without carrier.
    Down,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Loopback => f.write_str("it is a loopback interface"),
            Self::NoMac => f.write_str("it has no MAC address"),
            Self::NoArp => f.write_str("it has the NOARP flag"),
            Self::HasMaster => f.write_str("it is enslaved to a bridge or bond"),
            Self::Excluded(p) => write!(f, "its name matches the exclude pattern {p:?}"),
            Self::Down => f.write_str("it is down"),
        }
    }
}

/// Whether `link` may carry announcements, checking the exclude patterns
/// only when `excludes` is given (an advertisement that names an
/// interface overrides them).
pub fn eligible(link: &HostInterface, excludes: Option<&Excludes>) -> Result<(), Skip> {
    if link.loopback {
        return Err(Skip::Loopback);
    }
    if link.mac.is_none() {
        return Err(Skip::NoMac);
    }
    if link.noarp {
        return Err(Skip::NoArp);
    }
    if link.has_master {
        return Err(Skip::HasMaster);
    }
    if let Some(pattern) = excludes.and_then(|e| e.matching(&link.name)) {
        return Err(Skip::Excluded(pattern.to_owned()));
    }
    if !link.up {
        return Err(Skip::Down);
    }
    Ok(())
}

/// An interface an L2Advertisement names that cannot be used. Never
/// silently ignored: the daemon logs it, counts it and sends an Event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LinkProblem {
    /// No interface of that name exists on this node.
    Missing {
        /// The name the advertisement gives.
        interface: String,
    },
    /// The interface exists but fails a rule.
    Unusable {
        /// The interface name.
        interface: String,
        /// The rule it fails.
        why: Skip,
    },
}

impl LinkProblem {
    /// The interface concerned.
    pub fn interface(&self) -> &str {
        match self {
            Self::Missing { interface } | Self::Unusable { interface, .. } => interface,
        }
    }

    /// A CamelCase reason for Events and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Missing { .. } => "InterfaceMissing",
            Self::Unusable {
                why: Skip::Down, ..
            } => "InterfaceDown",
            Self::Unusable { .. } => "InterfaceUnusable",
        }
    }
}

impl fmt::Display for LinkProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { interface } => write!(f, "interface {interface:?} does not exist"),
            Self::Unusable { interface, why } => {
                write!(f, "interface {interface:?} is not used because {why}")
            }
        }
    }
}

/// The result of [`select`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Interfaces to announce on, sorted, without duplicates.
    pub names: Vec<String>,
    /// Named interfaces that cannot be used.
    pub problems: Vec<LinkProblem>,
}

/// The interfaces to announce on for one advertisement.
///
/// With `named` empty: every [`eligible`] interface not matching an
/// exclude pattern. Otherwise: exactly the named interfaces that are
/// eligible, exclude patterns ignored (naming an interface is the
/// operator's explicit choice, e.g. a `vxlan0` that really is the uplink);
/// each named interface that is missing or fails a rule becomes a
/// [`LinkProblem`].
pub fn select(links: &[HostInterface], named: &[String], excludes: &Excludes) -> Selection {
    let mut out = Selection::default();
    if named.is_empty() {
        let names: BTreeSet<&str> = links
            .iter()
            .filter(|l| eligible(l, Some(excludes)).is_ok())
            .map(|l| l.name.as_str())
            .collect();
        out.names = names.into_iter().map(str::to_owned).collect();
        return out;
    }
    let named: BTreeSet<&String> = named.iter().collect();
    for name in named {
        match links.iter().find(|l| &l.name == name) {
            None => out.problems.push(LinkProblem::Missing {
                interface: name.clone(),
            }),
            Some(link) => match eligible(link, None) {
                Ok(()) => out.names.push(name.clone()),
                Err(why) => out.problems.push(LinkProblem::Unusable {
                    interface: name.clone(),
                    why,
                }),
            },
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(name: &str) -> HostInterface {
        HostInterface::ethernet(name, 2, [2, 0, 0, 0, 0, 1])
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn host() -> Vec<HostInterface> {
        let mut lo = eth("lo");
        lo.loopback = true;
        lo.mac = Some([0; 6]);
        let mut down = eth("eth1");
        down.up = false;
        let mut port = eth("eno2");
        port.has_master = true;
        let mut wg = eth("wg0");
        wg.noarp = true;
        wg.mac = None;
        let mut tun = eth("tun0");
        tun.noarp = true;
        vec![
            lo,
            eth("eth0"),
            down,
            port,
            eth("bond0"),
            wg,
            tun,
            eth("veth9a8b"),
            eth("cali12"),
            eth("flannel.1"),
            eth("kube-ipvs0"),
            eth("docker0"),
            eth("cni0"),
            eth("cilium_host"),
            eth("vxlan.calico"),
            eth("tunl0"),
            eth("br-lan"),
        ]
    }

    #[test]
    fn no_named_interfaces_means_every_up_plain_interface() {
        let got = select(&host(), &[], &Excludes::default());
        assert_eq!(got.names, names(&["bond0", "br-lan", "eth0"]));
        assert!(
            got.problems.is_empty(),
            "nothing was named, nothing to report"
        );
    }

    #[test]
    fn every_default_pattern_excludes_its_plumbing() {
        let ex = Excludes::default();
        for name in [
            "veth0",
            "cali1",
            "flannel.1",
            "kube-ipvs0",
            "docker0",
            "cni0",
            "lo",
            "cilium_net",
            "vxlan0",
            "tunl0",
        ] {
            assert!(ex.matching(name).is_some(), "{name} should be excluded");
        }
        for name in ["eth0", "eno1", "bond0", "lo0", "ens3", "br0", "enp0s31f6"] {
            assert_eq!(ex.matching(name), None, "{name} should not be excluded");
        }
    }

    #[test]
    fn named_interfaces_are_used_exactly_and_override_exclusions() {
        let got = select(
            &host(),
            &names(&["vxlan.calico", "eth0", "eth0"]),
            &Excludes::default(),
        );
        assert_eq!(got.names, names(&["eth0", "vxlan.calico"]));
        assert!(got.problems.is_empty());
    }

    #[test]
    fn a_named_interface_that_is_missing_or_unusable_is_reported() {
        let got = select(
            &host(),
            &names(&["eth9", "eth1", "eno2", "tun0", "wg0", "lo", "eth0"]),
            &Excludes::default(),
        );
        assert_eq!(got.names, names(&["eth0"]));
        let unusable = |i: &str, why| LinkProblem::Unusable {
            interface: i.into(),
            why,
        };
        assert_eq!(
            got.problems,
            vec![
                unusable("eno2", Skip::HasMaster),
                unusable("eth1", Skip::Down),
                LinkProblem::Missing {
                    interface: "eth9".into()
                },
                unusable("lo", Skip::Loopback),
                unusable("tun0", Skip::NoArp),
                unusable("wg0", Skip::NoMac),
            ]
        );
        let reasons: Vec<_> = got.problems.iter().map(LinkProblem::reason).collect();
        assert_eq!(
            reasons,
            [
                "InterfaceUnusable",
                "InterfaceDown",
                "InterfaceMissing",
                "InterfaceUnusable",
                "InterfaceUnusable",
                "InterfaceUnusable"
            ]
        );
    }

    #[test]
    fn custom_patterns_replace_the_defaults() {
        let ex = Excludes::new(&["^eth"]).unwrap();
        let got = select(&host(), &[], &ex);
        assert!(!got.names.contains(&"eth0".to_string()));
        assert!(got.names.contains(&"veth9a8b".to_string()));
        assert!(Excludes::new(&["("]).is_err(), "a bad regex is an error");
        let none = Excludes::new::<&str>(&[]).unwrap();
        assert_eq!(none.matching("veth0"), None);
    }

    #[test]
    fn each_rule_alone_skips_an_interface() {
        let ex = Excludes::default();
        type Change = Box<dyn Fn(&mut HostInterface)>;
        let cases: Vec<(Change, Skip)> = vec![
            (Box::new(|l| l.loopback = true), Skip::Loopback),
            (Box::new(|l| l.mac = None), Skip::NoMac),
            (Box::new(|l| l.noarp = true), Skip::NoArp),
            (Box::new(|l| l.has_master = true), Skip::HasMaster),
            (
                Box::new(|l| l.name = "veth1".into()),
                Skip::Excluded("^veth".into()),
            ),
            (Box::new(|l| l.up = false), Skip::Down),
        ];
        for (change, want) in cases {
            let mut link = eth("eth0");
            change(&mut link);
            assert_eq!(eligible(&link, Some(&ex)), Err(want.clone()));
            assert!(!want.to_string().is_empty());
        }
        assert_eq!(eligible(&eth("eth0"), Some(&ex)), Ok(()));
    }

    #[test]
    fn no_interfaces_select_nothing() {
        assert_eq!(select(&[], &[], &Excludes::default()), Selection::default());
    }
}

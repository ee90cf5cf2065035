//! Which node announces a LoadBalancer IP.
//!
//! Every speaker runs the same pure function over the same inputs and so
//! reaches the same answer without writing anything to the API server: the
//! eligible nodes are ranked by `sha256(node_name + "#" + ip)` and the lowest
//! hash wins. This is the ordering of MetalLB's layer 2 controller, so a mixed
//! or migrating cluster agrees on owners, and because each IP ranks the nodes
//! differently, IPs spread over nodes and a node leaving moves only its own.
//!
//! ```
//! use ferrolb_core::election::elect;
//! use std::net::IpAddr;
//!
//! let ip: IpAddr = "192.0.2.10".parse().unwrap();
//! let owner = elect(ip, ["node-a", "node-b", "node-c"]);
//! assert_eq!(owner, Some("node-c"));
//! ```

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The well-known node label that removes a node from external load
/// balancing. Its presence counts, whatever its value, as in Kubernetes' own
/// service controller and MetalLB.
pub const EXCLUDE_FROM_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Speaker-wide switches of the candidate rules, the same on every speaker
/// (they come from the DaemonSet's flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Rules {
    /// `--ignore-exclude-lb` (MetalLB's speaker flag of the same name):
    /// nodes labelled [`EXCLUDE_FROM_LB_LABEL`] stay candidates, for
    /// clusters whose only nodes are control-plane nodes that carry it.
    pub ignore_exclude_lb: bool,
}

/// Preference scores of nodes for one IP (the summed weights of the
/// `preferredNodeSelectors` they match), by node name; a node that is not
/// listed scores 0.
pub type Scores = BTreeMap<String, u64>;

/// What the election needs to know about one node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    /// The Kubernetes node name (`metadata.name`).
    pub name: String,
    /// The node's labels.
    pub labels: BTreeMap<String, String>,
    /// Whether a speaker on this node is alive according to membership.
    pub live: bool,
    /// Whether the node reports the `NetworkUnavailable` condition as true;
    /// such a node cannot receive the traffic it would attract.
    pub network_unavailable: bool,
}

impl NodeInfo {
    /// A live node with no labels and a working network.
    pub fn live(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            live: true,
            ..Self::default()
        }
    }

    /// Whether the node carries [`EXCLUDE_FROM_LB_LABEL`].
    pub fn is_excluded(&self) -> bool {
        self.labels.contains_key(EXCLUDE_FROM_LB_LABEL)
    }
}

/// The Service's `spec.externalTrafficPolicy`, with the endpoint facts each
/// policy needs.
///
/// Endpoints count as kube-proxy uses them: ready ones, and, only when no
/// endpoint is ready, those that are terminating but still serving (a Pod
/// draining during a rolling update); see
/// [`crate::announce::model::traffic_policy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrafficPolicy {
    /// `Cluster`: any eligible node may own the IP, as long as the Service
    /// has at least one endpoint kube-proxy would send to (an IP with
    /// nothing behind it is not announced, as in MetalLB).
    Cluster {
        /// Whether the Service has an endpoint that serves on any node.
        has_endpoint: bool,
    },
    /// `Local`: only nodes that hold an endpoint of the Service, since
    /// kube-proxy drops traffic arriving on a node without one. Among the
    /// otherwise eligible nodes, those holding a ready endpoint; when none
    /// does, those holding a terminating endpoint that still serves.
    Local {
        /// Nodes holding a ready endpoint.
        ready: BTreeSet<String>,
        /// Nodes holding a terminating endpoint that still serves.
        draining: BTreeSet<String>,
    },
}

/// Why no node may announce an IP. The daemon logs it and turns it into an
/// Event reason on the Service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum NoCandidate {
    /// The Service has no ready endpoint at all, nor a terminating one
    /// that still serves.
    #[error(
        "the service has no ready endpoint (nor a terminating one that still serves), so its IP is not announced"
    )]
    NoReadyEndpoint,
    /// No node has a live speaker.
    #[error("no node has a live speaker")]
    NoLiveSpeaker,
    /// Live speakers exist, but no L2Advertisement selects their nodes for
    /// this IP's pool.
    #[error("no node with a live speaker is selected by an L2Advertisement for this IP's pool")]
    NotSelected,
    /// Every selected node with a live speaker carries the exclusion label.
    #[error(
        "every selected node is labelled node.kubernetes.io/exclude-from-external-load-balancers"
    )]
    AllExcluded,
    /// Every remaining node reports its network as unavailable.
    #[error("every remaining node reports the NetworkUnavailable condition")]
    NetworkUnavailable,
    /// `externalTrafficPolicy: Local` and no eligible node holds an
    /// endpoint of the Service that kube-proxy would use.
    #[error(
        "externalTrafficPolicy is Local and no eligible node holds a ready endpoint (or, when none is ready anywhere, a terminating one that still serves)"
    )]
    NoLocalEndpoint,
}

impl NoCandidate {
    /// A short CamelCase name for metric labels and Event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoReadyEndpoint => "NoReadyEndpoint",
            Self::NoLiveSpeaker => "NoLiveSpeaker",
            Self::NotSelected => "NotSelected",
            Self::AllExcluded => "AllExcluded",
            Self::NetworkUnavailable => "NetworkUnavailable",
            Self::NoLocalEndpoint => "NoLocalEndpoint",
        }
    }
}

/// The nodes eligible to own an IP, sorted by name and without duplicates,
/// or the first rule that left nobody.
///
/// The rules apply in this order, so the reason names the rule that removed
/// the last node: a ready endpoint must exist, the speaker must be live, an
/// L2Advertisement must select the node (`selected`), the node must not carry
/// the exclusion label nor report `NetworkUnavailable`, and for the `Local`
/// policy it must hold a ready endpoint (or, when no eligible node holds
/// one, a terminating endpoint that still serves).
pub fn candidates<'a>(
    nodes: &'a [NodeInfo],
    selected: &BTreeSet<String>,
    policy: &TrafficPolicy,
) -> Result<Vec<&'a str>, NoCandidate> {
    candidates_with(nodes, selected, policy, Rules::default())
}

/// [`candidates`] under the speaker's [`Rules`]: with
/// `ignore_exclude_lb`, rule 4 (the exclusion label) is skipped.
pub fn candidates_with<'a>(
    nodes: &'a [NodeInfo],
    selected: &BTreeSet<String>,
    policy: &TrafficPolicy,
    rules: Rules,
) -> Result<Vec<&'a str>, NoCandidate> {
    if let TrafficPolicy::Cluster {
        has_endpoint: false,
    } = policy
    {
        return Err(NoCandidate::NoReadyEndpoint);
    }
    if let TrafficPolicy::Local { ready, draining } = policy {
        if ready.is_empty() && draining.is_empty() {
            return Err(NoCandidate::NoReadyEndpoint);
        }
    }
    let stage = |left: Vec<&'a NodeInfo>, keep: &dyn Fn(&NodeInfo) -> bool, why| {
        let kept: Vec<&'a NodeInfo> = left.into_iter().filter(|n| keep(n)).collect();
        if kept.is_empty() {
            Err(why)
        } else {
            Ok(kept)
        }
    };
    let left = stage(
        nodes.iter().collect(),
        &|n| n.live,
        NoCandidate::NoLiveSpeaker,
    )?;
    let left = stage(
        left,
        &|n| selected.contains(&n.name),
        NoCandidate::NotSelected,
    )?;
    let left = if rules.ignore_exclude_lb {
        left
    } else {
        stage(left, &|n| !n.is_excluded(), NoCandidate::AllExcluded)?
    };
    let left = stage(
        left,
        &|n| !n.network_unavailable,
        NoCandidate::NetworkUnavailable,
    )?;
    let left = match policy {
        TrafficPolicy::Cluster { .. } => left,
        TrafficPolicy::Local { ready, draining } => {
            let with_ready: Vec<&'a NodeInfo> = left
                .iter()
                .copied()
                .filter(|n| ready.contains(&n.name))
                .collect();
            if with_ready.is_empty() {
                stage(
                    left,
                    &|n| draining.contains(&n.name),
                    NoCandidate::NoLocalEndpoint,
                )?
            } else {
                with_ready
            }
        }
    };
    let names: BTreeSet<&'a str> = left.into_iter().map(|n| n.name.as_str()).collect();
    Ok(names.into_iter().collect())
}

/// The rank of `node` for `ip`: `sha256(node + "#" + ip)`. Lower wins.
///
/// The IP is written as Go's `net.IP.String()` writes it, so the ranks equal
/// MetalLB's: dotted quad for IPv4 and IPv4-mapped IPv6, RFC 5952 text for
/// other IPv6 addresses.
pub fn rank(node: &str, ip: IpAddr) -> [u8; 32] {
    rank_with_key(node, &ip_key(ip))
}

pub(crate) fn rank_with_key(node: &str, key: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(node.as_bytes());
    hasher.update(b"#");
    hasher.update(key.as_bytes());
    hasher.finalize().into()
}

pub(crate) fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// The owner of `ip` among `candidates`: the one with the lowest
/// [`rank`], ties (only possible for equal names) broken by name. `None` when
/// there are no candidates. The result does not depend on the order of
/// `candidates`.
pub fn elect<'a, I>(ip: IpAddr, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let key = ip_key(ip);
    candidates
        .into_iter()
        .map(|name| (rank_with_key(name, &key), name))
        .min()
        .map(|(_, name)| name)
}

/// Whether `challenger` ranks before `holder` for `ip` (see [`elect`]):
/// whether it would take `ip` from `holder` were both candidates.
pub fn outranks(challenger: &str, holder: &str, ip: IpAddr) -> bool {
    let key = ip_key(ip);
    (rank_with_key(challenger, &key), challenger) < (rank_with_key(holder, &key), holder)
}

/// The owner of `ip` among `candidates` when nodes have preference
/// `scores`: the highest score wins, and among equal scores [`elect`]'s
/// hash order decides. Without scores (or with equal ones) this is
/// exactly [`elect`], so a cluster without `preferredNodeSelectors`
/// elects as MetalLB does.
///
/// ```
/// use ferrolb_core::election::{elect, elect_preferring, Scores};
///
/// let ip = "192.0.2.10".parse().unwrap();
/// let nodes = ["node-a", "node-b", "node-c"];
/// assert_eq!(elect(ip, nodes), Some("node-c"));
/// assert_eq!(elect_preferring(ip, nodes, &Scores::new()), Some("node-c"));
/// let edge = Scores::from([("node-a".to_string(), 100)]);
/// assert_eq!(elect_preferring(ip, nodes, &edge), Some("node-a"));
/// ```
pub fn elect_preferring<'a, I>(ip: IpAddr, candidates: I, scores: &Scores) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    if scores.is_empty() {
        return elect(ip, candidates);
    }
    let key = ip_key(ip);
    candidates
        .into_iter()
        .map(|name| {
            let score = scores.get(name).copied().unwrap_or(0);
            (std::cmp::Reverse(score), rank_with_key(name, &key), name)
        })
        .min()
        .map(|(_, _, name)| name)
}

/// Whether `challenger` would take `ip` from `holder` were both
/// candidates, under preference `scores` (see [`elect_preferring`]).
pub fn outranks_preferring(challenger: &str, holder: &str, ip: IpAddr, scores: &Scores) -> bool {
    let score = |n: &str| scores.get(n).copied().unwrap_or(0);
    match score(challenger).cmp(&score(holder)) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => outranks(challenger, holder, ip),
    }
}

/// The key a Service is elected under: its first IP, so that both addresses
/// of a dual-stack Service are owned by the same node (as in MetalLB).
pub fn service_key(ips: &[IpAddr]) -> Option<IpAddr> {
    ips.first().copied()
}

/// The owner of `ip`: the nodes are filtered with [`candidates`] and
/// ranked with [`elect`]; `Err` names the rule that left nobody. This is
/// the one path every speaker decides by (the announce decision calls it
/// once per Service, under [`service_key`]).
///
/// ```
/// use ferrolb_core::election::{owner, NoCandidate, NodeInfo, TrafficPolicy};
/// use std::collections::BTreeSet;
///
/// let nodes = [NodeInfo::live("node-a"), NodeInfo::live("node-b"), NodeInfo::live("node-c")];
/// let selected: BTreeSet<String> = ["node-a", "node-b", "node-c"].map(String::from).into();
/// let cluster = TrafficPolicy::Cluster { has_endpoint: true };
/// let ip = "192.0.2.10".parse().unwrap();
/// assert_eq!(owner(ip, &nodes, &selected, &cluster), Ok("node-c"));
/// assert_eq!(
///     owner(ip, &nodes, &BTreeSet::new(), &cluster),
///     Err(NoCandidate::NotSelected)
/// );
/// ```
pub fn owner<'a>(
    ip: IpAddr,
    nodes: &'a [NodeInfo],
    selected: &BTreeSet<String>,
    policy: &TrafficPolicy,
) -> Result<&'a str, NoCandidate> {
    owner_preferring(
        ip,
        nodes,
        selected,
        policy,
        &Scores::new(),
        Rules::default(),
    )
}

/// [`owner`] with preference `scores` and the speaker's [`Rules`]: the
/// candidate rules first (so with `Local`, nodes without an endpoint are
/// gone before anyone is scored), then [`elect_preferring`].
pub fn owner_preferring<'a>(
    ip: IpAddr,
    nodes: &'a [NodeInfo],
    selected: &BTreeSet<String>,
    policy: &TrafficPolicy,
    scores: &Scores,
    rules: Rules,
) -> Result<&'a str, NoCandidate> {
    let names = candidates_with(nodes, selected, policy, rules)?;
    // `candidates` never returns an empty list; keep a total answer rather
    // than a panic should that ever change.
    elect_preferring(ip, names, scores).ok_or(NoCandidate::NoLiveSpeaker)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const CLUSTER: TrafficPolicy = TrafficPolicy::Cluster { has_endpoint: true };

    fn hex(bytes: [u8; 32]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rank_is_sha256_of_name_hash_sign_ip() {
        // Expected values from:
        // python3 -c 'import hashlib; print(hashlib.sha256(b"node-a#192.0.2.10").hexdigest())'
        assert_eq!(
            hex(rank("node-a", ip("192.0.2.10"))),
            "d4b84135501a6622f43f01422f65d768d1a4637914be8add4e31f107336b8068"
        );
        assert_eq!(
            hex(rank("node-a", ip("2001:db8::1"))),
            "3c9f88a7e2ef52a1c015be314124ea3ab99785b842ce9ee37afdf6470837efbe"
        );
    }

    #[test]
    fn owners_match_values_computed_outside_this_crate() {
        // Each owner is min over nodes of sha256(f"{node}#{ip}"), computed
        // with Python's hashlib, so a change of hash or key format fails here.
        let three = ["node-a", "node-b", "node-c"];
        let five = ["worker-1", "worker-2", "worker-3", "worker-4", "worker-5"];
        for (addr, of_three, of_five) in [
            ("192.0.2.10", "node-c", "worker-2"),
            ("192.0.2.11", "node-a", "worker-1"),
            ("198.51.100.7", "node-a", "worker-4"),
            ("203.0.113.200", "node-b", "worker-1"),
            ("2001:db8::1", "node-b", "worker-5"),
            ("2001:db8::10:1", "node-c", "worker-3"),
            ("2001:db8:1::abcd", "node-b", "worker-4"),
        ] {
            assert_eq!(elect(ip(addr), three), Some(of_three), "{addr}");
            assert_eq!(elect(ip(addr), five), Some(of_five), "{addr}");
        }
    }

    #[test]
    fn ipv4_mapped_ipv6_is_keyed_like_go_prints_it() {
        assert_eq!(
            rank("n", ip("::ffff:192.0.2.1")),
            rank("n", ip("192.0.2.1"))
        );
    }

    #[test]
    fn ipv6_is_keyed_in_rfc5952_form() {
        assert_eq!(ip_key(ip("2001:DB8:0:0::1")), "2001:db8::1");
    }

    #[test]
    fn no_ready_endpoint_is_reported_before_anything_else() {
        let nodes = [NodeInfo::default()];
        let none = TrafficPolicy::Cluster {
            has_endpoint: false,
        };
        assert_eq!(
            candidates(&nodes, &set(&[]), &none),
            Err(NoCandidate::NoReadyEndpoint)
        );
        let local = TrafficPolicy::Local {
            ready: set(&[]),
            draining: set(&[]),
        };
        assert_eq!(
            candidates(&nodes, &set(&[]), &local),
            Err(NoCandidate::NoReadyEndpoint)
        );
    }

    #[test]
    fn dead_speakers_are_not_candidates() {
        let mut dead = NodeInfo::live("a");
        dead.live = false;
        assert_eq!(
            candidates(&[dead.clone()], &set(&["a"]), &CLUSTER),
            Err(NoCandidate::NoLiveSpeaker)
        );
        let nodes = [dead, NodeInfo::live("b")];
        assert_eq!(
            candidates(&nodes, &set(&["a", "b"]), &CLUSTER),
            Ok(vec!["b"])
        );
    }

    #[test]
    fn nodes_not_selected_by_an_advertisement_are_not_candidates() {
        let nodes = [NodeInfo::live("a"), NodeInfo::live("b")];
        assert_eq!(
            candidates(&nodes, &set(&["c"]), &CLUSTER),
            Err(NoCandidate::NotSelected)
        );
        assert_eq!(candidates(&nodes, &set(&["b"]), &CLUSTER), Ok(vec!["b"]));
    }

    #[test]
    fn the_exclusion_label_removes_a_node_whatever_its_value() {
        let mut a = NodeInfo::live("a");
        a.labels.insert(EXCLUDE_FROM_LB_LABEL.into(), String::new());
        assert_eq!(
            candidates(&[a.clone()], &set(&["a"]), &CLUSTER),
            Err(NoCandidate::AllExcluded)
        );
        let nodes = [a, NodeInfo::live("b")];
        assert_eq!(
            candidates(&nodes, &set(&["a", "b"]), &CLUSTER),
            Ok(vec!["b"])
        );
    }

    #[test]
    fn nodes_with_network_unavailable_are_not_candidates() {
        let mut a = NodeInfo::live("a");
        a.network_unavailable = true;
        assert_eq!(
            candidates(&[a], &set(&["a"]), &CLUSTER),
            Err(NoCandidate::NetworkUnavailable)
        );
    }

    #[test]
    fn local_policy_keeps_only_nodes_with_a_ready_endpoint() {
        let nodes = [
            NodeInfo::live("a"),
            NodeInfo::live("b"),
            NodeInfo::live("c"),
        ];
        let policy = TrafficPolicy::Local {
            ready: set(&["c", "a", "elsewhere"]),
            draining: set(&["b"]),
        };
        assert_eq!(
            candidates(&nodes, &set(&["a", "b", "c"]), &policy),
            Ok(vec!["a", "c"])
        );
        let policy = TrafficPolicy::Local {
            ready: set(&["elsewhere"]),
            draining: BTreeSet::new(),
        };
        assert_eq!(
            candidates(&nodes, &set(&["a", "b", "c"]), &policy),
            Err(NoCandidate::NoLocalEndpoint)
        );
        // No eligible node holds a ready endpoint: those whose endpoint is
        // terminating but still serves (kube-proxy delivers to it there).
        let policy = TrafficPolicy::Local {
            ready: set(&["elsewhere"]),
            draining: set(&["b", "c"]),
        };
        assert_eq!(
            candidates(&nodes, &set(&["a", "b", "c"]), &policy),
            Ok(vec!["b", "c"])
        );
    }

    #[test]
    fn duplicate_node_entries_count_once() {
        let nodes = [NodeInfo::live("a"), NodeInfo::live("a")];
        assert_eq!(candidates(&nodes, &set(&["a"]), &CLUSTER), Ok(vec!["a"]));
    }

    #[test]
    fn nobody_is_elected_from_no_candidates() {
        assert_eq!(elect(ip("192.0.2.1"), []), None);
    }

    #[test]
    fn owner_is_the_elected_candidate_or_the_rule_that_left_nobody() {
        let mut dead = NodeInfo::live("node-d");
        dead.live = false;
        let nodes = [NodeInfo::live("node-a"), NodeInfo::live("node-b"), dead];
        let sel = set(&["node-a", "node-b", "node-d"]);
        let elected = elect(ip("192.0.2.10"), ["node-a", "node-b"]).unwrap();
        assert_eq!(owner(ip("192.0.2.10"), &nodes, &sel, &CLUSTER), Ok(elected));
        assert_eq!(
            owner(ip("192.0.2.10"), &nodes, &set(&["node-d"]), &CLUSTER),
            Err(NoCandidate::NotSelected)
        );
        assert_eq!(
            owner(ip("192.0.2.10"), &nodes, &set(&[]), &CLUSTER),
            Err(NoCandidate::NotSelected)
        );
    }

    #[test]
    fn outranks_agrees_with_elect() {
        let names = ["node-a", "node-b", "node-c", "worker-17"];
        for last in 0..32u8 {
            let ip = IpAddr::from([198, 51, 100, last]);
            for a in names {
                for b in names {
                    let winner = elect(ip, [a, b]).unwrap();
                    assert_eq!(outranks(a, b, ip), a != b && winner == a, "{a} {b} {ip}");
                }
            }
        }
    }

    #[test]
    fn a_dual_stack_service_is_elected_by_its_first_ip() {
        assert_eq!(
            service_key(&[ip("2001:db8::1"), ip("192.0.2.1")]),
            Some(ip("2001:db8::1"))
        );
        assert_eq!(service_key(&[]), None);
    }

    #[test]
    fn a_preference_outweighs_the_hash_and_equal_scores_do_not() {
        let three = ["node-a", "node-b", "node-c"];
        let ip = ip("192.0.2.10");
        assert_eq!(elect(ip, three), Some("node-c"));
        let scores = |pairs: &[(&str, u64)]| -> Scores {
            pairs.iter().map(|(n, s)| (n.to_string(), *s)).collect()
        };
        assert_eq!(
            elect_preferring(ip, three, &scores(&[("node-b", 1)])),
            Some("node-b")
        );
        // Summed weights: 110 beats 100.
        assert_eq!(
            elect_preferring(ip, three, &scores(&[("node-a", 110), ("node-c", 100)])),
            Some("node-a")
        );
        // A tie between node-a and node-b goes to the hash order of the two.
        let tie = scores(&[("node-a", 50), ("node-b", 50)]);
        assert_eq!(
            elect_preferring(ip, three, &tie),
            elect(ip, ["node-a", "node-b"])
        );
        // A score for a node that is not a candidate changes nothing.
        assert_eq!(
            elect_preferring(ip, three, &scores(&[("node-z", 100)])),
            Some("node-c")
        );
    }

    #[test]
    fn owner_preferring_scores_only_the_candidates_the_rules_leave() {
        let nodes = [
            NodeInfo::live("node-a"),
            NodeInfo::live("node-b"),
            NodeInfo::live("node-c"),
        ];
        let all = set(&["node-a", "node-b", "node-c"]);
        let local = TrafficPolicy::Local {
            ready: set(&["node-b", "node-c"]),
            draining: BTreeSet::new(),
        };
        let prefer_a: Scores = [("node-a".to_string(), 100)].into();
        let ip = ip("192.0.2.10");
        assert_eq!(
            owner_preferring(ip, &nodes, &all, &CLUSTER, &prefer_a, Rules::default()),
            Ok("node-a")
        );
        assert_eq!(
            owner_preferring(ip, &nodes, &all, &local, &prefer_a, Rules::default()),
            Ok(elect(ip, ["node-b", "node-c"]).unwrap())
        );
    }

    #[test]
    fn ignore_exclude_lb_keeps_labelled_nodes_as_candidates() {
        let mut a = NodeInfo::live("a");
        a.labels.insert(EXCLUDE_FROM_LB_LABEL.into(), String::new());
        let nodes = [a, NodeInfo::live("b")];
        let ignore = Rules {
            ignore_exclude_lb: true,
        };
        assert_eq!(
            candidates(&nodes, &set(&["a", "b"]), &CLUSTER),
            Ok(vec!["b"])
        );
        assert_eq!(
            candidates_with(&nodes, &set(&["a", "b"]), &CLUSTER, ignore),
            Ok(vec!["a", "b"])
        );
        assert_eq!(
            candidates_with(&nodes[..1], &set(&["a"]), &CLUSTER, Rules::default()),
            Err(NoCandidate::AllExcluded)
        );
    }

    #[test]
    fn every_reason_has_a_sentence_and_a_label() {
        for why in [
            NoCandidate::NoReadyEndpoint,
            NoCandidate::NoLiveSpeaker,
            NoCandidate::NotSelected,
            NoCandidate::AllExcluded,
            NoCandidate::NetworkUnavailable,
            NoCandidate::NoLocalEndpoint,
        ] {
            assert!(why.to_string().len() > 10);
            assert!(!why.reason().contains(' '));
        }
    }
}

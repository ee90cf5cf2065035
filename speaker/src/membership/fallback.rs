//! Where liveness comes from: gossip, or Node conditions while gossip
//! cannot run (the daemon's `liveness` task decides which).

use std::collections::BTreeSet;
use std::fmt;

/// Where the `live` flag of each node comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LivenessSource {
    /// SWIM gossip among the speakers: sub-second detection.
    Gossip,
    /// The Node `Ready` condition: only as fast as the kubelet heartbeat and
    /// the node lifecycle controller (tens of seconds), and blind to a
    /// speaker that died on a healthy node. Slow, but never claims a dead
    /// node is alive for long and never claims an unknown one is.
    NodeConditions,
}

impl LivenessSource {
    /// A short name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Gossip => "gossip",
            Self::NodeConditions => "node_conditions",
        }
    }
}

impl fmt::Display for LivenessSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Live nodes by the Node `Ready` condition: a node counts iff the
/// condition's status is exactly `"True"`. `"False"`, `"Unknown"` and a
/// missing condition all count as not alive: with no information we do not
/// announce from a node.
///
/// ```
/// use ferrolb_speaker::membership::live_from_node_conditions;
///
/// let live = live_from_node_conditions([
///     ("node-a", Some("True")),
///     ("node-b", Some("Unknown")),
///     ("node-c", None),
/// ]);
/// assert_eq!(live.into_iter().collect::<Vec<_>>(), ["node-a"]);
/// ```
pub fn live_from_node_conditions<'a, I>(nodes: I) -> BTreeSet<String>
where
    I: IntoIterator<Item = (&'a str, Option<&'a str>)>,
{
    nodes
        .into_iter()
        .filter(|(_, ready)| *ready == Some("True"))
        .map(|(name, _)| name.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nodes_whose_ready_condition_is_true_are_alive() {
        let live = live_from_node_conditions([
            ("a", Some("True")),
            ("b", Some("False")),
            ("c", Some("Unknown")),
            ("d", None),
            ("e", Some("true")),
        ]);
        assert_eq!(live.into_iter().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn no_nodes_means_nobody_is_alive() {
        assert!(live_from_node_conditions(std::iter::empty()).is_empty());
    }
}

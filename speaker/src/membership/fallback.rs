//! Where liveness comes from: gossip, or Node conditions when gossip cannot
//! start.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;

use super::config::MembershipArgs;
use super::run::Membership;
use super::Error;

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

/// The liveness the speaker runs with.
#[derive(Debug)]
pub enum Liveness {
    /// Gossip started.
    Gossip(Membership),
    /// Gossip could not start, for this reason; use
    /// [`live_from_node_conditions`].
    NodeConditions {
        /// Why gossip did not start.
        reason: Error,
    },
}

impl Liveness {
    /// Which source this is.
    pub fn source(&self) -> LivenessSource {
        match self {
            Self::Gossip(_) => LivenessSource::Gossip,
            Self::NodeConditions { .. } => LivenessSource::NodeConditions,
        }
    }
}

/// Starts gossip from the flags, or says why not and falls back to Node
/// conditions. The warning names the reason and the consequence, since a
/// silent fallback would look like "failover got slow" for no reason.
pub async fn start_liveness(
    args: &MembershipArgs,
    node_name: &str,
    seeds: Vec<SocketAddr>,
) -> Liveness {
    let started = match args.to_config(node_name, seeds) {
        Ok(config) => Membership::start(config).await,
        Err(e) => Err(e),
    };
    match started {
        Ok(membership) => Liveness::Gossip(membership),
        Err(reason) => {
            tracing::warn!(
                error = %reason,
                reason = reason.reason(),
                fallback = %LivenessSource::NodeConditions,
                "memberlist gossip cannot start; falling back to Node Ready conditions, \
                 failover will take tens of seconds"
            );
            Liveness::NodeConditions { reason }
        }
    }
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

    #[tokio::test]
    async fn a_missing_secret_falls_back_to_node_conditions_with_the_reason() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            m: MembershipArgs,
        }
        let cli = Cli::try_parse_from(["s", "--memberlist-bind-addr", "127.0.0.1"]).unwrap();
        let liveness = start_liveness(&cli.m, "node-a", vec![]).await;
        assert_eq!(liveness.source(), LivenessSource::NodeConditions);
        match liveness {
            Liveness::NodeConditions { reason } => assert_eq!(reason.reason(), "NoSecretFile"),
            Liveness::Gossip(_) => unreachable!(),
        }
    }
}

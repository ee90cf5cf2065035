//! Kubernetes Events about what the speaker decided.
//!
//! [`Notices`] is pure: from one [`Desired`] to the next it says what is
//! new. Each notice is sent once per change, never again on a resync or
//! a relist, and by exactly one node:
//!
//! - `nodeAssigned` (Normal, MetalLB's reason) on the Service, by the new
//!   owner only, naming the node and its interfaces;
//! - the [`Unannounced`] reason (Warning) on the Service, by one node
//!   chosen like an owner among the live nodes, so N speakers do not send
//!   N copies;
//! - `InterfaceMissing` / `InterfaceDown` / `InterfaceUnusable` (Warning)
//!   on the L2Advertisement, by the node concerned;
//! - `InvalidMemberlistSecret` (Warning) on this node's Node object, when
//!   its mounted secret file becomes unusable (sent by the liveness task).

use crate::membership::SecretProblem;
use ferrolb_core::announce::interfaces::LinkProblem;
use ferrolb_core::announce::model::ObjectKey;
use ferrolb_core::announce::{Desired, Unannounced, Verdict, World};
use ferrolb_core::election;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn, Instrument};

/// The Event reason MetalLB uses when a node starts announcing a Service.
pub const NODE_ASSIGNED: &str = "nodeAssigned";

/// The Event reason for a secret file this node cannot use (the
/// controller uses the same reason on the Secret itself).
pub const INVALID_SECRET: &str = "InvalidMemberlistSecret";

/// Something worth an Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// This node now announces the Service.
    Assigned {
        /// The Service.
        service: ObjectKey,
        /// Its IPs.
        ips: Vec<IpAddr>,
        /// This node.
        node: String,
        /// Where it announces (empty: nowhere usable).
        interfaces: Vec<String>,
    },
    /// Nobody announces the Service.
    Unannounced {
        /// The Service.
        service: ObjectKey,
        /// Why.
        why: Unannounced,
    },
    /// An advertisement names an interface this node cannot use.
    Link {
        /// The L2Advertisement.
        advertisement: ObjectKey,
        /// This node.
        node: String,
        /// What is wrong.
        problem: LinkProblem,
    },
    /// This node's memberlist secret file is unusable.
    Secret {
        /// This node.
        node: String,
        /// What is wrong, naming the file and the fix.
        problem: SecretProblem,
    },
}

impl Notice {
    /// The Event's type, reason and message.
    pub fn render(&self) -> (EventType, &'static str, String) {
        match self {
            Self::Assigned {
                node, interfaces, ..
            } => {
                let mut note = format!("announcing from node {node:?} with protocol \"layer2\"");
                match interfaces.as_slice() {
                    [] => note.push_str(" but no interface is usable there"),
                    [one] => note.push_str(&format!(" on interface {one:?}")),
                    many => note.push_str(&format!(" on interfaces {}", quoted(many))),
                }
                (EventType::Normal, NODE_ASSIGNED, note)
            }
            Self::Unannounced { why, .. } => (EventType::Warning, why.reason(), why.to_string()),
            Self::Link { node, problem, .. } => (
                EventType::Warning,
                problem.reason(),
                format!("on node {node:?}: {problem}"),
            ),
            Self::Secret { problem, .. } => (
                EventType::Warning,
                INVALID_SECRET,
                format!("the speaker keeps the gossip key it had, or none: {problem}"),
            ),
        }
    }

    /// The Event's `action`: what the speaker was doing.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Secret { .. } => "Gossip",
            _ => "Announce",
        }
    }

    /// The object the Event is about, with the UID `world` knows for it:
    /// `kubectl describe` lists only Events whose reference carries the
    /// object's UID.
    pub fn regarding(&self, world: &World) -> ObjectReference {
        let (api_version, kind, key, uid) = match self {
            // kubectl describe node looks for Events whose UID is the
            // node's name (as kubelet writes them), not its metadata.uid.
            Self::Secret { node, .. } => {
                return ObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Node".into()),
                    name: Some(node.clone()),
                    uid: Some(node.clone()),
                    ..ObjectReference::default()
                }
            }
            Self::Assigned { service, .. } | Self::Unannounced { service, .. } => (
                "v1",
                "Service",
                service,
                world.services.get(service).and_then(|s| s.uid.clone()),
            ),
            Self::Link { advertisement, .. } => (
                "ferrolb.io/v1beta1",
                "L2Advertisement",
                advertisement,
                world.ads.get(advertisement).and_then(|a| a.uid.clone()),
            ),
        };
        ObjectReference {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
            namespace: Some(key.namespace.clone()),
            name: Some(key.name.clone()),
            uid,
            ..ObjectReference::default()
        }
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the previous computation said, to report only changes.
#[derive(Debug, Default)]
pub struct Notices {
    owners: BTreeMap<ObjectKey, Option<String>>,
    reasons: BTreeMap<ObjectKey, &'static str>,
    problems: BTreeSet<(ObjectKey, LinkProblem)>,
}

/// The result of [`Notices::update`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// Events to send.
    pub notices: Vec<Notice>,
    /// Services whose owner changed since the previous computation (not
    /// counting the first time a Service is seen).
    pub owner_changes: u64,
}

impl Notices {
    /// Compares `desired` with the previous call. `live` are the live
    /// nodes, among which one reports unannounced Services.
    pub fn update(&mut self, me: &str, desired: &Desired, live: &BTreeSet<String>) -> Update {
        let mut out = Update::default();
        let mut owners = BTreeMap::new();
        let mut reasons = BTreeMap::new();
        for (key, decision) in &desired.services {
            let owner = decision.owner().map(str::to_owned);
            let before = self.owners.get(key);
            if before.is_some_and(|b| *b != owner) {
                out.owner_changes += 1;
            }
            match &decision.verdict {
                Verdict::Owner { node, interfaces } => {
                    if node == me && before != Some(&owner) {
                        out.notices.push(Notice::Assigned {
                            service: key.clone(),
                            ips: decision.ips.clone(),
                            node: node.clone(),
                            interfaces: interfaces.clone(),
                        });
                    }
                }
                Verdict::Unannounced(why) => {
                    reasons.insert(key.clone(), why.reason());
                    let reporter = decision
                        .ips
                        .first()
                        .and_then(|ip| election::elect(*ip, live.iter().map(String::as_str)));
                    if reporter == Some(me) && self.reasons.get(key) != Some(&why.reason()) {
                        out.notices.push(Notice::Unannounced {
                            service: key.clone(),
                            why: why.clone(),
                        });
                    }
                }
            }
            owners.insert(key.clone(), owner);
        }
        for (ad, problem) in desired.link_problems.difference(&self.problems) {
            out.notices.push(Notice::Link {
                advertisement: ad.clone(),
                node: me.to_owned(),
                problem: problem.clone(),
            });
        }
        self.owners = owners;
        self.reasons = reasons;
        self.problems = desired.link_problems.clone();
        out
    }
}

/// Queue length between the decision loop and the Event writer; a full
/// queue drops Events (logged) rather than stall announcing.
pub const QUEUE: usize = 256;

/// Starts the task that writes Events as `ferrolb-speaker` / `node`;
/// `world` supplies the UIDs of the objects they are about.
pub fn spawn_publisher(
    client: Client,
    node: &str,
    world: watch::Receiver<World>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> mpsc::Sender<Notice> {
    let (tx, mut rx) = mpsc::channel::<Notice>(QUEUE);
    let recorder = Recorder::new(
        client,
        Reporter {
            controller: "ferrolb-speaker".into(),
            instance: Some(node.to_owned()),
        },
    );
    let span = tracing::info_span!("events");
    tasks.spawn(
        async move {
            while let Some(notice) = rx.recv().await {
                let (type_, reason, note) = notice.render();
                let event = Event {
                    type_,
                    reason: reason.into(),
                    note: Some(note),
                    action: notice.action().into(),
                    secondary: None,
                };
                let regarding = notice.regarding(&world.borrow());
                match recorder.publish(&event, &regarding).await {
                    Ok(()) => debug!(reason, object = ?regarding.name, "event sent"),
                    Err(e) => {
                        warn!(error = %e, reason, object = ?regarding.name, "cannot send event")
                    }
                }
            }
        }
        .instrument(span),
    );
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_secret_file_is_reported_on_the_node_as_kubectl_describe_node_finds_it() {
        let notice = Notice::Secret {
            node: "node-a".into(),
            problem: SecretProblem::Empty {
                path: "/etc/ferrolb/memberlist/secretkey".into(),
            },
        };
        let (type_, reason, note) = notice.render();
        assert_eq!(type_, EventType::Warning);
        assert_eq!(reason, "InvalidMemberlistSecret");
        assert!(
            note.contains("/etc/ferrolb/memberlist/secretkey is empty"),
            "{note}"
        );
        let r = notice.regarding(&World::default());
        assert_eq!(r.kind.as_deref(), Some("Node"));
        assert_eq!(r.name.as_deref(), Some("node-a"));
        assert_eq!(r.uid.as_deref(), Some("node-a"));
        assert_eq!(
            r.namespace, None,
            "cluster-scoped: the Event goes to default"
        );
        assert_eq!(notice.action(), "Gossip");
    }
    use ferrolb_core::announce::Decision;
    use ferrolb_core::election::NoCandidate;

    fn key() -> ObjectKey {
        ObjectKey::new("default", "web")
    }

    fn owned_by(node: &str) -> Desired {
        let mut d = Desired::default();
        d.services.insert(
            key(),
            Decision {
                ips: vec!["192.0.2.10".parse().unwrap()],
                verdict: Verdict::Owner {
                    node: node.into(),
                    interfaces: vec!["eth0".into()],
                },
            },
        );
        d
    }

    fn live() -> BTreeSet<String> {
        ["node-a".to_string(), "node-b".to_string()].into()
    }

    #[test]
    fn node_assigned_is_sent_once_by_the_owner_and_not_on_resync() {
        let mut a = Notices::default();
        let mut b = Notices::default();
        let first = a.update("node-a", &owned_by("node-a"), &live());
        assert_eq!(first.notices.len(), 1);
        let (_, reason, note) = first.notices[0].render();
        assert_eq!(reason, "nodeAssigned");
        assert_eq!(
            note,
            "announcing from node \"node-a\" with protocol \"layer2\" on interface \"eth0\""
        );
        assert!(b
            .update("node-b", &owned_by("node-a"), &live())
            .notices
            .is_empty());
        assert!(a
            .update("node-a", &owned_by("node-a"), &live())
            .notices
            .is_empty());
        assert_eq!(
            a.update("node-a", &owned_by("node-b"), &live())
                .owner_changes,
            1
        );
        let back = a.update("node-a", &owned_by("node-a"), &live());
        assert_eq!((back.notices.len(), back.owner_changes), (1, 1));
    }

    #[test]
    fn an_unannounced_service_is_reported_by_one_live_node_once() {
        let mut d = owned_by("x");
        d.services.get_mut(&key()).unwrap().verdict =
            Verdict::Unannounced(Unannounced::NoCandidate(NoCandidate::NoReadyEndpoint));
        let sent: usize = ["node-a", "node-b"]
            .iter()
            .map(|me| Notices::default().update(me, &d, &live()).notices.len())
            .sum();
        assert_eq!(sent, 1);
        let reporter =
            election::elect("192.0.2.10".parse().unwrap(), ["node-a", "node-b"]).unwrap();
        let mut n = Notices::default();
        assert_eq!(n.update(reporter, &d, &live()).notices.len(), 1);
        assert!(n.update(reporter, &d, &live()).notices.is_empty());
    }

    #[test]
    fn a_link_problem_is_reported_once_while_it_lasts() {
        let mut d = Desired::default();
        d.link_problems.insert((
            ObjectKey::new("ferrolb-system", "ad"),
            LinkProblem::Missing {
                interface: "eth9".into(),
            },
        ));
        let mut n = Notices::default();
        let first = n.update("node-a", &d, &live());
        assert_eq!(first.notices.len(), 1);
        assert_eq!(first.notices[0].render().1, "InterfaceMissing");
        assert!(n.update("node-a", &d, &live()).notices.is_empty());
        n.update("node-a", &Desired::default(), &live());
        assert_eq!(
            n.update("node-a", &d, &live()).notices.len(),
            1,
            "it came back"
        );
    }

    #[test]
    fn references_carry_the_uid_the_world_knows() {
        use ferrolb_core::announce::model::{AdInfo, ServiceInfo};
        let mut world = World::default();
        world.services.insert(
            key(),
            ServiceInfo {
                key: key(),
                ips: vec!["192.0.2.10".parse().unwrap()],
                pool: None,
                local: false,
                uid: Some("u-web".into()),
            },
        );
        let ad = ObjectKey::new("ferrolb-system", "lan");
        world.ads.insert(
            ad.clone(),
            AdInfo {
                key: ad.clone(),
                uid: Some("u-lan".into()),
                ..AdInfo::default()
            },
        );
        let assigned = Notice::Assigned {
            service: key(),
            ips: vec![],
            node: "a".into(),
            interfaces: vec![],
        };
        let r = assigned.regarding(&world);
        assert_eq!(
            (r.kind.as_deref(), r.name.as_deref(), r.uid.as_deref()),
            (Some("Service"), Some("web"), Some("u-web"))
        );
        let link = Notice::Link {
            advertisement: ad,
            node: "a".into(),
            problem: LinkProblem::Missing {
                interface: "eth9".into(),
            },
        };
        assert_eq!(link.regarding(&world).uid.as_deref(), Some("u-lan"));
        // A Service the world no longer holds: no UID rather than a wrong one.
        assert_eq!(assigned.regarding(&World::default()).uid, None);
    }
}

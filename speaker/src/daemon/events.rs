//! Kubernetes Events about what the speaker decided.
//!
//! [`Notices`] is pure: from the decision's [`Delta`] it says what is
//! new. Each notice is sent once per transition, never on a resync, a
//! relist or the first computation after a start (a restart with nothing
//! changed writes nothing), and by exactly one node:
//!
//! - `nodeAssigned` (Normal, MetalLB's reason) on the Service, by the new
//!   owner only, naming the node and its interfaces;
//! - the [`Unannounced`] reason (Warning) on the Service, by one node
//!   chosen like an owner among the live nodes, so N speakers do not send
//!   N copies; except `NoL2Advertisement`, a fact about the pool, which
//!   the controller reports on the pool;
//! - `InterfaceMissing` / `InterfaceDown` / `InterfaceUnusable` (Warning)
//!   on the L2Advertisement, by the node concerned;
//! - `InvalidMemberlistSecret` (Warning) on this node's Node object, when
//!   its mounted secret file becomes unusable (sent by the liveness task);
//! - `AddressConflict` (Warning) on a Service, by its owner, once per
//!   episode of another MAC announcing one of its IPs
//!   ([`super::conflicts`]).

use crate::membership::SecretProblem;
use crate::wire::foreign::Kind;
use crate::wire::MacAddr;
use ferrolb_core::announce::interfaces::LinkProblem;
use ferrolb_core::announce::model::ObjectKey;
use ferrolb_core::announce::{Decision, Delta, Unannounced, Verdict, World};
use ferrolb_core::election;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Client;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn, Instrument};

/// The Event reason MetalLB uses when a node starts announcing a Service.
pub const NODE_ASSIGNED: &str = "nodeAssigned";

/// The Event reason for a secret file this node cannot use (the
/// controller uses the same reason on the Secret itself).
pub const INVALID_SECRET: &str = "InvalidMemberlistSecret";

/// The Event reason for another station announcing a Service's IP
/// (RFC 5227's "address conflict").
pub const ADDRESS_CONFLICT: &str = "AddressConflict";

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
    /// Another station announces an IP of a Service this node owns.
    Conflict {
        /// The Service.
        service: ObjectKey,
        /// The IP.
        ip: IpAddr,
        /// The other station's MAC.
        mac: MacAddr,
        /// How it announced the IP first.
        kind: Kind,
        /// Where this node saw it.
        interface: String,
        /// This node, the owner.
        node: String,
        /// The node whose speaker the MAC belongs to, when known.
        peer: Option<String>,
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
            Self::Conflict {
                ip,
                mac,
                kind,
                interface,
                node,
                peer,
                ..
            } => {
                let seen = format!(
                    "{ip} is also announced by {mac} ({kind}) on interface {interface:?} \
                     of node {node:?}, which owns it"
                );
                let why = match peer {
                    Some(peer) => format!(
                        "{mac} is node {peer:?}'s: its speaker claims the IP too (the speakers' \
                         views of the cluster differ, e.g. a gossip partition) or its kernel \
                         answers ARP for it (kube-proxy IPVS without strictARP)"
                    ),
                    None => format!(
                        "{mac} is no known ferrolb speaker's: another device or installation \
                         (kube-vip, MetalLB, a static address) answers for this IP"
                    ),
                };
                (
                    EventType::Warning,
                    ADDRESS_CONFLICT,
                    format!(
                        "{seen}; {why}. Clients may flap between the two MACs; \
                         node {node:?} announces the IP again"
                    ),
                )
            }
        }
    }

    /// Whether a repeat may be folded into the previous Event of the same
    /// reason on the same object (kube's Recorder does so for 6 minutes,
    /// keeping the first message). Not for a conflict: each is one
    /// episode of one foreign MAC, rate-limited already
    /// ([`super::conflicts`]), and a second MAC folded into the first
    /// Event would never be named.
    pub fn folds(&self) -> bool {
        !matches!(self, Self::Conflict { .. })
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
            Self::Assigned { service, .. }
            | Self::Unannounced { service, .. }
            | Self::Conflict { service, .. } => (
                "v1",
                "Service",
                service,
                world.services().get(service).and_then(|s| s.uid.clone()),
            ),
            Self::Link { advertisement, .. } => (
                "ferrolb.io/v1beta1",
                "L2Advertisement",
                advertisement,
                world.ads().get(advertisement).and_then(|a| a.uid.clone()),
            ),
        };
        ObjectReference {
            api_version: Some(api_version.into()),
            kind: Some(kind.into()),
            namespace: Some(key.namespace.to_string()),
            name: Some(key.name.to_string()),
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

/// How long a new owner must hold a Service before it reports
/// `nodeAssigned`: a speaker restart moves its IPs to another node and
/// back within a second or two, and neither move is worth an Event (the
/// last one still names the right node).
pub const ASSIGNED_HOLD: Duration = Duration::from_secs(5);

/// Turns each [`Delta`] into the Events it deserves.
///
/// The first delta after a start is the baseline: it reports nothing, so
/// a restart with nothing changed in the cluster writes no Event (the
/// Events of the previous run still describe it). After that, only
/// transitions are reported: an unannounced reason at once, an owner once
/// it has held the Service for `hold` ([`ASSIGNED_HOLD`]); an owner that
/// changes back within `hold` to the one last reported is no transition.
#[derive(Debug)]
pub struct Notices {
    started: bool,
    hold: Duration,
    /// The owner per Service as last reported (by whichever node), or as
    /// found at start.
    reported: HashMap<ObjectKey, String>,
    /// Owner changes waiting for `hold` to pass.
    pending: HashMap<ObjectKey, Pending>,
}

#[derive(Debug)]
struct Pending {
    owner: String,
    ips: Vec<IpAddr>,
    interfaces: Vec<String>,
    due: Instant,
}

impl Default for Notices {
    fn default() -> Self {
        Self::new(ASSIGNED_HOLD)
    }
}

/// The result of [`Notices::update`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Update {
    /// Events to send.
    pub notices: Vec<Notice>,
    /// Services whose owner changed (not counting Services that appeared
    /// or left).
    pub owner_changes: u64,
}

/// Whether the reason is a fact about the Service itself. A Service is
/// unannounced with [`Unannounced::NoAdvertisement`] because of its pool:
/// the controller says so on the pool (its `Advertised` condition and an
/// Event) and in the Service's `IPAllocated` Event, once, rather than
/// every Service of the pool getting a Warning.
/// Nor are sticky ownership's passing states (a speaker listening after
/// its start, an IP reserved for its recorded owner during a restart of
/// every speaker).
fn about_the_service(why: &Unannounced) -> bool {
    !matches!(why, Unannounced::NoAdvertisement { .. }) && !why.is_transient()
}

impl Notices {
    /// Notices that report an owner once it held a Service for `hold`.
    pub fn new(hold: Duration) -> Self {
        Self {
            started: false,
            hold,
            reported: HashMap::new(),
            pending: HashMap::new(),
        }
    }

    /// What `delta`, seen at `now`, deserves at once. `live` are the live
    /// nodes, among which one reports an unannounced Service.
    pub fn update(
        &mut self,
        me: &str,
        delta: &Delta,
        live: &BTreeSet<String>,
        now: Instant,
    ) -> Update {
        let mut out = Update::default();
        let baseline = !std::mem::replace(&mut self.started, true);
        for change in &delta.services {
            let before = change.before.as_ref();
            let (before_owner, after_owner) = (
                before.and_then(Decision::owner),
                change.after.as_ref().and_then(Decision::owner),
            );
            if before.is_some() && change.after.is_some() && before_owner != after_owner {
                out.owner_changes += 1;
            }
            let key = &change.key;
            let Some(after) = &change.after else {
                self.reported.remove(key);
                self.pending.remove(key);
                continue;
            };
            match &after.verdict {
                Verdict::Owner { node, .. } if baseline => {
                    self.reported.insert(key.clone(), node.clone());
                }
                Verdict::Owner { node, interfaces } => {
                    if self.reported.get(key) == Some(node) {
                        self.pending.remove(key);
                    } else {
                        self.pending.insert(
                            key.clone(),
                            Pending {
                                owner: node.clone(),
                                ips: after.ips.clone(),
                                interfaces: interfaces.clone(),
                                due: now + self.hold,
                            },
                        );
                    }
                }
                Verdict::Unannounced(why) => {
                    self.reported.remove(key);
                    self.pending.remove(key);
                    if baseline {
                        continue;
                    }
                    let was = before.and_then(|d| match &d.verdict {
                        Verdict::Unannounced(w) => Some(w.reason()),
                        Verdict::Owner { .. } => None,
                    });
                    let reporter = after
                        .ips
                        .first()
                        .and_then(|ip| election::elect(*ip, live.iter().map(String::as_str)));
                    if about_the_service(why) && reporter == Some(me) && was != Some(why.reason()) {
                        out.notices.push(Notice::Unannounced {
                            service: key.clone(),
                            why: why.clone(),
                        });
                    }
                }
            }
        }
        if !baseline {
            for (ad, problem) in &delta.new_link_problems {
                out.notices.push(Notice::Link {
                    advertisement: ad.clone(),
                    node: me.to_owned(),
                    problem: problem.clone(),
                });
            }
        }
        out.notices.extend(self.due(me, now));
        out
    }

    /// The owners that have held their Service for `hold` by `now`: each
    /// becomes the reported owner, and this node reports those it is.
    pub fn due(&mut self, me: &str, now: Instant) -> Vec<Notice> {
        let ready: Vec<ObjectKey> = self
            .pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for key in ready {
            let Some(p) = self.pending.remove(&key) else {
                continue;
            };
            if p.owner == me {
                out.push(Notice::Assigned {
                    service: key.clone(),
                    ips: p.ips,
                    node: p.owner.clone(),
                    interfaces: p.interfaces,
                });
            }
            self.reported.insert(key, p.owner);
        }
        out
    }

    /// When the next owner is due ([`Notices::due`]).
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.due).min()
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
    let reporter = Reporter {
        controller: "ferrolb-speaker".into(),
        instance: Some(node.to_owned()),
    };
    let recorder = Recorder::new(client.clone(), reporter.clone());
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
                let published = if notice.folds() {
                    recorder.publish(&event, &regarding).await
                } else {
                    // A recorder without history creates a new Event.
                    Recorder::new(client.clone(), reporter.clone())
                        .publish(&event, &regarding)
                        .await
                };
                match published {
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
    use ferrolb_core::announce::ServiceChange;
    use ferrolb_core::election::NoCandidate;

    fn key() -> ObjectKey {
        ObjectKey::new("default", "web")
    }

    fn owned_by(node: &str) -> Decision {
        Decision {
            ips: vec!["192.0.2.10".parse().unwrap()],
            verdict: Verdict::Owner {
                node: node.into(),
                interfaces: vec!["eth0".into()],
            },
        }
    }

    fn unannounced(why: Unannounced) -> Decision {
        Decision {
            verdict: Verdict::Unannounced(why),
            ..owned_by("x")
        }
    }

    fn change(before: Option<Decision>, after: Option<Decision>) -> Delta {
        Delta {
            services: vec![ServiceChange {
                key: key(),
                before,
                after,
            }],
            ..Delta::default()
        }
    }

    fn live() -> BTreeSet<String> {
        ["node-a".to_string(), "node-b".to_string()].into()
    }

    const HOLD: Duration = Duration::from_secs(5);

    /// Notices past their baseline, at `t0()`.
    fn started() -> Notices {
        let mut n = Notices::new(HOLD);
        n.update("any", &Delta::default(), &live(), t0());
        n
    }

    fn t0() -> Instant {
        static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *T0.get_or_init(Instant::now)
    }

    fn at(secs: u64) -> Instant {
        t0() + Duration::from_secs(secs)
    }

    #[test]
    fn the_first_delta_after_a_start_reports_nothing() {
        let mut n = Notices::new(HOLD);
        let first = n.update(
            "node-a",
            &change(None, Some(owned_by("node-a"))),
            &live(),
            t0(),
        );
        assert_eq!(first, Update::default(), "a restart writes no Event");
        assert_eq!(n.next_due(), None, "nor later");
        let mut problem = Delta::default();
        problem.new_link_problems.push((
            ObjectKey::new("ferrolb-system", "ad"),
            LinkProblem::Missing {
                interface: "eth9".into(),
            },
        ));
        assert!(Notices::new(HOLD)
            .update("node-a", &problem, &live(), t0())
            .notices
            .is_empty());
    }

    #[test]
    fn node_assigned_is_sent_once_by_the_new_owner_after_it_held_the_service() {
        let (mut a, mut b) = (started(), started());
        let new = change(None, Some(owned_by("node-a")));
        assert!(a.update("node-a", &new, &live(), at(0)).notices.is_empty());
        assert!(b.update("node-b", &new, &live(), at(0)).notices.is_empty());
        assert_eq!(a.next_due(), Some(at(5)));
        assert!(a.due("node-a", at(4)).is_empty(), "not yet");
        let first = a.due("node-a", at(5));
        assert_eq!(first.len(), 1);
        let (_, reason, note) = first[0].render();
        assert_eq!(reason, "nodeAssigned");
        assert_eq!(
            note,
            "announcing from node \"node-a\" with protocol \"layer2\" on interface \"eth0\""
        );
        assert!(b.due("node-b", at(5)).is_empty(), "only the owner reports");
        assert!(a.due("node-a", at(60)).is_empty(), "once");
        let moved = change(Some(owned_by("node-a")), Some(owned_by("node-b")));
        assert!(a
            .update("node-a", &moved, &live(), at(10))
            .notices
            .is_empty());
        let to_b = b.update("node-b", &moved, &live(), at(10));
        assert_eq!((to_b.notices.len(), to_b.owner_changes), (0, 1));
        assert_eq!(b.due("node-b", at(15)).len(), 1);
        // Interfaces changing under the same owner is no new assignment.
        let mut more = owned_by("node-b");
        more.verdict = Verdict::Owner {
            node: "node-b".into(),
            interfaces: vec!["eth0".into(), "eth1".into()],
        };
        let same = change(Some(owned_by("node-b")), Some(more));
        assert_eq!(
            b.update("node-b", &same, &live(), at(20)),
            Update::default()
        );
        assert_eq!(b.next_due(), None);
    }

    #[test]
    fn an_owner_that_comes_back_within_the_hold_is_no_transition() {
        // node-a owns the Service; its speaker restarts: node-b takes the
        // IP for a second, then node-a takes it back.
        let mut b = started();
        let settled = change(None, Some(owned_by("node-a")));
        b.update("node-b", &settled, &live(), at(0));
        b.due("node-b", at(5));
        let away = change(Some(owned_by("node-a")), Some(owned_by("node-b")));
        assert!(b
            .update("node-b", &away, &live(), at(10))
            .notices
            .is_empty());
        let back = change(Some(owned_by("node-b")), Some(owned_by("node-a")));
        assert!(b
            .update("node-b", &back, &live(), at(11))
            .notices
            .is_empty());
        assert!(b.due("node-b", at(60)).is_empty(), "no Event from node-b");
        assert_eq!(b.next_due(), None);
    }

    #[test]
    fn an_unannounced_service_is_reported_by_one_live_node_once_per_reason() {
        let why = Unannounced::NoCandidate(NoCandidate::NoReadyEndpoint);
        let lost = change(Some(owned_by("node-a")), Some(unannounced(why.clone())));
        let sent: usize = ["node-a", "node-b"]
            .iter()
            .map(|me| started().update(me, &lost, &live(), at(1)).notices.len())
            .sum();
        assert_eq!(sent, 1);
        let reporter =
            election::elect("192.0.2.10".parse().unwrap(), ["node-a", "node-b"]).unwrap();
        let mut n = started();
        let same_reason = change(Some(unannounced(why.clone())), Some(unannounced(why)));
        assert!(n
            .update(reporter, &same_reason, &live(), at(1))
            .notices
            .is_empty());
    }

    #[test]
    fn a_pool_without_advertisement_is_not_reported_on_each_service() {
        let why = Unannounced::NoAdvertisement {
            pool: "quiet".into(),
        };
        for me in ["node-a", "node-b"] {
            let new = change(None, Some(unannounced(why.clone())));
            assert!(started()
                .update(me, &new, &live(), at(1))
                .notices
                .is_empty());
        }
    }

    #[test]
    fn a_new_link_problem_is_reported() {
        let mut d = Delta::default();
        d.new_link_problems.push((
            ObjectKey::new("ferrolb-system", "ad"),
            LinkProblem::Missing {
                interface: "eth9".into(),
            },
        ));
        let first = started().update("node-a", &d, &live(), at(1));
        assert_eq!(first.notices.len(), 1);
        assert_eq!(first.notices[0].render().1, "InterfaceMissing");
    }

    #[test]
    fn a_conflict_names_the_ip_the_foreign_mac_the_interface_and_the_other_node() {
        let mut notice = Notice::Conflict {
            service: key(),
            ip: "192.0.2.10".parse().unwrap(),
            mac: MacAddr([0x02, 0, 0, 0, 0, 0x99]),
            kind: Kind::GratuitousArp,
            interface: "eth0".into(),
            node: "node-a".into(),
            peer: None,
        };
        let (type_, reason, note) = notice.render();
        assert_eq!((type_, reason), (EventType::Warning, "AddressConflict"));
        for part in [
            "192.0.2.10 is also announced by 02:00:00:00:00:99 (gratuitous ARP)",
            "on interface \"eth0\" of node \"node-a\", which owns it",
            "no known ferrolb speaker's",
        ] {
            assert!(note.contains(part), "{part:?} not in {note:?}");
        }
        assert_eq!(notice.action(), "Announce");
        assert!(!notice.folds(), "each MAC gets an Event of its own");
        if let Notice::Conflict { peer, .. } = &mut notice {
            *peer = Some("node-b".into());
        }
        let (_, _, note) = notice.render();
        assert!(note.contains("is node \"node-b\"'s"), "{note}");
        assert!(
            note.len() < 1024,
            "Events cap notes at 1 kB: {}",
            note.len()
        );
        let r = notice.regarding(&World::default());
        assert_eq!(
            (r.kind.as_deref(), r.name.as_deref()),
            (Some("Service"), Some("web"))
        );
    }

    #[test]
    fn references_carry_the_uid_the_world_knows() {
        use ferrolb_core::announce::model::{AdInfo, ServiceInfo};
        let mut world = World::default();
        world.set_service(ServiceInfo {
            key: key(),
            ips: vec!["192.0.2.10".parse().unwrap()],
            pool: None,
            local: false,
            uid: Some("u-web".into()),
            ..Default::default()
        });
        let ad = ObjectKey::new("ferrolb-system", "lan");
        world.set_ad(AdInfo {
            key: ad.clone(),
            uid: Some("u-lan".into()),
            ..AdInfo::default()
        });
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

//! Which record each Service should have and whether this node writes it:
//! pure, fed by the decision's [`Delta`] like the Events are.
//!
//! The rules, for one Service, as every node applies them:
//!
//! - its decision must have held for `hold` ([`ASSIGNED_HOLD`](super::super::events::ASSIGNED_HOLD),
//!   as for `nodeAssigned`) before anything is written, so an owner that
//!   restarts and takes its IPs back within it leaves the record alone,
//!   and so does a speaker whose first decision after a start still sees
//!   too few live peers;
//! - announced by this node: this node wants the record to name it, its
//!   interfaces and the IPs ([`Want::Record`]); a new owner overwrites the
//!   record of the previous one (alive or dead), so a move is one write;
//! - announced by another node: that node writes, this one does nothing;
//! - announced by nobody, or gone: the record must go, and one live node,
//!   the [`janitor`] (a hash of the Service's key over the live nodes, as
//!   an owner is chosen), deletes it ([`Want::Absent`]), so a record of a
//!   dead owner with no successor goes too.
//!
//! The planner never looks at the records themselves: the writer
//! compares each [`Want`] with the record that exists and writes only
//! what differs, so a restart that changes nothing writes nothing.

use ferrolb_core::announce::model::ObjectKey;
use ferrolb_core::announce::{Delta, Verdict};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

/// What this node wants one Service's record to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// The record names this node.
    Record(Record),
    /// There is no record: nobody announces the Service, or it is gone,
    /// and this node is its [`janitor`].
    Absent,
}

/// What a record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The announcing node (this one).
    pub node: String,
    /// Where it answers for the Service's IPs.
    pub interfaces: Vec<String>,
    /// The Service's IPs.
    pub ips: Vec<IpAddr>,
    /// When this node started announcing the Service (its decision, not
    /// the end of the hold).
    pub since: SystemTime,
}

/// A Service's decision, as far as records care.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// This node announces it.
    Mine {
        interfaces: Vec<String>,
        ips: Vec<IpAddr>,
    },
    /// Nobody does.
    Nobody,
}

#[derive(Debug)]
struct Pending {
    /// `None`: another node announces it.
    target: Option<Target>,
    due: Instant,
    since: SystemTime,
    /// The Service left the world.
    gone: bool,
}

/// Turns decision deltas into [`Want`]s once they have held.
#[derive(Debug)]
pub struct Planner {
    hold: Duration,
    /// Per Service, the target that held last; no entry: another node
    /// announces it, or nothing held yet (just started).
    settled: HashMap<ObjectKey, Target>,
    /// Changes waiting for `hold` to pass.
    pending: HashMap<ObjectKey, Pending>,
}

impl Planner {
    /// A planner that acts once a decision held for `hold`.
    pub fn new(hold: Duration) -> Self {
        Self {
            hold,
            settled: HashMap::new(),
            pending: HashMap::new(),
        }
    }

    /// Takes `delta` in at `now` (`wall` is the same moment on the wall
    /// clock); returns what is due at once (only with a zero hold).
    pub fn update(
        &mut self,
        me: &str,
        delta: &Delta,
        live: &BTreeSet<String>,
        now: Instant,
        wall: SystemTime,
    ) -> Vec<(ObjectKey, Want)> {
        for change in &delta.services {
            let key = &change.key;
            let target = match &change.after {
                None => Some(Target::Nobody),
                Some(d) => match &d.verdict {
                    Verdict::Owner { node, interfaces } if node == me => Some(Target::Mine {
                        interfaces: interfaces.clone(),
                        ips: d.ips.clone(),
                    }),
                    Verdict::Owner { .. } => None,
                    // Waiting for a decision or for the recorded owner:
                    // the record stays as it is.
                    Verdict::Unannounced(why) if why.is_transient() => None,
                    Verdict::Unannounced(_) => Some(Target::Nobody),
                },
            };
            let gone = change.after.is_none();
            if self.settled.get(key) == target.as_ref() {
                // Back to what held (a flap within the hold), or nothing
                // that matters here changed.
                self.pending.remove(key);
                if gone {
                    self.settled.remove(key);
                }
                continue;
            }
            // Still the owner (new interfaces or IPs): the same `since`.
            let since = match (self.pending.get(key), &target) {
                (Some(p), Some(Target::Mine { .. }))
                    if matches!(p.target, Some(Target::Mine { .. })) =>
                {
                    p.since
                }
                _ => wall,
            };
            self.pending.insert(
                key.clone(),
                Pending {
                    target,
                    due: now + self.hold,
                    since,
                    gone,
                },
            );
        }
        self.due(me, live, now)
    }

    /// The changes that have held for `hold` by `now`: each becomes what
    /// held, and this node's part of it a [`Want`].
    pub fn due(
        &mut self,
        me: &str,
        live: &BTreeSet<String>,
        now: Instant,
    ) -> Vec<(ObjectKey, Want)> {
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
            match p.target {
                Some(Target::Mine { interfaces, ips }) => {
                    out.push((
                        key.clone(),
                        Want::Record(Record {
                            node: me.to_owned(),
                            interfaces: interfaces.clone(),
                            ips: ips.clone(),
                            since: p.since,
                        }),
                    ));
                    self.settled.insert(key, Target::Mine { interfaces, ips });
                }
                Some(Target::Nobody) => {
                    if janitor(&key, live) == Some(me) {
                        out.push((key.clone(), Want::Absent));
                    }
                    if p.gone {
                        self.settled.remove(&key);
                    } else {
                        self.settled.insert(key, Target::Nobody);
                    }
                }
                None => {
                    self.settled.remove(&key);
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// When the next change is due ([`Planner::due`]).
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.due).min()
    }
}

/// The live node that deletes the record of a Service nobody announces:
/// the lowest `sha256(node + "#" + namespace + "/" + name)`, so every
/// node picks the same one from the same live set, and the Services
/// spread over the nodes. `None` when nobody is live.
pub fn janitor<'a>(key: &ObjectKey, live: &'a BTreeSet<String>) -> Option<&'a str> {
    live.iter()
        .map(|node| {
            let mut h = Sha256::new();
            h.update(node.as_bytes());
            h.update(b"#");
            h.update(key.namespace.as_bytes());
            h.update(b"/");
            h.update(key.name.as_bytes());
            let rank: [u8; 32] = h.finalize().into();
            (rank, node.as_str())
        })
        .min()
        .map(|(_, node)| node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_core::announce::{Decision, ServiceChange, Unannounced};
    use ferrolb_core::election::NoCandidate;

    const HOLD: Duration = Duration::from_secs(5);

    fn key() -> ObjectKey {
        ObjectKey::new("shop", "web")
    }

    fn ip() -> IpAddr {
        "198.51.100.7".parse().unwrap()
    }

    fn owned_by(node: &str, interfaces: &[&str]) -> Decision {
        Decision {
            ips: vec![ip()],
            verdict: Verdict::Owner {
                node: node.into(),
                interfaces: interfaces.iter().map(|i| (*i).to_owned()).collect(),
            },
        }
    }

    fn nobody() -> Decision {
        Decision {
            ips: vec![ip()],
            verdict: Verdict::Unannounced(Unannounced::NoCandidate(NoCandidate::NoReadyEndpoint)),
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
        ["node-a", "node-b", "node-c"]
            .map(String::from)
            .into_iter()
            .collect()
    }

    fn t0() -> Instant {
        static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *T0.get_or_init(Instant::now)
    }

    fn at(secs: u64) -> Instant {
        t0() + Duration::from_secs(secs)
    }

    fn wall(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    fn record(node: &str, interfaces: &[&str], since: u64) -> Want {
        Want::Record(Record {
            node: node.into(),
            interfaces: interfaces.iter().map(|i| (*i).to_owned()).collect(),
            ips: vec![ip()],
            since: wall(since),
        })
    }

    /// `planner` as node `me` takes `delta` at second `secs`.
    fn feed(p: &mut Planner, me: &str, delta: &Delta, secs: u64) -> Vec<(ObjectKey, Want)> {
        p.update(me, delta, &live(), at(secs), wall(secs))
    }

    #[test]
    fn the_owner_wants_a_record_naming_it_once_its_decision_held() {
        let mut a = Planner::new(HOLD);
        let new = change(None, Some(owned_by("node-a", &["eth0"])));
        assert!(
            feed(&mut a, "node-a", &new, 0).is_empty(),
            "not before the hold"
        );
        assert_eq!(a.next_due(), Some(at(5)));
        assert!(a.due("node-a", &live(), at(4)).is_empty());
        assert_eq!(
            a.due("node-a", &live(), at(5)),
            vec![(key(), record("node-a", &["eth0"], 0))]
        );
        assert!(a.due("node-a", &live(), at(60)).is_empty(), "once");
        assert_eq!(a.next_due(), None);
    }

    #[test]
    fn other_nodes_leave_the_record_to_the_owner() {
        for me in ["node-b", "node-c"] {
            let mut p = Planner::new(HOLD);
            let new = change(None, Some(owned_by("node-a", &[])));
            assert!(feed(&mut p, me, &new, 0).is_empty());
            assert_eq!(p.next_due(), None, "{me}: nothing to wait for");
        }
    }

    #[test]
    fn a_new_owner_takes_the_record_over_and_the_old_one_does_nothing() {
        let (mut a, mut b) = (Planner::new(HOLD), Planner::new(HOLD));
        let first = change(None, Some(owned_by("node-a", &["eth0"])));
        feed(&mut a, "node-a", &first, 0);
        feed(&mut b, "node-b", &first, 0);
        a.due("node-a", &live(), at(5));
        // node-a dies: node-b sees itself the owner (node-a's speaker is
        // gone and plans nothing).
        let moved = change(
            Some(owned_by("node-a", &[])),
            Some(owned_by("node-b", &["eth1"])),
        );
        assert!(feed(&mut b, "node-b", &moved, 10).is_empty());
        assert_eq!(
            b.due("node-b", &live(), at(15)),
            vec![(key(), record("node-b", &["eth1"], 10))]
        );
        // The old owner, had it lived to see it, writes nothing.
        let seen_by_a = change(
            Some(owned_by("node-a", &["eth0"])),
            Some(owned_by("node-b", &[])),
        );
        assert!(feed(&mut a, "node-a", &seen_by_a, 10).is_empty());
        assert!(a.due("node-a", &live(), at(15)).is_empty());
    }

    #[test]
    fn an_owner_that_comes_back_within_the_hold_changes_nothing() {
        // node-a owns web and its speaker restarts: node-b announces for a
        // second, then node-a again. Neither writes.
        let mut a = Planner::new(HOLD);
        let mut b = Planner::new(HOLD);
        let settled = change(None, Some(owned_by("node-a", &["eth0"])));
        feed(&mut a, "node-a", &settled, 0);
        feed(&mut b, "node-b", &settled, 0);
        a.due("node-a", &live(), at(5));
        let away = change(
            Some(owned_by("node-a", &[])),
            Some(owned_by("node-b", &["eth0"])),
        );
        feed(&mut b, "node-b", &away, 10);
        let back = change(
            Some(owned_by("node-b", &["eth0"])),
            Some(owned_by("node-a", &[])),
        );
        assert!(feed(&mut b, "node-b", &back, 11).is_empty());
        assert!(b.due("node-b", &live(), at(60)).is_empty(), "node-b wrote");
        assert_eq!(b.next_due(), None);
        // node-a's new process starts from scratch and wants its record
        // as it is; the writer finds it unchanged and writes nothing.
        let mut restarted = Planner::new(HOLD);
        feed(&mut restarted, "node-a", &settled, 11);
        assert_eq!(
            restarted.due("node-a", &live(), at(16)),
            vec![(key(), record("node-a", &["eth0"], 11))]
        );
    }

    #[test]
    fn a_start_that_first_sees_too_few_peers_wants_nothing_it_does_not_keep() {
        // At start node-b sees itself alone and owns web for a moment,
        // then gossip shows node-a, the owner.
        let mut b = Planner::new(HOLD);
        let alone = change(None, Some(owned_by("node-b", &["eth0"])));
        feed(&mut b, "node-b", &alone, 0);
        let joined = change(
            Some(owned_by("node-b", &["eth0"])),
            Some(owned_by("node-a", &[])),
        );
        assert!(feed(&mut b, "node-b", &joined, 1).is_empty());
        assert!(b.due("node-b", &live(), at(60)).is_empty());
    }

    #[test]
    fn new_interfaces_or_ips_under_the_same_owner_rewrite_the_record_with_the_same_since() {
        let mut a = Planner::new(HOLD);
        feed(
            &mut a,
            "node-a",
            &change(None, Some(owned_by("node-a", &["eth0"]))),
            0,
        );
        // Before the hold: the second interface joins the pending record.
        let more = change(
            Some(owned_by("node-a", &["eth0"])),
            Some(owned_by("node-a", &["eth0", "eth1"])),
        );
        feed(&mut a, "node-a", &more, 2);
        assert_eq!(
            a.due("node-a", &live(), at(7)),
            vec![(key(), record("node-a", &["eth0", "eth1"], 0))]
        );
        // After it: a rewrite, after a hold of its own.
        let fewer = change(
            Some(owned_by("node-a", &["eth0", "eth1"])),
            Some(owned_by("node-a", &["eth1"])),
        );
        feed(&mut a, "node-a", &fewer, 20);
        assert_eq!(
            a.due("node-a", &live(), at(25)),
            vec![(key(), record("node-a", &["eth1"], 20))]
        );
    }

    #[test]
    fn exactly_one_live_node_deletes_the_record_of_a_service_nobody_announces() {
        let lost = change(Some(owned_by("node-a", &[])), Some(nobody()));
        let gone = change(Some(owned_by("node-a", &[])), None);
        for delta in [lost, gone] {
            let mut absent = Vec::new();
            for me in ["node-a", "node-b", "node-c"] {
                let mut p = Planner::new(HOLD);
                feed(&mut p, me, &delta, 0);
                for (k, w) in p.due(me, &live(), at(5)) {
                    assert_eq!((k, w), (key(), Want::Absent));
                    absent.push(me);
                }
            }
            assert_eq!(absent, [janitor(&key(), &live()).unwrap()], "{delta:?}");
        }
    }

    #[test]
    fn the_janitor_is_a_live_node_so_a_dead_owner_s_record_goes() {
        // node-a owned web and died; no other node may announce it.
        let survivors: BTreeSet<String> = ["node-b", "node-c"].map(String::from).into();
        let j = janitor(&key(), &survivors).unwrap();
        assert_ne!(j, "node-a");
        let mut p = Planner::new(HOLD);
        let lost = change(Some(owned_by("node-a", &[])), Some(nobody()));
        p.update(j, &lost, &survivors, at(0), wall(0));
        assert_eq!(p.due(j, &survivors, at(5)), vec![(key(), Want::Absent)]);
        assert_eq!(janitor(&key(), &BTreeSet::new()), None);
    }

    #[test]
    fn janitors_spread_over_the_nodes_and_ignore_the_order_of_the_live_set() {
        let mut chosen = BTreeSet::new();
        for i in 0..64 {
            let k = ObjectKey::new("shop", format!("web-{i}"));
            chosen.insert(janitor(&k, &live()).unwrap().to_owned());
        }
        assert_eq!(chosen, live());
    }

    #[test]
    fn a_service_that_leaves_while_nobody_announced_it_is_forgotten() {
        let mut p = Planner::new(HOLD);
        feed(&mut p, "node-a", &change(None, Some(nobody())), 0);
        p.due("node-a", &live(), at(5));
        assert!(feed(&mut p, "node-a", &change(Some(nobody()), None), 10).is_empty());
        assert_eq!(p.next_due(), None, "already without a record");
        assert!(p.settled.is_empty() && p.pending.is_empty());
    }

    #[test]
    fn a_zero_hold_acts_at_once() {
        let mut p = Planner::new(Duration::ZERO);
        let got = feed(
            &mut p,
            "node-a",
            &change(None, Some(owned_by("node-a", &["eth0"]))),
            0,
        );
        assert_eq!(got, vec![(key(), record("node-a", &["eth0"], 0))]);
    }
}

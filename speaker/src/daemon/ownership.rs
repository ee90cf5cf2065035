//! Sticky ownership in the daemon (issue 15, `docs/speaker-ownership.md`):
//! the [`Member`] and what it exchanges over the claims channel
//! ([`crate::membership::claims`]).
//!
//! [`Claims`] is the bookkeeping, with no I/O: it creates the member when
//! gossip gives this speaker an identity (with the records read at start),
//! renews it when membership does, feeds it the live peers and the
//! messages received, and turns what the member sends into
//! [`Outgoing`] messages: the whole set when the peer has not been sent
//! this version, a digest `(epoch, seq)` when it has (the refresh every
//! `--ownership-refresh`). A peer that receives a digest of a version it
//! does not hold pulls the whole one. The decision loop ([`super::run`])
//! owns the sockets and the engine.
//!
//! While gossip does not run (no secret yet, the Node-Ready fallback)
//! there is no member and the hash decides: without claims the speakers
//! could not agree.

use crate::membership::claims::{Incoming, Outgoing, Peers};
use ferrolb_core::announce::model::ObjectKey;
use ferrolb_core::ownership::{Config, Member, Message, Node, Phase, Received};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use tracing::{debug, info};

/// The member, its inputs and its outbox.
#[derive(Debug)]
pub struct Claims {
    node: Node,
    config: Config,
    /// Read once at start; handed to the first member.
    records: BTreeMap<ObjectKey, Node>,
    member: Option<Member<ObjectKey>>,
    /// Per peer, the version last sent whole.
    sent: HashMap<String, (u64, u64)>,
    outbox: Vec<Outgoing>,
    /// The live peers last set.
    peers: Peers,
}

impl Claims {
    /// Sticky ownership for `node`, with the recorded owners read at start.
    pub fn new(node: &str, config: Config, records: BTreeMap<ObjectKey, Node>) -> Self {
        Self {
            node: Node::from(node),
            config,
            records,
            member: None,
            sent: HashMap::new(),
            outbox: Vec::new(),
            peers: Peers::new(),
        }
    }

    /// Gossip gave this speaker incarnation `boot` (`None`: gossip does not
    /// run) at `now`: the first one creates the member, a new one renews
    /// it. Returns whether anything changed.
    pub fn set_identity(&mut self, boot: Option<u64>, now: Duration) -> bool {
        match (boot, self.member.as_mut()) {
            (None, None) => false,
            (None, Some(_)) => {
                info!("gossip stopped: the hash decides the owners until it runs again");
                self.member = None;
                self.sent.clear();
                true
            }
            (Some(boot), None) => {
                let records = std::mem::take(&mut self.records);
                info!(
                    records = records.len(),
                    listen_ms = self.config.listen.as_millis(),
                    "sticky ownership starts: listening for the peers' claims"
                );
                let mut member = Member::new(self.node.clone(), boot, self.config, records, now);
                member.set_live(incarnations(&self.peers));
                self.member = Some(member);
                true
            }
            (Some(boot), Some(member)) => {
                let mine = member.current().epoch;
                if boot == mine {
                    return false;
                }
                info!(
                    from = mine,
                    to = boot,
                    "membership renewed this speaker: claiming under the new incarnation"
                );
                member.renew(boot);
                self.sent.clear();
                true
            }
        }
    }

    /// The live peers (not this speaker) with their incarnations.
    pub fn set_peers(&mut self, peers: &Peers) {
        if *peers == self.peers {
            return;
        }
        // A peer gone or reborn is sent the whole version again.
        let before = std::mem::replace(&mut self.peers, peers.clone());
        self.sent
            .retain(|n, _| peers.get(n).is_some() && peers.get(n) == before.get(n));
        if let Some(member) = &mut self.member {
            member.set_live(incarnations(peers));
        }
    }

    /// The live speakers, this one included: what the engine's candidates
    /// are built from while the member runs (the same set it was given).
    pub fn live(&self) -> BTreeSet<String> {
        let mut live: BTreeSet<String> = self.peers.keys().cloned().collect();
        live.insert(self.node.to_string());
        live
    }

    /// A message from a peer; `None` when nothing was taken in.
    pub fn receive(&mut self, msg: Incoming) -> Option<Received> {
        let member = self.member.as_mut()?;
        match msg {
            Incoming::Claims { from, message } => {
                let version = (message.epoch, message.seq);
                let r = member.receive(&Node::from(from.as_str()), message);
                debug!(%from, ?version, result = ?r, "claims received");
                Some(r)
            }
            Incoming::Digest {
                from, epoch, seq, ..
            } => {
                let live = self.peers.get(&from) == Some(&epoch);
                let held = member.book().heard(&from).map(|h| h.version);
                // Pull a newer version we do not hold (also the same one
                // after we forgot the peer: a partition that healed).
                if live && held.is_none_or(|v| v < (epoch, seq)) {
                    self.outbox.push(Outgoing::Pull { to: from });
                }
                None
            }
            Incoming::Pull { from } => {
                if self.peers.contains_key(&from) {
                    let message = member.current();
                    self.sent.insert(from.clone(), (message.epoch, message.seq));
                    self.outbox.push(Outgoing::Claims { to: from, message });
                }
                None
            }
        }
    }

    /// Queues what the member sends: the whole version if `to` was not
    /// sent it yet or asked for a reply, a digest otherwise.
    pub fn queue(&mut self, to: &Node, message: Message<ObjectKey>) {
        let version = (message.epoch, message.seq);
        let to = to.to_string();
        if !message.reply && message.held.is_some() && self.sent.get(&to) == Some(&version) {
            self.outbox.push(Outgoing::Digest {
                to,
                epoch: message.epoch,
                seq: message.seq,
                settling: message.settling,
            });
            return;
        }
        self.sent.insert(to.clone(), version);
        self.outbox.push(Outgoing::Claims { to, message });
    }

    /// A whole version to `to` could not be sent: send it whole next time.
    pub fn unsent(&mut self, out: &Outgoing) {
        if let Outgoing::Claims { to, .. } = out {
            self.sent.remove(to);
        }
    }

    /// The messages queued so far.
    pub fn take_outbox(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.outbox)
    }

    /// The member, while gossip runs.
    pub fn member(&self) -> Option<&Member<ObjectKey>> {
        self.member.as_ref()
    }

    /// The member, while gossip runs.
    pub fn member_mut(&mut self) -> Option<&mut Member<ObjectKey>> {
        self.member.as_mut()
    }

    /// The member's phase (`None`: the hash decides).
    pub fn phase(&self) -> Option<Phase> {
        self.member().map(Member::phase)
    }

    /// How many Services this speaker claims.
    pub fn owned(&self) -> usize {
        self.member
            .as_ref()
            .and_then(Member::held)
            .map_or(0, BTreeSet::len)
    }
}

/// The live peers as the member takes them.
fn incarnations(peers: &Peers) -> impl Iterator<Item = (Node, u64)> + '_ {
    peers.iter().map(|(n, b)| (Node::from(n.as_str()), *b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey::new("default", name)
    }

    fn peers(list: &[(&str, u64)]) -> Peers {
        list.iter().map(|(n, b)| ((*n).to_owned(), *b)).collect()
    }

    fn started(peers_: &[(&str, u64)]) -> Claims {
        let mut c = Claims::new("node-a", Config::default(), BTreeMap::new());
        c.set_peers(&peers(peers_));
        assert!(c.set_identity(Some(7), Duration::ZERO));
        c
    }

    fn message(epoch: u64, seq: u64, held: &[&str]) -> Message<ObjectKey> {
        Message {
            epoch,
            seq,
            settling: false,
            held: Some(held.iter().map(|n| key(n)).collect()),
            reply: false,
        }
    }

    #[test]
    fn no_member_until_gossip_gives_an_identity_and_none_after_it_stops() {
        let mut c = Claims::new("node-a", Config::default(), BTreeMap::new());
        assert!(!c.set_identity(None, Duration::ZERO));
        assert_eq!(c.phase(), None);
        assert_eq!(
            c.receive(Incoming::Pull {
                from: "node-b".into()
            }),
            None
        );
        assert!(c.set_identity(Some(1), Duration::ZERO));
        assert_eq!(c.phase(), Some(Phase::Listening));
        assert!(!c.set_identity(Some(1), Duration::ZERO), "same incarnation");
        assert!(c.set_identity(None, Duration::ZERO));
        assert_eq!(c.phase(), None);
    }

    #[test]
    fn a_renewal_claims_under_the_new_incarnation() {
        let mut c = started(&[("node-b", 3)]);
        assert!(c.set_identity(Some(8), Duration::ZERO));
        assert_eq!(c.member_mut().unwrap().current().epoch, 8);
    }

    #[test]
    fn a_version_goes_whole_once_then_as_a_digest_and_whole_again_when_pulled() {
        let mut c = started(&[("node-b", 3)]);
        let b = Node::from("node-b");
        c.queue(&b, message(7, 2, &["web"]));
        c.queue(&b, message(7, 2, &["web"]));
        let mut reply = message(7, 2, &["web"]);
        reply.reply = true;
        c.queue(&b, reply);
        c.queue(&b, message(7, 3, &[]));
        let out = c.take_outbox();
        assert!(
            matches!(&out[0], Outgoing::Claims { to, message } if to == "node-b" && message.seq == 2)
        );
        assert!(matches!(&out[1], Outgoing::Digest { seq: 2, .. }));
        assert!(
            matches!(&out[2], Outgoing::Claims { message, .. } if message.reply),
            "a reply asks, so it goes whole"
        );
        assert!(
            matches!(&out[3], Outgoing::Claims { message, .. } if message.seq == 3),
            "a new version goes whole"
        );
        // Lost on the way out: whole again.
        c.unsent(&out[3]);
        c.queue(&b, message(7, 3, &[]));
        assert!(matches!(&c.take_outbox()[0], Outgoing::Claims { .. }));
        // A pull is answered with the member's current version, whole.
        assert_eq!(
            c.receive(Incoming::Pull {
                from: "node-b".into()
            }),
            None
        );
        assert!(matches!(&c.take_outbox()[..], [Outgoing::Claims { to, .. }] if to == "node-b"));
        // Not from a live peer: ignored.
        c.receive(Incoming::Pull {
            from: "node-z".into(),
        });
        assert!(c.take_outbox().is_empty());
    }

    #[test]
    fn a_digest_of_a_version_not_held_is_pulled() {
        let mut c = started(&[("node-b", 3)]);
        let digest = |seq| Incoming::Digest {
            from: "node-b".into(),
            epoch: 3,
            seq,
            settling: false,
        };
        c.receive(digest(5));
        assert_eq!(
            c.take_outbox(),
            vec![Outgoing::Pull {
                to: "node-b".into()
            }]
        );
        let got = c.receive(Incoming::Claims {
            from: "node-b".into(),
            message: message(3, 5, &["web"]),
        });
        assert_eq!(got, Some(Received::Fresh));
        c.receive(digest(5));
        c.receive(digest(4));
        assert!(c.take_outbox().is_empty(), "held, or older");
        // Another incarnation's digest: not ours to pull.
        c.receive(Incoming::Digest {
            from: "node-b".into(),
            epoch: 2,
            seq: 9,
            settling: false,
        });
        assert!(c.take_outbox().is_empty());
        // The peer died and came back: its claims were forgotten, so the
        // same version is pulled again.
        c.set_peers(&peers(&[]));
        c.set_peers(&peers(&[("node-b", 3)]));
        c.receive(digest(5));
        assert_eq!(
            c.take_outbox(),
            vec![Outgoing::Pull {
                to: "node-b".into()
            }]
        );
    }

    #[test]
    fn the_live_set_is_the_peers_and_this_node() {
        let c = started(&[("node-b", 3), ("node-c", 4)]);
        let live: Vec<String> = c.live().into_iter().collect();
        assert_eq!(live, ["node-a", "node-b", "node-c"]);
    }
}

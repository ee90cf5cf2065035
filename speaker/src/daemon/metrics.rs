//! Prometheus metrics, and what `/readyz` means for the speaker (the
//! endpoints themselves are `ferrolb_runtime::http`). ferrolb's series are
//! prefixed `ferrolb_speaker_`; MetalLB's, under its own names, are in
//! [`metallb`]. docs/metrics.md lists both.

pub mod conflicts;
mod metallb;
pub mod ownership;

use crate::announcer::{PerIp, Protocol};
use crate::membership::claims::shell::{ClaimsStats, Kind, Reason};
use crate::membership::{self, LivenessSource, SecretState};
use crate::transport::run::Stats;
use ferrolb_core::announce::Delta;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::{Arc, Mutex};

type Labels = Vec<(String, String)>;

const PROTOCOLS: [Protocol; 2] = [Protocol::Arp, Protocol::Ndp];
const SOURCES: [LivenessSource; 2] = [LivenessSource::Gossip, LivenessSource::NodeConditions];
const TRANSPORT_OPS: [&str; 3] = ["send", "recv", "multicast"];
const FRAME_DROPS: [&str; 2] = ["queue_full", "malformed"];
const GOSSIP_DROPS: [&str; 3] = ["unauthenticated", "malformed", "queue_full"];
const DIRECTIONS: [&str; 2] = ["sent", "received"];
/// The claims task's reasons, and the receiving thread's full queue.
const CLAIMS_QUEUE_FULL: &str = "queue_full";
const HEARTBEAT_DROPS: [&str; 5] = [
    "unauthenticated",
    "malformed",
    "replayed",
    "future_dated",
    "from_self",
];

/// The speaker's metrics: ferrolb's, and MetalLB's if asked for
/// ([`Metrics::new`]; `default()` has ferrolb's only).
#[derive(Debug, Default)]
pub struct Metrics {
    /// (IP, interface) pairs announced by this node.
    pub announced: Gauge,
    /// ARP/NDP requests answered, by `protocol`.
    pub requests_answered: Family<Labels, Counter>,
    /// Gratuitous ARP / unsolicited NA frames sent, by `protocol`.
    pub gratuitous_sent: Family<Labels, Counter>,
    /// Failed raw-socket operations, by `op` (`send`, `recv`, `multicast`).
    pub transport_errors: Family<Labels, Counter>,
    /// Received frames dropped, by `reason` (`queue_full`, `malformed`).
    pub frames_dropped: Family<Labels, Counter>,
    /// Another station's announcements of an address this node owns (and
    /// is not handing over), by `protocol`.
    pub foreign_announcements: Family<Labels, Counter>,
    /// Other stations' announcements the daemon was too slow to read.
    pub observations_dropped: Counter,
    /// Second announcers: conflicts per IP, episodes, re-announcements,
    /// probes.
    pub conflicts: conflicts::Series,
    /// Sticky ownership: phase, owned Services, claims, takes.
    pub ownership: ownership::Series,
    /// Live speakers as membership sees them.
    pub members_alive: Gauge,
    /// 1 for the liveness source in use, 0 for the other, by `source`.
    pub liveness_source: Family<Labels, Gauge>,
    /// Gossip datagrams sent.
    pub gossip_sent: Counter,
    /// Gossip datagrams received, dropped ones included.
    pub gossip_received: Counter,
    /// Gossip datagrams dropped, by `reason` (`unauthenticated`, `malformed`).
    pub gossip_dropped: Family<Labels, Counter>,
    /// Failed gossip sends and receives.
    pub gossip_io_errors: Counter,
    /// Heartbeats sent.
    pub heartbeats_sent: Counter,
    /// Verdicts (declaring a peer down or withdrawing it) sent.
    pub heartbeat_verdicts_sent: Counter,
    /// Heartbeats and verdicts accepted.
    pub heartbeats_received: Counter,
    /// Heartbeats and verdicts dropped, by `reason`.
    pub heartbeats_dropped: Family<Labels, Counter>,
    /// Live speakers the heartbeat watchers' quorum declares down.
    pub heartbeat_peers_down: Gauge,
    /// Speakers whose heartbeats this speaker watches.
    pub heartbeat_watching: Gauge,
    /// Speakers watching this speaker's heartbeats.
    pub heartbeat_watchers: Gauge,
    /// 1 when the heartbeat thread runs under the real-time policy.
    pub heartbeat_realtime: Gauge,
    /// Ownership claims datagrams, by `direction` and `kind`.
    pub claims_datagrams: Family<Labels, Counter>,
    /// Claims messages handed to the daemon, by `kind`.
    pub claims_delivered: Family<Labels, Counter>,
    /// Claims datagrams (or outgoing messages) dropped, by `reason`.
    pub claims_dropped: Family<Labels, Counter>,
    /// Services whose owner changed.
    pub leader_changes: Counter,
    /// Services nobody announces, by `reason` (as this node computes it).
    pub unannounced: Family<Labels, Gauge>,
    /// Interfaces advertisements name that this node cannot use.
    pub interface_problems: Gauge,
    /// Events dropped because the writer was behind.
    pub events_dropped: Counter,
    /// 1 while the secret file holds a valid key, else 0.
    pub memberlist_secret_ok: Gauge,
    /// 1 for the secret file's state, 0 for the others, by `state`.
    pub memberlist_secret_state: Family<Labels, Gauge>,
    last_transport: Mutex<Stats>,
    last_membership: Mutex<membership::Stats>,
    last_claims: Mutex<ClaimsStats>,
    /// MetalLB's series; `None` under `--metallb-metrics=false`.
    metallb: Option<metallb::Series>,
}

impl Metrics {
    /// Every ferrolb series, and MetalLB's if `metallb`
    /// (`--metallb-metrics`).
    pub fn new(metallb: bool) -> Self {
        Self {
            metallb: metallb.then(metallb::Series::default),
            ..Self::default()
        }
    }

    /// Registers every metric in `registry`, with every fixed label value
    /// at 0 so rates work from the first scrape.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        let protocols = PROTOCOLS.map(Protocol::as_str);
        zero(&self.requests_answered, "protocol", &protocols);
        zero(&self.gratuitous_sent, "protocol", &protocols);
        zero(&self.transport_errors, "op", &TRANSPORT_OPS);
        zero(&self.frames_dropped, "reason", &FRAME_DROPS);
        zero(&self.foreign_announcements, "protocol", &protocols);
        zero(&self.gossip_dropped, "reason", &GOSSIP_DROPS);
        zero(&self.heartbeats_dropped, "reason", &HEARTBEAT_DROPS);
        for kind in Kind::ALL {
            for direction in DIRECTIONS {
                drop(
                    self.claims_datagrams
                        .get_or_create(&claims_labels(direction, kind)),
                );
            }
        }
        zero(&self.claims_delivered, "kind", &Kind::ALL.map(Kind::as_str));
        zero(
            &self.claims_dropped,
            "reason",
            &Reason::ALL.map(Reason::as_str),
        );
        zero(&self.claims_dropped, "reason", &[CLAIMS_QUEUE_FULL]);
        let r = registry.sub_registry_with_prefix("ferrolb_speaker");
        r.register(
            "announced_ips",
            "(IP, interface) pairs this node announces",
            self.announced.clone(),
        );
        r.register(
            "requests_answered",
            "ARP and NDP requests answered",
            self.requests_answered.clone(),
        );
        r.register(
            "gratuitous_sent",
            "Gratuitous ARP and unsolicited neighbor advertisements sent",
            self.gratuitous_sent.clone(),
        );
        r.register(
            "transport_errors",
            "Raw-socket sends, receives and multicast joins or leaves that failed",
            self.transport_errors.clone(),
        );
        r.register(
            "frames_dropped",
            "Received frames dropped: announcer queue full, or malformed ARP/NDP",
            self.frames_dropped.clone(),
        );
        r.register(
            "foreign_announcements",
            "ARP replies, gratuitous ARP and override neighbor advertisements from another MAC \
             for an address this node announces: a race while an address moves, or two nodes answering",
            self.foreign_announcements.clone(),
        );
        r.register(
            "observations_dropped",
            "Other stations' announcements of this node's addresses not delivered: the daemon was behind",
            self.observations_dropped.clone(),
        );
        self.conflicts.register(r);
        self.ownership.register(r);
        r.register(
            "members_alive",
            "Speakers membership sees alive",
            self.members_alive.clone(),
        );
        r.register(
            "liveness_source",
            "1 for the liveness source in use (gossip or node_conditions), 0 otherwise",
            self.liveness_source.clone(),
        );
        r.register(
            "gossip_datagrams_sent",
            "Gossip datagrams sent",
            self.gossip_sent.clone(),
        );
        r.register(
            "gossip_datagrams_received",
            "Gossip datagrams received, dropped ones included",
            self.gossip_received.clone(),
        );
        r.register(
            "gossip_datagrams_dropped",
            "Gossip datagrams dropped: failed authentication, or malformed",
            self.gossip_dropped.clone(),
        );
        r.register(
            "claims_datagrams",
            "Ownership claims datagrams sent and accepted, by kind",
            self.claims_datagrams.clone(),
        );
        r.register(
            "claims_delivered",
            "Ownership claims messages handed to the daemon (a full version once all its chunks arrived)",
            self.claims_delivered.clone(),
        );
        r.register(
            "claims_dropped",
            "Ownership claims datagrams dropped on receipt, and messages not sent, by reason",
            self.claims_dropped.clone(),
        );
        r.register(
            "gossip_io_errors",
            "Gossip socket sends and receives that failed (heartbeats included)",
            self.gossip_io_errors.clone(),
        );
        r.register(
            "heartbeats_sent",
            "Heartbeats sent to this speaker's watchers",
            self.heartbeats_sent.clone(),
        );
        r.register(
            "heartbeat_verdicts_sent",
            "Verdicts sent: a watched speaker declared down, or that withdrawn",
            self.heartbeat_verdicts_sent.clone(),
        );
        r.register(
            "heartbeats_received",
            "Heartbeats and verdicts accepted",
            self.heartbeats_received.clone(),
        );
        r.register(
            "heartbeats_dropped",
            "Heartbeats and verdicts dropped: failed authentication, malformed, replayed, \
             future-dated, or claiming to come from this speaker",
            self.heartbeats_dropped.clone(),
        );
        r.register(
            "heartbeat_peers_down",
            "Speakers alive for gossip that the heartbeat watchers declare down",
            self.heartbeat_peers_down.clone(),
        );
        r.register(
            "heartbeat_watching",
            "Speakers whose heartbeats this speaker watches",
            self.heartbeat_watching.clone(),
        );
        r.register(
            "heartbeat_watchers",
            "Speakers this speaker sends heartbeats to",
            self.heartbeat_watchers.clone(),
        );
        r.register(
            "heartbeat_realtime",
            "1 when the heartbeat thread runs under SCHED_FIFO (needs CAP_SYS_NICE), else 0",
            self.heartbeat_realtime.clone(),
        );
        r.register(
            "leader_changes",
            "Times a Service changed owner",
            self.leader_changes.clone(),
        );
        r.register(
            "unannounced_services",
            "Services whose IPs nobody announces, by reason",
            self.unannounced.clone(),
        );
        r.register(
            "interface_problems",
            "Interfaces named by L2Advertisements that this node cannot use",
            self.interface_problems.clone(),
        );
        r.register(
            "events_dropped",
            "Events not sent because the queue was full",
            self.events_dropped.clone(),
        );
        r.register(
            "memberlist_secret_ok",
            "1 while the memberlist secret file holds a valid key, else 0",
            self.memberlist_secret_ok.clone(),
        );
        r.register(
            "memberlist_secret_state",
            "1 for the memberlist secret file's state (ok, not_configured, missing, unreadable, empty, too_short), 0 for the others",
            self.memberlist_secret_state.clone(),
        );
        if let Some(m) = &self.metallb {
            m.register(registry);
        }
    }

    /// Follows which Services `node` announces, for MetalLB's
    /// `metallb_speaker_announced`.
    pub fn observe_services(&self, node: &str, delta: &Delta) {
        if let Some(m) = &self.metallb {
            m.observe_services(node, delta);
        }
    }

    /// Adds the per-address counts taken from the transport
    /// ([`super::sockets::Announce::take_per_ip`]) to MetalLB's
    /// `metallb_layer2_*` counters.
    pub fn observe_layer2(&self, tally: &PerIp) {
        if let Some(m) = &self.metallb {
            m.observe_layer2(tally);
        }
    }

    /// Adds what the transport did since the last call. Its counters only
    /// grow ([`super::sockets::PacketAnnouncer`] carries the totals of
    /// transports it replaced); a source that restarts from zero anyway is
    /// handled by `inc_by_delta`.
    pub fn observe_transport(&self, now: &Stats) {
        let mut last = lock(&self.last_transport);
        let (cur, prev) = (&now.announcer, &last.announcer);
        for p in PROTOCOLS {
            let protocol = label("protocol", p.as_str());
            inc_by_delta(
                &self.requests_answered.get_or_create(&protocol),
                cur.requests_answered.get(p),
                prev.requests_answered.get(p),
            );
            inc_by_delta(
                &self.gratuitous_sent.get_or_create(&protocol),
                cur.gratuitous_sent.get(p),
                prev.gratuitous_sent.get(p),
            );
            inc_by_delta(
                &self.foreign_announcements.get_or_create(&protocol),
                cur.foreign_announcements.get(p),
                prev.foreign_announcements.get(p),
            );
        }
        self.conflicts.observe_transport(cur, prev);
        inc_by_delta(
            &self.observations_dropped,
            now.observations_dropped,
            last.observations_dropped,
        );
        for (op, new, old) in [
            ("send", now.send_errors, last.send_errors),
            ("recv", now.recv_errors, last.recv_errors),
            ("multicast", now.multicast_errors, last.multicast_errors),
        ] {
            inc_by_delta(
                &self.transport_errors.get_or_create(&label("op", op)),
                new,
                old,
            );
        }
        for (reason, new, old) in [
            ("queue_full", now.frames_dropped, last.frames_dropped),
            ("malformed", cur.frames_malformed, prev.frames_malformed),
        ] {
            inc_by_delta(
                &self.frames_dropped.get_or_create(&label("reason", reason)),
                new,
                old,
            );
        }
        *last = *now;
    }

    /// Adds what gossip did since the last call ([`membership::Membership::stats`]).
    pub fn observe_membership(&self, now: &membership::Stats) {
        let mut last = lock(&self.last_membership);
        inc_by_delta(&self.gossip_sent, now.sent, last.sent);
        inc_by_delta(&self.gossip_received, now.received, last.received);
        let (hb, old) = (&now.heartbeat, &last.heartbeat);
        for (reason, new, old) in [
            ("unauthenticated", now.rejected, last.rejected),
            ("malformed", now.malformed, last.malformed),
            ("queue_full", hb.gossip_queue_full, old.gossip_queue_full),
        ] {
            inc_by_delta(
                &self.gossip_dropped.get_or_create(&label("reason", reason)),
                new,
                old,
            );
        }
        inc_by_delta(
            &self.gossip_io_errors,
            now.io_errors + hb.io_errors,
            last.io_errors + old.io_errors,
        );
        inc_by_delta(
            &self
                .claims_dropped
                .get_or_create(&label("reason", CLAIMS_QUEUE_FULL)),
            hb.claims_queue_full,
            old.claims_queue_full,
        );
        inc_by_delta(&self.heartbeats_sent, hb.sent, old.sent);
        inc_by_delta(
            &self.heartbeat_verdicts_sent,
            hb.verdicts_sent,
            old.verdicts_sent,
        );
        inc_by_delta(&self.heartbeats_received, hb.received, old.received);
        for (reason, new, old) in [
            ("unauthenticated", hb.unauthenticated, old.unauthenticated),
            ("malformed", hb.malformed, old.malformed),
            ("replayed", hb.replayed, old.replayed),
            ("future_dated", hb.future_dated, old.future_dated),
            ("from_self", hb.from_self, old.from_self),
        ] {
            inc_by_delta(
                &self
                    .heartbeats_dropped
                    .get_or_create(&label("reason", reason)),
                new,
                old,
            );
        }
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.heartbeat_peers_down.set(gauge(hb.down));
        self.heartbeat_watching.set(gauge(hb.watching));
        self.heartbeat_watchers.set(gauge(hb.watchers));
        self.heartbeat_realtime.set(gauge(hb.realtime));
        *last = *now;
    }

    /// Adds what the claims task did since the last call
    /// ([`crate::membership::claims::shell::Shell::stats`]).
    pub fn observe_claims(&self, now: &ClaimsStats) {
        let mut last = lock(&self.last_claims);
        for kind in Kind::ALL {
            inc_by_delta(
                &self
                    .claims_datagrams
                    .get_or_create(&claims_labels("sent", kind)),
                now.sent(kind),
                last.sent(kind),
            );
            inc_by_delta(
                &self
                    .claims_datagrams
                    .get_or_create(&claims_labels("received", kind)),
                now.received(kind),
                last.received(kind),
            );
            inc_by_delta(
                &self
                    .claims_delivered
                    .get_or_create(&label("kind", kind.as_str())),
                now.delivered(kind),
                last.delivered(kind),
            );
        }
        for reason in Reason::ALL {
            inc_by_delta(
                &self
                    .claims_dropped
                    .get_or_create(&label("reason", reason.as_str())),
                now.dropped(reason),
                last.dropped(reason),
            );
        }
        *last = *now;
    }

    /// Publishes the secret file's state: `memberlist_secret_ok` and one
    /// `memberlist_secret_state` series per state, 1 for this one.
    pub fn set_secret_state(&self, state: &SecretState) {
        self.memberlist_secret_ok
            .set(i64::from(matches!(state, SecretState::Valid(_))));
        for s in SecretState::STATES {
            self.memberlist_secret_state
                .get_or_create(&label("state", s))
                .set(i64::from(s == state.name()));
        }
    }

    /// Marks `source` as the liveness source in use (1) and the other as
    /// not (0), so both series always exist.
    pub fn set_liveness_source(&self, source: LivenessSource) {
        for s in SOURCES {
            self.liveness_source
                .get_or_create(&label("source", s.as_str()))
                .set(i64::from(s == source));
        }
    }
}

/// Adds to `counter` what a source that only grows counted between `old`
/// and `new`. A value below `old` means the source restarted from zero,
/// so all of `new` is new.
fn inc_by_delta(counter: &Counter, new: u64, old: u64) {
    counter.inc_by(new.checked_sub(old).unwrap_or(new));
}

/// Creates the series of `family` for every value of label `name`, at 0.
fn zero(family: &Family<Labels, Counter>, name: &str, values: &[&str]) {
    for value in values {
        drop(family.get_or_create(&label(name, value)));
    }
}

fn claims_labels(direction: &str, kind: Kind) -> Labels {
    vec![
        ("direction".into(), direction.into()),
        ("kind".into(), kind.as_str().into()),
    ]
}

fn label(name: &str, value: &str) -> Labels {
    vec![(name.into(), value.into())]
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `/readyz`: not ready before every kind is listed, nor while the secret
/// file is broken (unreadable, empty, too short), so a rolling update of
/// the DaemonSet stops instead of spreading a bad Secret. A file that does
/// not exist (yet) or is not configured is not a failure: gossip waits
/// for it and the Node-Ready fallback works meanwhile.
///
/// `Err` is the reason, answered with 503 by `ferrolb_runtime::http`.
pub fn readiness(synced: bool, secret: &SecretState) -> Result<(), String> {
    if !synced {
        return Err("waiting for the first list of every watched kind".into());
    }
    match secret.problem() {
        Some(problem) => Err(problem.to_string()),
        None => Ok(()),
    }
}

/// Every sample in the OpenMetrics text: `name{labels}` -> value.
#[cfg(test)]
fn samples(registry: &Registry) -> std::collections::BTreeMap<String, String> {
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, registry).unwrap();
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, value)| (series.to_owned(), value.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announcer::{Counters, PerProtocol};

    fn transport(arp: u64, send: u64, dropped: u64, malformed: u64) -> Stats {
        Stats {
            announcer: Counters {
                requests_answered: PerProtocol { arp, ndp: 1 },
                gratuitous_sent: PerProtocol { arp: 3, ndp: 2 },
                frames_ignored: 0,
                frames_malformed: malformed,
                foreign_announcements: PerProtocol { arp: 2, ndp: 0 },
                reasserted: PerProtocol { arp: 2, ndp: 0 },
                probes_sent: PerProtocol { arp: 1, ndp: 1 },
            },
            send_errors: send,
            recv_errors: 1,
            frames_dropped: dropped,
            multicast_errors: 0,
            observations_dropped: 1,
        }
    }

    #[test]
    fn gossip_transport_and_liveness_series_are_exported_from_their_stats() {
        let metrics = Arc::new(Metrics::default());
        let mut registry = Registry::default();
        metrics.register(&mut registry);

        metrics.observe_transport(&transport(10, 2, 4, 1));
        // Interfaces changed: the transport restarted from zero.
        metrics.observe_transport(&transport(3, 1, 4, 1));
        let gossip = membership::Stats {
            received: 20,
            rejected: 3,
            malformed: 1,
            sent: 30,
            io_errors: 0,
            heartbeat: membership::HeartbeatStats {
                sent: 100,
                claims_queue_full: 4,
                replayed: 2,
                future_dated: 1,
                down: 1,
                watchers: 2,
                ..Default::default()
            },
        };
        metrics.observe_membership(&gossip);
        metrics.observe_membership(&membership::Stats {
            received: 25,
            sent: 41,
            io_errors: 2,
            heartbeat: membership::HeartbeatStats {
                sent: 150,
                down: 0,
                ..gossip.heartbeat
            },
            ..gossip
        });
        let mut claims = ClaimsStats::default();
        claims.sent[Kind::Claims as usize] = 168;
        claims.received[Kind::Digest as usize] = 5;
        claims.delivered[Kind::Digest as usize] = 5;
        claims.dropped[Reason::WrongBoot as usize] = 2;
        metrics.observe_claims(&claims);
        claims.sent[Kind::Claims as usize] = 170;
        claims.dropped[Reason::NoGossip as usize] = 1;
        metrics.observe_claims(&claims);
        metrics.set_liveness_source(LivenessSource::NodeConditions);
        metrics.set_liveness_source(LivenessSource::Gossip);
        metrics.members_alive.set(3);
        metrics.set_secret_state(&SecretState::Invalid(membership::SecretProblem::Empty {
            path: "/s".into(),
        }));

        let got = samples(&registry);
        let p = "ferrolb_speaker_";
        for (series, value) in [
            ("requests_answered_total{protocol=\"arp\"}", "13"),
            ("requests_answered_total{protocol=\"ndp\"}", "1"),
            ("gratuitous_sent_total{protocol=\"arp\"}", "3"),
            ("gratuitous_sent_total{protocol=\"ndp\"}", "2"),
            ("transport_errors_total{op=\"send\"}", "3"),
            ("transport_errors_total{op=\"recv\"}", "1"),
            ("transport_errors_total{op=\"multicast\"}", "0"),
            ("frames_dropped_total{reason=\"queue_full\"}", "4"),
            ("frames_dropped_total{reason=\"malformed\"}", "1"),
            ("foreign_announcements_total{protocol=\"arp\"}", "2"),
            ("foreign_announcements_total{protocol=\"ndp\"}", "0"),
            ("observations_dropped_total", "1"),
            ("reassertions_total{protocol=\"arp\"}", "2"),
            ("probes_sent_total{protocol=\"ndp\"}", "1"),
            ("address_conflicts_total{peer=\"unknown\"}", "0"),
            ("gossip_datagrams_sent_total", "41"),
            ("gossip_datagrams_received_total", "25"),
            (
                "gossip_datagrams_dropped_total{reason=\"unauthenticated\"}",
                "3",
            ),
            ("gossip_datagrams_dropped_total{reason=\"malformed\"}", "1"),
            ("gossip_io_errors_total", "2"),
            ("gossip_datagrams_dropped_total{reason=\"queue_full\"}", "0"),
            ("heartbeats_sent_total", "150"),
            (
                "claims_datagrams_total{direction=\"sent\",kind=\"claims\"}",
                "170",
            ),
            (
                "claims_datagrams_total{direction=\"received\",kind=\"digest\"}",
                "5",
            ),
            (
                "claims_datagrams_total{direction=\"received\",kind=\"pull\"}",
                "0",
            ),
            ("claims_delivered_total{kind=\"digest\"}", "5"),
            ("claims_dropped_total{reason=\"wrong_boot\"}", "2"),
            ("claims_dropped_total{reason=\"no_gossip\"}", "1"),
            ("claims_dropped_total{reason=\"queue_full\"}", "4"),
            ("claims_dropped_total{reason=\"send_failed\"}", "0"),
            ("heartbeats_dropped_total{reason=\"replayed\"}", "2"),
            ("heartbeats_dropped_total{reason=\"future_dated\"}", "1"),
            ("heartbeats_dropped_total{reason=\"unauthenticated\"}", "0"),
            ("heartbeat_peers_down", "0"),
            ("heartbeat_watchers", "2"),
            ("liveness_source{source=\"gossip\"}", "1"),
            ("liveness_source{source=\"node_conditions\"}", "0"),
            ("members_alive", "3"),
            ("announced_ips", "0"),
            ("leader_changes_total", "0"),
            ("interface_problems", "0"),
            ("events_dropped_total", "0"),
            ("memberlist_secret_ok", "0"),
            ("memberlist_secret_state{state=\"empty\"}", "1"),
            ("memberlist_secret_state{state=\"ok\"}", "0"),
            ("memberlist_secret_state{state=\"missing\"}", "0"),
        ] {
            let series = format!("{p}{series}");
            assert_eq!(
                got.get(&series).map(String::as_str),
                Some(value),
                "{series}"
            );
        }
    }

    #[test]
    fn readyz_fails_with_the_reason_while_the_secret_file_is_broken() {
        let path = std::path::PathBuf::from("/etc/ferrolb/memberlist/secretkey");
        let broken = SecretState::Invalid(membership::SecretProblem::TooShort {
            path: path.clone(),
            len: 5,
        });
        let body = readiness(true, &broken).unwrap_err();
        assert!(body.contains("/etc/ferrolb/memberlist/secretkey"), "{body}");
        assert!(body.contains("at least 16"), "{body}");
        assert!(readiness(false, &broken).is_err());
        for fine in [
            SecretState::Missing { path },
            SecretState::NotConfigured,
            SecretState::Valid(membership::Secret::from_bytes(b"0123456789abcdef", "t").unwrap()),
        ] {
            assert_eq!(readiness(true, &fine), Ok(()), "{fine}");
        }
    }

    #[test]
    fn every_exported_series_is_in_the_docs_metrics_table() {
        use ferrolb_core::announce::model::ObjectKey;
        use ferrolb_core::announce::{Decision, ServiceChange, Verdict};
        let docs = include_str!("../../../docs/metrics.md");
        let metrics = Arc::new(Metrics::new(true));
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.set_liveness_source(LivenessSource::Gossip);
        metrics.set_secret_state(&SecretState::NotConfigured);
        metrics
            .unannounced
            .get_or_create(&label("reason", "NoL2Advertisement"))
            .set(1);
        let vip = "192.0.2.10".parse().unwrap();
        let owned = Decision {
            ips: vec![vip],
            verdict: Verdict::Owner {
                node: "n".into(),
                interfaces: vec![],
            },
        };
        let services = vec![ServiceChange {
            key: ObjectKey::new("default", "web"),
            before: None,
            after: Some(owned),
        }];
        metrics.observe_services(
            "n",
            &Delta {
                services,
                ..Delta::default()
            },
        );
        let mut tally = PerIp::default();
        *tally.at(vip) = crate::announcer::IpCounts {
            requests_received: 1,
            responses_sent: 1,
            gratuitous_sent: 1,
        };
        metrics.observe_layer2(&tally);
        metrics.conflicts.set_ip(vip, 1);
        metrics.conflicts.reported(true);
        for series in samples(&registry).keys() {
            let name = series.split('{').next().unwrap_or(series);
            assert!(
                docs.contains(&format!("| `{name}`")),
                "{name} is missing from the speaker's metrics table in docs/metrics.md"
            );
        }
    }
}

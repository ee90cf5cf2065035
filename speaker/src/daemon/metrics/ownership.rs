//! ferrolb's series about sticky ownership (issue 15,
//! [`crate::daemon::ownership`]): the phase, what this node owns, the
//! claims received by what they changed, and owner changes by rule.

use super::{label, zero, Labels};
use ferrolb_core::ownership::{How, Phase, Received};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The `phase` label values.
pub const PHASES: [&str; 4] = ["hash", "listening", "settling", "steady"];
/// The `result` label values of received claims.
pub const RESULTS: [&str; 4] = ["fresh", "stale", "not_live", "other_incarnation"];
/// The `how` label values of owner changes.
pub const HOWS: [&str; 6] = [
    "held",
    "contested",
    "recorded",
    "placed",
    "rebalanced",
    "hashed",
];

/// The series, always registered.
#[derive(Debug, Default)]
pub struct Series {
    /// 1 for the phase in use, 0 for the others, by `phase` (`hash`: the
    /// hash decides, by flag or while gossip does not run).
    pub phase: Family<Labels, Gauge>,
    /// Services whose IPs this node claims and announces.
    pub owned: Gauge,
    /// Claims messages taken from peers, by `result`.
    pub received: Family<Labels, Counter>,
    /// Services this node became the owner of, by the rule that chose it
    /// (`how`).
    pub taken: Family<Labels, Counter>,
}

/// The label value of a phase (`None`: the hash decides).
pub fn phase_name(phase: Option<Phase>) -> &'static str {
    match phase {
        None => PHASES[0],
        Some(Phase::Listening) => PHASES[1],
        Some(Phase::Settling) => PHASES[2],
        Some(Phase::Steady) => PHASES[3],
    }
}

fn result_name(r: Received) -> &'static str {
    match r {
        Received::Fresh => RESULTS[0],
        Received::Stale => RESULTS[1],
        Received::NotLive => RESULTS[2],
        Received::OtherIncarnation => RESULTS[3],
    }
}

fn how_name(how: How) -> &'static str {
    match how {
        How::Held => HOWS[0],
        How::Contested => HOWS[1],
        How::Recorded => HOWS[2],
        How::Placed => HOWS[3],
        How::Rebalanced => HOWS[4],
        How::Hashed => HOWS[5],
    }
}

impl Series {
    /// Registers the families under `ferrolb_speaker_`, fixed labels at 0.
    pub(super) fn register(&self, r: &mut Registry) {
        zero(&self.received, "result", &RESULTS);
        zero(&self.taken, "how", &HOWS);
        self.set_phase(None);
        r.register(
            "ownership_phase",
            "1 for the sticky ownership phase this speaker is in (hash: the hash decides), 0 for the others",
            self.phase.clone(),
        );
        r.register(
            "ownership_owned",
            "Services this speaker claims and announces",
            self.owned.clone(),
        );
        r.register(
            "ownership_claims_received",
            "Ownership claims taken from peers, by what they changed",
            self.received.clone(),
        );
        r.register(
            "ownership_taken",
            "Services this speaker became the owner of, by the rule that chose it",
            self.taken.clone(),
        );
    }

    /// Sets the phase gauge.
    pub fn set_phase(&self, phase: Option<Phase>) {
        let now = phase_name(phase);
        for p in PHASES {
            self.phase
                .get_or_create(&label("phase", p))
                .set(i64::from(p == now));
        }
    }

    /// Counts a received message.
    pub fn received(&self, r: Received) {
        self.received
            .get_or_create(&label("result", result_name(r)))
            .inc();
    }

    /// Counts a Service taken by rule `how`.
    pub fn taken(&self, how: How) {
        self.taken.get_or_create(&label("how", how_name(how))).inc();
    }
}

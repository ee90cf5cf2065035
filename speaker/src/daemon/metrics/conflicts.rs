//! ferrolb's series about second announcers (issue 15,
//! [`crate::daemon::conflicts`]): conflicts now per IP, episodes reported,
//! re-announcements and probes. The frame count,
//! `ferrolb_speaker_foreign_announcements_total`, stays with the other
//! transport counters.

use super::{inc_by_delta, label, zero, Labels, PROTOCOLS};
use crate::announcer::{Counters, Protocol};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::net::IpAddr;

/// The `peer` label of `ferrolb_speaker_address_conflicts_total`.
pub const PEERS: [&str; 2] = ["speaker", "unknown"];

/// The series, always registered.
#[derive(Debug, Default)]
pub struct Series {
    /// Foreign MACs in conflict per owned IP, by `ip`; a series exists
    /// only while non-zero.
    pub ip_conflicts: Family<Labels, Gauge>,
    /// Episodes reported, by `peer`.
    pub episodes: Family<Labels, Counter>,
    /// Announcements sent again because of another station, by
    /// `protocol`.
    pub reasserted: Family<Labels, Counter>,
    /// Probes sent, by `protocol`.
    pub probes_sent: Family<Labels, Counter>,
}

impl Series {
    /// Registers the families under `ferrolb_speaker_`, fixed labels at 0.
    pub(super) fn register(&self, r: &mut Registry) {
        let protocols = PROTOCOLS.map(Protocol::as_str);
        zero(&self.episodes, "peer", &PEERS);
        zero(&self.reasserted, "protocol", &protocols);
        zero(&self.probes_sent, "protocol", &protocols);
        r.register(
            "ip_conflicts",
            "Other MACs seen announcing an IP this node announces, per IP, within --conflict-forget-after",
            self.ip_conflicts.clone(),
        );
        r.register(
            "address_conflicts",
            "Second announcers of an IP this node announces reported (one per IP and MAC until it is quiet), \
             by whether the MAC is another ferrolb speaker's",
            self.episodes.clone(),
        );
        r.register(
            "reassertions",
            "Gratuitous ARP and unsolicited neighbor advertisements sent again because another MAC \
             announced an IP this node announces",
            self.reasserted.clone(),
        );
        r.register(
            "probes_sent",
            "ARP probes and duplicate address detection solicitations sent for owned IPs",
            self.probes_sent.clone(),
        );
    }

    /// Sets the number of MACs in conflict on `ip` (0 removes the series).
    pub fn set_ip(&self, ip: IpAddr, n: usize) {
        let labels = label("ip", &ip.to_string());
        if n == 0 {
            self.ip_conflicts.remove(&labels);
        } else {
            self.ip_conflicts
                .get_or_create(&labels)
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Counts a reported episode; `peer` when the MAC is another
    /// speaker's.
    pub fn reported(&self, peer: bool) {
        let value = if peer { PEERS[0] } else { PEERS[1] };
        self.episodes.get_or_create(&label("peer", value)).inc();
    }

    /// Adds the transport's re-announcements and probes since `prev`.
    pub(super) fn observe_transport(&self, cur: &Counters, prev: &Counters) {
        for p in PROTOCOLS {
            let protocol = label("protocol", p.as_str());
            inc_by_delta(
                &self.reasserted.get_or_create(&protocol),
                cur.reasserted.get(p),
                prev.reasserted.get(p),
            );
            inc_by_delta(
                &self.probes_sent.get_or_create(&protocol),
                cur.probes_sent.get(p),
                prev.probes_sent.get(p),
            );
        }
    }
}

//! The graceful stop, make-before-break: the shell around the pure
//! [`Handover`] bookkeeping.
//!
//! The decision loop has stopped (nothing it would decide now, such as the
//! empty live set a departed member publishes, withdraws anything). Then:
//!
//! 1. the transport stops announcing and keeps answering
//!    ([`Announce::hand_over`]);
//! 2. gossip is left (`leave`), so peers elect the new owners at once and
//!    send their gratuitous ARP / unsolicited advertisements;
//! 3. each (IP, interface) pair is withdrawn the moment its new owner's
//!    announcement arrives on that interface, and whatever is left is
//!    withdrawn at `bound` after the start;
//! 4. one line says how it went.
//!
//! With no other live speaker nobody can take over: that is logged, and
//! the IPs are answered until the bound (answering is better than not).

use super::run::LOG_EACH_UP_TO;
use super::sockets::Announce;
use crate::announcer::handover::{Handover, Report};
use crate::announcer::Observation;
use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Hands `pairs` over while `leave` runs: answers each until its new
/// owner is seen in `observed`, at most `bound`. `others_alive` is how
/// many other speakers were alive at the stop (none: nobody can take
/// over). Returns once both the handover and `leave` are over.
pub async fn hand_over<A: Announce>(
    announce: &mut A,
    observed: &mut mpsc::Receiver<Observation>,
    pairs: Vec<(IpAddr, String)>,
    others_alive: usize,
    bound: Duration,
    leave: impl Future<Output = ()>,
) -> Report {
    let start = Instant::now();
    announce.hand_over();
    let mut handover = Handover::new(pairs, start, bound);
    let ips = handover.answering().len();
    if ips > 0 && others_alive == 0 {
        warn!(
            pairs = ips,
            bound_ms = millis(bound),
            "no other speaker is alive to take over; answering until the handover bound"
        );
    } else if ips > 0 {
        info!(
            pairs = ips,
            others_alive,
            bound_ms = millis(bound),
            "stopping: leaving gossip, answering until the new owners announce"
        );
    }
    tokio::pin!(leave);
    let deadline = tokio::time::Instant::from_std(handover.deadline());
    let (mut left, mut open) = (false, true);
    let mut ended: Option<Report> = None;
    loop {
        if ended.is_none() && handover.is_over(Instant::now()) {
            // Whatever is left goes now, even if the leave is slower.
            announce.set_desired(Vec::new());
            ended = Some(handover.clone().finish(Instant::now()));
        }
        if left && ended.is_some() {
            break;
        }
        let waiting = ended.is_none();
        tokio::select! {
            () = &mut leave, if !left => left = true,
            seen = observed.recv(), if open && waiting => match seen {
                Some(seen) => {
                    let mut changed = note(&mut handover, &seen, start);
                    // A takeover of many IPs arrives as a burst: withdraw
                    // what it handed over in one update.
                    while let Ok(more) = observed.try_recv() {
                        changed |= note(&mut handover, &more, start);
                    }
                    if changed {
                        announce.set_desired(handover.answering());
                    }
                }
                None => open = false,
            },
            () = tokio::time::sleep_until(deadline), if waiting => {}
        }
    }
    let report = ended.unwrap_or_default();
    log(&report, others_alive);
    report
}

/// Feeds one observation to the bookkeeping; whether a pair was handed
/// over by it.
fn note(handover: &mut Handover, seen: &Observation, start: Instant) -> bool {
    let handed = handover.observe(seen);
    let a = &seen.announcement;
    if handed {
        debug!(
            ip = %a.ip,
            interface = %seen.link,
            mac = %a.mac,
            kind = %a.kind,
            after_ms = millis(seen.at.saturating_duration_since(start)),
            "handed over"
        );
    }
    handed
}

/// The one line at the end; each IP that timed out at debug level too
/// (the line names them only up to [`LOG_EACH_UP_TO`]).
fn log(report: &Report, others_alive: usize) {
    let (n, m, k) = (
        report.handed_over.len(),
        report.total,
        report.timed_out.len(),
    );
    let ms = millis(report.elapsed);
    let timed_out = report.timed_out_ips();
    let named = if k <= LOG_EACH_UP_TO {
        timed_out.as_slice()
    } else {
        &[]
    };
    // Timing out is expected with nobody to take over, not otherwise.
    macro_rules! summary {
        ($level:expr) => {
            tracing::event!(
                $level,
                handed_over = n,
                total = m,
                elapsed_ms = ms,
                timed_out = k,
                timed_out_ips = ?named,
                "handed over {n} of {m} IPs in {ms} ms, {k} timed out"
            )
        };
    }
    if k > 0 && others_alive > 0 {
        summary!(tracing::Level::WARN);
    } else {
        summary!(tracing::Level::INFO);
    }
    for (ip, links) in &report.timed_out {
        debug!(%ip, interfaces = ?links, "no new owner seen before the handover bound");
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

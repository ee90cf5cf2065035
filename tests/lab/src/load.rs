//! Steady requests from the client namespace to many Service IPs at once,
//! what a rolling restart, a drain and a soak are judged by.
//!
//! Every target gets a TCP connect every [`LoadOptions::interval`], each
//! request in a task of its own (a stalled connect does not delay the
//! next), on a single-threaded tokio runtime in a thread that entered the
//! client's namespace, so every socket is the client's. A request is the
//! kube-proxy stand-in's whole exchange: connect, read the node's name
//! until the server closes.
//!
//! **What a failed request is**: a connect error (refused, host
//! unreachable because the neighbour entry failed, reset), an empty answer,
//! or no complete answer within [`REQUEST_TIMEOUT`], 1 s. The lab's
//! round trip is well under a millisecond, so a request that takes that
//! long lost its SYN (sent to a MAC that did not take it, or waiting on
//! an unanswered ARP/NDP resolution), and 1 s is Linux's initial SYN
//! retransmission timeout (RFC 6298): a real client would have stalled
//! for at least that long. The failover probe's 20 ms
//! ([`crate::failover::PROBE_TIMEOUT`]) measures a gap; it would count a
//! request slowed by the machine's own load (soaks saturate both CPUs) as
//! failed.
//!
//! **Resets at a move.** When an IP moves (even gracefully), a connection
//! the old owner accepted an instant before is reset: the client's next
//! segment goes to the new owner's MAC, and that node has no such
//! connection (a packet capture of a drain shows the SYN, SYN-ACK and ACK
//! with the old MAC, the new owner's gratuitous ARP or unsolicited NA,
//! then the client's ACK of the answer to the new MAC and its RST). No
//! speaker can prevent that in L2 mode, MetalLB's neither: connection
//! state does not move with the IP. Such a request still counts as
//! failed; [`Tally::reset_at_move`] counts those whose IP was answered by
//! one node before and by another after, so the rest,
//! [`Tally::failed_not_at_move`], are the requests no node served: the
//! handover's own gaps.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netlab::{Host, NsThread};
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

/// How a connection reset shows in [`Outcome::Failed`].
const RESET: &str = "connection reset";

/// No complete answer within this is a failed request (see the module).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// How the load runs.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Between two requests to one target.
    pub interval: Duration,
    /// A request without a complete answer within this failed.
    pub timeout: Duration,
    /// The load stops by itself after this, whether stopped or not.
    pub limit: Duration,
}

impl LoadOptions {
    /// A request every `interval` to each target, [`REQUEST_TIMEOUT`], at
    /// most `limit`.
    pub fn every(interval: Duration, limit: Duration) -> Self {
        Self {
            interval,
            timeout: REQUEST_TIMEOUT,
            limit,
        }
    }
}

/// What one request got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The answering node's name.
    Answer(String),
    /// Why it failed: `timeout`, `empty answer`, or the socket error.
    Failed(String),
}

/// One request: when it started (since the load started) and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// Start of the request, from the start of the load.
    pub at: Duration,
    /// What it got.
    pub outcome: Outcome,
}

/// Every request to one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `IP:port`.
    pub target: SocketAddr,
    /// In start order.
    pub samples: Vec<Sample>,
}

/// A running load; [`Load::finish`] stops it and returns what it saw.
/// Dropping it stops it too (within [`LoadOptions::timeout`]).
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    thread: Option<NsThread<std::io::Result<Vec<Record>>>>,
    started: Instant,
}

impl Load {
    /// Starts requests to every target from `client`'s namespace.
    pub fn start(
        client: &Host,
        targets: Vec<SocketAddr>,
        opts: LoadOptions,
    ) -> netlab::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let started = Instant::now();
        let thread = client.spawn_in(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(rt.block_on(run(targets, opts, flag, started)))
        })?;
        Ok(Self {
            stop,
            thread: Some(thread),
            started,
        })
    }

    /// Time since the load started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops sending, waits for the requests in flight (at most the
    /// timeout) and returns every target's record.
    pub async fn finish(mut self) -> anyhow::Result<Vec<Record>> {
        self.stop.store(true, Ordering::Relaxed);
        let Some(thread) = self.thread.take() else {
            anyhow::bail!("the load's thread is gone");
        };
        let records = tokio::task::spawn_blocking(move || thread.join()).await??;
        Ok(records)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            // Bounded: the requests in flight end within their timeout.
            let _ = t.join();
        }
    }
}

async fn run(
    targets: Vec<SocketAddr>,
    opts: LoadOptions,
    stop: Arc<AtomicBool>,
    started: Instant,
) -> Vec<Record> {
    let n = targets.len().max(1) as u32;
    let mut loops = JoinSet::new();
    for (i, target) in targets.into_iter().enumerate() {
        // Spread the targets over the interval rather than all at once.
        let offset = opts.interval / n * i as u32;
        let stop = Arc::clone(&stop);
        loops.spawn(target_loop(target, opts, stop, started, offset));
    }
    let mut records = Vec::new();
    while let Some(done) = loops.join_next().await {
        if let Ok(r) = done {
            records.push(r);
        }
    }
    records.sort_by_key(|r| r.target);
    records
}

async fn target_loop(
    target: SocketAddr,
    opts: LoadOptions,
    stop: Arc<AtomicBool>,
    started: Instant,
    offset: Duration,
) -> Record {
    let end = started + opts.limit;
    let mut tick = tokio::time::interval_at((started + offset).into(), opts.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut in_flight = JoinSet::new();
    let mut samples = Vec::new();
    loop {
        tick.tick().await;
        if stop.load(Ordering::Relaxed) || Instant::now() >= end {
            break;
        }
        let at = started.elapsed();
        in_flight.spawn(async move {
            Sample {
                at,
                outcome: request(target, opts.timeout).await,
            }
        });
        while let Some(Ok(s)) = in_flight.try_join_next() {
            samples.push(s);
        }
    }
    while let Some(done) = in_flight.join_next().await {
        if let Ok(s) = done {
            samples.push(s);
        }
    }
    samples.sort_by_key(|s| s.at);
    Record { target, samples }
}

async fn request(target: SocketAddr, timeout: Duration) -> Outcome {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(target).await?;
        let mut buf = Vec::with_capacity(16);
        stream.take(256).read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf).trim().to_owned())
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(answer)) if !answer.is_empty() => Outcome::Answer(answer),
        Ok(Ok(_)) => Outcome::Failed("empty answer".into()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            Outcome::Failed(RESET.into())
        }
        Ok(Err(e)) => Outcome::Failed(e.kind().to_string()),
        Err(_) => Outcome::Failed("timeout".into()),
    }
}

/// What the records add up to (pure).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Requests sent.
    pub requests: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Failed requests by reason.
    pub failures: BTreeMap<String, u64>,
    /// Times a target's answering node differed from the node that
    /// answered its previous successful request, summed over targets.
    pub answer_changes: u64,
    /// Failed requests that were connection resets with their IP answered
    /// by one node before and another after: in flight when the IP moved
    /// (see the module).
    pub reset_at_move: u64,
    /// Start of the first failed request, from the start of the load.
    pub first_failure: Option<Duration>,
    /// Start of the last failed request.
    pub last_failure: Option<Duration>,
}

impl Tally {
    /// Adds up `records`.
    pub fn of(records: &[Record]) -> Self {
        let mut t = Self::default();
        for r in records {
            let mut last: Option<&str> = None;
            for (i, s) in r.samples.iter().enumerate() {
                t.requests += 1;
                match &s.outcome {
                    Outcome::Answer(a) => {
                        if last.is_some_and(|l| l != a) {
                            t.answer_changes += 1;
                        }
                        last = Some(a);
                    }
                    Outcome::Failed(why) => {
                        let next = r.samples[i + 1..].iter().find_map(|s| match &s.outcome {
                            Outcome::Answer(a) => Some(a.as_str()),
                            Outcome::Failed(_) => None,
                        });
                        let moved = last.zip(next).is_some_and(|(a, b)| a != b);
                        if why == RESET && moved {
                            t.reset_at_move += 1;
                        }
                        t.failed += 1;
                        *t.failures.entry(why.clone()).or_default() += 1;
                        t.first_failure = Some(t.first_failure.map_or(s.at, |f| f.min(s.at)));
                        t.last_failure = Some(t.last_failure.map_or(s.at, |l| l.max(s.at)));
                    }
                }
            }
        }
        t
    }

    /// Failed requests other than [`Tally::reset_at_move`]: requests no
    /// node served.
    pub fn failed_not_at_move(&self) -> u64 {
        self.failed - self.reset_at_move
    }

    /// As JSON (`failed_requests`, `requests`, ...).
    pub fn to_json(&self) -> Value {
        json!({
            "failed_requests": self.failed,
            "requests": self.requests,
            "failures": self.failures,
            "reset_at_move": self.reset_at_move,
            "failed_not_at_move": self.failed_not_at_move(),
            "answer_changes": self.answer_changes,
            "first_failure_ms": self.first_failure.map(crate::stats::ms),
            "last_failure_ms": self.last_failure.map(crate::stats::ms),
        })
    }

    /// `3 of 12000 failed (timeout 3)`, for progress lines and messages.
    pub fn describe(&self) -> String {
        let mut s = format!("{} of {} requests failed", self.failed, self.requests);
        if !self.failures.is_empty() {
            let why: Vec<String> = self
                .failures
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            s.push_str(&format!(" ({})", why.join(", ")));
        }
        if self.reset_at_move > 0 {
            s.push_str(&format!(
                ", {} of them reset in flight when their IP moved",
                self.reset_at_move
            ));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ms: u64, outcome: Result<&str, &str>) -> Sample {
        Sample {
            at: Duration::from_millis(ms),
            outcome: match outcome {
                Ok(a) => Outcome::Answer(a.into()),
                Err(e) => Outcome::Failed(e.into()),
            },
        }
    }

    fn record(port: u16, samples: Vec<Sample>) -> Record {
        Record {
            target: SocketAddr::from(([198, 51, 100, 1], port)),
            samples,
        }
    }

    #[test]
    fn failures_are_counted_by_reason_with_their_span() {
        let t = Tally::of(&[
            record(
                1,
                vec![
                    sample(0, Ok("node-1")),
                    sample(10, Err("timeout")),
                    sample(20, Err("timeout")),
                ],
            ),
            record(2, vec![sample(5, Err("connection refused"))]),
        ]);
        assert_eq!((t.requests, t.failed), (4, 3));
        assert_eq!(t.failures["timeout"], 2);
        assert_eq!(t.failures["connection refused"], 1);
        assert_eq!(t.first_failure, Some(Duration::from_millis(5)));
        assert_eq!(t.last_failure, Some(Duration::from_millis(20)));
    }

    #[test]
    fn a_change_of_answering_node_counts_once_per_target_even_across_failures() {
        let t = Tally::of(&[
            record(
                1,
                vec![
                    sample(0, Ok("node-1")),
                    sample(10, Err("timeout")),
                    sample(20, Ok("node-2")),
                    sample(30, Ok("node-2")),
                ],
            ),
            // Another target's first answer is no change.
            record(2, vec![sample(0, Ok("node-3")), sample(10, Ok("node-3"))]),
        ]);
        assert_eq!(t.answer_changes, 1);
        assert_eq!(t.failed, 1);
    }

    #[test]
    fn a_reset_between_answers_from_two_nodes_is_a_reset_at_the_move() {
        let t = Tally::of(&[
            record(
                1,
                vec![
                    sample(0, Ok("node-1")),
                    sample(10, Err(RESET)),
                    sample(20, Ok("node-2")),
                ],
            ),
            // Between answers from the same node: a failure of its own.
            record(
                2,
                vec![
                    sample(0, Ok("node-1")),
                    sample(10, Err(RESET)),
                    sample(20, Ok("node-1")),
                ],
            ),
            // A timeout at a move is a gap, not a reset.
            record(
                3,
                vec![
                    sample(0, Ok("node-1")),
                    sample(10, Err("timeout")),
                    sample(20, Ok("node-3")),
                ],
            ),
        ]);
        assert_eq!((t.failed, t.reset_at_move), (3, 1));
        assert_eq!(t.failed_not_at_move(), 2);
        assert!(t
            .describe()
            .ends_with("1 of them reset in flight when their IP moved"));
    }

    #[test]
    fn nothing_sent_tallies_to_zero() {
        assert_eq!(Tally::of(&[]), Tally::default());
        assert_eq!(Tally::default().describe(), "0 of 0 requests failed");
    }
}

//! The ServiceL2Status records (`kubectl get servicel2statuses`): read
//! them, wait for them, count the speakers' writes to them, and measure
//! how long an ownership change takes to reach its record (issue 15's
//! bench: "the seconds from an ownership change to its record in the
//! API").

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::bail;
use ferrolb_crds::ServiceL2Status;
use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};

use crate::cluster::Cluster;
use crate::failover::{self, Failover, Fault};
use crate::AbortOnDrop;

/// The lab's Services live in `default`, and so do their records.
const NAMESPACE: &str = "default";

fn api(c: &Cluster) -> Api<ServiceL2Status> {
    Api::namespaced(c.kube(), NAMESPACE)
}

/// The record of Service `name`, if there is one.
pub async fn record(c: &Cluster, name: &str) -> anyhow::Result<Option<ServiceL2Status>> {
    Ok(api(c).get_opt(name).await?)
}

/// The node the record of Service `name` names, if any.
pub async fn recorded_node(c: &Cluster, name: &str) -> anyhow::Result<Option<String>> {
    Ok(record(c, name)
        .await?
        .and_then(|r| r.node().map(str::to_owned)))
}

/// Polls (every 50 ms, at most `limit`) until `check` holds for the record
/// of Service `name`; returns the record then.
pub async fn wait_record(
    c: &Cluster,
    name: &str,
    what: &str,
    limit: Duration,
    check: impl Fn(Option<&ServiceL2Status>) -> bool,
) -> anyhow::Result<Option<ServiceL2Status>> {
    let deadline = Instant::now() + limit;
    loop {
        let r = record(c, name).await?;
        if check(r.as_ref()) {
            return Ok(r);
        }
        if Instant::now() > deadline {
            bail!("{what} within {limit:?}; the record of {name} is {r:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the record of Service `name` names `node`.
pub async fn wait_record_node(
    c: &Cluster,
    name: &str,
    node: &str,
    limit: Duration,
) -> anyhow::Result<ServiceL2Status> {
    let what = format!("a record naming {node}");
    let r = wait_record(c, name, &what, limit, |r| {
        r.and_then(ServiceL2Status::node) == Some(node)
    })
    .await?;
    r.ok_or_else(|| anyhow::anyhow!("{what}: none"))
}

/// Waits until Service `name` has no record.
pub async fn wait_no_record(c: &Cluster, name: &str, limit: Duration) -> anyhow::Result<()> {
    wait_record(c, name, "no record", limit, |r| r.is_none()).await?;
    Ok(())
}

/// Writes to ServiceL2Status records the API server logged (the lab must
/// run with [`crate::cluster::Options::record_requests`]), as `(verb,
/// name)`, in order. A create names no object (kube-apiserver's request
/// attributes do not), so its name is empty.
pub fn writes(c: &Cluster) -> Vec<(String, String)> {
    c.server()
        .requests()
        .into_iter()
        .filter(|r| r.info.resource == "servicel2statuses")
        .filter(|r| !matches!(r.info.verb.as_str(), "get" | "list" | "watch"))
        .map(|r| (r.info.verb, r.info.name))
        .collect()
}

/// One sighting of a record by [`RecordWatch`].
#[derive(Debug, Clone)]
pub struct Seen {
    /// When the watch delivered it.
    pub at: Instant,
    /// The same moment on the wall clock.
    pub wall: SystemTime,
    /// The node it named (`None`: deleted, or no node).
    pub node: Option<String>,
    /// Its `status.lastTransitionTime`: when that node's speaker decided
    /// it announces the Service.
    pub since: Option<SystemTime>,
}

/// Watches the record of one Service from the lab's side and keeps every
/// version it sees, with the time it saw it. Stops when dropped.
#[derive(Debug)]
pub struct RecordWatch {
    seen: Arc<Mutex<Vec<Seen>>>,
    _task: AbortOnDrop,
}

impl RecordWatch {
    /// Starts watching the record of Service `name`.
    pub fn start(c: &Cluster, name: &str) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out = Arc::clone(&seen);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let stream = watcher::watcher(api(c), config).default_backoff();
        let task = tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                let (at, wall) = (Instant::now(), SystemTime::now());
                let record = match event {
                    Ok(watcher::Event::Apply(r) | watcher::Event::InitApply(r)) => Some(r),
                    Ok(watcher::Event::Delete(_)) => None,
                    _ => continue,
                };
                let since = record
                    .as_ref()
                    .and_then(|r| r.status.as_ref()?.last_transition_time.as_ref())
                    .map(|t| SystemTime::from(t.0));
                let node = record.as_ref().and_then(|r| r.node().map(str::to_owned));
                let mut seen = out.lock().unwrap_or_else(|e| e.into_inner());
                seen.push(Seen {
                    at,
                    wall,
                    node,
                    since,
                });
            }
        });
        Self {
            seen,
            _task: AbortOnDrop(task),
        }
    }

    /// Every sighting so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The first sighting at or after `after` naming `node`, waiting at
    /// most `limit` for it.
    pub async fn naming(
        &self,
        node: &str,
        after: Instant,
        limit: Duration,
    ) -> anyhow::Result<Seen> {
        let deadline = Instant::now() + limit;
        loop {
            let found = self
                .seen()
                .into_iter()
                .find(|s| s.at >= after && s.node.as_deref() == Some(node));
            if let Some(s) = found {
                return Ok(s);
            }
            if Instant::now() > deadline {
                bail!(
                    "no record naming {node} within {limit:?}: {:?}",
                    self.seen()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// How long one ownership change took to reach the API.
#[derive(Debug, Clone)]
pub struct RecordDelay {
    /// The failover itself (who, to whom, the client's gap).
    pub failover: Failover,
    /// From the first answer by the new owner to the record naming it,
    /// as a watch saw it. The speakers hold a new owner for
    /// `ASSIGNED_HOLD` (5 s) before writing, so a restart that gives the
    /// IP back writes nothing; that hold is most of this.
    pub after_answer: Duration,
    /// From the new owner's decision (the record's `lastTransitionTime`)
    /// to the record seen: the hold plus the write.
    pub after_decision: Option<Duration>,
}

/// Fails the owner of `ip` over with `fault` ([`failover::measure`]) and
/// measures until the record of Service `service` names the new owner.
/// The old owner is left down: call [`Cluster::restore_node`].
pub async fn record_delay(
    c: &mut Cluster,
    service: &str,
    ip: IpAddr,
    port: u16,
    fault: Fault,
    limit: Duration,
) -> anyhow::Result<RecordDelay> {
    let watch = RecordWatch::start(c, service);
    let before = Instant::now();
    let f = failover::measure(c, ip, port, fault, limit).await?;
    // The first answer from the new owner came `gap` after the fault,
    // which came after `before`; measure returned right after the answer
    // (a graceful stop also reaps the old speaker, a few ms).
    let answered = Instant::now();
    let seen = watch.naming(&f.to, before, limit).await?;
    let after_decision = seen
        .since
        .and_then(|since| seen.wall.duration_since(since).ok());
    Ok(RecordDelay {
        after_answer: seen.at.saturating_duration_since(answered),
        after_decision,
        failover: f,
    })
}

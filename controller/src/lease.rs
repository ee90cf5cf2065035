//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! Only the leader writes Service status, so two writers must never overlap.
//! [`kube_lease_manager`] does the contending and renewing (server-side apply
//! on the Lease), but it keeps reporting "leader" while renewals fail, for as
//! long as the API server is unreachable. So [`Leadership`] also watches the
//! Lease itself and *fences* leadership: it reports leading only while the
//! manager claims the lock **and** the last renewal it saw is recent enough
//! that no standby can have taken over yet. When renewals stop (API server
//! gone, request hanging) the fence drops leadership before the Lease
//! expires; when they resume, leadership comes back by itself.
//!
//! Watching the Lease also lets a standby contend the moment the leader
//! releases it on [`Leadership::step_down`], rather than after the old
//! expiry, which is when the manager would look again on its own.

use std::time::{Duration, SystemTime};

use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::cli::LeaseArgs;

/// Why leader election could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Lease stores whole seconds, and renewing every third of the
    /// duration needs at least 2 of them.
    #[error("lease duration {0:?} must be a whole number of seconds, at least 2s")]
    BadDuration(Duration),
}

/// A running leader election. [`Leadership::is_leader`] says whether this
/// replica may write; [`Leadership::step_down`] hands the Lease over.
///
/// Dropping it without `step_down` also releases the Lease, in the
/// background.
///
/// ```no_run
/// # async fn demo(client: kube::Client, args: &ferrolb_controller::cli::LeaseArgs) -> anyhow::Result<()> {
/// let leadership = ferrolb_controller::lease::Leadership::start(client, args).await?;
/// let mut leader = leadership.is_leader();
/// leader.wait_for(|leading| *leading).await?;
/// // ... write status while `*leader.borrow()` ...
/// leadership.step_down().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Leadership {
    identity: String,
    lease: String,
    leader: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    release_within: Duration,
}

impl Leadership {
    /// Starts contending for the Lease `args.lease_name` in
    /// `args.lease_namespace` as `args.identity`, in a spawned task.
    ///
    /// Does not wait for the API server: errors reaching it are logged and
    /// retried with backoff for as long as the task runs. Fails only on
    /// invalid arguments.
    pub async fn start(client: Client, args: &LeaseArgs) -> anyhow::Result<Leadership> {
        let settings = Settings::new(args)?;
        let (tx, leader) = watch::channel(false);
        let (stop, stop_rx) = oneshot::channel();
        let span = info_span!(
            "lease",
            lease = %settings.name,
            namespace = %settings.namespace,
            identity = %settings.identity,
        );
        let release_within = settings.duration();
        let identity = settings.identity.clone();
        let lease = settings.name.clone();
        let driver = Driver {
            client,
            settings,
            tx,
            claimed: false,
            valid_until: None,
            lease_seen: false,
            last_holder: None,
        };
        let task = tokio::spawn(driver.run(stop_rx).instrument(span));
        Ok(Leadership {
            identity,
            lease,
            leader,
            stop: Some(stop),
            task,
            release_within,
        })
    }

    /// Whether this replica leads, now and as it changes. `true` only while
    /// the Lease is held and recently renewed.
    pub fn is_leader(&self) -> watch::Receiver<bool> {
        self.leader.clone()
    }

    /// Stops leading at once, then releases the Lease so a standby takes
    /// over without waiting for it to expire. Returns once released (or
    /// after one lease duration if the API server does not answer).
    pub async fn step_down(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let within = self.release_within + Duration::from_secs(1);
        if tokio::time::timeout(within, &mut self.task).await.is_err() {
            warn!(identity = %self.identity, lease = %self.lease, "stepping down took too long; abandoning the lease");
            self.task.abort();
        }
    }
}

/// Validated election parameters.
#[derive(Debug, Clone)]
struct Settings {
    name: String,
    namespace: String,
    identity: String,
    duration_secs: u64,
}

impl Settings {
    fn new(args: &LeaseArgs) -> Result<Settings, Error> {
        let d = args.lease_duration;
        if d.subsec_nanos() != 0 || d.as_secs() < 2 {
            return Err(Error::BadDuration(d));
        }
        Ok(Settings {
            name: args.lease_name.clone(),
            namespace: args.lease_namespace.clone(),
            identity: args.identity.clone(),
            duration_secs: d.as_secs(),
        })
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_secs)
    }

    /// The manager renews `grace` seconds before expiry; a grace of two
    /// thirds means a renewal every third of the duration, so two renewals
    /// can fail before the Lease is at risk.
    fn grace_secs(&self) -> u64 {
        self.duration_secs - (self.duration_secs / 3).max(1)
    }

    async fn build_manager(&self, client: Client) -> kube_lease_manager::Result<LeaseManager> {
        LeaseManagerBuilder::new(client, &self.name)
            .with_namespace(&self.namespace)
            .with_identity(&self.identity)
            .with_duration(self.duration_secs)
            .with_grace(self.grace_secs())
            .build()
            .await
    }
}

/// When this replica must stop acting as leader, given the Lease as just
/// seen, or `None` if the Lease is not held by `identity`.
///
/// The cut-off is a fifth of the duration before expiry: a standby decides
/// expiry with its own clock, so this leaves room for clock skew and for
/// the time the watch event took to arrive. `renewTime` is safe to compare
/// with our clock because a holder writes it itself.
fn fence(
    lease: &Lease,
    identity: &str,
    fallback: Duration,
    now: SystemTime,
    now_mono: Instant,
) -> Option<Instant> {
    let spec = lease.spec.as_ref()?;
    if spec.holder_identity.as_deref() != Some(identity) {
        return None;
    }
    let renewed: SystemTime = spec.renew_time.as_ref()?.0.into();
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(fallback);
    let usable = duration - duration / 5;
    let cutoff = renewed.checked_add(usable)?;
    // A renewTime in our future (clock stepped back) never buys more than
    // one usable period.
    let left = cutoff
        .duration_since(now)
        .unwrap_or(Duration::ZERO)
        .min(usable);
    Some(now_mono + left)
}

/// Exponential backoff, 500 ms doubling to 30 s.
#[derive(Debug)]
struct Backoff(Duration);

impl Backoff {
    const MIN: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(30);

    fn new() -> Self {
        Backoff(Self::MIN)
    }

    fn reset(&mut self) {
        self.0 = Self::MIN;
    }

    fn next_delay(&mut self) -> Duration {
        let d = self.0;
        self.0 = (d * 2).min(Self::MAX);
        d
    }
}

/// A [`LeaseManager`] running in its own task (its "watch" mode).
///
/// Dropping it aborts the manager *without* releasing the Lease, as a
/// crash would; [`ManagerRun::release`] is the graceful way out.
struct ManagerRun {
    state: watch::Receiver<bool>,
    task: Option<JoinHandle<kube_lease_manager::Result<LeaseManager>>>,
}

impl ManagerRun {
    async fn start(manager: LeaseManager) -> ManagerRun {
        let (state, task) = manager.watch().await;
        ManagerRun {
            state,
            task: Some(task),
        }
    }

    /// The manager's next claim, or `None` once its task has ended.
    async fn changed(&mut self) -> Option<bool> {
        self.state.changed().await.ok()?;
        Some(*self.state.borrow_and_update())
    }

    /// Why the manager's task ended (after [`ManagerRun::changed`] gave `None`).
    async fn outcome(mut self) -> String {
        match self.task.take() {
            Some(task) => match task.await {
                Ok(Ok(_)) => "the lease manager stopped".into(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            },
            None => "the lease manager stopped".into(),
        }
    }

    /// Closes the manager's channel, which makes it release the Lease and
    /// end; waits up to `within` for that.
    async fn release(mut self, within: Duration) {
        let task = self.task.take();
        // Drop runs with no task to abort, and drops the receiver.
        drop(self);
        let Some(task) = task else { return };
        match tokio::time::timeout(within, task).await {
            Ok(Ok(Ok(_))) => info!("released the lease"),
            Ok(Ok(Err(error))) => {
                warn!(%error, "releasing the lease failed; it will expire instead")
            }
            Ok(Err(error)) => warn!(%error, "the lease manager task failed while releasing"),
            Err(_) => warn!("releasing the lease timed out; it will expire instead"),
        }
    }
}

impl Drop for ManagerRun {
    fn drop(&mut self) {
        // Abort before the receiver is dropped: the manager releases the
        // Lease when its channel closes, and an abandoned run must not.
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The election task's state.
struct Driver {
    client: Client,
    settings: Settings,
    tx: watch::Sender<bool>,
    /// The manager says we hold the lock.
    claimed: bool,
    /// Our own renewal, as last seen on the Lease, is good until then.
    valid_until: Option<Instant>,
    lease_seen: bool,
    last_holder: Option<String>,
}

enum Next {
    /// Start a fresh manager (after `delay`).
    Restart(Duration),
    /// Stop for good.
    Stop,
}

impl Driver {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut events = self.lease_events();
        let mut backoff = Backoff::new();
        loop {
            let built = tokio::select! {
                biased;
                _ = &mut stop => return,
                built = self.settings.build_manager(self.client.clone()) => built,
            };
            let next = match built {
                Ok(manager) => {
                    backoff.reset();
                    let run = ManagerRun::start(manager).await;
                    self.supervise(run, &mut events, &mut stop).await
                }
                Err(error) => {
                    warn!(%error, "cannot set up the lease manager; retrying");
                    Next::Restart(backoff.next_delay())
                }
            };
            match next {
                Next::Stop => return,
                Next::Restart(delay) => {
                    tokio::select! {
                        biased;
                        _ = &mut stop => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    fn lease_events(
        &self,
    ) -> impl Stream<Item = Result<Option<Lease>, watcher::Error>> + Send + Unpin + use<> {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        watcher::watch_object(api, &self.settings.name)
            .default_backoff()
            .boxed()
    }

    /// Follows one manager run until it must be replaced or we stop.
    async fn supervise(
        &mut self,
        mut run: ManagerRun,
        events: &mut (impl Stream<Item = Result<Option<Lease>, watcher::Error>> + Unpin),
        stop: &mut oneshot::Receiver<()>,
    ) -> Next {
        loop {
            let fence = if *self.tx.borrow() {
                self.valid_until
            } else {
                None
            };
            tokio::select! {
                biased;
                _ = &mut *stop => {
                    // Stop writing first, then let the standby in.
                    self.claimed = false;
                    self.publish("stepping down");
                    run.release(self.settings.duration()).await;
                    return Next::Stop;
                }
                claim = run.changed() => match claim {
                    Some(claimed) => {
                        debug!(claimed, "lease manager reports a new lock state");
                        self.claimed = claimed;
                        self.publish("lost the lease to another replica");
                    }
                    None => {
                        self.claimed = false;
                        self.publish("the lease manager stopped");
                        let error = run.outcome().await;
                        warn!(%error, "the lease manager stopped; restarting it");
                        return Next::Restart(Backoff::MIN);
                    }
                },
                event = events.next() => match event {
                    Some(Ok(lease)) => {
                        if self.observe(lease.as_ref()) {
                            self.claimed = false;
                            self.publish("the lease was released or deleted");
                            debug!("the lease is free; contending for it now");
                            return Next::Restart(Duration::ZERO);
                        }
                        self.publish("the lease is held by another replica");
                    }
                    Some(Err(error)) => warn!(%error, "watching the lease failed; retrying"),
                    // A watcher stream does not end; if it ever does, start
                    // a new one rather than spin on a finished stream.
                    None => return Next::Restart(Backoff::MIN),
                },
                _ = tokio::time::sleep_until(fence.unwrap_or_else(Instant::now)), if fence.is_some() => {
                    warn!(
                        lease_duration_seconds = self.settings.duration_secs,
                        "the lease was not renewed in time; stopping writes until it is"
                    );
                    self.publish("the lease was not renewed in time");
                }
            }
        }
    }

    /// Records the Lease as seen; returns whether it just became free (its
    /// holder was cleared or it was deleted), so contending is worth it now.
    fn observe(&mut self, lease: Option<&Lease>) -> bool {
        let holder = lease
            .and_then(|l| l.spec.as_ref())
            .and_then(|s| s.holder_identity.clone());
        self.valid_until = lease.and_then(|l| {
            fence(
                l,
                &self.settings.identity,
                self.settings.duration(),
                SystemTime::now(),
                Instant::now(),
            )
        });
        let freed = (self.last_holder.is_some() && holder.is_none())
            || (self.lease_seen && lease.is_none());
        if holder != self.last_holder {
            debug!(
                holder = holder.as_deref().unwrap_or(""),
                "lease holder changed"
            );
        }
        self.last_holder = holder;
        self.lease_seen = lease.is_some();
        freed
    }

    /// Publishes whether we lead: the manager's claim, fenced by the last
    /// renewal seen. Logs transitions.
    fn publish(&self, why_not: &str) {
        let leading = self.claimed && self.valid_until.is_some_and(|t| Instant::now() < t);
        let changed = self.tx.send_if_modified(|current| {
            let changed = *current != leading;
            *current = leading;
            changed
        });
        if !changed {
            return;
        }
        let (identity, lease) = (&self.settings.identity, &self.settings.name);
        if leading {
            info!(identity = %identity, lease = %lease, "became leader");
        } else {
            info!(identity = %identity, lease = %lease, reason = why_not, "stopped leading");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: Option<&str>, renewed: SystemTime, seconds: i32) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(Into::into),
                renew_time: Some(MicroTime(renewed.try_into().unwrap())),
                lease_duration_seconds: Some(seconds),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn args(identity: &str, lease: &str) -> LeaseArgs {
        LeaseArgs {
            lease_name: lease.into(),
            lease_namespace: "default".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(2),
        }
    }

    #[test]
    fn a_fresh_renewal_is_trusted_for_four_fifths_of_the_duration() {
        let now = SystemTime::now();
        let mono = Instant::now();
        let until = fence(
            &lease(Some("a"), now, 10),
            "a",
            Duration::from_secs(99),
            now,
            mono,
        )
        .unwrap();
        assert_eq!(until - mono, Duration::from_secs(8));
    }

    #[test]
    fn a_lease_held_by_someone_else_or_nobody_gives_no_leadership() {
        let now = SystemTime::now();
        let fallback = Duration::from_secs(15);
        assert_eq!(
            fence(
                &lease(Some("b"), now, 10),
                "a",
                fallback,
                now,
                Instant::now()
            ),
            None
        );
        assert_eq!(
            fence(&lease(None, now, 10), "a", fallback, now, Instant::now()),
            None
        );
        assert_eq!(
            fence(&Lease::default(), "a", fallback, now, Instant::now()),
            None
        );
    }

    #[test]
    fn a_stale_renewal_fences_at_once_and_a_future_one_buys_no_extra_time() {
        let now = SystemTime::now();
        let mono = Instant::now();
        let old = now - Duration::from_secs(9);
        assert_eq!(
            fence(&lease(Some("a"), old, 10), "a", Duration::ZERO, now, mono),
            Some(mono)
        );
        let future = now + Duration::from_secs(60);
        let until = fence(
            &lease(Some("a"), future, 10),
            "a",
            Duration::ZERO,
            now,
            mono,
        )
        .unwrap();
        assert_eq!(until - mono, Duration::from_secs(8));
    }

    #[test]
    fn the_holder_renews_every_third_of_the_duration() {
        let settings = |secs| {
            Settings::new(&LeaseArgs {
                lease_duration: Duration::from_secs(secs),
                ..args("a", "l")
            })
        };
        assert_eq!(settings(15).unwrap().grace_secs(), 10);
        assert_eq!(settings(2).unwrap().grace_secs(), 1);
        assert!(settings(1).is_err());
        let half = Settings::new(&LeaseArgs {
            lease_duration: Duration::from_millis(2500),
            ..args("a", "l")
        });
        assert!(matches!(half, Err(Error::BadDuration(_))));
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new();
        let delays: Vec<_> = (0..9).map(|_| b.next_delay()).collect();
        assert_eq!(delays[0], Backoff::MIN);
        assert_eq!(delays[1], Backoff::MIN * 2);
        assert_eq!(*delays.last().unwrap(), Backoff::MAX);
        b.reset();
        assert_eq!(b.next_delay(), Backoff::MIN);
    }
}

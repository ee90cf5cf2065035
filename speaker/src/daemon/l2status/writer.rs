//! The task that writes ServiceL2Status records: fed by a coalescing
//! queue (one entry per Service, the latest [`Want`] wins), it compares
//! each want with the record its watch shows ([`step`]) and sends at most
//! one request for it. It never blocks the decision loop, retries with
//! backoff, and gives up a want only when the API server refuses it for
//! good or a newer one replaces it.

use super::compare::{step, Existing, Op};
use super::plan::Want;
use ferrolb_core::announce::model::ObjectKey;
use ferrolb_core::announce::World;
use ferrolb_crds::ServiceL2Status;
use futures::StreamExt;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, ResourceExt};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "ferrolb-speaker";

/// First wait after a failed write; it doubles per failure in a row.
pub const RETRY_FIRST: Duration = Duration::from_millis(250);
/// Longest wait between retries.
pub const RETRY_MAX: Duration = Duration::from_secs(30);

/// Wants between the decision loop and the writer: at most one per
/// Service (so bounded by the number of Services), the latest wins.
/// Pushing never waits and never drops a want.
#[derive(Debug, Default)]
pub struct Queue {
    wants: Mutex<HashMap<ObjectKey, Want>>,
    notify: Notify,
}

impl Queue {
    /// Queues `want` for `key`, replacing an older one.
    pub fn push(&self, key: ObjectKey, want: Want) {
        self.lock().insert(key, want);
        self.notify.notify_one();
    }

    /// Puts a want that failed back, unless a newer one came meanwhile.
    fn retry(&self, key: ObjectKey, want: Want) {
        self.lock().entry(key).or_insert(want);
    }

    /// Every queued want, in key order.
    fn take(&self) -> Vec<(ObjectKey, Want)> {
        let mut all: Vec<_> = std::mem::take(&mut *self.lock()).into_iter().collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// How many wants wait.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectKey, Want>> {
        // A panic while holding the lock leaves a valid map.
        self.wants.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The writer: the API, what it knows of every record, where the
/// Services' UIDs come from.
pub(super) struct Writer {
    pub(super) client: Client,
    pub(super) queue: Arc<Queue>,
    pub(super) world: watch::Receiver<World>,
}

/// How one request ended.
enum Outcome {
    /// Done (or nothing left to do): the record as it now is, if any.
    Done(Option<Box<Existing>>),
    /// Refused for good (logged): drop the want.
    Refused,
    /// Failed for now: retry later.
    Failed,
}

impl Writer {
    /// Runs until the task is aborted.
    pub(super) async fn run(self) {
        let all: Api<ServiceL2Status> = Api::all(self.client.clone());
        let stream = watcher::watcher(all, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        let mut records: HashMap<ObjectKey, Existing> = HashMap::new();
        let mut relist: HashMap<ObjectKey, Existing> = HashMap::new();
        let mut synced = false;
        let mut failures = 0u32;
        let mut retry_at: Option<Instant> = None;
        let mut watch_failing = false;
        loop {
            tokio::select! {
                event = stream.next() => match event {
                    None => return,
                    Some(Ok(Event::Init)) => relist.clear(),
                    Some(Ok(Event::InitApply(obj))) => {
                        relist.insert(key_of(&obj), Existing::of(&obj));
                    }
                    Some(Ok(Event::InitDone)) => {
                        records = std::mem::take(&mut relist);
                        if !synced {
                            info!(records = records.len(), "ServiceL2Status records listed");
                        }
                        synced = true;
                        watch_failing = false;
                    }
                    Some(Ok(Event::Apply(obj))) => {
                        records.insert(key_of(&obj), Existing::of(&obj));
                    }
                    Some(Ok(Event::Delete(obj))) => {
                        records.remove(&key_of(&obj));
                    }
                    // The backoff retries. Until the first list nothing is
                    // written: a restart must compare before writing.
                    Some(Err(e)) => {
                        if !watch_failing {
                            warn!(error = %e, "cannot watch ServiceL2Status records (is the CRD installed?); writing none until it works");
                        } else {
                            debug!(error = %e, "ServiceL2Status watch failed again");
                        }
                        watch_failing = true;
                    }
                },
                () = self.queue.notify.notified(), if retry_at.is_none() => {}
                () = sleep_until(retry_at) => retry_at = None,
            }
            if !synced || retry_at.is_some() {
                continue;
            }
            if self.drain(&mut records).await {
                failures = 0;
            } else {
                retry_at = Some(Instant::now() + backoff(failures));
                failures = failures.saturating_add(1);
            }
        }
    }

    /// Handles every queued want; false if one failed (it and those after
    /// it are queued again).
    async fn drain(&self, records: &mut HashMap<ObjectKey, Existing>) -> bool {
        let mut wants = self.queue.take().into_iter();
        while let Some((key, want)) = wants.next() {
            let uid = self
                .world
                .borrow()
                .services()
                .get(&key)
                .and_then(|s| s.uid.clone());
            let Some(op) = step(&key, &want, records.get(&key), uid.as_deref()) else {
                continue;
            };
            match self.send(&key, op, &want, uid.as_deref()).await {
                Outcome::Done(Some(now)) => {
                    records.insert(key, *now);
                }
                Outcome::Done(None) => {
                    records.remove(&key);
                }
                Outcome::Refused => {}
                Outcome::Failed => {
                    self.queue.retry(key, want);
                    for (k, w) in wants {
                        self.queue.retry(k, w);
                    }
                    return false;
                }
            }
        }
        true
    }

    /// Sends `op`; a create that finds a record patches it and a patch
    /// that finds none creates it (the watch was behind).
    async fn send(&self, key: &ObjectKey, op: Op, want: &Want, uid: Option<&str>) -> Outcome {
        let api: Api<ServiceL2Status> = Api::namespaced(self.client.clone(), &key.namespace);
        let verb = match &op {
            Op::Create(_) => "create",
            Op::Patch(_) => "patch",
            Op::Delete { .. } => "delete",
        };
        let result = match op {
            Op::Create(obj) => match api.create(&post_params(), &obj).await {
                Err(kube::Error::Api(s)) if s.is_already_exists() => {
                    // Patch what is there; nothing is known of it.
                    let Some(Op::Patch(body)) = step(key, want, Some(&unknown()), uid) else {
                        return Outcome::Done(None);
                    };
                    api.patch(&key.name, &patch_params(), &Patch::Merge(body))
                        .await
                        .map(|r| Some(Box::new(Existing::of(&r))))
                }
                other => other.map(|r| Some(Box::new(Existing::of(&r)))),
            },
            Op::Patch(body) => match api
                .patch(&key.name, &patch_params(), &Patch::Merge(body))
                .await
            {
                Err(kube::Error::Api(s)) if s.is_not_found() => {
                    let Some(Op::Create(obj)) = step(key, want, None, uid) else {
                        return Outcome::Done(None);
                    };
                    api.create(&post_params(), &obj)
                        .await
                        .map(|r| Some(Box::new(Existing::of(&r))))
                }
                other => other.map(|r| Some(Box::new(Existing::of(&r)))),
            },
            Op::Delete {
                uid,
                resource_version,
            } => {
                let dp = DeleteParams::default().preconditions(Preconditions {
                    uid,
                    resource_version,
                });
                match api.delete(&key.name, &dp).await {
                    Ok(_) => Ok(None),
                    Err(kube::Error::Api(s)) if s.is_not_found() => Ok(None),
                    // Changed since: whoever changed it answers for it now.
                    Err(kube::Error::Api(s)) if s.is_conflict() => {
                        debug!(service = %key, "record changed before its deletion; left to its writer");
                        return Outcome::Refused;
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(now) => {
                debug!(service = %key, verb, "ServiceL2Status written");
                Outcome::Done(now)
            }
            // Invalid or refused for good: retrying sends the same again.
            Err(kube::Error::Api(s)) if matches!(s.code, 400 | 404 | 409 | 422) => {
                warn!(service = %key, verb, error = %s, "ServiceL2Status refused; not retrying it");
                Outcome::Refused
            }
            Err(e) => {
                warn!(service = %key, verb, error = %e, "cannot write ServiceL2Status; retrying");
                Outcome::Failed
            }
        }
    }
}

/// A record known to exist, but nothing of it.
fn unknown() -> Existing {
    Existing {
        uid: None,
        resource_version: None,
        node: String::new(),
        service: (String::new(), String::new()),
        interfaces: Vec::new(),
        ips: Vec::new(),
        since: None,
        owner: None,
        labels: Default::default(),
    }
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

fn key_of(obj: &ServiceL2Status) -> ObjectKey {
    ObjectKey::new(obj.namespace().unwrap_or_default(), obj.name_any())
}

/// The wait after `failures` failures in a row.
fn backoff(failures: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(2u32.saturating_pow(failures.min(16)))
        .min(RETRY_MAX)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_want_wins_and_a_retry_never_replaces_a_newer_one() {
        let q = Queue::default();
        let k = ObjectKey::new("shop", "web");
        q.push(k.clone(), Want::Absent);
        let record = Want::Record(super::super::plan::Record {
            node: "node-a".into(),
            interfaces: vec![],
            ips: vec![],
            since: std::time::SystemTime::UNIX_EPOCH,
        });
        q.push(k.clone(), record.clone());
        assert_eq!(q.len(), 1);
        assert_eq!(q.take(), vec![(k.clone(), record.clone())]);
        assert!(q.is_empty());
        q.push(k.clone(), Want::Absent);
        q.retry(k.clone(), record);
        assert_eq!(q.take(), vec![(k, Want::Absent)]);
    }

    #[test]
    fn retries_back_off_to_thirty_seconds() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(6), Duration::from_secs(16));
        assert_eq!(backoff(7), RETRY_MAX);
        assert_eq!(backoff(u32::MAX), RETRY_MAX);
    }
}

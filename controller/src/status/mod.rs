//! The one task that writes to the API server.
//!
//! It takes [`Update`]s from a bounded channel and writes each only while
//! this replica leads (a standby drops them: it re-seeds from the API when
//! it takes over). Every write is a merge patch with the constant field
//! manager `ferrolb-controller`; nothing is ever read, modified and
//! replaced.
//!
//! Writes for different objects run concurrently, at most
//! `--status-writes-in-flight` at once (each in a task of its own, so a
//! slow API server costs latency, not throughput); writes for one object
//! (a Service, a pool, an advertisement) never overlap and never pass each
//! other: a write waits until the one before it for its object finished
//! (see [`queue`], which also keeps only the newest of the writes waiting
//! for one object: each carries the whole desired state). When every slot
//! is taken the writer stops reading the channel, so the index waits.
//!
//! A Service assignment takes two patches because an annotation is
//! metadata, which a write to `/status` cannot change: first the
//! `ferrolb.io/ip-allocated-from-pool` annotation on the object, then
//! `status.loadBalancer.ingress` on `/status`. A release goes the other way
//! round (ingress, then annotation). So whenever the ingress shows an IP,
//! the annotation names its pool.
//!
//! Fencing: before every request (the first, the second patch of a
//! Service, each retry) the write checks that this replica still leads and
//! is not stopping; a write in flight when leadership is lost stops at that
//! point, and no write starts after it.
//!
//! API errors are retried with exponential backoff (100 ms doubling to
//! 5 s, at most [`MAX_ATTEMPTS`] tries). A 404 means the object is gone:
//! its delete event is on its way, nothing to do. A 400, 403, 409 or 422,
//! or giving up on a transient error, is reported back so the index
//! decides again from the object it sees next.
//!
//! Events are not state: they are published beside the writes, at most
//! [`EVENTS_IN_FLIGHT`] at once, once each (a lost Event is only logged).

pub mod queue;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_crds::annotations::IP_ALLOCATED_FROM_POOL;
use ferrolb_crds::{IPAddressPool, L2Advertisement};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::{self, JoinSet};
use tracing::{debug, error, info, warn, Instrument as _};

use crate::events::{Publisher, CONTROLLER};
use crate::index::{ServiceWrite, Update, Write};
use queue::{Key, Queue};

/// Tries per write before giving up and reporting it back.
pub const MAX_ATTEMPTS: u32 = 8;

/// Why a write failed for good.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist (any more).
    #[error("{what} not found")]
    NotFound {
        /// The object.
        what: String,
    },
    /// The API refused the write in a way a retry cannot fix.
    #[error("writing {what}: {source}")]
    Refused {
        /// The object.
        what: String,
        /// The API's answer.
        source: kube::Error,
    },
    /// Transient errors did not go away.
    #[error("writing {what}: gave up after {attempts} attempts: {source}")]
    GaveUp {
        /// The object.
        what: String,
        /// Tries made.
        attempts: u32,
        /// The last error.
        source: kube::Error,
    },
    /// Leadership was lost or shutdown began while retrying.
    #[error("writing {what}: stopped, this replica no longer writes")]
    Stopped {
        /// The object.
        what: String,
    },
}

/// Result alias for this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The single status writer.
pub struct Writer {
    patcher: Patcher,
    events: Publisher,
    /// Writes that failed for good but may succeed when decided again.
    failed: mpsc::UnboundedSender<Write>,
    event_slots: Arc<Semaphore>,
    writes_in_flight: usize,
}

/// Events published concurrently, at most.
pub const EVENTS_IN_FLIGHT: usize = 8;

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("events", &self.events)
            .field("writes_in_flight", &self.writes_in_flight)
            .finish()
    }
}

/// What a write task needs (cheap to clone: the client and the watch
/// receivers are shared handles).
#[derive(Clone)]
struct Patcher {
    client: Client,
    leader: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
}

/// The write each running task makes, by task.
type Started = HashMap<task::Id, Write>;

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(CONTROLLER.to_string()),
        ..Default::default()
    }
}

/// The merge patch of the annotation (`None` removes it).
pub fn annotation_patch(pool: Option<&str>) -> Value {
    json!({"metadata": {"annotations": {IP_ALLOCATED_FROM_POOL: pool}}})
}

/// The merge patch of `status.loadBalancer` (`None` clears the ingress).
pub fn ingress_patch(write: &ServiceWrite) -> Value {
    let ingress = write.assignment.as_ref().map(|a| {
        a.ips
            .iter()
            .map(|ip| json!({"ip": ip.to_string(), "ipMode": "VIP"}))
            .collect::<Vec<_>>()
    });
    json!({"status": {"loadBalancer": {"ingress": ingress}}})
}

impl Writer {
    /// A writer that writes while `leader` is true and until `stop` is,
    /// at most `writes_in_flight` (at least 1) objects at once.
    pub fn new(
        client: Client,
        events: Publisher,
        leader: watch::Receiver<bool>,
        stop: watch::Receiver<bool>,
        failed: mpsc::UnboundedSender<Write>,
        writes_in_flight: usize,
    ) -> Self {
        Writer {
            patcher: Patcher {
                client,
                leader,
                stop,
            },
            events,
            failed,
            event_slots: Arc::new(Semaphore::new(EVENTS_IN_FLIGHT)),
            writes_in_flight,
        }
    }

    /// Writes updates until the channel closes (then finishes what it
    /// holds) or `stop` turns true (then waits for the writes in flight,
    /// which stop at their next request).
    pub async fn run(self, mut updates: mpsc::Receiver<Update>) {
        let mut stop = self.patcher.stop.clone();
        let mut queue = Queue::new(self.writes_in_flight);
        let mut tasks = JoinSet::new();
        let mut started = Started::new();
        loop {
            let update = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    self.finished(done, &mut queue, &mut tasks, &mut started);
                    continue;
                }
                next = updates.recv(), if queue.has_room() => match next {
                    Some(update) => update,
                    None => break,
                },
            };
            if !self.patcher.may_write() {
                debug!("not leading: dropping an update");
                continue;
            }
            let write = match update {
                Update::Write(write) => write,
                Update::Event(event) => {
                    // Events are not state: publishing them beside the status
                    // writes (at most EVENTS_IN_FLIGHT at once) keeps a burst of
                    // new Services from waiting behind their own Events.
                    let Ok(permit) = self.event_slots.clone().acquire_owned().await else {
                        break;
                    };
                    let events = self.events.clone();
                    tokio::spawn(async move {
                        if let Err(err) = events.publish(&event).await {
                            warn!(reason = event.reason, error = %err, "publishing an Event failed");
                        }
                        drop(permit);
                    });
                    continue;
                }
            };
            if let Some(write) = queue.offer(write) {
                self.start(write, &mut tasks, &mut started);
            }
        }
        while let Some(done) = tasks.join_next_with_id().await {
            self.finished(done, &mut queue, &mut tasks, &mut started);
        }
        info!("status writer stopped");
    }

    fn start(&self, write: Write, tasks: &mut JoinSet<Result<()>>, started: &mut Started) {
        let patcher = self.patcher.clone();
        let task = write.clone();
        let id = tasks
            .spawn(async move { patcher.write(&task).await }.in_current_span())
            .id();
        started.insert(id, write);
    }

    /// Reports a finished write and starts the next one for its object.
    fn finished(
        &self,
        done: Result<(task::Id, Result<()>), task::JoinError>,
        queue: &mut Queue,
        tasks: &mut JoinSet<Result<()>>,
        started: &mut Started,
    ) {
        let (id, result) = match done {
            Ok((id, result)) => (id, Ok(result)),
            Err(err) => (err.id(), Err(err)),
        };
        let Some(write) = started.remove(&id) else {
            return;
        };
        match result {
            Ok(Ok(())) => {}
            Ok(Err(Error::NotFound { what })) => debug!(%what, "object gone; nothing to write"),
            Ok(Err(Error::Stopped { .. })) => {}
            Ok(Err(err)) => {
                warn!(error = %err, "write failed; deciding again");
                let _ = self.failed.send(write.clone());
            }
            Err(err) => {
                error!(error = %err, "a write task failed; deciding again");
                let _ = self.failed.send(write.clone());
            }
        }
        let key = Key::of(&write);
        while let Some(next) = queue.finished(&key) {
            if self.patcher.may_write() {
                self.start(next, tasks, started);
                return;
            }
            debug!("not leading: dropping an update");
        }
    }
}

impl Patcher {
    fn may_write(&self) -> bool {
        *self.leader.borrow() && !*self.stop.borrow()
    }

    async fn write(&self, write: &Write) -> Result<()> {
        match write {
            Write::Service(write) => self.write_service(write).await,
            Write::Pool {
                name,
                namespace,
                status,
            } => {
                let api: Api<IPAddressPool> = Api::namespaced(self.client.clone(), namespace);
                let body = json!({"status": status});
                let (pp, patch) = (params(), Patch::Merge(&body));
                let what = format!("IPAddressPool {namespace}/{name}");
                self.retry(&what, || api.patch_status(name, &pp, &patch))
                    .await
            }
            Write::Advertisement {
                name,
                namespace,
                status,
            } => {
                let api: Api<L2Advertisement> = Api::namespaced(self.client.clone(), namespace);
                let body = json!({"status": status});
                let (pp, patch) = (params(), Patch::Merge(&body));
                let what = format!("L2Advertisement {namespace}/{name}");
                self.retry(&what, || api.patch_status(name, &pp, &patch))
                    .await
            }
        }
    }

    async fn write_service(&self, write: &ServiceWrite) -> Result<()> {
        let key = &write.key;
        let api: Api<Service> = Api::namespaced(self.client.clone(), &key.namespace);
        let what = format!("Service {key}");
        let pool = write.assignment.as_ref().map(|a| a.pool.as_str());
        let annotation_body = annotation_patch(pool);
        let ingress_body = ingress_patch(write);
        let pp = params();
        let (annotation, ingress) = (Patch::Merge(&annotation_body), Patch::Merge(&ingress_body));
        let set_annotation = || api.patch(&key.name, &pp, &annotation);
        let set_ingress = || api.patch_status(&key.name, &pp, &ingress);
        if write.assignment.is_some() {
            self.retry(&what, set_annotation).await?;
            self.retry(&what, set_ingress).await?;
            info!(service = %key, pool = pool.unwrap_or_default(),
                ips = ?write.assignment.as_ref().map(|a| &a.ips), "assigned");
        } else {
            self.retry(&what, set_ingress).await?;
            self.retry(&what, set_annotation).await?;
            info!(service = %key, "cleared");
        }
        Ok(())
    }

    async fn retry<T, F, Fut>(&self, what: &str, mut call: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, kube::Error>>,
    {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0;
        loop {
            // Before each request: a write in flight when leadership is
            // lost stops here, between its patches as between its tries.
            if !self.may_write() {
                return Err(Error::Stopped {
                    what: what.to_string(),
                });
            }
            attempt += 1;
            let err = match call().await {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            let code = match &err {
                kube::Error::Api(status) => Some(status.code),
                _ => None,
            };
            match code {
                Some(404) => {
                    return Err(Error::NotFound {
                        what: what.to_string(),
                    })
                }
                Some(400 | 403 | 409 | 422) => {
                    return Err(Error::Refused {
                        what: what.to_string(),
                        source: err,
                    })
                }
                _ if attempt >= MAX_ATTEMPTS => {
                    return Err(Error::GaveUp {
                        what: what.to_string(),
                        attempts: attempt,
                        source: err,
                    })
                }
                _ => {}
            }
            debug!(%what, attempt, error = %err, "write failed; retrying");
            let mut stop = self.stop.clone();
            let mut leader = self.leader.clone();
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => {}
                _ = leader.wait_for(|l| !*l) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_core::allocator::{Assignment, ServiceKey};

    #[test]
    fn an_assignment_patches_ingress_with_vip_mode_and_the_pool_annotation() {
        let write = ServiceWrite {
            key: ServiceKey::new("default", "web"),
            assignment: Some(Assignment {
                pool: "blue".into(),
                ips: vec![
                    "198.51.100.1".parse().unwrap(),
                    "2001:db8::1".parse().unwrap(),
                ],
            }),
        };
        assert_eq!(
            ingress_patch(&write),
            json!({"status": {"loadBalancer": {"ingress": [
                {"ip": "198.51.100.1", "ipMode": "VIP"},
                {"ip": "2001:db8::1", "ipMode": "VIP"},
            ]}}})
        );
        assert_eq!(
            annotation_patch(Some("blue")),
            json!({"metadata": {"annotations": {"ferrolb.io/ip-allocated-from-pool": "blue"}}})
        );
    }

    #[test]
    fn a_release_removes_the_ingress_and_the_annotation() {
        let write = ServiceWrite {
            key: ServiceKey::new("default", "web"),
            assignment: None,
        };
        assert_eq!(
            ingress_patch(&write),
            json!({"status": {"loadBalancer": {"ingress": null}}})
        );
        assert_eq!(
            annotation_patch(None),
            json!({"metadata": {"annotations": {"ferrolb.io/ip-allocated-from-pool": null}}})
        );
    }
}

//! ServiceL2Status records: which node announces each Service, for
//! `kubectl get servicel2statuses` (issue 15).
//!
//! - [`plan`] (pure): from the decision's deltas, what this node wants
//!   each Service's record to be once the decision held for
//!   [`ASSIGNED_HOLD`](super::events::ASSIGNED_HOLD): the owner writes its
//!   record, a new owner overwrites the old one's, and when nobody
//!   announces a Service one live node (its janitor) deletes it.
//! - [`compare`] (pure): the one request a want needs given the record
//!   that exists, or none.
//! - [`writer`]: the task that watches the records and sends those
//!   requests, fed by a coalescing queue so the decision loop never waits
//!   for the API server.
//!
//! A record is named like its Service, in its namespace, with an
//! ownerReference to it, so the garbage collector deletes it with the
//! Service even when no speaker runs.

pub mod compare;
pub mod plan;
pub mod writer;

pub use plan::{janitor, Planner, Record, Want};
pub use writer::Queue;

use ferrolb_core::announce::model::ObjectKey;
use ferrolb_core::announce::{Delta, World};
use ferrolb_core::ownership::Node;
use kube::Client;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

/// The decision loop's side: the planner and the queue to the writer.
#[derive(Debug)]
pub struct Records {
    planner: Planner,
    queue: Arc<Queue>,
}

impl Records {
    /// Plans with `hold` and queues to `queue` (from [`spawn_writer`]).
    pub fn new(hold: Duration, queue: Arc<Queue>) -> Self {
        Self {
            planner: Planner::new(hold),
            queue,
        }
    }

    /// Takes a decision delta in.
    pub fn update(&mut self, me: &str, delta: &Delta, live: &BTreeSet<String>) {
        let wants = self
            .planner
            .update(me, delta, live, Instant::now(), SystemTime::now());
        self.queue_all(wants);
    }

    /// Queues what has held by now.
    pub fn due(&mut self, me: &str, live: &BTreeSet<String>) {
        let wants = self.planner.due(me, live, Instant::now());
        self.queue_all(wants);
    }

    /// When [`Records::due`] has something next.
    pub fn next_due(&self) -> Option<Instant> {
        self.planner.next_due()
    }

    fn queue_all(&self, wants: Vec<(ObjectKey, Want)>) {
        for (key, want) in wants {
            self.queue.push(key, want);
        }
    }
}

/// Starts the writer; `world` supplies the Services' UIDs.
pub fn spawn_writer(
    client: Client,
    world: watch::Receiver<World>,
    tasks: &mut JoinSet<()>,
) -> Arc<Queue> {
    let queue = Arc::new(Queue::default());
    let w = writer::Writer {
        client,
        queue: Arc::clone(&queue),
        world,
    };
    tasks.spawn(w.run().instrument(tracing::info_span!("l2status")));
    queue
}

/// How long the start waits for the list of records.
pub const LIST_TIMEOUT: Duration = Duration::from_secs(10);

/// The node each Service's record names, listed once at start for sticky
/// ownership's cold start (rule 4 of `docs/speaker-ownership.md`). A
/// failed list is logged and gives none: the speaker then decides as if
/// no record existed (IPs may move in a restart of every speaker, nothing
/// worse).
pub async fn recorded_owners(client: &Client) -> BTreeMap<ObjectKey, Node> {
    use ferrolb_crds::service_l2_status::ServiceL2Status;
    use kube::api::{Api, ListParams};
    let api: Api<ServiceL2Status> = Api::all(client.clone());
    let listed = tokio::time::timeout(LIST_TIMEOUT, api.list(&ListParams::default())).await;
    let list = match listed {
        Ok(Ok(list)) => list,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot list ServiceL2Status records: after a restart of every speaker, IPs may move");
            return Default::default();
        }
        Err(_) => {
            tracing::warn!(timeout_s = LIST_TIMEOUT.as_secs(), "listing ServiceL2Status records timed out: after a restart of every speaker, IPs may move");
            return Default::default();
        }
    };
    owners_of(&list.items)
}

/// The recorded owner of each Service: the record's namespace and name
/// are the Service's; records without a node are skipped.
pub fn owners_of(
    records: &[ferrolb_crds::service_l2_status::ServiceL2Status],
) -> BTreeMap<ObjectKey, Node> {
    use kube::ResourceExt;
    records
        .iter()
        .filter_map(|r| {
            let node = r.status.as_ref().map(|s| s.node.as_str())?;
            if node.is_empty() {
                return None;
            }
            let key = ObjectKey::new(r.namespace().unwrap_or_default(), r.name_any());
            Some((key, Node::from(node)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_crds::service_l2_status::{
        ServiceL2Status, ServiceL2StatusSpec, ServiceL2StatusStatus,
    };

    fn record(ns: &str, name: &str, node: Option<&str>) -> ServiceL2Status {
        let mut r = ServiceL2Status::new(name, ServiceL2StatusSpec {});
        r.metadata.namespace = Some(ns.into());
        r.status = node.map(|n| ServiceL2StatusStatus {
            node: n.into(),
            ..Default::default()
        });
        r
    }

    #[test]
    fn each_record_names_its_services_owner_and_nodeless_ones_are_skipped() {
        let owners = owners_of(&[
            record("shop", "web", Some("node-b")),
            record("shop", "db", Some("")),
            record("ops", "grafana", None),
        ]);
        assert_eq!(owners.len(), 1);
        assert_eq!(&*owners[&ObjectKey::new("shop", "web")], "node-b");
    }
}

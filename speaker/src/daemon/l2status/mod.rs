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

use ferrolb_core::announce::{Delta, World};
use kube::Client;
use std::collections::BTreeSet;
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

    fn queue_all(&self, wants: Vec<(ferrolb_core::announce::model::ObjectKey, Want)>) {
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

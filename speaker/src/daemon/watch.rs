//! The kube-runtime watches that feed the [`World`].

use super::index::Indexed;
use super::partial::EndpointSlice;
use ferrolb_core::announce::World;
use ferrolb_crds::{IPAddressPool, L2Advertisement};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use std::collections::BTreeSet;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn, Instrument};

/// The five kinds the speaker watches.
pub const KINDS: [&str; 5] = [
    Service::KIND,
    EndpointSlice::KIND,
    Node::KIND,
    IPAddressPool::KIND,
    L2Advertisement::KIND,
];

/// What the watches publish.
#[derive(Debug, Clone)]
pub struct Watched {
    /// The cluster as last seen.
    pub world: watch::Receiver<World>,
    /// The kinds whose first list has completed.
    pub synced: watch::Receiver<BTreeSet<&'static str>>,
}

impl Watched {
    /// Whether every kind has been listed once.
    pub fn is_synced(&self) -> bool {
        self.synced.borrow().len() == KINDS.len()
    }
}

/// Starts one watch task per kind: Services, EndpointSlices and Nodes
/// cluster-wide, pools and advertisements in `namespace`. Services whose
/// `spec.loadBalancerClass` is not `lb_class` never enter the world (a
/// Service that stops being ours leaves it).
pub fn spawn(
    client: &Client,
    namespace: &str,
    lb_class: Option<String>,
    tasks: &mut JoinSet<()>,
) -> Watched {
    let (world_tx, world) = watch::channel(World::default());
    let (synced_tx, synced) = watch::channel(BTreeSet::new());
    let out = Watched { world, synced };
    let feed = Feed {
        world: world_tx,
        synced: synced_tx,
    };
    let ours: Keep<Service> =
        Box::new(move |svc| ferrolb_crds::service::class_is_ours(svc, lb_class.as_deref()));
    spawn_kind(
        tasks,
        Api::<Service>::all(client.clone()),
        feed.clone(),
        ours,
    );
    spawn_kind(
        tasks,
        Api::<EndpointSlice>::all(client.clone()),
        feed.clone(),
        every(),
    );
    spawn_kind(
        tasks,
        Api::<Node>::all(client.clone()),
        feed.clone(),
        every(),
    );
    spawn_kind(
        tasks,
        Api::<IPAddressPool>::namespaced(client.clone(), namespace),
        feed.clone(),
        every(),
    );
    spawn_kind(
        tasks,
        Api::<L2Advertisement>::namespaced(client.clone(), namespace),
        feed,
        every(),
    );
    out
}

#[derive(Debug, Clone)]
struct Feed {
    world: watch::Sender<World>,
    synced: watch::Sender<BTreeSet<&'static str>>,
}

/// Which objects of a kind the speaker acts on; the others count as absent.
type Keep<K> = Box<dyn Fn(&K) -> bool + Send + Sync>;

fn every<K>() -> Keep<K> {
    Box::new(|_| true)
}

fn spawn_kind<K: Indexed>(tasks: &mut JoinSet<()>, api: Api<K>, feed: Feed, keep: Keep<K>) {
    let span = tracing::info_span!("watch", kind = K::KIND);
    tasks.spawn(run_kind(api, feed, keep).instrument(span));
}

async fn run_kind<K: Indexed>(api: Api<K>, feed: Feed, keep: Keep<K>) {
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    // A relist arrives as Init, InitApply..., InitDone; it becomes one
    // reset, so the desired state never sees a half-listed kind. Objects
    // are converted as they arrive: the buffer holds compact forms only.
    let mut relist: Vec<(K::Key, K::Info)> = Vec::new();
    // Only a change to what the world keeps wakes the decision loop.
    let set = |key: K::Key, info: Option<K::Info>| {
        feed.world.send_if_modified(|w| K::set(w, &key, info));
    };
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => relist.clear(),
            Ok(Event::InitApply(obj)) => {
                if let Some(info) = keep(&obj).then(|| K::convert(&obj)).flatten() {
                    relist.push((K::key(&obj), info));
                }
            }
            Ok(Event::InitDone) => {
                let objs = std::mem::take(&mut relist);
                info!(objects = objs.len(), "listed");
                feed.world.send_if_modified(|w| K::reset(w, objs));
                feed.synced.send_if_modified(|s| s.insert(K::KIND));
            }
            Ok(Event::Apply(obj)) if keep(&obj) => set(K::key(&obj), K::convert(&obj)),
            Ok(Event::Apply(obj) | Event::Delete(obj)) => set(K::key(&obj), None),
            // The backoff retries; what we knew stays in place so the node
            // keeps announcing through an API server outage.
            Err(e) => warn!(error = %e, "watch failed; keeping the last known state"),
        }
    }
}

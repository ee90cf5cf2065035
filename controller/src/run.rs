//! Wiring: watches -> index -> status writer, under the Lease, until a
//! signal.
//!
//! One task (this loop) owns the [`Index`]. It takes watch events from four
//! watchers (Services and Namespaces cluster-wide, IPAddressPools and
//! L2Advertisements in the controller's namespace), a batch at a time,
//! then flushes the index into the bounded status channel and the metrics.
//! Leadership changes seed or unseed the index; the status writer is the
//! only task that writes.

use std::time::Instant;

use anyhow::Context as _;
use ferrolb_crds::{IPAddressPool, L2Advertisement};
use ferrolb_runtime::http::{self, Readiness};
use ferrolb_runtime::shutdown;
use futures::stream::{BoxStream, SelectAll};
use futures::{FutureExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};
use kube::runtime::watcher::{self, watcher, Event as WatchEvent};
use kube::runtime::WatchStreamExt as _;
use kube::{Client, Resource};
use tokio::sync::{mpsc, watch};
use tracing::{info, info_span, warn, Instrument as _};

use crate::cli::Args;
use crate::events::Publisher;
use crate::index::service::View;
use crate::index::watch::{step, Step};
use crate::index::{Index, Settings, Update};
use crate::lease::Leadership;
use crate::memberlist;
use crate::metrics::Metrics;
use crate::status::Writer;

/// Most watch events handled before the index is flushed.
const BATCH: usize = 1024;

enum Input {
    Service(Box<watcher::Result<WatchEvent<View>>>),
    Namespace(Box<watcher::Result<WatchEvent<Namespace>>>),
    Pool(Box<watcher::Result<WatchEvent<IPAddressPool>>>),
    Advertisement(Box<watcher::Result<WatchEvent<L2Advertisement>>>),
}

/// Watches `api`; each object goes through `read` as it arrives (every
/// kind loses its managedFields; a Service becomes the [`View`] the index
/// keeps), so a relist buffers small objects.
fn watch<K, T: 'static>(
    api: Api<K>,
    read: fn(K) -> T,
    wrap: fn(Box<watcher::Result<WatchEvent<T>>>) -> Input,
) -> BoxStream<'static, Input>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default + Clone + Eq + std::hash::Hash,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .map(move |event| wrap(Box::new(event.map(|e| read_event(e, read)))))
        .boxed()
}

/// `event` with its object read by `read`.
fn read_event<K, T>(event: WatchEvent<K>, read: fn(K) -> T) -> WatchEvent<T> {
    match event {
        WatchEvent::Apply(o) => WatchEvent::Apply(read(o)),
        WatchEvent::Delete(o) => WatchEvent::Delete(read(o)),
        WatchEvent::Init => WatchEvent::Init,
        WatchEvent::InitApply(o) => WatchEvent::InitApply(read(o)),
        WatchEvent::InitDone => WatchEvent::InitDone,
    }
}

/// `obj` without its managedFields.
fn stripped<K: Resource>(mut obj: K) -> K {
    obj.meta_mut().managed_fields = None;
    obj
}

/// A Service as the index keeps it.
fn view(svc: Service) -> View {
    View::of(&svc)
}

/// Objects of one kind listed since the last `Init`, applied as one reset.
#[derive(Default)]
struct Relists {
    services: Option<Vec<View>>,
    namespaces: Option<Vec<Namespace>>,
    pools: Option<Vec<IPAddressPool>>,
    ads: Option<Vec<L2Advertisement>>,
}

/// Routes one watch event into the index. Errors are logged: the watcher
/// retries with backoff by itself.
fn handle(index: &mut Index, relists: &mut Relists, input: Input) {
    match input {
        Input::Service(event) => match step(&mut relists.services, "Service", *event) {
            Step::Apply(svc) => index.apply_view(svc),
            Step::Delete(svc) => index.delete_view(&svc.key),
            Step::Reset(list) => {
                index.reset_views(list);
                index.mark_synced("Service");
            }
            Step::Wait => {}
        },
        Input::Namespace(event) => match step(&mut relists.namespaces, "Namespace", *event) {
            Step::Apply(ns) => index.apply_namespace(&ns),
            Step::Delete(ns) => index.delete_namespace(&ns),
            Step::Reset(list) => {
                index.reset_namespaces(&list);
                index.mark_synced("Namespace");
            }
            Step::Wait => {}
        },
        Input::Pool(event) => match step(&mut relists.pools, "IPAddressPool", *event) {
            Step::Apply(pool) => index.apply_pool(pool),
            Step::Delete(pool) => index.delete_pool(&pool),
            Step::Reset(list) => {
                index.reset_pools(list);
                index.mark_synced("IPAddressPool");
            }
            Step::Wait => {}
        },
        Input::Advertisement(event) => match step(&mut relists.ads, "L2Advertisement", *event) {
            Step::Apply(ad) => index.apply_advertisement(ad),
            Step::Delete(ad) => index.delete_advertisement(&ad),
            Step::Reset(list) => {
                index.reset_advertisements(list);
                index.mark_synced("L2Advertisement");
            }
            Step::Wait => {}
        },
    }
}

/// Sends what the index produced to the writer and the metrics.
async fn flush(
    index: &mut Index,
    tx: &mpsc::Sender<Update>,
    metrics: &Metrics,
) -> anyhow::Result<()> {
    let output = index.flush(Timestamp::now());
    for (pool, counts) in &output.pools {
        let c = counts.saturating_i64();
        metrics.set_pool(
            pool,
            c.assigned_v4,
            c.assigned_v6,
            c.assigned_v4.saturating_add(c.available_v4),
            c.assigned_v6.saturating_add(c.available_v6),
        );
    }
    for pool in &output.removed_pools {
        metrics.remove_pool(pool);
    }
    for reason in output.failures {
        metrics.allocation_failed(reason);
    }
    for update in output.updates {
        tx.send(update).await.context("the status writer stopped")?;
    }
    Ok(())
}

/// A consistent list of every Service, so a new leader sees what the old
/// one wrote even if the watch lags behind.
async fn list_services(client: &Client) -> anyhow::Result<Vec<View>> {
    let api: Api<Service> = Api::all(client.clone());
    let mut out = Vec::new();
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await.context("listing Services")?;
        out.extend(page.items.iter().map(View::of));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(out),
        }
    }
}

/// `/readyz`: ready once the caches synced and, when leading, the index
/// is seeded, so a replica is not counted ready before it knows the
/// cluster.
fn readiness(ready: watch::Receiver<bool>) -> impl Readiness {
    move || {
        if *ready.borrow() {
            Ok(())
        } else {
            Err("not ready: caches not synced".to_owned())
        }
    }
}

/// Runs the controller until SIGTERM or Ctrl-C; logging is already set
/// up (`ferrolb_runtime::logging::init`).
pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = Client::try_default()
        .await
        .context("building a Kubernetes client (KUBECONFIG or in-cluster)")?;
    let metrics = Metrics::new(args.http.metallb_metrics);
    let (ready_tx, ready_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = watch::channel(false);

    let (listener, addr) = http::bind(args.http.http_addr).await?;
    info!(%addr, "http listening");
    let http_stop = {
        let mut stop = stop_rx.clone();
        async move {
            let _ = stop.wait_for(|s| *s).await;
        }
    };
    let http_task = tokio::spawn(http::serve_on(
        listener,
        metrics.registry(),
        readiness(ready_rx),
        http_stop,
    ));

    let leadership = Leadership::start(client.clone(), &args.lease).await?;
    let mut leader = leadership.is_leader();

    let (tx, rx) = mpsc::channel(args.controller.status_queue);
    let (failed_tx, mut failed_rx) = mpsc::unbounded_channel();
    let writer = Writer::new(
        client.clone(),
        Publisher::new(client.clone(), args.lease.identity.clone()),
        leader.clone(),
        stop_rx.clone(),
        failed_tx,
        args.controller.writes_in_flight,
    );
    let writer_task = tokio::spawn(writer.run(rx).instrument(info_span!("status")));

    let secret_task = (!args.memberlist.secret_name.is_empty()).then(|| {
        let settings = memberlist::keeper::Settings {
            namespace: args.lease.lease_namespace.clone(),
            name: args.memberlist.secret_name.clone(),
            interval: args.memberlist.check_interval,
        };
        let span = info_span!("memberlist_secret", secret = %settings.name);
        tokio::spawn(
            memberlist::keeper::run(
                client.clone(),
                settings,
                leadership.is_leader(),
                stop_rx.clone(),
                Publisher::new(client.clone(), args.lease.identity.clone()),
                metrics.clone(),
            )
            .instrument(span),
        )
    });
    if secret_task.is_none() {
        info!("--memberlist-secret-name is empty: the memberlist Secret is not managed");
    }

    // Pools and advertisements live in the controller's own namespace,
    // as MetalLB reads them from metallb-system.
    let config_ns = args.lease.lease_namespace.clone();
    let mut inputs: SelectAll<BoxStream<'static, Input>> = futures::stream::select_all([
        watch(Api::<Service>::all(client.clone()), view, Input::Service),
        watch(
            Api::<Namespace>::all(client.clone()),
            stripped,
            Input::Namespace,
        ),
        watch(
            Api::<IPAddressPool>::namespaced(client.clone(), &config_ns),
            stripped,
            Input::Pool,
        ),
        watch(
            Api::<L2Advertisement>::namespaced(client.clone(), &config_ns),
            stripped,
            Input::Advertisement,
        ),
    ]);
    info!(pool_namespace = %config_ns, lb_class = ?args.controller.lb_class, "watching");

    let mut index = Index::new(Settings {
        lb_class: args.controller.lb_class.clone(),
    });
    let mut relists = Relists::default();
    let mut was_synced = false;
    // Listened for from here on, as before: during startup the default
    // action of SIGTERM (exit at once) is right, nothing is handed over yet.
    let shutdown = shutdown::signalled();
    tokio::pin!(shutdown);
    let started = Instant::now();

    let result: anyhow::Result<()> = async {
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => return Ok(()),
                changed = leader.changed() => {
                    if changed.is_err() {
                        anyhow::bail!("the lease task ended");
                    }
                    let leading = *leader.borrow_and_update();
                    if !leading && index.is_seeded() {
                        info!("lost leadership: standing by");
                        index.unseed();
                    }
                    if leading && index.is_synced() && !index.is_seeded() {
                        // Another leader may have written since our watch
                        // last caught up: seed from a fresh list.
                        let seed_start = Instant::now();
                        let services = list_services(&client).await?;
                        index.reset_views(services);
                        index.seed();
                        metrics.observe_reconcile("seed", seed_start.elapsed().as_secs_f64());
                        info!(services = index.service_count(), "leading: seeded from a fresh list");
                    }
                }
                Some(update) = failed_rx.recv() => index.write_failed(&update),
                input = inputs.next() => {
                    let Some(input) = input else { anyhow::bail!("watch streams ended") };
                    let batch_start = Instant::now();
                    handle(&mut index, &mut relists, input);
                    for _ in 1..BATCH {
                        match inputs.next().now_or_never() {
                            Some(Some(input)) => handle(&mut index, &mut relists, input),
                            _ => break,
                        }
                    }
                    if index.is_synced() && !was_synced {
                        was_synced = true;
                        info!(after_ms = started.elapsed().as_millis() as u64,
                            services = index.service_count(), "caches synced");
                    }
                    if was_synced && *leader.borrow() && !index.is_seeded() {
                        index.seed();
                        info!(after_ms = started.elapsed().as_millis() as u64,
                            services = index.service_count(), "leading: seeded");
                    }
                    metrics.observe_reconcile("batch", batch_start.elapsed().as_secs_f64());
                }
            }
            flush(&mut index, &tx, &metrics).await?;
            let ready = was_synced && (index.is_seeded() || !*leader.borrow());
            ready_tx.send_if_modified(|r| std::mem::replace(r, ready) != ready);
        }
    }
    .await;

    // Stop writing first, then hand the Lease over so the standby takes
    // over at once.
    let _ = stop_tx.send(true);
    drop(tx);
    if tokio::time::timeout(std::time::Duration::from_secs(5), writer_task)
        .await
        .is_err()
    {
        warn!("status writer did not stop in time");
    }
    if let Some(task) = secret_task {
        // It ends on the stop signal; a check in flight is not worth waiting for.
        task.abort();
    }
    leadership.step_down().await;
    let _ = http_task.await;
    info!("stopped");
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_the_watch_channel() {
        let (ready, rx) = watch::channel(false);
        let check = readiness(rx);
        assert_eq!(check.check(), Err("not ready: caches not synced".into()));
        ready.send_replace(true);
        assert_eq!(check.check(), Ok(()));
        ready.send_replace(false);
        assert!(check.check().is_err());
    }
}

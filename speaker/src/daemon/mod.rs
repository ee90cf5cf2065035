//! The speaker daemon: Kubernetes watches in, ARP/NDP announcements out.
//!
//! - [`model`] and [`index`] turn Services, EndpointSlices, Nodes,
//!   IPAddressPools and L2Advertisements into a [`desired::World`]
//!   (apply / delete / reset; a relist is a reset).
//! - [`desired`] is the pure core: world + live speakers + interfaces ->
//!   the (IP, interface) pairs this node announces and a decision per
//!   Service.
//! - [`run`] is the loop that recomputes on every change (debounced) and
//!   feeds the transport ([`announce`]), [`events`] and [`metrics`].
//! - [`watch`] holds the kube-runtime watches; [`start`] wires it all.
//!
//! Only [`watch`], [`events`] and [`start`] talk to the API server.

pub mod announce;
pub mod desired;
pub mod events;
pub mod index;
pub mod metrics;
pub mod model;
pub mod run;
pub mod watch;

use crate::announcer::Config;
use crate::cli::{Cli, LogFormat};
use crate::links::netlink::RtNetlink;
use crate::links::Excludes;
use crate::membership::{self, Liveness};
use crate::transport::packet::PacketConfig;
use anyhow::Context;
use desired::World;
use prometheus_client::registry::Registry;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch as channel;
use tokio::task::JoinSet;
use tracing::{info, warn, Instrument};

/// Sets up logging as the flags say.
pub fn init_logging(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("invalid --log-level {level:?}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    }
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// The whole daemon, until SIGTERM or SIGINT.
pub async fn start(cli: Cli) -> anyhow::Result<()> {
    let node = cli.kube.node_name.clone();
    let excludes =
        Excludes::new(&cli.announce.exclude_interfaces).context("--exclude-interfaces")?;
    let client = kube::Client::try_default()
        .await
        .context("building the Kubernetes client")?;
    let mut tasks = JoinSet::new();

    let mut registry = Registry::default();
    let metrics = Arc::new(metrics::Metrics::default());
    metrics.register(&mut registry);

    let watched = watch::spawn(&client, &cli.kube.namespace, &mut tasks);
    let (ready_tx, ready) = channel::channel(false);
    let router = metrics::router(registry, ready);
    let http_addr = cli.http.http_addr;
    tasks.spawn(
        async move {
            if let Err(e) = metrics::serve(http_addr, router).await {
                warn!(addr = %http_addr, error = %e, "the HTTP endpoint stopped");
            }
        }
        .instrument(tracing::info_span!("http", addr = %http_addr)),
    );

    info!(node = %node, "waiting for the first list of every watched kind");
    let mut synced = watched.synced.clone();
    synced
        .wait_for(|s| s.len() == watch::KINDS.len())
        .await
        .context("the watches stopped before listing")?;
    ready_tx.send_replace(true);

    let (live, membership) = start_liveness(&cli, &node, &watched, &metrics, &mut tasks).await;

    let links = RtNetlink::connect().context("opening netlink")?;
    let announce = announce::PacketAnnouncer::new(
        Config {
            repeats: cli.announce.garp_repeats,
            spacing: cli.announce.garp_spacing,
            reannounce: cli.announce.reannounce_interval,
        },
        PacketConfig {
            promiscuous: cli.announce.promiscuous,
            ..PacketConfig::default()
        },
    );
    let gossip_metrics = Arc::clone(&metrics);
    let events = events::spawn_publisher(client, &node, watched.world.clone(), &mut tasks);
    let daemon = run::Daemon {
        node: node.clone(),
        excludes,
        links,
        announce,
        watched,
        live,
        events,
        metrics,
        desired: channel::channel(desired::Desired::default()).0,
    };
    let (port, mut world_rx) = (cli.memberlist.port, daemon.watched.world.clone());
    let shutdown = async move {
        let Some(m) = membership else {
            return terminated().await;
        };
        // Keep the seeds in step with the Node list until told to stop.
        let follow_seeds = async {
            let mut last = Vec::new();
            while world_rx.changed().await.is_ok() {
                let next = seeds(&world_rx.borrow_and_update(), port);
                if next != last {
                    if let Err(e) = m.set_seeds(next.clone()).await {
                        warn!(error = %e, "cannot update gossip seeds");
                    }
                    last = next;
                }
            }
        };
        // Copy the gossip counters into the metrics, as the loop does for
        // the transport's.
        let observe = async {
            let mut tick = tokio::time::interval(run::STATS_EVERY);
            loop {
                tick.tick().await;
                gossip_metrics.observe_membership(&m.stats());
            }
        };
        tokio::select! {
            () = terminated() => {}
            // `observe` never ends, so neither does the join.
            _ = async { tokio::join!(follow_seeds, observe) } => {}
        }
        // Leave first, so peers take over at once instead of after a
        // failed probe, then stop answering.
        info!("leaving gossip");
        if let Err(e) = m.leave().await {
            warn!(error = %e, "leaving gossip failed; peers will notice by probing");
        }
    };
    let transport = daemon
        .run(shutdown)
        .instrument(tracing::info_span!("speaker", node = %node))
        .await;
    drop(transport);
    tasks.abort_all();
    info!("stopped");
    Ok(())
}

/// Gossip when it can start, else the Node Ready fallback; never
/// "everyone is alive".
async fn start_liveness(
    cli: &Cli,
    node: &str,
    watched: &watch::Watched,
    metrics: &metrics::Metrics,
    tasks: &mut JoinSet<()>,
) -> (
    channel::Receiver<BTreeSet<String>>,
    Option<membership::Membership>,
) {
    let mut args = cli.memberlist.clone();
    let world = watched.world.borrow().clone();
    if args.advertise_addr.is_none() && args.bind_addr.is_unspecified() {
        // Peers reach us at the node's InternalIP, as they seed us.
        args.advertise_addr = world.nodes.get(node).and_then(|n| n.internal_ip);
    }
    let seeds = seeds(&world, args.port);
    let liveness = membership::start_liveness(&args, node, seeds).await;
    metrics.set_liveness_source(liveness.source());
    match liveness {
        Liveness::Gossip(m) => {
            info!(source = "gossip", "liveness from memberlist gossip");
            (m.live(), Some(m))
        }
        Liveness::NodeConditions { .. } => {
            let (tx, rx) = channel::channel(node_ready(&world));
            let mut world_rx = watched.world.clone();
            tasks.spawn(
                async move {
                    while world_rx.changed().await.is_ok() {
                        let live = node_ready(&world_rx.borrow_and_update());
                        tx.send_if_modified(|old| {
                            let changed = *old != live;
                            *old = live;
                            changed
                        });
                    }
                }
                .instrument(tracing::info_span!("liveness", source = "node_conditions")),
            );
            (rx, None)
        }
    }
}

/// The Node-Ready fallback as a pure function of the world.
pub fn node_ready(world: &World) -> BTreeSet<String> {
    membership::live_from_node_conditions(
        world
            .nodes
            .values()
            .map(|n| (n.name.as_str(), n.ready.then_some("True"))),
    )
}

/// Gossip seeds: every Node's InternalIP at the memberlist port.
pub fn seeds(world: &World, port: u16) -> Vec<SocketAddr> {
    world
        .nodes
        .values()
        .filter_map(|n| n.internal_ip)
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}

async fn terminated() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => info!(signal = "SIGTERM", "shutting down"),
                _ = tokio::signal::ctrl_c() => info!(signal = "SIGINT", "shutting down"),
            }
        }
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the speaker");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

//! The speaker daemon, wiring only: Kubernetes watches in, the decision
//! of [`ferrolb_core::announce`] in the middle, raw sockets out.
//!
//! - [`watch`] holds the kube-runtime watches; [`index`] applies their
//!   events (apply / delete / reset; a relist is a reset) to a
//!   [`World`](ferrolb_core::announce::World), through [`convert`], the
//!   one place Kubernetes objects become the decision's domain types.
//! - [`run`] is the loop that recomputes the decision on every change
//!   (debounced) and feeds [`sockets`] (one raw socket and announcer per
//!   interface), [`events`], [`l2status`] (the ServiceL2Status records)
//!   and [`metrics`]; on SIGTERM it stops make-before-break
//!   ([`handover`]). Other stations announcing its IPs are followed by
//!   [`conflicts`].
//! - [`liveness`] owns gossip as the secret file comes, changes or breaks,
//!   and falls back to Node Ready conditions while there is no key.
//! - [`start`] wires it all.
//!
//! Only [`watch`], [`events`], [`l2status`] and [`start`] talk to the API
//! server.

pub mod conflicts;
pub mod convert;
pub mod events;
pub mod handover;
pub mod index;
pub mod l2status;
pub mod liveness;
pub mod metrics;
pub mod ownership;
pub mod partial;
pub mod run;
pub mod sockets;
pub mod watch;

use crate::announcer::Config;
use crate::cli::Cli;
use crate::links::netlink::RtNetlink;
use crate::membership::secret_file;
use crate::transport::packet::PacketConfig;
use anyhow::Context;
use ferrolb_core::announce::interfaces::Excludes;
use ferrolb_core::announce::Desired;
use ferrolb_core::election::Rules;
use ferrolb_core::ownership::Mode;
use ferrolb_runtime::{http, shutdown};
pub use liveness::{node_ready, seeds};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio::sync::{mpsc, watch as channel};
use tokio::task::JoinSet;
use tracing::{info, warn, Instrument};

/// Other stations' announcements waiting for the daemon before the
/// transports drop them: a takeover of thousands of IPs by one peer comes
/// as a burst of two frames per IPv4 address.
pub const OBSERVED_QUEUE: usize = 4096;

/// The whole daemon, until SIGTERM or SIGINT.
pub async fn start(cli: Cli) -> anyhow::Result<()> {
    let node = cli.kube.node_name.clone();
    let excludes =
        Excludes::new(&cli.announce.exclude_interfaces).context("--exclude-interfaces")?;
    let ownership_config = cli
        .ownership
        .config()
        .map_err(|reason| anyhow::anyhow!("invalid ownership flags: {reason}"))?;
    let client = kube::Client::try_default()
        .await
        .context("building the Kubernetes client")?;
    let mut tasks = JoinSet::new();

    let mut registry = Registry::default();
    let metrics = Arc::new(metrics::Metrics::new(cli.http.metallb_metrics));
    metrics.register(&mut registry);

    // Polled from the start, so /readyz reports a broken file at once.
    let (secret, secret_task) = secret_file::watch_file(
        cli.memberlist.secret_file.clone(),
        cli.memberlist.secret_poll,
    )
    .await;
    metrics.set_secret_state(&secret.borrow());

    let watched = watch::spawn(
        &client,
        &cli.kube.namespace,
        cli.kube.lb_class.clone(),
        &mut tasks,
    );
    let (ready_tx, ready) = channel::channel(false);
    let readiness = {
        let secret = secret.clone();
        move || metrics::readiness(*ready.borrow(), &secret.borrow())
    };
    let http_addr = cli.http.http_addr;
    tasks.spawn(
        async move {
            // Ends with the task (aborted on the way out); a failure is
            // logged and the speaker announces on without its endpoints.
            let serving = http::serve(
                http_addr,
                Arc::new(registry),
                readiness,
                std::future::pending(),
            );
            if let Err(e) = serving.await {
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

    let records = l2status::spawn_writer(client.clone(), watched.world.clone(), &mut tasks);
    let events = events::spawn_publisher(client.clone(), &node, watched.world.clone(), &mut tasks);
    let mut liveness = liveness::spawn(
        cli.memberlist.clone(),
        node.clone(),
        watched.world.clone(),
        secret,
        Arc::clone(&metrics),
        Some(events.clone()),
    );

    let ownership = if ownership_config.mode == Mode::Sticky {
        let records = l2status::recorded_owners(&client).await;
        let port = liveness
            .claims()
            .context("the claims channel was taken twice")?;
        let claims = ownership::Claims::new(&node, ownership_config, records);
        Some((claims, port))
    } else {
        info!("--ownership hash: owners by MetalLB's hash, no claims");
        None
    };
    let links = RtNetlink::connect().context("opening netlink")?;
    let (observer, observed) = mpsc::channel(OBSERVED_QUEUE);
    let announce = sockets::PacketAnnouncer::observed(
        Config {
            repeats: cli.announce.garp_repeats,
            spacing: cli.announce.garp_spacing,
            reannounce: cli.announce.reannounce_interval,
            probe: cli.announce.conflict_probe_interval,
            probe_rate: cli.announce.conflict_probe_rate,
        },
        PacketConfig {
            promiscuous: cli.announce.promiscuous,
            ..PacketConfig::default()
        },
        Some(observer),
    );
    let daemon = run::Daemon {
        node: node.clone(),
        excludes,
        rules: Rules {
            ignore_exclude_lb: cli.announce.ignore_exclude_lb,
        },
        links,
        announce,
        watched,
        live: liveness.live(),
        events,
        metrics,
        assigned_hold: events::ASSIGNED_HOLD,
        records: Some(l2status::Records::new(events::ASSIGNED_HOLD, records)),
        desired: channel::channel(Desired::default()).0,
        observed,
        handover_timeout: cli.announce.shutdown_handover_timeout,
        conflicts: conflicts::Settings {
            forget_after: cli.announce.conflict_forget_after,
            ..conflicts::Settings::default()
        },
        ownership,
    };
    // On SIGTERM: freeze, then leave gossip (peers take over at once
    // instead of after a failed probe) while answering until each new
    // owner announces.
    let signalled = shutdown::signalled();
    let stopped = daemon
        .run(
            async move {
                signalled.await;
            },
            liveness.leave(),
        )
        .instrument(tracing::info_span!("speaker", node = %node))
        .await;
    drop(stopped.announce);
    secret_task.abort();
    tasks.abort_all();
    info!("stopped");
    Ok(())
}

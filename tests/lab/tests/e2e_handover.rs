//! End-to-end, issue 14's handover targets: speakers stopped on purpose
//! must cost the client nothing. A rolling restart of every speaker of a
//! 3-node lab and a drained node (speaker SIGTERM, node up), each while
//! the client connects every 10 ms to every IP of 10 dual-stack Services
//! ([`ferrolb_lab::load`]: a failed request is a connect error or no answer
//! within 1 s). No request may go unserved; a connection the old owner
//! accepted an instant before its IP moved is reset by the new owner (no
//! L2 speaker can move connection state), so those resets, told apart by
//! the IP's answering node changing across them, are reported but not
//! held against the handover (`Tally::reset_at_move`). A third test shows
//! requests do fail when a node really dies, so the zeros are measured,
//! not vacuous. Root only, like every lab test.

// Shared with the other lab tests, which use the helpers this one does not.
#[allow(dead_code)]
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use ferrolb_lab::cluster::Cluster;
use ferrolb_lab::handover::{self, Handover};
use ferrolb_lab::load::{Load, LoadOptions, Tally};

const PORT: u16 = 8080;
/// Dual stack: 20 IPs, spread over the 3 nodes.
const SERVICES: usize = 10;

async fn lab(test: &str) -> (tokio::sync::MutexGuard<'static, ()>, Cluster) {
    common::lab(test, "flbho").await
}

async fn targets(c: &Cluster) -> Vec<SocketAddr> {
    handover::spread_services(c, "svc", SERVICES, PORT)
        .await
        .expect("10 Services answer")
}

/// Every speaker's last log lines, for a failure message: a failed
/// request is the speaker's doing only if its log shows the handover.
fn speaker_logs(c: &Cluster) -> String {
    c.nodes
        .iter()
        .map(|n| format!("--- {}\n{}\n", n.name, c.log_tail(&n.name, 40)))
        .collect()
}

fn explain(h: &Handover, c: &Cluster) -> String {
    format!(
        "{} (first at {:?}, last at {:?} from the start of the requests); steps {:#?}\n\
         speakers' logs (all of them in {}):\n{}",
        h.tally.describe(),
        h.tally.first_failure,
        h.tally.last_failure,
        h.steps,
        c.dir().display(),
        speaker_logs(c)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn a_rolling_restart_of_every_speaker_fails_no_request() {
    let (_g, mut c) = lab("a_rolling_restart_of_every_speaker_fails_no_request").await;
    let targets = targets(&c).await;
    let h = handover::rolling_restart(&mut c, &targets)
        .await
        .expect("every speaker restarts and settles");
    assert_eq!(h.steps.len(), 3);
    assert!(h.tally.requests > 1_000, "{}", h.tally.describe());
    assert_eq!(h.tally.failed_not_at_move(), 0, "{}", explain(&h, &c));
    for s in &h.steps {
        assert!(
            s.exit_status.contains("exit status: 0"),
            "{} exited with {} on SIGTERM",
            s.node,
            s.exit_status
        );
    }
    assert!(c.dead_children().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn a_drained_node_fails_no_request() {
    let (_g, mut c) = lab("a_drained_node_fails_no_request").await;
    let targets = targets(&c).await;
    let h = handover::drain(&mut c, &targets)
        .await
        .expect("the drained speaker exits and comes back");
    assert_eq!(h.tally.failed_not_at_move(), 0, "{}", explain(&h, &c));
    // The drained node owned IPs, and they moved: the client was answered
    // by another node.
    assert!(h.tally.answer_changes > 0, "{}", explain(&h, &c));
    assert!(
        h.steps[0].exit_status.contains("exit status: 0"),
        "{:?}",
        h.steps[0]
    );
    assert!(c.dead_children().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn requests_to_a_dead_node_fail_so_the_handover_zeros_are_measured() {
    let (_g, mut c) = lab("requests_to_a_dead_node_fail_so_the_handover_zeros_are_measured").await;
    let targets = targets(&c).await;
    let load = Load::start(
        &c.client,
        targets.clone(),
        LoadOptions::every(handover::INTERVAL, Duration::from_secs(20)),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let node = handover::busiest_owner(&c, &targets).expect("an owner");
    c.kill_node(&node).unwrap();
    // Detection and takeover take a few hundred ms; then every IP answers.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tally = Tally::of(&load.finish().await.unwrap());
    assert!(tally.failed_not_at_move() > 0, "{}", tally.describe());
    assert!(tally.answer_changes > 0, "{}", tally.describe());
    c.restore_node(&node).unwrap();
}

//! Two replicas: only the leader writes; the standby takes over when the
//! leader stops (gracefully or by crashing) and serves new Services.

mod support;

use support::{lb, Cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_when_the_leader_goes_away() {
    let cluster = Cluster::start().await;
    cluster.pool("blue", &["198.51.100.0/28"]).await;
    let mut a = cluster.controller("replica-a", &[]);
    assert!(a.wait_log("leading: seeded").await, "{}", a.log());
    let mut b = cluster.controller("replica-b", &[]);
    assert!(b.wait_log("caches synced").await, "{}", b.log());

    cluster.create_service(&lb("default", "one")).await;
    cluster.wait_ips("default", "one", &["198.51.100.0"]).await;
    assert!(
        !b.log().contains("assigned"),
        "the standby wrote:\n{}",
        b.log()
    );

    // Graceful: SIGTERM releases the Lease, so B takes over at once.
    a.terminate();
    assert!(a.log().contains("stopped"), "{}", a.log());
    cluster.create_service(&lb("default", "two")).await;
    cluster.wait_ips("default", "two", &["198.51.100.1"]).await;
    assert!(
        b.log().contains("leading: seeded from a fresh list"),
        "{}",
        b.log()
    );

    // Crash: C waits for the Lease to expire, then serves.
    let c = cluster.controller("replica-c", &[]);
    assert!(c.wait_log("caches synced").await, "{}", c.log());
    b.kill();
    cluster.create_service(&lb("default", "three")).await;
    cluster
        .wait_ips("default", "three", &["198.51.100.2"])
        .await;
    assert_eq!(cluster.ips("default", "one").await, ["198.51.100.0"]);
    assert_eq!(cluster.ips("default", "two").await, ["198.51.100.1"]);
}

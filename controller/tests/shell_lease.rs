//! Leader election against the in-process API test server, with the short
//! 2 s lease duration so takeovers happen within the test's patience.

use std::time::Duration;

use ferrolb_controller::cli::LeaseArgs;
use ferrolb_controller::lease::Leadership;
use kube_test_server::TestServer;
use tokio::sync::watch;
use tokio::time::Instant;

fn args(identity: &str, lease: &str) -> LeaseArgs {
    LeaseArgs {
        lease_name: lease.into(),
        lease_namespace: "default".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(2),
    }
}

async fn server() -> TestServer {
    TestServer::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("test server")
}

async fn start(server: &TestServer, identity: &str, lease: &str) -> Leadership {
    let client = server.client().await.expect("client");
    Leadership::start(client, &args(identity, lease))
        .await
        .expect("start")
}

/// Waits up to `within` for `rx` to read `want`; returns how long it took.
async fn wait(rx: &mut watch::Receiver<bool>, want: bool, within: Duration) -> Option<Duration> {
    let begun = Instant::now();
    tokio::time::timeout(within, rx.wait_for(|v| *v == want))
        .await
        .ok()?
        .ok()?;
    Some(begun.elapsed())
}

/// Waits until one of `a`, `b` leads; returns whether it is `a`.
async fn a_leads(a: &Leadership, b: &Leadership) -> bool {
    let (mut ra, mut rb) = (a.is_leader(), b.is_leader());
    tokio::time::timeout(Duration::from_secs(10), async {
        tokio::select! {
            _ = ra.wait_for(|v| *v) => {}
            _ = rb.wait_for(|v| *v) => {}
        }
    })
    .await
    .expect("someone leads within 10s");
    let leads = *a.is_leader().borrow();
    leads
}

/// Starts two replicas and returns them as (leader, standby).
async fn elect(server: &TestServer, lease: &str) -> (Leadership, Leadership) {
    let a = start(server, "replica-a", lease).await;
    let b = start(server, "replica-b", lease).await;
    if a_leads(&a, &b).await {
        (a, b)
    } else {
        (b, a)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_lease_elect_exactly_one_leader() {
    let server = server().await;
    let (leader, standby) = elect(&server, "exactly-one").await;
    let (rl, rs) = (leader.is_leader(), standby.is_leader());
    // Through several renewals (every 1 s): never two writers, never none.
    for _ in 0..60 {
        assert!(*rl.borrow(), "the leader kept leading");
        assert!(!*rs.borrow(), "the standby never leads alongside");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    leader.step_down().await;
    standby.step_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_quickly_after_the_leader_steps_down() {
    let server = server().await;
    let (leader, standby) = elect(&server, "step-down").await;
    let mut rl = leader.is_leader();
    let mut rs = standby.is_leader();
    let stepping = tokio::spawn(leader.step_down());
    assert!(
        wait(&mut rl, false, Duration::from_secs(1)).await.is_some(),
        "the old leader stops at once"
    );
    let took = wait(&mut rs, true, Duration::from_secs(3)).await;
    assert!(took.is_some(), "the standby leads within 3s");
    stepping.await.unwrap();
    standby.step_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_leadership_releases_the_lease_too() {
    let server = server().await;
    let (leader, standby) = elect(&server, "dropped").await;
    let mut rs = standby.is_leader();
    drop(leader);
    let took = wait(&mut rs, true, Duration::from_secs(3)).await;
    assert!(took.is_some(), "the standby leads within 3s");
    standby.step_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_after_the_lease_expires_when_the_leader_dies() {
    let server = server().await;
    // Each replica on its own runtime: shutting one down is a crash, where
    // no task gets to release anything or renew again.
    let spawn_replica = |identity: &'static str| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let kubeconfig = server.kubeconfig();
        let task = runtime.spawn(async move {
            let kc = kube::config::Kubeconfig::from_yaml(&kubeconfig).unwrap();
            let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .unwrap();
            let client = kube::Client::try_from(config).unwrap();
            Leadership::start(client, &args(identity, "death"))
                .await
                .unwrap()
        });
        (runtime, task)
    };
    let (rt_a, a) = spawn_replica("replica-a");
    let (rt_b, b) = spawn_replica("replica-b");
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let (dying_rt, dying, surviving_rt, survivor) = if a_leads(&a, &b).await {
        (rt_a, a, rt_b, b)
    } else {
        (rt_b, b, rt_a, a)
    };
    let mut rs = survivor.is_leader();
    dying_rt.shutdown_background();
    let died = Instant::now();
    let took = wait(&mut rs, true, Duration::from_secs(10))
        .await
        .expect("the survivor leads within 10s");
    // The Lease was renewed at most a second before the crash (every third
    // of 2 s), so it stayed valid for about another second at least.
    assert!(
        died.elapsed() >= Duration::from_millis(900),
        "took over before the lease expired: {took:?}"
    );
    drop(dying);
    survivor.step_down().await;
    surviving_rt.shutdown_background();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_api_server_stops_leading_before_the_lease_expires() {
    let server = server().await;
    let leadership = start(&server, "lonely", "cut-off").await;
    let mut leader = leadership.is_leader();
    wait(&mut leader, true, Duration::from_secs(10))
        .await
        .expect("leads");
    server.stop().await;
    let took = wait(&mut leader, false, Duration::from_secs(3)).await;
    assert!(
        took.is_some_and(|t| t < Duration::from_secs(2)),
        "stopped leading within the lease duration: {took:?}"
    );
    server.restart().await.expect("restart");
    // The manager's and the watch's backoffs may each reach several seconds.
    assert!(
        wait(&mut leader, true, Duration::from_secs(40))
            .await
            .is_some(),
        "leads again once the API server is back"
    );
    leadership.step_down().await;
}

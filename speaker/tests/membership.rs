//! Gossip membership between real members on 127.0.0.1, each on its own
//! ephemeral UDP port.
//!
//! Assertions use generous bounds so a loaded 2-core machine does not make
//! them flaky; the measured times are printed (run with `--nocapture`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrolb_speaker::membership::auth::LIVENESS_MAGIC;
use ferrolb_speaker::membership::heartbeat::wire::{self, Message};
use ferrolb_speaker::membership::{
    HeartbeatConfig, Membership, MembershipConfig, Secret, SpeakerId, Timing,
};
use tokio::sync::watch;

const CONVERGE: Duration = Duration::from_secs(10);
const DETECT: Duration = Duration::from_secs(5);

fn secret() -> Secret {
    Secret::from_bytes(b"ferrolb-test-secret-0123456789", "test").unwrap()
}

fn wrong_secret() -> Secret {
    Secret::from_bytes(b"ferrolb-WRONG-secret-012345678", "test").unwrap()
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start_at(name: &str, bind: SocketAddr, seeds: &[SocketAddr], s: Secret) -> Membership {
    start_timed(name, bind, seeds, s, Timing::lan()).await
}

async fn start_timed(
    name: &str,
    bind: SocketAddr,
    seeds: &[SocketAddr],
    s: Secret,
    timing: Timing,
) -> Membership {
    let heartbeat = MembershipConfig::new(name, bind, s.clone()).heartbeat;
    start_with(name, bind, seeds, s, timing, heartbeat).await
}

async fn start_with(
    name: &str,
    bind: SocketAddr,
    seeds: &[SocketAddr],
    s: Secret,
    timing: Timing,
    heartbeat: Option<HeartbeatConfig>,
) -> Membership {
    let mut config = MembershipConfig::new(name, bind, s);
    config.seeds = seeds.to_vec();
    config.timing = timing;
    config.heartbeat = heartbeat;
    // The previous run's socket may close a moment after its task is
    // aborted; retry the bind briefly.
    for _ in 0..50 {
        match Membership::start(config.clone()).await {
            Ok(m) => return m,
            Err(_) => tokio::time::sleep(Duration::from_millis(40)).await,
        }
    }
    Membership::start(config).await.expect("bind")
}

async fn start(name: &str, seeds: &[SocketAddr]) -> Membership {
    start_at(name, loopback(), seeds, secret()).await
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Waits until `rx` shows exactly `want`; false after `limit`.
async fn wait_for_set(
    rx: &mut watch::Receiver<BTreeSet<String>>,
    want: &BTreeSet<String>,
    limit: Duration,
) -> bool {
    matches!(
        tokio::time::timeout(limit, rx.wait_for(|s| s == want)).await,
        Ok(Ok(_))
    )
}

/// Waits until every receiver shows `want`.
async fn all_see(members: &[&Membership], want: &[&str], limit: Duration) -> bool {
    let want = set(want);
    for m in members {
        let mut rx = m.live();
        if !wait_for_set(&mut rx, &want, limit).await {
            eprintln!("{} sees {:?}", m.identity().name, *rx.borrow());
            return false;
        }
    }
    true
}

/// Three members, b and c seeded with a only.
async fn cluster() -> (Membership, Membership, Membership) {
    cluster_timed(Timing::lan()).await
}

async fn cluster_timed(timing: Timing) -> (Membership, Membership, Membership) {
    let heartbeat = MembershipConfig::new("x", loopback(), secret()).heartbeat;
    cluster_with(timing, heartbeat).await
}

async fn cluster_with(
    timing: Timing,
    hb: Option<HeartbeatConfig>,
) -> (Membership, Membership, Membership) {
    let a = start_with("node-a", loopback(), &[], secret(), timing.clone(), hb).await;
    let seeds = [a.local_addr()];
    let b = start_with("node-b", loopback(), &seeds, secret(), timing.clone(), hb).await;
    let c = start_with("node-c", loopback(), &seeds, secret(), timing, hb).await;
    assert!(
        all_see(&[&a, &b, &c], &["node-a", "node-b", "node-c"], CONVERGE).await,
        "three members did not converge"
    );
    (a, b, c)
}

fn summary(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let ms: Vec<f64> = times
        .iter()
        .map(|t| (t.as_secs_f64() * 10_000.0).round() / 10.0)
        .collect();
    eprintln!(
        "{label}: n={} min={}ms median={}ms max={}ms all={ms:?}",
        ms.len(),
        ms[0],
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
}

#[tokio::test]
async fn three_members_on_loopback_converge_to_the_full_set() {
    let started = Instant::now();
    let (a, b, c) = cluster().await;
    eprintln!("converged in {}ms", started.elapsed().as_millis());
    assert_eq!(a.stats().rejected, 0);
    assert_eq!(b.stats().malformed, 0);
    drop(c);
}

async fn measure_crash_detection(label: &str, timing: Timing) {
    measure_crash_detection_with(label, timing, None, DETECT).await;
}

async fn measure_crash_detection_with(
    label: &str,
    timing: Timing,
    hb: Option<HeartbeatConfig>,
    limit: Duration,
) {
    let mut times = Vec::new();
    for _ in 0..10 {
        let (a, b, c) = cluster_with(timing.clone(), hb).await;
        let killed = Instant::now();
        // Dropping aborts the task and closes the socket: no leave is sent,
        // as when a node loses power.
        drop(c);
        assert!(
            all_see(&[&a, &b], &["node-a", "node-b"], limit).await,
            "a killed member was not dropped within {limit:?}"
        );
        times.push(killed.elapsed());
    }
    summary(label, times);
}

#[tokio::test]
async fn a_killed_member_is_dropped_by_the_others_within_the_bound() {
    measure_crash_detection(
        "crash detection, SWIM alone, fast (150/75/250ms)",
        Timing::fast(),
    )
    .await;
}

/// SWIM so slow it cannot detect anything within a second: what is seen
/// within a second is the heartbeats' doing.
fn slow_swim() -> Timing {
    Timing {
        probe_period: Duration::from_secs(2),
        probe_rtt: Duration::from_secs(1),
        suspect_timeout: Duration::from_secs(5),
        ..Timing::lan()
    }
}

fn default_heartbeat() -> Option<HeartbeatConfig> {
    MembershipConfig::new("x", loopback(), secret()).heartbeat
}

#[tokio::test]
async fn heartbeats_drop_a_killed_member_long_before_swim_would() {
    measure_crash_detection_with(
        "crash detection, heartbeats 20ms x 5, SWIM slowed to 2s/1s/5s",
        slow_swim(),
        default_heartbeat(),
        Duration::from_secs(1),
    )
    .await;
}

#[tokio::test]
async fn a_killed_member_is_dropped_with_conservative_timing_too() {
    let conservative = Timing {
        probe_period: Duration::from_millis(200),
        probe_rtt: Duration::from_millis(100),
        suspect_timeout: Duration::from_millis(300),
        ..Timing::fast()
    };
    measure_crash_detection(
        "crash detection, conservative (200/100/300ms)",
        conservative,
    )
    .await;
}

#[tokio::test]
async fn a_graceful_leave_removes_the_member_at_once() {
    let mut times = Vec::new();
    for _ in 0..5 {
        let (a, b, c) = cluster().await;
        let mut c_live = c.live();
        let leaving = Instant::now();
        // Watch the peers while the leave is still lingering.
        let (left, seen) = tokio::join!(c.leave(), async {
            let seen = all_see(&[&a, &b], &["node-a", "node-b"], DETECT).await;
            (seen, leaving.elapsed())
        });
        left.expect("leave");
        assert!(seen.0, "a leave was not seen within {DETECT:?}");
        times.push(seen.1);
        assert!(
            c_live.borrow_and_update().is_empty(),
            "a left speaker announces nothing"
        );
    }
    summary("graceful leave seen by both peers", times);
}

#[tokio::test]
async fn a_member_with_the_wrong_secret_never_joins() {
    let a = start("node-a", &[]).await;
    let b = start("node-b", &[a.local_addr()]).await;
    assert!(all_see(&[&a, &b], &["node-a", "node-b"], CONVERGE).await);
    let mut a_live = a.live();
    a_live.borrow_and_update();

    // Same name as a real member, seeded with both: it gossips and probes
    // for a while, and nothing it sends is believed.
    let intruder = start_at(
        "node-b",
        loopback(),
        &[a.local_addr(), b.local_addr()],
        wrong_secret(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    assert_eq!(*intruder.live().borrow(), set(&["node-b"]));
    assert!(
        !a_live.has_changed().unwrap(),
        "the intruder changed a's view"
    );
    assert_eq!(*a.live().borrow(), set(&["node-a", "node-b"]));
    assert!(a.stats().rejected > 0, "{:?}", a.stats());
    assert_eq!(
        intruder.stats().rejected,
        0,
        "the members never answered the intruder"
    );
}

#[tokio::test]
async fn forged_down_messages_without_the_secret_change_nothing() {
    let a = start("node-a", &[]).await;
    let b = start("node-b", &[a.local_addr()]).await;
    assert!(all_see(&[&a, &b], &["node-a", "node-b"], CONVERGE).await);
    let mut a_live = a.live();
    a_live.borrow_and_update();

    // A well-formed foca message claiming b is down, as an attacker that
    // knows the protocol but not the secret would write it.
    let socket = tokio::net::UdpSocket::bind(loopback()).await.unwrap();
    let attacker = SpeakerId::new("intruder", socket.local_addr().unwrap());
    let mut foca = foca::Foca::new(
        attacker,
        foca::Config::simple(),
        rand::make_rng::<rand::rngs::StdRng>(),
        foca::PostcardCodec,
    );
    let mut rt = foca::AccumulatingRuntime::new();
    let updates = [
        foca::Member::alive(a.identity().clone()),
        foca::Member::down(b.identity().clone()),
    ];
    foca.apply_many(updates.into_iter(), true, &mut rt).unwrap();
    let before = a.stats().rejected;
    let mut sent = 0;
    for _ in 0..10 {
        foca.gossip(&mut rt).unwrap();
        while let Some((to, data)) = rt.to_send() {
            socket.send_to(&data, to.addr).await.unwrap();
            socket
                .send_to(&wrong_secret().seal(&data), to.addr)
                .await
                .unwrap();
            sent += 2;
        }
    }
    assert!(sent >= 20);
    tokio::time::sleep(Duration::from_secs(1)).await;

    assert!(
        !a_live.has_changed().unwrap(),
        "a forged down changed a's view: {:?}, {:?}",
        *a_live.borrow(),
        a.stats()
    );
    assert_eq!(*a.live().borrow(), set(&["node-a", "node-b"]));
    assert_eq!(a.stats().rejected - before, sent, "{:?}", a.stats());
}

#[tokio::test]
async fn a_restarted_member_is_alive_again_after_being_declared_down() {
    let (a, b, c) = cluster().await;
    let c_addr = c.local_addr();
    let old = c.identity().clone();
    drop(c);
    assert!(all_see(&[&a, &b], &["node-a", "node-b"], DETECT).await);

    let restarted = Instant::now();
    let c = start_at("node-c", c_addr, &[a.local_addr()], secret()).await;
    assert!(c.identity().boot > old.boot);
    assert!(all_see(&[&a, &b, &c], &["node-a", "node-b", "node-c"], CONVERGE).await);
    eprintln!(
        "restarted member seen alive after {}ms",
        restarted.elapsed().as_millis()
    );
}

#[tokio::test]
async fn a_member_restarted_before_detection_replaces_its_old_run() {
    let (a, b, c) = cluster().await;
    let c_addr = c.local_addr();
    drop(c);
    let c = start_at("node-c", c_addr, &[a.local_addr()], secret()).await;
    let all = ["node-a", "node-b", "node-c"];
    assert!(all_see(&[&a, &b, &c], &all, CONVERGE).await);
    // Wait past a whole detection cycle: the old run's failure must not
    // take the new one down with it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(all_see(&[&a, &b, &c], &all, Duration::from_secs(1)).await);
}

// The flooder gets its own worker, as an attacking host would have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_random_datagrams_does_not_stop_convergence() {
    use rand::RngExt;

    let a = start("node-a", &[]).await;
    let target = a.local_addr();
    let flooder = tokio::spawn(async move {
        let socket = tokio::net::UdpSocket::bind(loopback()).await.unwrap();
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let began = Instant::now();
        let deadline = began + CONVERGE;
        let mut sent = 0u32;
        let mut buf = [0u8; 1500];
        while sent < 20_000 && Instant::now() < deadline {
            let len = rng.random_range(0..buf.len());
            rng.fill(&mut buf[..len]);
            let datagram = match sent % 4 {
                // Garbage, garbage behind our magic, and garbage properly
                // sealed (as a buggy or hostile insider would send).
                0 | 1 => buf[..len].to_vec(),
                2 => [b"FLB\x01".as_slice(), &buf[..len]].concat(),
                _ => secret().seal(&buf[..len.min(1300)]),
            };
            let _ = socket.send_to(&datagram, target).await;
            sent += 1;
            // About 10k datagrams a second: a flood for a debug build.
            if sent.is_multiple_of(64) {
                tokio::time::sleep(Duration::from_millis(6)).await;
            }
        }
        (sent, began.elapsed())
    });
    // Let the flood get going, so the others join through it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let b = start("node-b", &[target]).await;
    let c = start("node-c", &[target]).await;
    let converged = all_see(&[&a, &b, &c], &["node-a", "node-b", "node-c"], CONVERGE).await;
    let converged_after = started.elapsed();
    let (sent, flooded_for) = flooder.await.unwrap();
    let stats = a.stats();
    eprintln!(
        "flood of {sent} datagrams over {}ms: converged={converged} after {}ms, {stats:?}",
        flooded_for.as_millis(),
        converged_after.as_millis()
    );
    assert!(converged);
    assert!(stats.rejected > 0 && stats.malformed > 0, "{stats:?}");
    // Still healthy after the flood.
    assert!(all_see(&[&a, &b, &c], &["node-a", "node-b", "node-c"], CONVERGE).await);
}

#[tokio::test]
async fn seeds_given_later_let_a_lone_member_join() {
    let a = start("node-a", &[]).await;
    let b = start("node-b", &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*b.live().borrow(), set(&["node-b"]));
    b.set_seeds(vec![a.local_addr(), b.local_addr()])
        .await
        .unwrap();
    assert!(all_see(&[&a, &b], &["node-a", "node-b"], CONVERGE).await);
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error() {
    let a = start("node-a", &[]).await;
    let config = MembershipConfig::new("node-b", a.local_addr(), secret());
    let err = Membership::start(config).await.unwrap_err();
    assert_eq!(err.reason(), "BindFailed");
    assert!(
        err.to_string().contains(&a.local_addr().to_string()),
        "{err}"
    );
}

/// Seals a heartbeat or verdict as a holder of `key` would.
fn sealed(key: &Secret, msg: &Message<'_>) -> Vec<u8> {
    let mut payload = Vec::new();
    wire::encode(msg, &mut payload).unwrap();
    let mut out = Vec::new();
    key.seal_as(LIVENESS_MAGIC, &payload, &mut out);
    out
}

#[tokio::test]
async fn forged_replayed_future_dated_and_malformed_heartbeats_never_keep_a_dead_member_alive() {
    let (a, b, c) = cluster_with(slow_swim(), default_heartbeat()).await;
    let targets = [a.local_addr(), b.local_addr()];
    let epoch = c.identity().boot;
    let before = a.stats().heartbeat;
    drop(c);
    let killed = Instant::now();
    let socket = tokio::net::UdpSocket::bind(loopback()).await.unwrap();
    let hb = |epoch: u64, seq: u64| Message::Heartbeat {
        from: "node-c",
        epoch,
        seq,
        interval: Duration::from_millis(20),
        multiplier: 5,
        last: false,
    };
    let far_future = epoch + 3_600_000_000;
    let mut valid = sealed(&secret(), &hb(epoch, 1));
    // Right key, garbage inside: authenticated but not decodable.
    let mut garbage = Vec::new();
    secret().seal_as(LIVENESS_MAGIC, b"\x01\x00not a heartbeat", &mut garbage);
    let attack = async {
        for round in 0..100u64 {
            let datagrams = [
                // Without the key: a fresh-looking heartbeat for c.
                sealed(&wrong_secret(), &hb(epoch, 1_000_000 + round)),
                // Replayed: c's own early heartbeats, sealed right.
                sealed(&secret(), &hb(epoch, 1 + round % 3)),
                // Future-dated: an epoch an hour ahead.
                sealed(&secret(), &hb(far_future, round + 1)),
                garbage.clone(),
                // Truncated.
                valid[..10].to_vec(),
            ];
            for d in &datagrams {
                for t in targets {
                    socket.send_to(d, t).await.unwrap();
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let survivors = [&a, &b];
    let watch = async {
        let seen = all_see(&survivors, &["node-a", "node-b"], Duration::from_secs(1)).await;
        (seen, killed.elapsed())
    };
    let (_, (seen, after)) = tokio::join!(attack, watch);
    assert!(seen, "the dead member was kept alive");
    eprintln!(
        "dead member dropped under attack after {}ms",
        after.as_millis()
    );
    valid.clear();
    let after = a.stats().heartbeat;
    assert!(after.unauthenticated > before.unauthenticated, "{after:?}");
    assert!(after.replayed > before.replayed, "{after:?}");
    assert!(after.future_dated > before.future_dated, "{after:?}");
    assert!(
        after.malformed >= before.malformed + 2,
        "garbage and truncated: {after:?}"
    );
}

#[tokio::test]
async fn a_forged_verdict_declares_nobody_down() {
    let (a, b, c) = cluster_with(slow_swim(), default_heartbeat()).await;
    let all = ["node-a", "node-b", "node-c"];
    let socket = tokio::net::UdpSocket::bind(loopback()).await.unwrap();
    let before = a.stats().heartbeat;
    for seq in 1..=50 {
        for from in ["node-a", "node-b"] {
            let v = Message::Verdict {
                from,
                epoch: 1,
                seq,
                accused: "node-c",
                down: true,
            };
            let d = sealed(&wrong_secret(), &v);
            for t in [a.local_addr(), b.local_addr()] {
                socket.send_to(&d, t).await.unwrap();
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(all_see(&[&a, &b, &c], &all, Duration::from_millis(100)).await);
    assert!(a.stats().heartbeat.unauthenticated >= before.unauthenticated + 100);
}

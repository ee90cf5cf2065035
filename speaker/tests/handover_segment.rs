//! The graceful stop's handover over a simulated L2 segment, no root: A
//! owns the address, stops make-before-break while B takes it; a client
//! keeps asking throughout. A answers until B's gratuitous ARP (IPv4) or
//! unsolicited advertisement (IPv6) reaches it, then at once no more; with
//! nobody taking over it answers until the bound. Waits are bounded.

mod support;

use ferrolb_speaker::announcer::Config;
use ferrolb_speaker::daemon::handover::hand_over;
use ferrolb_speaker::transport::memory::Hub;
use ferrolb_speaker::transport::run::Running;
use ferrolb_speaker::transport::Datalink;
use ferrolb_speaker::wire::MacAddr;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{answers_from, first_unasked_from, Asker, Expected};
use tokio::sync::mpsc;

const MAC_A: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
const MAC_B: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0b]);
const CLIENT: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
/// How long B waits before taking over, as peers do after the leave.
const TAKEOVER_AFTER: Duration = Duration::from_millis(200);
/// The client asks this often.
const ASK_EVERY: Duration = Duration::from_millis(20);
/// Frame queues and a thread hop or two: how late A may still answer
/// after withdrawing, and how long after B's announcement it withdraws.
const SLACK: Duration = Duration::from_millis(60);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pair(vip: IpAddr) -> Vec<(IpAddr, String)> {
    vec![(vip, "eth0".to_string())]
}

/// A (observed) and B on one hub, and a client asking for `vip` from `me`.
fn segment(
    me: IpAddr,
    vip: IpAddr,
) -> (
    Running,
    mpsc::Receiver<ferrolb_speaker::announcer::Observation>,
    Running,
    Asker,
) {
    let hub = Hub::new();
    let link = |mac| -> Arc<dyn Datalink> { Arc::new(hub.endpoint("eth0", mac)) };
    let (observer, observed) = mpsc::channel(64);
    let a = Running::spawn_observed(vec![link(MAC_A)], Config::default(), Some(observer)).unwrap();
    let b = Running::spawn(vec![link(MAC_B)], Config::default()).unwrap();
    a.set_desired(pair(vip));
    let client: Arc<dyn Datalink> = Arc::new(hub.endpoint("eth0", CLIENT));
    let asker = Asker::start(client, me, vip, ASK_EVERY, Duration::from_secs(10));
    (a, observed, b, asker)
}

async fn a_answers_until_b_announces(me: IpAddr, vip: IpAddr) {
    let (mut a, mut observed, b, asker) = segment(me, vip);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    // B takes over some time into the stop, as a peer does once the leave
    // reaches it.
    let leave = async {
        tokio::time::sleep(TAKEOVER_AFTER).await;
        b.set_desired(pair(vip));
    };
    let report = hand_over(
        &mut a,
        &mut observed,
        pair(vip),
        1,
        Duration::from_secs(3),
        leave,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let heard = asker.finish();
    Expected {
        vip,
        old: MAC_A,
        new: MAC_B,
        takeover_after: TAKEOVER_AFTER,
        slack: SLACK,
    }
    .check(&report, &heard, start);
    assert!(
        report.elapsed < TAKEOVER_AFTER + Duration::from_millis(500),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_a_stopping_owner_answers_until_the_new_owners_gratuitous_arp() {
    a_answers_until_b_announces(ip("192.0.2.1"), ip("192.0.2.10")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_a_stopping_owner_answers_until_the_new_owners_unsolicited_advertisement() {
    a_answers_until_b_announces(ip("2001:db8::1"), ip("2001:db8::10")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_nobody_to_take_over_the_owner_answers_until_the_bound() {
    let vip = ip("192.0.2.10");
    let (mut a, mut observed, _b, asker) = segment(ip("192.0.2.1"), vip);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let bound = Duration::from_millis(400);
    let start = Instant::now();
    let report = hand_over(&mut a, &mut observed, pair(vip), 0, bound, async {}).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let heard = asker.finish();
    assert_eq!(report.handed_over, vec![]);
    assert_eq!(report.timed_out_ips(), [vip]);
    assert!(
        report.elapsed >= bound && report.elapsed < bound + SLACK,
        "{report:?}"
    );
    let from_a = answers_from(&heard, MAC_A);
    assert!(
        from_a
            .iter()
            .any(|t| *t > start + bound - Duration::from_millis(100)),
        "A answered until the bound: {from_a:?}"
    );
    assert!(from_a.iter().all(|t| *t <= start + report.elapsed + SLACK));
    assert_eq!(
        first_unasked_from(&heard, MAC_A).filter(|t| *t > start),
        None,
        "no announcement while handing over"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_leave_is_waited_for_but_the_bound_still_withdraws_on_time() {
    let vip = ip("192.0.2.10");
    let (mut a, mut observed, _b, asker) = segment(ip("192.0.2.1"), vip);
    let bound = Duration::from_millis(200);
    let start = Instant::now();
    let leave = tokio::time::sleep(Duration::from_millis(600));
    let report = hand_over(&mut a, &mut observed, pair(vip), 1, bound, leave).await;
    let returned = start.elapsed();
    let heard = asker.finish();
    assert!(
        returned >= Duration::from_millis(600),
        "waited for the leave: {returned:?}"
    );
    assert!(report.elapsed < bound + SLACK, "{report:?}");
    let from_a = answers_from(&heard, MAC_A);
    assert!(
        from_a.iter().all(|t| *t <= start + bound + SLACK),
        "{from_a:?}"
    );
}

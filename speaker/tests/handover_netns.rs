//! The graceful stop's handover over real raw sockets: two speakers'
//! transports and a client in network namespaces on one bridge (netlab).
//! A owns the address and is told to stop with a handover; B starts
//! announcing it 200 ms later, as a peer does once A's leave reaches it.
//! The client asks every 20 ms throughout: A answers until B's gratuitous
//! ARP (IPv4) or unsolicited advertisement (IPv6) has reached A, then no
//! more. Needs root: `#[ignore = "needs root"]` (docs/testing.md). Every
//! namespace is deleted when the lab drops, panics included; every wait
//! is bounded.

mod support;

use ferrolb_speaker::announcer::Config;
use ferrolb_speaker::daemon::handover::hand_over;
use ferrolb_speaker::transport::packet::PacketLink;
use ferrolb_speaker::transport::run::Running;
use ferrolb_speaker::transport::Datalink;
use netlab::{Host, Lab};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{answers_from, first_unasked_from, Asker, Expected};
use tokio::sync::mpsc;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TAKEOVER_AFTER: Duration = Duration::from_millis(200);
const BOUND: Duration = Duration::from_secs(3);
/// Socket queues and thread hops: how late A may still answer after
/// withdrawing, and how long after B's announcement it withdraws.
const SLACK: Duration = Duration::from_millis(100);

fn link_in(host: &Host) -> Result<Arc<dyn Datalink>, Box<dyn std::error::Error>> {
    let link = host.run_in(|| PacketLink::open("eth0"))??;
    Ok(Arc::new(link))
}

fn pair(vip: IpAddr) -> Vec<(IpAddr, String)> {
    vec![(vip, "eth0".to_string())]
}

/// A client, A and B on one bridge with `addrs` (prefixed), A owning `vip`.
async fn handover_in_namespaces(test: &str, addrs: [&str; 3], vip: IpAddr) -> TestResult {
    let mut lab = Lab::for_test(test);
    let client = lab.add_host("client")?;
    let (host_a, host_b) = (lab.add_host("spk-a")?, lab.add_host("spk-b")?);
    for (host, addr) in [
        (&client, addrs[0]),
        (&host_a, addrs[1]),
        (&host_b, addrs[2]),
    ] {
        host.add_addr(addr)?;
    }
    let (observer, mut observed) = mpsc::channel(64);
    let link_a = link_in(&host_a)?;
    let mac_a = link_a.info().mac;
    let mut a = Running::spawn_observed(vec![link_a], Config::default(), Some(observer))?;
    let link_b = link_in(&host_b)?;
    let mac_b = link_b.info().mac;
    let b = Running::spawn(vec![link_b], Config::default())?;
    a.set_desired(pair(vip));

    let me: IpAddr = addrs[0].split('/').next().unwrap_or_default().parse()?;
    let asker = Asker::start(
        link_in(&client)?,
        me,
        vip,
        Duration::from_millis(20),
        Duration::from_secs(15),
    );
    // IPv6 addresses pass duplicate address detection first; A answers
    // before the stop either way.
    let answered = Instant::now() + Duration::from_secs(5);
    while a.stats().announcer.requests_answered.arp + a.stats().announcer.requests_answered.ndp == 0
        && Instant::now() < answered
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let start = Instant::now();
    let leave = async {
        tokio::time::sleep(TAKEOVER_AFTER).await;
        b.set_desired(pair(vip));
    };
    let report = hand_over(&mut a, &mut observed, pair(vip), 1, BOUND, leave).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let heard = asker.finish();
    let ms = |t: &Instant| t.saturating_duration_since(start).as_millis();
    // How long after the client heard B's announcement A withdrew (both
    // receive the same broadcast; negative: A was the quicker).
    let lag_us = match (
        report.handed_over.first(),
        first_unasked_from(&heard, mac_b),
    ) {
        (Some(h), Some(garp)) => {
            h.after.as_micros() as i128 - garp.duration_since(start).as_micros() as i128
        }
        _ => 0,
    };
    println!(
        "{test}: handed over {:?} after the stop, {lag_us} us after the client heard B; \
         A answered at {:?} ms",
        report.handed_over.first().map(|h| h.after),
        answers_from(&heard, mac_a)
            .iter()
            .filter(|t| **t > start)
            .map(ms)
            .collect::<Vec<_>>()
    );
    Expected {
        vip,
        old: mac_a,
        new: mac_b,
        takeover_after: TAKEOVER_AFTER,
        slack: SLACK,
    }
    .check(&report, &heard, start);
    assert_eq!(a.stats().send_errors + b.stats().send_errors, 0);
    assert_eq!(a.stats().observations_dropped, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn ipv4_a_stopping_owner_answers_until_the_new_owners_gratuitous_arp_reaches_it() -> TestResult
{
    handover_in_namespaces(
        "handover_v4",
        ["198.51.100.2/24", "198.51.100.11/24", "198.51.100.12/24"],
        "198.51.100.100".parse()?,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root"]
async fn ipv6_a_stopping_owner_answers_until_the_new_owners_advertisement_reaches_it() -> TestResult
{
    handover_in_namespaces(
        "handover_v6",
        ["2001:db8::2/64", "2001:db8::11/64", "2001:db8::12/64"],
        "2001:db8::100".parse()?,
    )
    .await
}

//! Heartbeats between real speakers' membership in network namespaces
//! (netlab): three hosts on one bridge, each running `Membership` inside
//! its namespace. Cutting one host's switch port must make the other two
//! drop it in about one heartbeat detection time, with SWIM slowed so far
//! that it could not have; restoring the port brings it back. Needs root:
//! `#[ignore = "needs root"]` (docs/testing.md). Every namespace is deleted
//! when the lab drops, panics included; every wait is bounded.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ferrolb_speaker::membership::{Membership, MembershipConfig, Secret, Timing};
use netlab::{Host, Lab, NsThread};
use tokio::sync::oneshot;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const PORT: u16 = 7946;

fn secret() -> Secret {
    Secret::from_bytes(b"ferrolb-netns-secret-0123456789", "test").unwrap()
}

/// SWIM so slow that nothing within a few seconds is its doing.
fn slow_swim() -> Timing {
    Timing {
        probe_period: Duration::from_secs(3),
        probe_rtt: Duration::from_secs(1),
        suspect_timeout: Duration::from_secs(10),
        ..Timing::lan()
    }
}

/// One member running in its host's namespace on its own runtime; its live
/// sets arrive on `live`. Dropping `stop` stops it.
struct Member {
    live: mpsc::Receiver<(Instant, BTreeSet<String>)>,
    /// The newest live set received.
    last: BTreeSet<String>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<NsThread<Result<(), String>>>,
}

impl Member {
    fn start(host: &Host, name: &str, ip: IpAddr, seeds: Vec<SocketAddr>) -> Self {
        let (live_tx, live) = mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let name = name.to_owned();
        let thread = host
            .spawn_in(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?;
                rt.block_on(async move {
                    let mut config =
                        MembershipConfig::new(&name, SocketAddr::new(ip, PORT), secret());
                    config.seeds = seeds;
                    config.timing = slow_swim();
                    let m = Membership::start(config).await.map_err(|e| e.to_string())?;
                    let mut rx = m.live();
                    tokio::pin!(stopped);
                    loop {
                        let now = rx.borrow_and_update().clone();
                        if live_tx.send((Instant::now(), now)).is_err() {
                            break;
                        }
                        tokio::select! {
                            r = rx.changed() => if r.is_err() { break },
                            _ = &mut stopped => break,
                        }
                    }
                    drop(m);
                    Ok(())
                })
            })
            .expect("entering the namespace");
        Self {
            live,
            last: BTreeSet::new(),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Waits until the live set is `want` (now, if it already is); when
    /// it became so, or `None` after `limit`.
    fn wait_for(&mut self, want: &BTreeSet<String>, limit: Duration) -> Option<Instant> {
        let until = Instant::now() + limit;
        loop {
            // Changes that already arrived first.
            while let Ok((at, set)) = self.live.try_recv() {
                self.last = set;
                if self.last == *want {
                    return Some(at);
                }
            }
            if self.last == *want {
                return Some(Instant::now());
            }
            let left = until.saturating_duration_since(Instant::now());
            match self.live.recv_timeout(left) {
                Ok((at, set)) => {
                    self.last = set;
                    if self.last == *want {
                        return Some(at);
                    }
                }
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            // Bounded: the member stops within the heartbeat thread's
            // longest wait.
            let _ = t.join();
        }
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn cut_link_round(cidrs: [&str; 3]) -> TestResult {
    let mut lab = Lab::for_test("heartbeat_cut");
    let names = ["hb-a", "hb-b", "hb-c"];
    let mut hosts = Vec::new();
    let mut ips = Vec::new();
    for (name, cidr) in names.iter().zip(cidrs) {
        let host = lab.add_host(name)?;
        let net = host.add_addr(cidr)?;
        ips.push(net.addr());
        hosts.push(host);
    }
    let seeds: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(*ip, PORT)).collect();
    let mut members: Vec<Member> = (0..3)
        .map(|i| Member::start(&hosts[i], names[i], ips[i], seeds.clone()))
        .collect();
    let all = set(&names);
    for (m, name) in members.iter_mut().zip(names) {
        assert!(
            m.wait_for(&all, Duration::from_secs(15)).is_some(),
            "{name} never saw all three members"
        );
    }
    // Let heartbeats flow for a while.
    std::thread::sleep(Duration::from_millis(500));

    let cut = Instant::now();
    hosts[2].port_down()?;
    let two = set(&["hb-a", "hb-b"]);
    for (m, name) in members[..2].iter_mut().zip(names) {
        let at = m.wait_for(&two, Duration::from_secs(2));
        let at = at.ok_or_else(|| format!("{name} did not drop hb-c within 2 s"))?;
        let took = at.saturating_duration_since(cut);
        eprintln!(
            "{name} dropped hb-c {} ms after its port went down",
            took.as_millis()
        );
        // SWIM probes every 3 s with a 10 s suspicion: only heartbeats
        // can have done this within a second.
        assert!(took < Duration::from_secs(1), "{name}: {took:?}");
    }

    hosts[2].port_up()?;
    for (m, name) in members.iter_mut().zip(names) {
        assert!(
            m.wait_for(&all, Duration::from_secs(15)).is_some(),
            "{name} did not see hb-c again after its port came back"
        );
    }
    drop(members);
    lab.teardown()?;
    Ok(())
}

#[test]
#[ignore = "needs root"]
fn a_cut_link_is_seen_by_heartbeats_over_ipv4() -> TestResult {
    cut_link_round(["198.51.100.31/24", "198.51.100.32/24", "198.51.100.33/24"])
}

#[test]
#[ignore = "needs root"]
fn a_cut_link_is_seen_by_heartbeats_over_ipv6() -> TestResult {
    cut_link_round([
        "2001:db8:31::1/64",
        "2001:db8:31::2/64",
        "2001:db8:31::3/64",
    ])
}

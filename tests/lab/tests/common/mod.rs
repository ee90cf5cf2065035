//! What every end-to-end test file shares: starting a lab, or skipping.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ferrolb_lab::cluster::{Cluster, Options};
use ferrolb_lab::process::Launcher;
use ferrolb_speaker::transport::packet::PacketLink;
use ferrolb_speaker::transport::Datalink;
use ferrolb_speaker::wire::arp::{ArpFrame, ArpOperation, ArpRepr};
use ferrolb_speaker::wire::ndp::{NdpFrame, NdpRepr};
use ferrolb_speaker::wire::MacAddr;
use netlab::Host;

/// Keeps labs one at a time under `cargo test` (threads in one process);
/// under nextest the `lab` test group in `.config/nextest.toml` does it.
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts a lab whose namespaces carry `prefix`. Every lab test is
/// `#[ignore = "needs root"]`; run without root, it fails with the reason.
pub async fn lab(test: &str, prefix: &str) -> (tokio::sync::MutexGuard<'static, ()>, Cluster) {
    let opts = Options {
        prefix: prefix.into(),
        ..Options::default()
    };
    lab_with(test, opts).await
}

/// [`lab`] with options of the test's choosing.
pub async fn lab_with(
    test: &str,
    opts: Options,
) -> (tokio::sync::MutexGuard<'static, ()>, Cluster) {
    netlab::require_root(test);
    let guard = LOCK.lock().await;
    // FERROLB_LAB_IMAGE: the same tests against the shipped image, run
    // under runc (README's test command does both).
    let image = std::env::var_os("FERROLB_LAB_IMAGE").map(std::path::PathBuf::from);
    let launcher = Launcher::locate(image.as_deref()).expect("speaker and controller binaries");
    let cluster = Cluster::start(opts, launcher).await.expect("lab starts");
    (guard, cluster)
}

/// Sends one who-has for `target` from the lab client's eth0 (an ARP
/// request, or a neighbour solicitation for IPv6) and collects the
/// answering MACs for 300 ms.
pub fn who_has(c: &Cluster, target: IpAddr) -> Vec<MacAddr> {
    let sender = match target {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100)),
        IpAddr::V6(_) => IpAddr::V6("2001:db8::100".parse().expect("an IPv6 address")),
    };
    who_has_from(&c.client, sender, target)
}

/// [`who_has`] from `host`'s eth0 with source address `sender` (of the
/// same family as `target`).
pub fn who_has_from(host: &Host, sender: IpAddr, target: IpAddr) -> Vec<MacAddr> {
    let mac = MacAddr(host.mac().unwrap().0);
    let link = host.run_in(|| PacketLink::open("eth0")).unwrap().unwrap();
    let frame = match (sender, target) {
        (IpAddr::V4(sender_ip), IpAddr::V4(target_ip)) => ArpFrame::new(
            MacAddr([0xff; 6]),
            mac,
            ArpRepr {
                operation: ArpOperation::Request,
                sender_mac: mac,
                sender_ip,
                target_mac: MacAddr([0; 6]),
                target_ip,
            },
        )
        .to_bytes(),
        (IpAddr::V6(src), IpAddr::V6(t)) => NdpFrame::solicitation(mac, src, t).to_bytes(),
        _ => panic!("who-has {target} from {sender}: families differ"),
    };
    link.send(&frame).unwrap();
    let deadline = Instant::now() + Duration::from_millis(300);
    let mut answers = Vec::new();
    while Instant::now() < deadline {
        let Ok(Some(rx)) = link.recv() else { continue };
        match target {
            IpAddr::V4(t) => {
                if let Ok(f) = ArpFrame::parse(&rx) {
                    if f.arp.operation == ArpOperation::Reply
                        && f.arp.sender_ip == t
                        && f.ethernet.dst == mac
                    {
                        answers.push(f.arp.sender_mac);
                    }
                }
            }
            IpAddr::V6(t) => {
                if let Ok(f) = NdpFrame::parse(&rx) {
                    if let NdpRepr::NeighborAdvert { target, flags, .. } = f.ndp {
                        if target == t && flags.solicited {
                            answers.push(f.ethernet.src);
                        }
                    }
                }
            }
        }
    }
    answers
}

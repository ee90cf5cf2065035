//! Who answers for an IP, as a station on the LAN sees it: the client
//! sends who-has (an ARP request, or a neighbour solicitation for IPv6)
//! from a raw socket on its `eth0` and collects every MAC that answers,
//! not just the one its kernel would keep. Two MACs answering one IP is a
//! split brain; none is an IP nobody serves.
//!
//! The frames are `ferrolb_speaker::wire`'s and the socket is its
//! `PacketLink`: the lab's end-to-end tests built the same probe with them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use anyhow::Context;
use ferrolb_speaker::transport::packet::{PacketConfig, PacketLink};
use ferrolb_speaker::transport::Datalink;
use ferrolb_speaker::wire::arp::{ArpFrame, ArpOperation, ArpRepr};
use ferrolb_speaker::wire::ndp::{NdpFrame, NdpRepr};
use ferrolb_speaker::wire::MacAddr;
use netlab::Host;

/// The lab client's addresses, the senders of its who-has.
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
/// See [`CLIENT_V4`].
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);

/// How long one receive waits, so a sweep's window ends on time.
const RECV_SLICE: Duration = Duration::from_millis(10);

/// The MACs that answered each target of one sweep, sorted, without
/// duplicates; a target nobody answered maps to an empty list.
pub type Answers = BTreeMap<IpAddr, Vec<MacAddr>>;

/// Sends one who-has for every target from `host`'s `eth0` (sender
/// [`CLIENT_V4`] / [`CLIENT_V6`], the client's addresses), all at once, and
/// collects the answers for `window`. Blocking: call it from
/// `spawn_blocking` in async code ([`sweep`]).
pub fn sweep_blocking(
    host: &Host,
    targets: &[IpAddr],
    window: Duration,
) -> anyhow::Result<Answers> {
    let config = PacketConfig {
        read_timeout: RECV_SLICE,
        ..PacketConfig::default()
    };
    let link = host
        .run_in(|| PacketLink::open_with("eth0", config))
        .context("entering the client namespace")?
        .context("a raw socket on the client's eth0")?;
    let mac = link.info().mac;
    for &target in targets {
        link.send(&who_has(mac, target))
            .with_context(|| format!("sending who-has {target}"))?;
    }
    let wanted: BTreeSet<IpAddr> = targets.iter().copied().collect();
    let mut answers: BTreeMap<IpAddr, BTreeSet<MacAddr>> =
        wanted.iter().map(|&ip| (ip, BTreeSet::new())).collect();
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        let Ok(Some(rx)) = link.recv() else { continue };
        if let Some((ip, from)) = answer_to(mac, &rx) {
            if let Some(set) = answers.get_mut(&ip) {
                set.insert(from);
            }
        }
    }
    Ok(answers
        .into_iter()
        .map(|(ip, set)| (ip, set.into_iter().collect()))
        .collect())
}

/// [`sweep_blocking`] from the async side.
pub async fn sweep(host: &Host, targets: &[IpAddr], window: Duration) -> anyhow::Result<Answers> {
    let (host, targets) = (host.clone(), targets.to_vec());
    tokio::task::spawn_blocking(move || sweep_blocking(&host, &targets, window)).await?
}

/// The who-has frame for `target` from `mac`.
fn who_has(mac: MacAddr, target: IpAddr) -> Vec<u8> {
    match target {
        IpAddr::V4(target_ip) => ArpFrame::new(
            MacAddr([0xff; 6]),
            mac,
            ArpRepr {
                operation: ArpOperation::Request,
                sender_mac: mac,
                sender_ip: CLIENT_V4,
                target_mac: MacAddr([0; 6]),
                target_ip,
            },
        )
        .to_bytes(),
        IpAddr::V6(t) => NdpFrame::solicitation(mac, CLIENT_V6, t).to_bytes(),
    }
}

/// `(IP, answering MAC)` when `frame` answers a who-has of ours: an ARP
/// reply addressed to `mac`, or a solicited neighbour advertisement.
/// Gratuitous ARP and unsolicited advertisements are no answer.
fn answer_to(mac: MacAddr, frame: &[u8]) -> Option<(IpAddr, MacAddr)> {
    if let Ok(f) = ArpFrame::parse(frame) {
        let ours = f.arp.operation == ArpOperation::Reply && f.ethernet.dst == mac;
        return ours.then_some((IpAddr::V4(f.arp.sender_ip), f.arp.sender_mac));
    }
    if let Ok(f) = NdpFrame::parse(frame) {
        if let NdpRepr::NeighborAdvert { target, flags, .. } = f.ndp {
            return flags
                .solicited
                .then_some((IpAddr::V6(target), f.ethernet.src));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const NODE: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);

    fn arp(operation: ArpOperation, dst: MacAddr, ip: Ipv4Addr) -> Vec<u8> {
        ArpFrame::new(
            dst,
            NODE,
            ArpRepr {
                operation,
                sender_mac: NODE,
                sender_ip: ip,
                target_mac: ME,
                target_ip: CLIENT_V4,
            },
        )
        .to_bytes()
    }

    #[test]
    fn a_reply_to_us_names_the_ip_and_the_answering_mac() {
        let ip = Ipv4Addr::new(198, 51, 100, 7);
        let frame = arp(ArpOperation::Reply, ME, ip);
        assert_eq!(answer_to(ME, &frame), Some((IpAddr::V4(ip), NODE)));
    }

    #[test]
    fn gratuitous_arp_and_requests_are_no_answer() {
        let ip = Ipv4Addr::new(198, 51, 100, 7);
        let broadcast = MacAddr([0xff; 6]);
        assert_eq!(
            answer_to(ME, &arp(ArpOperation::Reply, broadcast, ip)),
            None
        );
        assert_eq!(answer_to(ME, &arp(ArpOperation::Request, ME, ip)), None);
    }

    #[test]
    fn our_own_who_has_is_no_answer() {
        let v4 = who_has(ME, "198.51.100.7".parse().unwrap());
        let v6 = who_has(ME, "2001:db8:0:1::10".parse().unwrap());
        assert_eq!(answer_to(ME, &v4), None);
        assert_eq!(answer_to(ME, &v6), None);
    }
}

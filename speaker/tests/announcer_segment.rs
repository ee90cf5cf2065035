//! Two speakers and a client on a simulated L2 segment: the whole loop
//! (receive, parse, answer, announce) without root. Waits are bounded.

use ferrolb_speaker::announcer::Config;
use ferrolb_speaker::transport::memory::{Hub, MemoryLink};
use ferrolb_speaker::transport::run::Running;
use ferrolb_speaker::transport::Datalink;
use ferrolb_speaker::wire::{ArpFrame, ArpOperation, ArpRepr, MacAddr, NdpFrame, NdpRepr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAC_A: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0a]);
const MAC_B: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x0b]);
const CLIENT: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

struct Segment {
    hub: Hub,
    a: Running,
    b: Running,
    client: MemoryLink,
}

fn segment() -> Segment {
    let hub = Hub::new();
    let speaker = |mac| {
        let link: Arc<dyn Datalink> = Arc::new(hub.endpoint("eth0", mac));
        Running::spawn(vec![link], Config::default()).unwrap()
    };
    let (a, b) = (speaker(MAC_A), speaker(MAC_B));
    let client = hub.endpoint("client", CLIENT);
    Segment { hub, a, b, client }
}

fn own(speaker: &Running, ips: &[IpAddr]) {
    speaker.set_desired(ips.iter().map(|ip| (*ip, "eth0".to_string())).collect());
}

fn who_has(target: Ipv4Addr) -> Vec<u8> {
    ArpFrame::new(
        MacAddr::BROADCAST,
        CLIENT,
        ArpRepr {
            operation: ArpOperation::Request,
            sender_mac: CLIENT,
            sender_ip: CLIENT_IP,
            target_mac: MacAddr::ZERO,
            target_ip: target,
        },
    )
    .to_bytes()
}

/// ARP frames the client receives within `window`.
fn arp_within(client: &MemoryLink, window: Duration) -> Vec<ArpFrame> {
    let until = Instant::now() + window;
    let mut out = vec![];
    while Instant::now() < until {
        if let Ok(Some(frame)) = client.recv() {
            out.extend(ArpFrame::parse(&frame).ok());
        }
    }
    out
}

/// The MACs that answered a who-has for `ip` (replies, not announcements).
fn answers(client: &MemoryLink, ip: Ipv4Addr) -> Vec<MacAddr> {
    client.send(&who_has(ip)).unwrap();
    arp_within(client, Duration::from_millis(300))
        .into_iter()
        .filter(|f| f.arp.operation == ArpOperation::Reply && !f.arp.is_gratuitous())
        .filter(|f| f.arp.sender_ip == ip && f.arp.target_mac == CLIENT)
        .map(|f| f.arp.sender_mac)
        .collect()
}

#[test]
fn the_client_gets_exactly_one_reply_from_the_owner_and_follows_a_failover() {
    let s = segment();
    own(&s.a, &[VIP.into()]);
    own(&s.b, &[]);
    assert_eq!(answers(&s.client, VIP), [MAC_A]);
    assert_eq!(answers(&s.client, Ipv4Addr::new(192, 0, 2, 99)), []);
    // Per address, what the owner answered and wrote: the request, its
    // reply, and the takeover's gratuitous request and reply (at least).
    let tally = s.a.take_per_ip();
    let vip = tally.get(VIP.into());
    assert_eq!((vip.requests_received, vip.responses_sent), (1, 1));
    assert!(vip.gratuitous_sent >= 2, "{vip:?}");
    assert_eq!(tally.iter().count(), 1, "{tally:?}");
    assert!(s.b.take_per_ip().is_empty());
    assert_eq!(s.a.take_per_ip().get(VIP.into()).requests_received, 0);

    own(&s.a, &[]);
    own(&s.b, &[VIP.into()]);
    let seen = arp_within(&s.client, Duration::from_millis(300));
    assert!(
        seen.iter()
            .any(|f| f.arp.is_gratuitous() && f.arp.sender_ip == VIP && f.arp.sender_mac == MAC_B),
        "no gratuitous ARP from the new owner in {seen:?}"
    );
    assert!(
        seen.iter().all(|f| f.arp.sender_mac != MAC_A),
        "old owner still talks"
    );
    assert_eq!(answers(&s.client, VIP), [MAC_B]);
    assert_eq!(s.a.stats().announcer.requests_answered.arp, 1);
    assert_eq!(s.b.stats().announcer.requests_answered.arp, 1);
    assert!(s.b.stats().announcer.gratuitous_sent.arp >= 2);
}

#[test]
fn a_flood_of_garbage_does_not_stop_replies() {
    let s = segment();
    own(&s.a, &[VIP.into()]);
    let flooder = s.hub.endpoint("flooder", MacAddr([0x02, 0, 0, 0, 0, 0x66]));
    let flood = std::thread::spawn(move || {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let until = Instant::now() + Duration::from_secs(1);
        let mut sent = 0u32;
        while Instant::now() < until && sent < 200_000 {
            let len = (next() % 120) as usize;
            let mut frame: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len >= 14 {
                // At the speaker, so the client's own queue stays usable.
                frame[..6].copy_from_slice(&MAC_A.0);
                // Half claim to be ARP or IPv6, so they reach the parsers.
                match sent % 4 {
                    0 => frame[12..14].copy_from_slice(&[0x08, 0x06]),
                    1 => frame[12..14].copy_from_slice(&[0x86, 0xdd]),
                    _ => {}
                }
            }
            flooder.send(&frame).unwrap();
            sent += 1;
        }
        sent
    });
    // Under a flood some questions may be lost with the garbage, as on a
    // wire; some must still be answered, and only by the owner.
    let mut during = vec![];
    for _ in 0..3 {
        during.extend(answers(&s.client, VIP));
    }
    let sent = flood.join().unwrap();
    assert!(
        !during.is_empty(),
        "no reply during a flood of {sent} frames"
    );
    assert!(during.iter().all(|m| *m == MAC_A), "{during:?}");
    assert_eq!(
        answers(&s.client, VIP),
        [MAC_A],
        "after a flood of {sent} frames"
    );
    let stats = s.a.stats();
    assert!(stats.announcer.frames_malformed > 100, "{stats:?}");
}

#[test]
fn ndp_solicitations_reach_the_owner_through_its_solicited_node_group() {
    let s = segment();
    let vip6: Ipv6Addr = "2001:db8::10".parse().unwrap();
    let client_ip: Ipv6Addr = "2001:db8::1".parse().unwrap();
    own(&s.a, &[vip6.into()]);
    own(&s.b, &[]);
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut answered_by = vec![];
    while answered_by.is_empty() && Instant::now() < deadline {
        s.client
            .send(&NdpFrame::solicitation(CLIENT, client_ip, vip6).to_bytes())
            .unwrap();
        let until = Instant::now() + Duration::from_millis(200);
        while Instant::now() < until {
            let Ok(Some(frame)) = s.client.recv() else {
                continue;
            };
            let Ok(na) = NdpFrame::parse(&frame) else {
                continue;
            };
            if let NdpRepr::NeighborAdvert {
                flags,
                target,
                target_lladdr,
            } = na.ndp
            {
                if flags.solicited && target == vip6 {
                    answered_by.extend(target_lladdr);
                }
            }
        }
    }
    assert_eq!(answered_by, [MAC_A]);
    assert!(s.a.stats().announcer.gratuitous_sent.ndp >= 1);
}

#[test]
fn finishing_a_transport_keeps_every_count_up_to_its_last_frame() {
    let s = segment();
    own(&s.a, &[VIP.into()]);
    for _ in 0..3 {
        assert_eq!(answers(&s.client, VIP), [MAC_A]);
    }
    let last = s.a.finish();
    assert_eq!(last.announcer.requests_answered.arp, 3);
    assert!(last.announcer.gratuitous_sent.arp >= 1);
    // What a replacing transport adds to the retired one's totals.
    let next = s.b.stats();
    let total = last.plus(next);
    assert_eq!(
        total.announcer.requests_answered.arp,
        3 + next.announcer.requests_answered.arp
    );
    assert_eq!(
        total.announcer.gratuitous_sent.arp,
        last.announcer.gratuitous_sent.arp + next.announcer.gratuitous_sent.arp
    );
}

//! Parse-and-decide throughput of the responder for ARP requests, the hot
//! path on a busy LAN. Criterion prints the rate as elements (frames) per
//! second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferrolb_speaker::wire::respond::{reply_to, Interface};
use ferrolb_speaker::wire::{ArpFrame, ArpOperation, ArpRepr, MacAddr};
use std::collections::BTreeSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

fn request(target: Ipv4Addr) -> Vec<u8> {
    let asker = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
    ArpFrame::new(
        MacAddr::BROADCAST,
        asker,
        ArpRepr {
            operation: ArpOperation::Request,
            sender_mac: asker,
            sender_ip: Ipv4Addr::new(192, 0, 2, 1),
            target_mac: MacAddr::ZERO,
            target_ip: target,
        },
    )
    .to_bytes()
}

fn arp_parse_and_decide(c: &mut Criterion) {
    // 256 owned addresses, as a node owning a whole /24 of Services would.
    let owned: BTreeSet<IpAddr> = (0..=255u8)
        .map(|d| IpAddr::V4(Ipv4Addr::new(198, 51, 100, d)))
        .collect();
    let iface = Interface {
        mac: MacAddr([0x02, 0, 0, 0, 0, 0x0a]),
        owned: &owned,
    };
    let frames: Vec<Vec<u8>> = (0..64u8)
        .map(|i| {
            // Half the requests ask for owned addresses, half for others.
            if i % 2 == 0 {
                request(Ipv4Addr::new(198, 51, 100, i))
            } else {
                request(Ipv4Addr::new(203, 0, 113, i))
            }
        })
        .collect();
    let mut group = c.benchmark_group("arp");
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("parse_and_decide", |b| {
        b.iter(|| {
            frames
                .iter()
                .filter(|f| reply_to(black_box(f), &iface).is_some())
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, arp_parse_and_decide);
criterion_main!(benches);

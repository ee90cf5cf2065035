//! The ownership rule (`ownership::decide`) from scratch, at 1,000 and
//! 10,000 Services on 3 and 100 nodes: the steady state (every Service
//! claimed), the first decision of a new cluster (every Service new, placed
//! one by one by load), a node's death (its Services placed on the others)
//! and MetalLB's hash (`Mode::Hash`, one sha256 per candidate) for
//! comparison. Criterion prints the time per decision and the rate in
//! Services per second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferrolb_core::ownership::{decide, Claims, Inputs, Mode, Node, Service};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

/// Keys are shared strings, as the shell's `ObjectKey`s are.
fn services(count: usize, nodes: &[Node]) -> BTreeMap<Arc<str>, Service> {
    // One candidate list shared by every Service, as the shell shares it
    // among the Services of one pool and policy.
    let all: Arc<[Node]> = nodes.into();
    (0..count)
        .map(|k| {
            let ip = IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0,
                1,
                0,
                0,
                (k >> 16) as u16,
                k as u16,
            ));
            (
                Arc::from(format!("default/svc-{k}")),
                Service::new(ip, all.clone()),
            )
        })
        .collect()
}

fn claims_of(d: &ferrolb_core::ownership::Decision<Arc<str>>, nodes: &[Node]) -> Claims<Arc<str>> {
    nodes.iter().map(|n| (n.clone(), d.held_by(n))).collect()
}

fn ownership(c: &mut Criterion) {
    let mut group = c.benchmark_group("ownership");
    group.sample_size(10);
    for (count, n) in [(1_000, 3), (1_000, 100), (10_000, 3), (10_000, 100)] {
        let nodes: Vec<Node> = (0..n).map(|i| Node::from(format!("node-{i}"))).collect();
        let svcs = services(count, &nodes);
        let none = Claims::new();
        let first = decide(&Inputs::new(Mode::Sticky, &svcs, &none));
        let claims = claims_of(&first, &nodes);
        let id = |what: &str| BenchmarkId::new(format!("{what}_{n}_nodes"), count);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(id("steady"), |b| {
            b.iter(|| {
                black_box(decide(&Inputs::new(
                    Mode::Sticky,
                    black_box(&svcs),
                    &claims,
                )))
            })
        });
        group.bench_function(id("all_new"), |b| {
            b.iter(|| black_box(decide(&Inputs::new(Mode::Sticky, black_box(&svcs), &none))))
        });
        // node-0 died: gone from every candidate list and from the claims.
        let survivors = services(count, &nodes[1..]);
        let mut after = claims.clone();
        after.remove(&nodes[0]);
        group.bench_function(id("one_node_died"), |b| {
            b.iter(|| {
                black_box(decide(&Inputs::new(
                    Mode::Sticky,
                    black_box(&survivors),
                    &after,
                )))
            })
        });
        group.bench_function(id("hash"), |b| {
            b.iter(|| black_box(decide(&Inputs::new(Mode::Hash, black_box(&svcs), &none))))
        });
    }
    group.finish();
}

criterion_group!(benches, ownership);
criterion_main!(benches);

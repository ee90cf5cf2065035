//! What a node announces, computed after every watched change (debounced
//! 20 ms): from scratch (`announce::compute`, what a node, pool,
//! advertisement or membership change costs) and after one Service
//! changed (`compute_cached`, what the daemon pays for Service and
//! EndpointSlice churn). Criterion prints the time per computation and the
//! rate in Services per second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferrolb_core::announce::interfaces::{Excludes, HostInterface};
use ferrolb_core::announce::model::{AdInfo, NodeFacts, ObjectKey, ServiceInfo, SliceInfo};
use ferrolb_core::announce::{compute, compute_cached, Cache, Local, World};
use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::net::{IpAddr, Ipv6Addr};

fn world(services: usize, nodes: usize) -> World {
    let mut w = World::default();
    for n in 0..nodes {
        let name = format!("node-{n}");
        w.nodes.insert(
            name.clone(),
            NodeFacts {
                name,
                labels: BTreeMap::new(),
                ready: true,
                network_unavailable: false,
                internal_ip: None,
            },
        );
    }
    let ad = ObjectKey::new("ferrolb-system", "all");
    w.ads.insert(
        ad.clone(),
        AdInfo {
            key: ad,
            ..AdInfo::default()
        },
    );
    for k in 0..services {
        let key = ObjectKey::new("default", format!("svc-{k}"));
        let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 1, k as u16));
        w.services.insert(
            key.clone(),
            ServiceInfo {
                key: key.clone(),
                ips: vec![ip],
                pool: Some("bench".into()),
                local: false,
                uid: None,
            },
        );
        w.slices.insert(
            ObjectKey::new("default", format!("svc-{k}-v6")),
            SliceInfo {
                service: Some(key),
                ready: nodes,
                ready_nodes: w.nodes.keys().cloned().collect(),
            },
        );
    }
    w
}

fn announce_compute(c: &mut Criterion) {
    let mut group = c.benchmark_group("announce_compute");
    let links = vec![HostInterface::ethernet("eth0", 2, [2, 0, 0, 0, 0, 1])];
    let excludes = Excludes::default();
    for (services, nodes) in [(1_000, 3), (1_000, 100), (10_000, 3)] {
        let w = world(services, nodes);
        let live: BTreeSet<String> = w.nodes.keys().cloned().collect();
        let local = Local {
            me: "node-0",
            live: &live,
            links: &links,
            excludes: &excludes,
        };
        group.throughput(Throughput::Elements(services as u64));
        group.bench_with_input(
            BenchmarkId::new(format!("from_scratch_{nodes}_nodes"), services),
            &w,
            |b, w| b.iter(|| black_box(compute(black_box(w), &local))),
        );
        // What the daemon does after one Service changed: the cache holds
        // every other verdict.
        let mut changing = w.clone();
        let mut cache = Cache::default();
        let one = ObjectKey::new("default", "svc-0");
        group.bench_function(
            BenchmarkId::new(format!("one_changed_{nodes}_nodes"), services),
            |b| {
                b.iter(|| {
                    let svc = changing.services.get_mut(&one).expect("svc-0");
                    svc.local = !svc.local;
                    black_box(compute_cached(&changing, &local, &mut cache))
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, announce_compute);
criterion_main!(benches);

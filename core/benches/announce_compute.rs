//! What a node announces: from scratch (`announce::compute`, what a pool
//! change or a speaker start costs) and, with an [`Engine`] that holds
//! every other decision, after one Service or one EndpointSlice changed,
//! after a change that alters nothing (what the daemon pays for Service
//! and EndpointSlice churn), and after one node, speaker or advertisement
//! changed. Criterion prints the time per computation; from scratch also
//! the rate in Services per second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferrolb_core::announce::interfaces::{Excludes, HostInterface};
use ferrolb_core::announce::model::{AdInfo, NodeFacts, ObjectKey, ServiceInfo, SliceInfo};
use ferrolb_core::announce::{compute, Engine, Local, World};
use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::net::{IpAddr, Ipv6Addr};

fn world(services: usize, nodes: usize) -> World {
    let mut w = World::default();
    for n in 0..nodes {
        w.set_node(NodeFacts {
            name: format!("node-{n}"),
            labels: BTreeMap::new(),
            ready: true,
            network_unavailable: false,
            internal_ip: None,
        });
    }
    w.set_ad(AdInfo {
        key: ObjectKey::new("ferrolb-system", "all"),
        ..AdInfo::default()
    });
    let all: BTreeSet<String> = w.nodes().keys().cloned().collect();
    for k in 0..services {
        let key = ObjectKey::new("default", format!("svc-{k}"));
        let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 1, k as u16));
        w.set_service(ServiceInfo {
            key: key.clone(),
            ips: vec![ip],
            pool: Some("bench".into()),
            local: false,
            uid: None,
            ..Default::default()
        });
        w.set_slice(
            ObjectKey::new("default", format!("svc-{k}-v6")),
            SliceInfo {
                service: Some(key),
                ready: nodes,
                ready_nodes: SliceInfo::nodes(all.iter().map(String::as_str)),
                ..SliceInfo::default()
            },
        );
    }
    w
}

/// The view of node-0, every speaker in `live`.
fn node_0<'a>(
    live: &'a BTreeSet<String>,
    links: &'a [HostInterface],
    excludes: &'a Excludes,
) -> Local<'a> {
    Local {
        me: "node-0",
        live,
        links,
        excludes,
        rules: Default::default(),
    }
}

fn announce_compute(c: &mut Criterion) {
    let mut group = c.benchmark_group("announce_compute");
    group.sample_size(10);
    let links = vec![HostInterface::ethernet("eth0", 2, [2, 0, 0, 0, 0, 1])];
    let excludes = Excludes::default();
    for (services, nodes) in [(1_000, 3), (1_000, 100), (10_000, 3), (10_000, 100)] {
        let mut w = world(services, nodes);
        let live: BTreeSet<String> = w.nodes().keys().cloned().collect();
        let local = node_0(&live, &links, &excludes);
        let id = |what: &str| BenchmarkId::new(format!("{what}_{nodes}_nodes"), services);
        group.throughput(Throughput::Elements(services as u64));
        group.bench_with_input(id("from_scratch"), &w, |b, w| {
            b.iter(|| black_box(compute(black_box(w), &local)))
        });
        group.throughput(Throughput::Elements(1));
        let mut engine = Engine::default();
        engine.update(&w, &local);
        let one = ObjectKey::new("default", "svc-0");
        // A Service whose policy flips: decided again.
        group.bench_function(id("one_service_changed"), |b| {
            b.iter(|| {
                w.edit_service(&one, |s| s.local = !s.local);
                black_box(engine.update(&w, &local))
            })
        });
        // One EndpointSlice loses and regains a ready endpoint.
        let slice = ObjectKey::new("default", "svc-0-v6");
        group.bench_function(id("one_slice_changed"), |b| {
            b.iter(|| {
                w.edit_slice(&slice, |s| s.ready = if s.ready == 0 { nodes } else { 0 });
                black_box(engine.update(&w, &local))
            })
        });
        // One node's labels change (every advertisement still selects it):
        // the node is hashed against every Service it might now outrank.
        let node = "node-1".to_string();
        group.bench_function(id("one_node_relabelled"), |b| {
            b.iter(|| {
                w.edit_node(&node, |n| {
                    if n.labels.remove("zone").is_none() {
                        n.labels.insert("zone".into(), "a".into());
                    }
                });
                black_box(engine.update(&w, &local))
            })
        });
        // One node reports NetworkUnavailable, then recovers: it loses, then
        // takes back, the Services it owns.
        group.bench_function(id("one_node_network_flaps"), |b| {
            b.iter(|| {
                w.edit_node(&node, |n| n.network_unavailable = !n.network_unavailable);
                black_box(engine.update(&w, &local))
            })
        });
        // One speaker leaves the live set, then joins again.
        let mut fewer = live.clone();
        fewer.remove(&node);
        group.bench_function(id("one_speaker_leaves_or_joins"), |b| {
            let mut gone = false;
            b.iter(|| {
                gone = !gone;
                let live = if gone { &fewer } else { &live };
                black_box(engine.update(&w, &Local { live, ..local }))
            })
        });
        // An advertisement for another pool changes its interfaces.
        let other = ObjectKey::new("ferrolb-system", "other");
        w.set_ad(AdInfo {
            key: other.clone(),
            pools: vec!["other".into()],
            ..AdInfo::default()
        });
        engine.update(&w, &local);
        group.bench_function(id("other_pools_advertisement_changed"), |b| {
            b.iter(|| {
                w.edit_ad(&other, |ad| {
                    ad.interfaces = if ad.interfaces.is_empty() {
                        vec!["eth0".into()]
                    } else {
                        Vec::new()
                    }
                });
                black_box(engine.update(&w, &local))
            })
        });
        // A watch event that alters nothing the decision reads.
        let same = w.services()[&one].clone();
        group.bench_function(id("unchanged"), |b| {
            b.iter(|| {
                black_box(w.set_service(same.clone()));
                black_box(engine.update(&w, &local))
            })
        });
    }
    group.finish();
}

/// The same engine with sticky ownership (`Engine::update_owned` over an
/// `ownership::Member` for node-0 whose peers claim the Services numbered
/// like them, modulo the nodes): what a Service change and a speaker
/// leaving or joining (a failover) cost, the member's decision included.
fn announce_sticky(c: &mut Criterion) {
    use ferrolb_core::announce::Polled;
    use ferrolb_core::ownership::{Config, Member, Message, Node};
    use std::time::Duration;
    let mut group = c.benchmark_group("announce_sticky");
    group.sample_size(10);
    let links = vec![HostInterface::ethernet("eth0", 2, [2, 0, 0, 0, 0, 1])];
    let excludes = Excludes::default();
    for (services, nodes) in [(1_000, 3), (10_000, 3), (10_000, 100)] {
        let mut w = world(services, nodes);
        let live: BTreeSet<String> = w.nodes().keys().cloned().collect();
        let local = node_0(&live, &links, &excludes);
        let id = |what: &str| BenchmarkId::new(format!("{what}_{nodes}_nodes"), services);
        let peers: Vec<(Node, u64)> = (1..nodes)
            .map(|n| (Node::from(format!("node-{n}")), 1))
            .collect();
        let mut seq = 1;
        let mut claims_of = |n: usize| {
            seq += 1;
            Message {
                epoch: 1,
                seq,
                settling: false,
                held: Some(
                    (0..services)
                        .filter(|k| k % nodes == n)
                        .map(|k| ObjectKey::new("default", format!("svc-{k}")))
                        .collect(),
                ),
                reply: false,
            }
        };
        let mut member = Member::new(
            Node::from("node-0"),
            1,
            Config::default(),
            BTreeMap::new(),
            Duration::ZERO,
        );
        member.set_live(peers.clone());
        for (n, (peer, _)) in peers.iter().enumerate() {
            member.receive(peer, claims_of(n + 1));
        }
        let mut now = Duration::ZERO;
        let mut engine = Engine::default();
        let mut update =
            |engine: &mut Engine, member: &mut Member<ObjectKey>, w: &World, local: &Local<'_>| {
                now += Duration::from_millis(1);
                let mut send = |_: &Node, _: Message<ObjectKey>| {};
                let mut polled = Polled {
                    member,
                    now,
                    send: &mut send,
                    next: None,
                };
                engine.update_owned(w, local, &mut polled)
            };
        update(&mut engine, &mut member, &w, &local);
        group.throughput(Throughput::Elements(1));
        let one = ObjectKey::new("default", "svc-0");
        group.bench_function(id("one_service_changed"), |b| {
            b.iter(|| {
                w.edit_service(&one, |s| s.local = !s.local);
                black_box(update(&mut engine, &mut member, &w, &local))
            })
        });
        // node-1's speaker dies (its Services are placed on the others),
        // then returns and publishes its claims again (it took nothing).
        let node = "node-1".to_string();
        let mut fewer = live.clone();
        fewer.remove(&node);
        let mut gone = false;
        let mut rejoin = 1_000_000;
        group.bench_function(id("one_speaker_leaves_or_joins"), |b| {
            b.iter(|| {
                gone = !gone;
                if gone {
                    member.set_live(peers.iter().filter(|(p, _)| &**p != "node-1").cloned());
                    black_box(update(
                        &mut engine,
                        &mut member,
                        &w,
                        &Local {
                            live: &fewer,
                            ..local
                        },
                    ))
                } else {
                    member.set_live(peers.clone());
                    // It took nothing back: it claims nothing.
                    rejoin += 1;
                    let hello = Message {
                        epoch: 1,
                        seq: rejoin,
                        settling: false,
                        held: Some(BTreeSet::new()),
                        reply: false,
                    };
                    member.receive(&Node::from("node-1"), hello);
                    black_box(update(&mut engine, &mut member, &w, &local))
                }
            })
        });
        let same = w.services()[&one].clone();
        group.bench_function(id("unchanged"), |b| {
            b.iter(|| {
                black_box(w.set_service(same.clone()));
                black_box(update(&mut engine, &mut member, &w, &local))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, announce_compute, announce_sticky);
criterion_main!(benches);

//! Bytes the announce decision holds per Service: builds the speaker's
//! [`World`] and an [`Engine`] for 10,000 Services (one EndpointSlice each,
//! endpoints on 3 of 100 nodes) and prints what each part allocated, as
//! counted by dhat's allocator. Run with
//! `cargo run --release -p ferrolb-core --example announce_memory [services] [nodes]`.

use ferrolb_core::announce::interfaces::{Excludes, HostInterface};
use ferrolb_core::announce::model::{
    AdInfo, NodeFacts, ObjectKey, PoolInfo, ServiceInfo, SliceInfo,
};
use ferrolb_core::announce::{Engine, Local, World};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Live heap bytes, as dhat counts them.
fn live() -> isize {
    dhat::HeapStats::get().curr_bytes as isize
}

fn main() {
    let mut args = std::env::args().skip(1);
    let services: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let nodes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let _profiler = dhat::Profiler::builder().testing().build();
    let start = live();
    let mut w = World::default();
    for n in 0..nodes {
        let name = format!("node-{n}");
        w.set_node(NodeFacts {
            labels: BTreeMap::from([("kubernetes.io/hostname".to_string(), name.clone())]),
            name,
            ready: true,
            network_unavailable: false,
            internal_ip: None,
        });
    }
    w.set_pool(PoolInfo::new(
        "bench",
        BTreeMap::new(),
        &["2001:db8:1::/64"],
    ));
    w.set_ad(AdInfo {
        key: ObjectKey::new("ferrolb-system", "all"),
        ..AdInfo::default()
    });
    // The speaker shares namespace and node names across objects.
    let ns: std::sync::Arc<str> = "default".into();
    let node_names: Vec<std::sync::Arc<str>> =
        w.nodes().keys().map(|n| n.as_str().into()).collect();
    let base = live();
    for k in 0..services {
        let key = ObjectKey::new(ns.clone(), format!("service-{k:05}"));
        w.set_service(ServiceInfo {
            key: key.clone(),
            ips: vec![IpAddr::V6(Ipv6Addr::new(
                0x2001, 0xdb8, 1, 0, 0, 0, 0, k as u16,
            ))],
            pool: Some("bench".into()),
            local: false,
            uid: Some(format!("6f1c2a4e-0000-4000-8000-{k:012}")),
            ..Default::default()
        });
    }
    let with_services = live();
    for k in 0..services {
        let key = ObjectKey::new(ns.clone(), format!("service-{k:05}"));
        w.set_slice(
            ObjectKey::new(ns.clone(), format!("service-{k:05}-x7k2p")),
            SliceInfo {
                service: Some(key),
                ready: 3,
                ready_nodes: SliceInfo::nodes((0..3).map(|i| node_names[(k + i) % nodes].clone())),
                ..SliceInfo::default()
            },
        );
    }
    let with_slices = live();
    let live_set: BTreeSet<String> = w.nodes().keys().cloned().collect();
    let links = vec![HostInterface::ethernet("eth0", 2, [2, 0, 0, 0, 0, 1])];
    let excludes = Excludes::default();
    let mut engine = Engine::default();
    let before_engine = live();
    let delta = engine.update(
        &w,
        &Local {
            me: "node-0",
            live: &live_set,
            links: &links,
            excludes: &excludes,
            rules: Default::default(),
        },
    );
    drop(delta);
    let with_engine = live();
    let per = |bytes: isize| bytes as f64 / services as f64;
    println!("{services} Services, {nodes} nodes (bytes requested from the allocator)");
    println!("{:<40} {:>12} {:>10}", "part", "total KiB", "per Service");
    for (what, bytes) in [
        ("nodes, pool, advertisement", base - start),
        ("World: Services (+ change log)", with_services - base),
        (
            "World: EndpointSlices (+ index)",
            with_slices - with_services,
        ),
        (
            "Engine: decisions, announced pairs",
            with_engine - before_engine,
        ),
        ("total", with_engine - start),
    ] {
        println!(
            "{what:<40} {:>12.0} {:>10.0}",
            bytes as f64 / 1024.0,
            per(bytes)
        );
    }
}

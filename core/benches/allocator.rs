//! Allocator benchmarks: filling a /16-sized pool, one allocation in a
//! nearly full pool, and memory per assignment.
//!
//! Only documentation ranges are used, so the "/16" is the IPv6 range
//! `2001:db8::1-2001:db8::fffe` (65,534 addresses, the host count of an
//! IPv4 /16).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ferrolb_core::allocator::{AddressRange, AllocRequest, Allocator, Family, Pool, ServiceKey};

const FILL: usize = 65_534;
const MEMORY_ASSIGNMENTS: usize = 100_000;

fn v6() -> AllocRequest {
    AllocRequest {
        families: vec![Family::V6],
        ..Default::default()
    }
}

fn slash16() -> Allocator {
    let range = AddressRange::parse("2001:db8::1-2001:db8::fffe").expect("range parses");
    let mut a = Allocator::new();
    a.set_pools(vec![Pool::new("bench", vec![range])]);
    a
}

fn keys(n: usize) -> Vec<ServiceKey> {
    (0..n)
        .map(|i| ServiceKey::new(format!("ns{}", i % 100), format!("svc-{i}")))
        .collect()
}

fn fill(a: &mut Allocator, keys: &[ServiceKey], req: &AllocRequest) {
    for key in keys {
        black_box(a.allocate(key, req).expect("pool has room"));
    }
}

/// VmRSS of this process in bytes, from /proc/self/status.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn report_once() {
    let req = v6();
    let all = keys(FILL);
    let mut a = slash16();
    let start = Instant::now();
    fill(&mut a, &all, &req);
    let took = start.elapsed();
    println!(
        "fill /16 ({FILL} Services, one allocate each): {took:?} ({:?} per allocation)",
        took / FILL as u32
    );
    assert!(a.allocate(&ServiceKey::new("x", "overflow"), &req).is_err());

    let big = AddressRange::parse("2001:db8::/64").expect("range parses");
    let many = keys(MEMORY_ASSIGNMENTS);
    let before = rss_bytes();
    let mut m = Allocator::new();
    m.set_pools(vec![Pool::new("big", vec![big])]);
    fill(&mut m, &many, &req);
    let after = rss_bytes();
    match (before, after) {
        (Some(before), Some(after)) => {
            let delta = after.saturating_sub(before);
            println!(
                "memory for {MEMORY_ASSIGNMENTS} assignments: {delta} bytes VmRSS delta ({} bytes per assignment, keys included)",
                delta / MEMORY_ASSIGNMENTS as u64
            );
        }
        _ => println!("memory: /proc/self/status not readable here"),
    }
    black_box(&m);
}

fn benches(c: &mut Criterion) {
    report_once();

    let req = v6();
    let all = keys(FILL);
    let mut group = c.benchmark_group("allocator");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(8));
    group.bench_function("fill_slash16_65534_services", |b| {
        b.iter_batched(
            slash16,
            |mut a| fill(&mut a, &all, &req),
            BatchSize::PerIteration,
        )
    });
    group.finish();

    // A /16 with exactly one free address, in the middle of the pool.
    let mut nearly_full = slash16();
    fill(&mut nearly_full, &all, &req);
    nearly_full.release(&all[FILL / 2]);
    let last = ServiceKey::new("bench", "last");
    let mut group = c.benchmark_group("allocator");
    group
        .sample_size(50)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("allocate_and_release_last_free_address_of_slash16", |b| {
        b.iter(|| {
            let got = nearly_full
                .allocate(&last, &req)
                .expect("one address is free");
            black_box(got);
            nearly_full.release(&last);
        })
    });
    group.finish();
}

criterion_group!(allocator, benches);
criterion_main!(allocator);

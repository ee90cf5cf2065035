//! MetalLB's allocator gauges, under MetalLB's names, labels and meanings,
//! so dashboards and alerts written for MetalLB keep working
//! (`--metallb-metrics`, on by default).
//!
//! Checked against MetalLB's `internal/allocator/stats.go` (the gauges)
//! and `internal/allocator/allocator.go` (`updatePoolStats`, `poolCount`,
//! `deleteStatsFor`): per `pool`, the usable addresses and the addresses
//! held by at least one Service (a shared IP counts once), both families
//! summed and each family alone; a deleted pool's series are removed.
//! MetalLB's `metallb_allocator_services_allocated_total` is not served.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// One gauge family per MetalLB series: name, help (MetalLB's own text).
pub(super) const SERIES: [(&str, &str); 6] = [
    (
        "metallb_allocator_addresses_in_use_total",
        "Number of IP addresses in use, per pool",
    ),
    (
        "metallb_allocator_ipv4_addresses_in_use_total",
        "Number of IPV4 addresses in use, per pool",
    ),
    (
        "metallb_allocator_ipv6_addresses_in_use_total",
        "Number of IPV6 addresses in use, per pool",
    ),
    (
        "metallb_allocator_addresses_total",
        "Number of usable IP addresses, per pool",
    ),
    (
        "metallb_allocator_ipv4_addresses_total",
        "Number of usable IPV4 addresses, per pool",
    ),
    (
        "metallb_allocator_ipv6_addresses_total",
        "Number of usable IPV6 addresses, per pool",
    ),
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
}

/// The gauges of [`SERIES`], in that order. Cheap to clone; clones share
/// the series.
#[derive(Clone, Debug, Default)]
pub(super) struct Pools {
    gauges: [Family<PoolLabels, Gauge>; 6],
}

impl Pools {
    /// Registers every family in `registry`.
    pub(super) fn register(&self, registry: &mut Registry) {
        for ((name, help), family) in SERIES.iter().zip(&self.gauges) {
            registry.register(*name, *help, family.clone());
        }
    }

    /// Sets a pool's series from its per-family counts. A family's sum
    /// saturates at `i64::MAX`, as MetalLB's `math.MaxInt64` for a huge
    /// IPv6 range.
    pub(super) fn set(&self, pool: &str, in_use: [i64; 2], total: [i64; 2]) {
        let values = [
            in_use[0].saturating_add(in_use[1]),
            in_use[0],
            in_use[1],
            total[0].saturating_add(total[1]),
            total[0],
            total[1],
        ];
        let labels = labels(pool);
        for (family, value) in self.gauges.iter().zip(values) {
            family.get_or_create(&labels).set(value);
        }
    }

    /// Drops a deleted pool's series.
    pub(super) fn remove(&self, pool: &str) {
        let labels = labels(pool);
        for family in &self.gauges {
            family.remove(&labels);
        }
    }
}

fn labels(pool: &str) -> PoolLabels {
    PoolLabels {
        pool: pool.to_owned(),
    }
}

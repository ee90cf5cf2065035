//! Prometheus metrics of the controller, in OpenMetrics text.
//!
//! | series | type | labels |
//! |---|---|---|
//! | `ferrolb_address_pool_addresses_in_use` | gauge | `pool`, `family` (`ipv4`/`ipv6`) |
//! | `ferrolb_address_pool_addresses_total` | gauge | `pool`, `family` |
//! | `metallb_allocator_addresses_in_use_total`, `metallb_allocator_ipv4_addresses_in_use_total`, `metallb_allocator_ipv6_addresses_in_use_total` | gauge | `pool` |
//! | `metallb_allocator_addresses_total`, `metallb_allocator_ipv4_addresses_total`, `metallb_allocator_ipv6_addresses_total` | gauge | `pool` |
//! | `ferrolb_allocation_failures_total` | counter | `reason` |
//! | `ferrolb_reconcile_duration_seconds` | histogram | `kind` |
//! | `ferrolb_controller_memberlist_secret_ok` | gauge | `secret` (leader only) |
//!
//! The `metallb_*` gauges ([`metallb`]) repeat MetalLB's own names and
//! labels so that dashboards and alerts written for MetalLB keep working
//! after a switch; they carry no information the `ferrolb_*` ones lack, and
//! `--metallb-metrics=false` leaves them out. docs/metrics.md lists both.

mod metallb;

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Reconcile-duration buckets, 100 µs to 10 s in 1-2.5-5 steps: an
/// allocation is microseconds, an API round trip tens of milliseconds, and
/// anything near seconds is a problem worth seeing.
const RECONCILE_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolFamilyLabels {
    pool: String,
    family: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SecretLabels {
    secret: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

type HistogramFamily = Family<KindLabels, Histogram, fn() -> Histogram>;

/// The controller's metrics. Cheap to clone; clones share the series.
///
/// ```
/// let metrics = ferrolb_controller::metrics::Metrics::new(true);
/// metrics.set_pool("default", 3, 1, 254, 65536);
/// metrics.allocation_failed("pool_exhausted");
/// assert!(metrics.encode().contains(r#"metallb_allocator_addresses_in_use_total{pool="default"} 4"#));
/// ```
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    in_use: Family<PoolFamilyLabels, Gauge>,
    total: Family<PoolFamilyLabels, Gauge>,
    /// `None` under `--metallb-metrics=false`.
    metallb: Option<metallb::Pools>,
    allocation_failures: Family<ReasonLabels, Counter>,
    reconcile_duration: HistogramFamily,
    memberlist_secret_ok: Family<SecretLabels, Gauge>,
}

impl Metrics {
    /// A fresh registry with every series family registered (and empty);
    /// MetalLB's only if `metallb` (`--metallb-metrics`).
    pub fn new(metallb: bool) -> Self {
        let mut registry = Registry::default();
        let in_use = Family::<PoolFamilyLabels, Gauge>::default();
        let total = Family::<PoolFamilyLabels, Gauge>::default();
        let allocation_failures = Family::<ReasonLabels, Counter>::default();
        let reconcile_duration: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(RECONCILE_BUCKETS.iter().copied()));

        registry.register(
            "ferrolb_address_pool_addresses_in_use",
            "Addresses of a pool assigned to Services, per IP family",
            in_use.clone(),
        );
        registry.register(
            "ferrolb_address_pool_addresses_total",
            "Usable addresses of a pool, per IP family",
            total.clone(),
        );
        let metallb = metallb.then(metallb::Pools::default);
        if let Some(m) = &metallb {
            m.register(&mut registry);
        }
        // prometheus-client appends `_total` to counters.
        registry.register(
            "ferrolb_allocation_failures",
            "Allocations refused, by reason",
            allocation_failures.clone(),
        );
        registry.register(
            "ferrolb_reconcile_duration_seconds",
            "Time to reconcile one object, by kind",
            reconcile_duration.clone(),
        );

        let memberlist_secret_ok = Family::<SecretLabels, Gauge>::default();
        registry.register(
            "ferrolb_controller_memberlist_secret_ok",
            "1 if the speakers' memberlist Secret exists and is usable, 0 if not (leader only)",
            memberlist_secret_ok.clone(),
        );

        Metrics {
            registry: Arc::new(registry),
            memberlist_secret_ok,
            in_use,
            total,
            metallb,
            allocation_failures,
            reconcile_duration,
        }
    }

    /// Sets a pool's usage and size. A pool with no IPv4 (or IPv6) range
    /// reports 0 for that family. Totals above `i64::MAX` (a large IPv6
    /// range) should be clamped by the caller.
    pub fn set_pool(
        &self,
        pool: &str,
        in_use_v4: i64,
        in_use_v6: i64,
        total_v4: i64,
        total_v6: i64,
    ) {
        for (family, in_use, total) in
            [("ipv4", in_use_v4, total_v4), ("ipv6", in_use_v6, total_v6)]
        {
            let labels = PoolFamilyLabels {
                pool: pool.to_owned(),
                family,
            };
            self.in_use.get_or_create(&labels).set(in_use);
            self.total.get_or_create(&labels).set(total);
        }
        if let Some(m) = &self.metallb {
            m.set(pool, [in_use_v4, in_use_v6], [total_v4, total_v6]);
        }
    }

    /// Drops every series of a deleted pool, so it does not linger at its
    /// last value.
    pub fn remove_pool(&self, pool: &str) {
        for family in ["ipv4", "ipv6"] {
            let labels = PoolFamilyLabels {
                pool: pool.to_owned(),
                family,
            };
            self.in_use.remove(&labels);
            self.total.remove(&labels);
        }
        if let Some(m) = &self.metallb {
            m.remove(pool);
        }
    }

    /// Counts one refused allocation. `reason` is a fixed, low-cardinality
    /// string such as the allocator error's variant name.
    pub fn allocation_failed(&self, reason: &'static str) {
        self.allocation_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Records how long one reconcile of a `kind` (e.g. `"service"`,
    /// `"pool"`) took.
    pub fn observe_reconcile(&self, kind: &'static str, seconds: f64) {
        self.reconcile_duration
            .get_or_create(&KindLabels { kind })
            .observe(seconds);
    }

    /// Whether the memberlist Secret `name` is usable, as the leader last
    /// found it.
    pub fn set_memberlist_secret_ok(&self, name: &str, ok: bool) {
        self.memberlist_secret_ok
            .get_or_create(&SecretLabels {
                secret: name.to_owned(),
            })
            .set(i64::from(ok));
    }

    /// Drops the memberlist Secret series: a replica that stopped leading
    /// no longer checks it.
    pub fn clear_memberlist_secret(&self, name: &str) {
        self.memberlist_secret_ok.remove(&SecretLabels {
            secret: name.to_owned(),
        });
    }

    /// The registry holding every series, for the HTTP server.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    /// Every series in OpenMetrics text format, ending with `# EOF`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing to a String cannot fail; an error here is a bug in a
            // label encoder, and a partial scrape beats a crash.
            tracing::error!(%error, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Parses the samples of an OpenMetrics text into `series -> value`,
    /// where series is the name with its label set exactly as encoded.
    fn samples(text: &str) -> HashMap<String, f64> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').expect("sample has a value");
                (series.to_owned(), value.parse().expect("numeric value"))
            })
            .collect()
    }

    #[test]
    fn pool_gauges_are_reported_per_family_and_under_metallb_names() {
        let m = Metrics::new(true);
        m.set_pool("default", 3, 2, 254, 1000);
        let s = samples(&m.encode());
        let get = |series: String| {
            s.get(&series)
                .copied()
                .unwrap_or_else(|| panic!("missing {series} in {s:?}"))
        };
        let ferrolb = |what: &str, family: &str| {
            get(format!(
                r#"ferrolb_address_pool_addresses_{what}{{pool="default",family="{family}"}}"#
            ))
        };
        assert_eq!(
            [
                ("in_use", "ipv4"),
                ("in_use", "ipv6"),
                ("total", "ipv4"),
                ("total", "ipv6")
            ]
            .map(|(what, family)| ferrolb(what, family)),
            [3.0, 2.0, 254.0, 1000.0]
        );
        // MetalLB's: both families summed, then each alone.
        let metallb = |name: &str| get(format!(r#"metallb_allocator_{name}{{pool="default"}}"#));
        assert_eq!(
            [
                "addresses_in_use_total",
                "ipv4_addresses_in_use_total",
                "ipv6_addresses_in_use_total",
                "addresses_total",
                "ipv4_addresses_total",
                "ipv6_addresses_total",
            ]
            .map(metallb),
            [5.0, 3.0, 2.0, 1254.0, 254.0, 1000.0]
        );
    }

    #[test]
    fn metallb_totals_saturate_like_metallb_for_a_huge_ipv6_range() {
        let m = Metrics::new(true);
        m.set_pool("wide", 1, 1, 254, i64::MAX);
        let s = samples(&m.encode());
        assert_eq!(
            s[r#"metallb_allocator_addresses_total{pool="wide"}"#],
            i64::MAX as f64
        );
    }

    #[test]
    fn metallb_series_are_not_registered_when_turned_off() {
        let m = Metrics::new(false);
        m.set_pool("default", 3, 2, 254, 1000);
        m.remove_pool("default");
        m.set_pool("kept", 1, 0, 2, 0);
        let text = m.encode();
        assert!(!text.contains("metallb_"), "{text}");
        assert!(
            text.contains(r#"ferrolb_address_pool_addresses_in_use{pool="kept",family="ipv4"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn every_exported_series_is_in_docs_metrics() {
        let docs = include_str!("../../docs/metrics.md");
        let m = Metrics::new(true);
        m.set_pool("p", 1, 1, 2, 2);
        m.allocation_failed("pool_exhausted");
        m.observe_reconcile("batch", 0.01);
        m.set_memberlist_secret_ok("ferrolb-memberlist", true);
        let text = m.encode();
        let families = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next());
        for name in families {
            assert!(
                docs.contains(&format!("| `{name}")),
                "{name} is missing from docs/metrics.md"
            );
        }
    }

    #[test]
    fn setting_a_pool_again_replaces_its_values() {
        let m = Metrics::new(true);
        m.set_pool("p", 3, 0, 10, 0);
        m.set_pool("p", 1, 0, 10, 0);
        let s = samples(&m.encode());
        assert_eq!(
            s[r#"ferrolb_address_pool_addresses_in_use{pool="p",family="ipv4"}"#],
            1.0
        );
        assert_eq!(
            s[r#"metallb_allocator_addresses_in_use_total{pool="p"}"#],
            1.0
        );
    }

    #[test]
    fn a_removed_pool_leaves_no_series_behind() {
        let m = Metrics::new(true);
        m.set_pool("gone", 1, 1, 2, 2);
        m.set_pool("kept", 1, 0, 2, 0);
        m.remove_pool("gone");
        let text = m.encode();
        assert!(!text.contains(r#"pool="gone""#), "{text}");
        assert!(text.contains(r#"pool="kept""#), "{text}");
    }

    #[test]
    fn allocation_failures_count_per_reason() {
        let m = Metrics::new(true);
        m.allocation_failed("pool_exhausted");
        m.allocation_failed("pool_exhausted");
        m.allocation_failed("ip_in_use");
        let s = samples(&m.encode());
        assert_eq!(
            s[r#"ferrolb_allocation_failures_total{reason="pool_exhausted"}"#],
            2.0
        );
        assert_eq!(
            s[r#"ferrolb_allocation_failures_total{reason="ip_in_use"}"#],
            1.0
        );
    }

    #[test]
    fn reconcile_durations_fill_buckets_from_100us_to_10s() {
        let m = Metrics::new(true);
        m.observe_reconcile("service", 0.00005);
        m.observe_reconcile("service", 0.003);
        m.observe_reconcile("service", 20.0);
        let s = samples(&m.encode());
        let bucket = |le: &str| {
            s[&format!(r#"ferrolb_reconcile_duration_seconds_bucket{{le="{le}",kind="service"}}"#)]
        };
        assert_eq!(bucket("0.0001"), 1.0);
        assert_eq!(bucket("0.0025"), 1.0);
        assert_eq!(bucket("0.005"), 2.0);
        assert_eq!(bucket("10.0"), 2.0);
        assert_eq!(bucket("+Inf"), 3.0);
        assert_eq!(
            s[r#"ferrolb_reconcile_duration_seconds_count{kind="service"}"#],
            3.0
        );
        let sum = s[r#"ferrolb_reconcile_duration_seconds_sum{kind="service"}"#];
        assert!((sum - 20.00305).abs() < 1e-9, "{sum}");
    }

    #[test]
    fn the_memberlist_secret_gauge_exists_only_while_reported() {
        let m = Metrics::new(true);
        assert!(!m.encode().contains("memberlist_secret_ok{"));
        m.set_memberlist_secret_ok("ferrolb-memberlist", false);
        let s = samples(&m.encode());
        assert_eq!(
            s[r#"ferrolb_controller_memberlist_secret_ok{secret="ferrolb-memberlist"}"#],
            0.0
        );
        m.set_memberlist_secret_ok("ferrolb-memberlist", true);
        let s = samples(&m.encode());
        assert_eq!(
            s[r#"ferrolb_controller_memberlist_secret_ok{secret="ferrolb-memberlist"}"#],
            1.0
        );
        m.clear_memberlist_secret("ferrolb-memberlist");
        assert!(!m.encode().contains("memberlist_secret_ok{"));
    }

    #[test]
    fn the_output_is_openmetrics_with_types_and_an_eof_marker() {
        let m = Metrics::new(true);
        m.allocation_failed("x");
        m.set_pool("p", 0, 0, 1, 0);
        m.observe_reconcile("pool", 0.01);
        let text = m.encode();
        assert!(
            text.contains("# TYPE ferrolb_allocation_failures counter"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE ferrolb_reconcile_duration_seconds histogram"),
            "{text}"
        );
        for (name, _) in metallb::SERIES {
            assert!(text.contains(&format!("# TYPE {name} gauge")), "{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

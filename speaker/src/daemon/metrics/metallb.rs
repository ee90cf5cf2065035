//! MetalLB's speaker series, under MetalLB's names, labels and meanings,
//! so dashboards and alerts written for MetalLB keep working
//! (`--metallb-metrics`, on by default).
//!
//! - `metallb_speaker_announced{ip,node,protocol,service}`: checked against
//!   MetalLB's `speaker/main.go` (`announcing`, set in `handleService`,
//!   deleted in `deleteBalancerProtocol`): 1 for each IP of a Service this
//!   node announces, `protocol="layer2"`, `service` its `namespace/name`;
//!   the series is removed when the node stops announcing it. Desired
//!   state, as MetalLB's help says: 1 from the decision on, whether or
//!   not an interface could be used.
//! - `metallb_layer2_requests_received`, `metallb_layer2_responses_sent`,
//!   `metallb_layer2_gratuitous_sent`, label `ip`: checked against
//!   MetalLB's `internal/layer2/stats.go` (the counters) and
//!   `internal/layer2/arp.go`, `ndp.go` (where they are counted): a request
//!   for an owned address that gets an answer, the answer written, each
//!   gratuitous frame written (two per IPv4 announcement: request and
//!   reply; one per IPv6). Fed from the announcer's per-address tally
//!   ([`crate::announcer::PerIp`]), counted where ferrolb's own
//!   `requests_answered` and the transport's writes are.
//!
//! MetalLB serves the Prometheus text format, where a counter keeps its
//! name; prometheus-client writes OpenMetrics, where a counter's samples
//! always end in `_total`, which would rename these. They are therefore
//! served as OpenMetrics `unknown` (untyped) families, whose samples keep
//! the family's name: `rate()` and `increase()` work as on MetalLB's.

use crate::announcer::PerIp;
use ferrolb_core::announce::{Decision, Delta, Verdict};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// MetalLB's `protocol` label for layer 2 (`config.Layer2`).
const LAYER2: &str = "layer2";

/// Label order as client_golang writes them (sorted by name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnnouncedLabels {
    ip: String,
    node: String,
    protocol: &'static str,
    service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IpLabels {
    ip: String,
}

/// A counter whose samples keep the family's name (see the module docs).
#[derive(Debug, Default, Clone)]
struct Untyped(Counter);

impl TypedMetric for Untyped {
    const TYPE: MetricType = MetricType::Unknown;
}

impl EncodeMetric for Untyped {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.0.get())
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// The series. Registered only under `--metallb-metrics`.
#[derive(Debug, Default)]
pub(super) struct Series {
    announced: Family<AnnouncedLabels, Gauge>,
    requests_received: Family<IpLabels, Untyped>,
    responses_sent: Family<IpLabels, Untyped>,
    gratuitous_sent: Family<IpLabels, Untyped>,
}

impl Series {
    /// Registers every family in `registry`, with MetalLB's help texts.
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "metallb_speaker_announced",
            "Services being announced from this node. This is desired state, it does not guarantee that the routing protocols have converged",
            self.announced.clone(),
        );
        for (name, help, family) in [
            (
                "metallb_layer2_requests_received",
                "Number of layer2 requests received for owned IPs",
                &self.requests_received,
            ),
            (
                "metallb_layer2_responses_sent",
                "Number of layer2 responses sent for owned IPs in response to requests",
                &self.responses_sent,
            ),
            (
                "metallb_layer2_gratuitous_sent",
                "Number of gratuitous layer2 packets sent for owned IPs as a result of failovers",
                &self.gratuitous_sent,
            ),
        ] {
            registry.register(name, help, family.clone());
        }
    }

    /// Follows the Services whose decision changed: each IP of a Service
    /// `node` owns now gets its series at 1; the IPs it no longer
    /// announces (owner elsewhere, Service gone, IPs changed) lose theirs.
    pub(super) fn observe_services(&self, node: &str, delta: &Delta) {
        for change in &delta.services {
            let before = owned_ips(node, change.before.as_ref());
            let after = owned_ips(node, change.after.as_ref());
            if before.is_empty() && after.is_empty() {
                continue;
            }
            let service = change.key.to_string();
            let labels = |ip: &IpAddr| AnnouncedLabels {
                ip: ip.to_string(),
                node: node.to_owned(),
                protocol: LAYER2,
                service: service.clone(),
            };
            for ip in before.difference(&after) {
                self.announced.remove(&labels(ip));
            }
            for ip in &after {
                self.announced.get_or_create(&labels(ip)).set(1);
            }
        }
    }

    /// Adds what was counted per address since the last call.
    pub(super) fn observe_layer2(&self, tally: &PerIp) {
        for (ip, counts) in tally.iter() {
            let labels = IpLabels { ip: ip.to_string() };
            for (family, n) in [
                (&self.requests_received, counts.requests_received),
                (&self.responses_sent, counts.responses_sent),
                (&self.gratuitous_sent, counts.gratuitous_sent),
            ] {
                if n > 0 {
                    family.get_or_create(&labels).0.inc_by(n);
                }
            }
        }
    }
}

/// The IPs `node` announces under `decision`.
fn owned_ips(node: &str, decision: Option<&Decision>) -> BTreeSet<IpAddr> {
    match decision {
        Some(Decision {
            ips,
            verdict: Verdict::Owner { node: owner, .. },
        }) if owner == node => ips.iter().copied().collect(),
        _ => BTreeSet::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{samples, Metrics};
    use crate::announcer::{Announcer, Config, Frame, Kind, Outgoing};
    use crate::transport::run::Stats;
    use crate::wire::{ArpFrame, ArpOperation, MacAddr};
    use ferrolb_core::announce::model::ObjectKey;
    use ferrolb_core::announce::{Decision, Delta, ServiceChange, Unannounced, Verdict};
    use prometheus_client::registry::Registry;
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;
    use std::time::Instant;

    const NODE: &str = "node-a";
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

    fn registered(metallb: bool) -> (Arc<Metrics>, Registry) {
        let metrics = Arc::new(Metrics::new(metallb));
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        (metrics, registry)
    }

    fn owned_by(node: &str, ips: &[&str]) -> Option<Decision> {
        Some(Decision {
            ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
            verdict: Verdict::Owner {
                node: node.into(),
                interfaces: vec!["eth0".into()],
            },
        })
    }

    fn change(service: &str, before: Option<Decision>, after: Option<Decision>) -> ServiceChange {
        let (namespace, name) = service.split_once('/').unwrap();
        ServiceChange {
            key: ObjectKey::new(namespace, name),
            before,
            after,
        }
    }

    fn delta(services: Vec<ServiceChange>) -> Delta {
        Delta {
            services,
            ..Delta::default()
        }
    }

    fn announced(ip: &str, service: &str) -> String {
        format!(
            r#"metallb_speaker_announced{{ip="{ip}",node="{NODE}",protocol="layer2",service="{service}"}}"#
        )
    }

    /// The `metallb_speaker_announced` samples: series -> value.
    fn announced_series(registry: &Registry) -> Vec<(String, String)> {
        samples(registry)
            .into_iter()
            .filter(|(series, _)| series.starts_with("metallb_speaker_announced"))
            .collect()
    }

    #[test]
    fn the_announced_gauge_is_1_per_ip_of_each_service_this_node_owns_and_gone_when_it_stops() {
        let (metrics, registry) = registered(true);
        let unannounced = Some(Decision {
            ips: vec![VIP.into()],
            verdict: Verdict::Unannounced(Unannounced::NoAdvertisement {
                pool: "blue".into(),
            }),
        });
        metrics.observe_services(
            NODE,
            &delta(vec![
                change(
                    "default/web",
                    None,
                    owned_by(NODE, &["192.0.2.10", "2001:db8::10"]),
                ),
                change("default/db", None, owned_by("node-b", &["192.0.2.11"])),
                change("other/api", None, owned_by(NODE, &["192.0.2.12"])),
                change("other/idle", None, unannounced),
            ]),
        );
        let one = |ip, service| (announced(ip, service), "1".to_owned());
        assert_eq!(
            announced_series(&registry),
            [
                one("192.0.2.10", "default/web"),
                one("192.0.2.12", "other/api"),
                one("2001:db8::10", "default/web"),
            ]
        );

        // default/web fails over to node-b, other/api changes IP, then
        // node-b's Service comes here and goes away.
        metrics.observe_services(
            NODE,
            &delta(vec![
                change(
                    "default/web",
                    owned_by(NODE, &["192.0.2.10", "2001:db8::10"]),
                    owned_by("node-b", &["192.0.2.10", "2001:db8::10"]),
                ),
                change(
                    "other/api",
                    owned_by(NODE, &["192.0.2.12"]),
                    owned_by(NODE, &["192.0.2.13"]),
                ),
                change(
                    "default/db",
                    owned_by("node-b", &["192.0.2.11"]),
                    owned_by(NODE, &["192.0.2.11"]),
                ),
            ]),
        );
        assert_eq!(
            announced_series(&registry),
            [
                one("192.0.2.11", "default/db"),
                one("192.0.2.13", "other/api")
            ]
        );
        metrics.observe_services(
            NODE,
            &delta(vec![
                change("default/db", owned_by(NODE, &["192.0.2.11"]), None),
                change("other/api", owned_by(NODE, &["192.0.2.13"]), None),
            ]),
        );
        assert_eq!(announced_series(&registry), []);
    }

    fn who_has(target: Ipv4Addr) -> Vec<u8> {
        let asker = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
        ArpFrame::request(asker, Ipv4Addr::new(192, 0, 2, 1), target).to_bytes()
    }

    /// The transport's part: every frame is written except those `fails`
    /// picks.
    fn send(a: &mut Announcer, out: Vec<Outgoing>, fails: impl Fn(&Outgoing) -> bool) {
        for o in out.iter().filter(|o| !fails(o)) {
            a.sent(o);
        }
    }

    #[test]
    fn layer2_counters_count_per_ip_under_metallb_names_from_the_announcers_counts() {
        let (metrics, registry) = registered(true);
        let t0 = Instant::now();
        let mut a = Announcer::new(Config::default());
        a.set_link("eth0", MacAddr([0x02, 0, 0, 0, 0, 0x0a]), t0);
        let vip6: IpAddr = "2001:db8::10".parse().unwrap();
        a.set_desired([(IpAddr::V4(VIP), "eth0"), (vip6, "eth0")], t0);
        // Takeover: a gratuitous request and reply for the IPv4 address,
        // whose reply fails to go out, and one advertisement for the IPv6.
        let takeover = a.poll(t0);
        send(
            &mut a,
            takeover,
            |o| matches!(o.frame, Frame::Arp(f) if f.arp.operation == ArpOperation::Reply),
        );
        // Three questions; the write of the last answer fails.
        for fail in [false, false, true] {
            let answer: Vec<Outgoing> = a.handle("eth0", &who_has(VIP)).into_iter().collect();
            assert!(answer.iter().all(|o| o.kind == Kind::Reply));
            send(&mut a, answer, |_| fail);
        }
        // A question for an address not owned counts nowhere.
        assert!(a
            .handle("eth0", &who_has(Ipv4Addr::new(192, 0, 2, 99)))
            .is_none());
        metrics.observe_layer2(&a.take_per_ip());
        metrics.observe_transport(&Stats {
            announcer: *a.counters(),
            ..Stats::default()
        });

        let got = samples(&registry);
        for (series, value) in [
            (r#"metallb_layer2_requests_received{ip="192.0.2.10"}"#, "3"),
            (r#"metallb_layer2_responses_sent{ip="192.0.2.10"}"#, "2"),
            (r#"metallb_layer2_gratuitous_sent{ip="192.0.2.10"}"#, "1"),
            (r#"metallb_layer2_gratuitous_sent{ip="2001:db8::10"}"#, "1"),
            // ferrolb's own, from the same counts.
            (
                r#"ferrolb_speaker_requests_answered_total{protocol="arp"}"#,
                "3",
            ),
            (
                r#"ferrolb_speaker_gratuitous_sent_total{protocol="arp"}"#,
                "2",
            ),
            (
                r#"ferrolb_speaker_gratuitous_sent_total{protocol="ndp"}"#,
                "1",
            ),
        ] {
            assert_eq!(got.get(series).map(String::as_str), Some(value), "{series}");
        }
        assert!(!got.contains_key(r#"metallb_layer2_requests_received{ip="192.0.2.99"}"#));
        assert!(!got
            .keys()
            .any(|k| k.starts_with("metallb_layer2_responses_sent{ip=\"2001")));

        // The tally was emptied; the counters keep counting on top.
        assert!(a.take_per_ip().is_empty());
        let answer: Vec<Outgoing> = a.handle("eth0", &who_has(VIP)).into_iter().collect();
        send(&mut a, answer, |_| false);
        metrics.observe_layer2(&a.take_per_ip());
        let got = samples(&registry);
        assert_eq!(
            got[r#"metallb_layer2_requests_received{ip="192.0.2.10"}"#],
            "4"
        );
        assert_eq!(
            got[r#"metallb_layer2_responses_sent{ip="192.0.2.10"}"#],
            "3"
        );
    }

    #[test]
    fn layer2_counters_keep_metallbs_names_without_a_total_suffix() {
        let (metrics, registry) = registered(true);
        let mut a = Announcer::new(Config::default());
        a.set_link("eth0", MacAddr([0x02, 0, 0, 0, 0, 0x0a]), Instant::now());
        a.set_desired([(IpAddr::V4(VIP), "eth0")], Instant::now());
        let out = a.poll(Instant::now());
        send(&mut a, out, |_| false);
        let answer: Vec<Outgoing> = a.handle("eth0", &who_has(VIP)).into_iter().collect();
        send(&mut a, answer, |_| false);
        metrics.observe_layer2(&a.take_per_ip());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for name in [
            "metallb_layer2_requests_received",
            "metallb_layer2_responses_sent",
            "metallb_layer2_gratuitous_sent",
        ] {
            assert!(text.contains(&format!("# TYPE {name} unknown\n")), "{text}");
            assert!(
                text.contains(&format!("\n{name}{{ip=\"192.0.2.10\"}} ")),
                "{text}"
            );
            assert!(!text.contains(&format!("{name}_total")), "{text}");
        }
    }

    #[test]
    fn nothing_of_metallb_is_registered_when_turned_off() {
        let (metrics, registry) = registered(false);
        metrics.observe_services(
            NODE,
            &delta(vec![change(
                "default/web",
                None,
                owned_by(NODE, &["192.0.2.10"]),
            )]),
        );
        let mut a = Announcer::new(Config::default());
        a.set_link("eth0", MacAddr([0x02, 0, 0, 0, 0, 0x0a]), Instant::now());
        a.set_desired([(IpAddr::V4(VIP), "eth0")], Instant::now());
        let out = a.poll(Instant::now());
        send(&mut a, out, |_| false);
        metrics.observe_layer2(&a.take_per_ip());
        let got = samples(&registry);
        assert!(got.keys().all(|k| !k.starts_with("metallb_")), "{got:?}");
        assert!(got.contains_key(r#"ferrolb_speaker_requests_answered_total{protocol="arp"}"#));
    }
}

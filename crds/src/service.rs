//! What ferrolb reads back from a Service: the parts the controller writes
//! and the speakers and the lab act on. One reader, so the controller's idea
//! of "what the API server holds" and the speakers' idea of "what to
//! announce" can never drift apart.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;

use crate::annotations::IP_ALLOCATED_FROM_POOL;

/// `status.loadBalancer.ingress[*].ip` that parse as IP addresses, in order.
/// Hostname-only entries and garbage are skipped: ferrolb only ever writes
/// IPs there.
///
/// ```
/// use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Service, ServiceStatus};
///
/// let svc = Service {
///     status: Some(ServiceStatus {
///         load_balancer: Some(LoadBalancerStatus {
///             ingress: Some(vec![LoadBalancerIngress { ip: Some("198.51.100.7".into()), ..Default::default() }]),
///         }),
///         ..Default::default()
///     }),
///     ..Default::default()
/// };
/// assert_eq!(ferrolb_crds::service::ingress_ips(&svc), vec!["198.51.100.7".parse::<std::net::IpAddr>().unwrap()]);
/// ```
pub fn ingress_ips(svc: &Service) -> Vec<IpAddr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|ingress| ingress.ip.as_deref()?.parse().ok())
        .collect()
}

/// Whether `spec.loadBalancerClass` says the Service is ferrolb's: no class
/// when ferrolb runs without `--lb-class`, else exactly that class. The
/// controller assigns and the speakers announce only such Services, so
/// ferrolb can run beside another implementation (MetalLB during a move).
///
/// ```
/// use k8s_openapi::api::core::v1::{Service, ServiceSpec};
/// use ferrolb_crds::service::class_is_ours;
///
/// let other = Service {
///     spec: Some(ServiceSpec { load_balancer_class: Some("metallb".into()), ..Default::default() }),
///     ..Default::default()
/// };
/// assert!(!class_is_ours(&other, None));
/// assert!(class_is_ours(&other, Some("metallb")));
/// assert!(class_is_ours(&Service::default(), None));
/// ```
pub fn class_is_ours(svc: &Service, lb_class: Option<&str>) -> bool {
    let class = svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_class.as_deref());
    class == lb_class
}

/// The pool named by the `ferrolb.io/ip-allocated-from-pool` annotation.
pub fn allocated_pool(svc: &Service) -> Option<String> {
    svc.metadata
        .annotations
        .as_ref()?
        .get(IP_ALLOCATED_FROM_POOL)
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};
    use std::collections::BTreeMap;

    fn with_ingress(entries: &[(Option<&str>, Option<&str>)]) -> Service {
        Service {
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(
                        entries
                            .iter()
                            .map(|(ip, hostname)| LoadBalancerIngress {
                                ip: ip.map(Into::into),
                                hostname: hostname.map(Into::into),
                                ..Default::default()
                            })
                            .collect(),
                    ),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn ingress_ips_keep_order_and_skip_hostnames_and_garbage() {
        let svc = with_ingress(&[
            (Some("2001:db8::5"), None),
            (None, Some("lb.example")),
            (Some("not-an-ip"), None),
            (Some("198.51.100.5"), None),
        ]);
        let ips: Vec<IpAddr> = vec![
            "2001:db8::5".parse().unwrap(),
            "198.51.100.5".parse().unwrap(),
        ];
        assert_eq!(ingress_ips(&svc), ips);
    }

    #[test]
    fn a_service_without_status_has_no_ingress_ips_and_no_pool() {
        let svc = Service::default();
        assert!(ingress_ips(&svc).is_empty());
        assert_eq!(allocated_pool(&svc), None);
    }

    #[test]
    fn allocated_pool_reads_our_annotation_only() {
        let mut svc = Service::default();
        svc.metadata.annotations = Some(BTreeMap::from([
            (
                "metallb.io/ip-allocated-from-pool".to_string(),
                "other".to_string(),
            ),
            (IP_ALLOCATED_FROM_POOL.to_string(), "blue".to_string()),
        ]));
        assert_eq!(allocated_pool(&svc).as_deref(), Some("blue"));
    }
}

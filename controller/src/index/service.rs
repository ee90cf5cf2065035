//! Reading a Service at the edge: whether it is ours, what it asks for,
//! what its status already says, and the Event texts about it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;

use ferrolb_core::allocator::{
    self, AllocRequest, AllocationError, Assignment, RequestError, ServiceKey, ServiceParts,
};

/// Event reason (Normal): IPs were assigned. MetalLB's spelling.
pub const REASON_IP_ALLOCATED: &str = "IPAllocated";
/// Event reason (Warning): no IP could be assigned. MetalLB's spelling.
pub const REASON_ALLOCATION_FAILED: &str = "AllocationFailed";
/// Event reason (Warning): a pool change made the current IPs illegal.
/// MetalLB's spelling.
pub const REASON_CLEAR_ASSIGNMENT: &str = "ClearAssignment";

/// The key of a Service.
pub fn key(svc: &Service) -> ServiceKey {
    ServiceKey::new(svc.namespace().unwrap_or_default(), svc.name_any())
}

pub use ferrolb_crds::service::class_is_ours;

/// Annotation prefixes the controller reads (its own and MetalLB's).
const READ_ANNOTATIONS: [&str; 3] = ["ferrolb.io/", "metallb.io/", "metallb.universe.tf/"];

/// Drops, at the watch edge, every part of a Service the controller never
/// reads, so that 10,000 held Services take little memory, and an update
/// that touches nothing else (another controller's annotation, kubectl's
/// last-applied configuration, a new `resourceVersion`) leaves the held
/// object equal and costs no work ([`super::Index::apply_service`]).
///
/// Kept: name, namespace, uid, labels, the annotations under
/// [`READ_ANNOTATIONS`], deletion timestamp; `spec.type`,
/// `loadBalancerClass`, `loadBalancerIP`, `ipFamilies`,
/// `ipFamilyPolicy`, `externalTrafficPolicy`, `selector`, each port's
/// protocol and number; `status.loadBalancer`. Code that starts reading
/// another field must keep it here.
pub fn slim(svc: &mut Service) {
    let m = &mut svc.metadata;
    m.managed_fields = None;
    m.resource_version = None;
    m.generation = None;
    m.creation_timestamp = None;
    m.finalizers = None;
    m.owner_references = None;
    m.generate_name = None;
    m.self_link = None;
    if let Some(a) = m.annotations.as_mut() {
        a.retain(|k, _| READ_ANNOTATIONS.iter().any(|p| k.starts_with(p)));
    }
    if let Some(spec) = svc.spec.as_mut() {
        spec.cluster_ip = None;
        spec.cluster_ips = None;
        spec.external_ips = None;
        spec.external_name = None;
        spec.session_affinity = None;
        spec.session_affinity_config = None;
        spec.health_check_node_port = None;
        spec.internal_traffic_policy = None;
        spec.publish_not_ready_addresses = None;
        spec.load_balancer_source_ranges = None;
        spec.allocate_load_balancer_node_ports = None;
        spec.traffic_distribution = None;
        for port in spec.ports.iter_mut().flatten() {
            port.name = None;
            port.app_protocol = None;
            port.node_port = None;
            port.target_port = None;
        }
    }
    if let Some(status) = svc.status.as_mut() {
        status.conditions = None;
    }
}

/// Whether the Service is a LoadBalancer.
pub fn is_load_balancer(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer")
}

/// What the API server currently holds for the parts we write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    /// `status.loadBalancer.ingress[*].ip` that parse, in order.
    pub ips: Vec<IpAddr>,
    /// Our `ferrolb.io/ip-allocated-from-pool` annotation.
    pub pool: Option<String>,
}

impl Observed {
    /// Reads them from a Service.
    pub fn of(svc: &Service) -> Observed {
        let ips = ferrolb_crds::service::ingress_ips(svc);
        let pool = ferrolb_crds::service::allocated_pool(svc);
        Observed { ips, pool }
    }

    /// Whether the object already shows `desired` (`None`: nothing of ours).
    pub fn shows(&self, desired: Option<&Assignment>) -> bool {
        match desired {
            Some(a) => self.ips == a.ips && self.pool.as_deref() == Some(a.pool.as_str()),
            None => self.ips.is_empty() && self.pool.is_none(),
        }
    }
}

/// The allocator request of a Service in a namespace labelled
/// `namespace_labels`; the error quotes the malformed annotation or field.
pub fn request(
    svc: &Service,
    namespace_labels: &BTreeMap<String, String>,
) -> Result<AllocRequest, RequestError> {
    request_with(svc, svc.annotations(), namespace_labels)
}

/// A request that ignores every annotation except the sharing key: used
/// to keep the IPs a Service already holds when its annotations are
/// malformed, so a typo never costs it its address.
pub fn lenient_request(
    svc: &Service,
    namespace_labels: &BTreeMap<String, String>,
) -> Result<AllocRequest, RequestError> {
    let sharing: BTreeMap<String, String> = svc
        .annotations()
        .iter()
        .filter(|(k, _)| allocator::SHARING_KEY_ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    request_with(svc, &sharing, namespace_labels)
}

static EMPTY: BTreeMap<String, String> = BTreeMap::new();

fn request_with(
    svc: &Service,
    annotations: &BTreeMap<String, String>,
    namespace_labels: &BTreeMap<String, String>,
) -> Result<AllocRequest, RequestError> {
    let spec = svc.spec.as_ref();
    let ports: Vec<(String, u16)> = spec
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p.protocol.clone().unwrap_or_default(),
                // The API server refuses ports outside 1..=65535.
                u16::try_from(p.port).unwrap_or(0),
            )
        })
        .collect();
    let families: &[String] = spec
        .and_then(|s| s.ip_families.as_deref())
        .unwrap_or_default();
    AllocRequest::from_service(&ServiceParts {
        annotations,
        load_balancer_ip: spec
            .and_then(|s| s.load_balancer_ip.as_deref())
            .filter(|s| !s.is_empty()),
        ip_families: families,
        ip_family_policy: spec.and_then(|s| s.ip_family_policy.as_deref()),
        ports: &ports,
        external_traffic_policy: spec.and_then(|s| s.external_traffic_policy.as_deref()),
        selector: spec.and_then(|s| s.selector.as_ref()).unwrap_or(&EMPTY),
        labels: svc.metadata.labels.as_ref().unwrap_or(&EMPTY),
        namespace_labels,
    })
}

/// IPs as Go's `%q` prints a `[]net.IP`: `["198.51.100.1" "2001:db8::1"]`.
/// MetalLB's Event texts use that form, and alerts match on it.
pub fn go_quoted(ips: &[IpAddr]) -> String {
    let items: Vec<String> = ips.iter().map(|ip| format!("\"{ip}\"")).collect();
    format!("[{}]", items.join(" "))
}

/// `IPAllocated` text: MetalLB's, plus the pool, and whether the pool is
/// announced at all, so `kubectl describe service` says in one sentence
/// why such a Service is not announced (no speaker warns about each
/// Service of an unadvertised pool: that is one Event on the pool).
pub fn allocated_note(assignment: &Assignment, advertised: bool) -> String {
    let mut note = format!(
        "Assigned IP {} from pool {:?}",
        go_quoted(&assignment.ips),
        assignment.pool
    );
    if !advertised {
        note.push_str(&format!(
            "; no L2Advertisement selects pool {:?}, so nothing announces it",
            assignment.pool
        ));
    }
    note
}

/// `AllocationFailed` text, as MetalLB words it.
pub fn failed_note(key: &ServiceKey, err: &allocator::Error) -> String {
    format!("Failed to allocate IP for {:?}: {err}", key.to_string())
}

/// `ClearAssignment` text, as MetalLB words it.
pub fn cleared_note(key: &ServiceKey, err: &AllocationError) -> String {
    format!(
        "current IP for {:?} not allowed by config, will attempt for new IP assignment: {err}",
        key.to_string()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_texts_match_metallb() {
        let a = Assignment {
            pool: "blue".into(),
            ips: vec![
                "198.51.100.1".parse().unwrap(),
                "2001:db8::1".parse().unwrap(),
            ],
        };
        assert_eq!(
            allocated_note(&a, true),
            r#"Assigned IP ["198.51.100.1" "2001:db8::1"] from pool "blue""#
        );
        assert_eq!(
            allocated_note(&a, false),
            r#"Assigned IP ["198.51.100.1" "2001:db8::1"] from pool "blue"; no L2Advertisement selects pool "blue", so nothing announces it"#
        );
        let key = ServiceKey::new("default", "web");
        let err = AllocationError::UnknownPool {
            pool: "nope".into(),
        };
        assert_eq!(
            failed_note(&key, &err.clone().into()),
            r#"Failed to allocate IP for "default/web": requested IPAddressPool "nope" does not exist"#
        );
        assert!(cleared_note(&key, &err)
            .starts_with(r#"current IP for "default/web" not allowed by config"#));
    }

    #[test]
    fn slimming_keeps_what_requests_read_and_drops_what_changes_nothing() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "u1",
                "resourceVersion": "7", "labels": {"app": "web"},
                "annotations": {
                    "ferrolb.io/loadBalancerIPs": "192.0.2.10",
                    "metallb.universe.tf/allow-shared-ip": "k",
                    "kubectl.kubernetes.io/last-applied-configuration": "{...}",
                    "example.com/owner": "team-a"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}]},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.1",
                "externalTrafficPolicy": "Local", "selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                           "targetPort": 8080, "nodePort": 30080}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}},
        }))
        .unwrap();
        let ns = BTreeMap::new();
        let mut slim_svc = svc.clone();
        slim(&mut slim_svc);
        assert_eq!(request(&slim_svc, &ns), request(&svc, &ns), "same request");
        assert_eq!(Observed::of(&slim_svc), Observed::of(&svc));
        assert_eq!(slim_svc.metadata.uid.as_deref(), Some("u1"));
        assert!(is_load_balancer(&slim_svc));
        let kept: Vec<&String> = slim_svc.annotations().keys().collect();
        assert_eq!(
            kept,
            [
                "ferrolb.io/loadBalancerIPs",
                "metallb.universe.tf/allow-shared-ip"
            ]
        );
        // Another manager's annotation and a new resourceVersion: equal.
        let mut touched = svc;
        touched
            .annotations_mut()
            .insert("example.com/owner".into(), "team-b".into());
        touched.metadata.resource_version = Some("8".into());
        slim(&mut touched);
        assert_eq!(touched, slim_svc);
    }
}

//! Reading a Service at the edge: whether it is ours, what it asks for,
//! what its status already says, and the Event texts about it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ObjectReference, Service, ServiceSpec};
use kube::ResourceExt;

use ferrolb_core::allocator::{
    self, AllocRequest, AllocationError, Assignment, FamilyPolicy, RequestError, ServiceKey,
    ServiceParts,
};

/// Event reason (Normal): IPs were assigned. MetalLB's spelling.
pub const REASON_IP_ALLOCATED: &str = "IPAllocated";
/// Event reason (Warning): no IP could be assigned. MetalLB's spelling.
pub const REASON_ALLOCATION_FAILED: &str = "AllocationFailed";
/// Event reason (Warning): a pool change made the current IPs illegal.
/// MetalLB's spelling.
pub const REASON_CLEAR_ASSIGNMENT: &str = "ClearAssignment";

/// Event reason (Warning): a changed request cannot be met, so the Service
/// keeps the IPs it holds. Ours: MetalLB releases them instead.
pub const REASON_REQUEST_NOT_SATISFIABLE: &str = "RequestNotSatisfiable";

/// The key of a Service.
pub fn key(svc: &Service) -> ServiceKey {
    ServiceKey::new(svc.namespace().unwrap_or_default(), svc.name_any())
}

/// Annotation prefixes the controller reads (its own and MetalLB's).
const READ_ANNOTATIONS: [&str; 3] = ["ferrolb.io/", "metallb.io/", "metallb.universe.tf/"];

/// What the controller reads of a Service, converted at the watch edge:
/// the index keeps this, never the Kubernetes object, so 10,000 Services
/// take little memory, and an update that touches nothing here (another
/// controller's annotation, kubectl's last-applied copy, a new
/// `resourceVersion`) converts to an equal view and costs no work
/// ([`super::Index::apply_view`]). Code that starts reading another field
/// of a Service must add it here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Namespace and name.
    pub key: ServiceKey,
    /// `metadata.uid`, for Event references.
    pub uid: Option<String>,
    /// `spec.type` is `LoadBalancer`.
    pub load_balancer: bool,
    /// `spec.loadBalancerClass`.
    pub class: Option<String>,
    /// `spec.loadBalancerIP`, when not empty.
    pub load_balancer_ip: Option<String>,
    /// `spec.ipFamilies`.
    pub ip_families: Vec<String>,
    /// `spec.ipFamilyPolicy`.
    pub ip_family_policy: Option<String>,
    /// `spec.externalTrafficPolicy`.
    pub external_traffic_policy: Option<String>,
    /// `spec.ports[*]` as (protocol, port).
    pub ports: Vec<(String, u16)>,
    /// `spec.selector`, with `externalTrafficPolicy: Local` only (see
    /// [`AllocRequest::selector`]).
    pub selector: Vec<(String, String)>,
    /// `metadata.labels`.
    pub labels: Vec<(String, String)>,
    /// The annotations under [`READ_ANNOTATIONS`].
    pub annotations: Vec<(String, String)>,
    /// What the object shows of our writes.
    pub observed: Observed,
}

fn pairs(
    map: Option<&BTreeMap<String, String>>,
    keep: impl Fn(&str) -> bool,
) -> Vec<(String, String)> {
    map.into_iter()
        .flatten()
        .filter(|(k, _)| keep(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn map(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    pairs.iter().cloned().collect()
}

impl View {
    /// Reads a Service.
    pub fn of(svc: &Service) -> View {
        let spec = svc.spec.as_ref();
        let text = |f: fn(&ServiceSpec) -> Option<&String>| spec.and_then(f).cloned();
        View {
            key: key(svc),
            uid: svc.metadata.uid.clone(),
            load_balancer: is_load_balancer(svc),
            class: text(|s| s.load_balancer_class.as_ref()),
            load_balancer_ip: text(|s| s.load_balancer_ip.as_ref()).filter(|s| !s.is_empty()),
            ip_families: spec.and_then(|s| s.ip_families.clone()).unwrap_or_default(),
            ip_family_policy: text(|s| s.ip_family_policy.as_ref()),
            external_traffic_policy: text(|s| s.external_traffic_policy.as_ref()),
            ports: spec
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
                .collect(),
            // Only Local Services compare selectors (to share an IP).
            selector: if spec.and_then(|s| s.external_traffic_policy.as_deref()) == Some("Local") {
                pairs(spec.and_then(|s| s.selector.as_ref()), |_| true)
            } else {
                Vec::new()
            },
            labels: pairs(svc.metadata.labels.as_ref(), |_| true),
            annotations: pairs(svc.metadata.annotations.as_ref(), |k| {
                READ_ANNOTATIONS.iter().any(|p| k.starts_with(p))
            }),
            observed: Observed::of(svc),
        }
    }

    /// Whether `spec.loadBalancerClass` says the Service is ours
    /// ([`ferrolb_crds::service::class_is_ours`]).
    pub fn class_is(&self, lb_class: Option<&str>) -> bool {
        self.class.as_deref() == lb_class
    }

    /// Whether `other` has the same terms for sharing an IP (sharing key,
    /// ports, traffic policy, selector): when a holder's terms change,
    /// another Service may now share its IP, or may not any more.
    pub fn same_sharing_terms(&self, other: &View) -> bool {
        let key = |v: &View| {
            v.annotations
                .iter()
                .filter(|(k, _)| allocator::SHARING_KEY_ANNOTATIONS.contains(&k.as_str()))
                .cloned()
                .collect::<Vec<_>>()
        };
        self.ports == other.ports
            && self.external_traffic_policy == other.external_traffic_policy
            && self.selector == other.selector
            && key(self) == key(other)
    }

    /// The reference Events carry (`kubectl describe` selects by UID).
    pub fn reference(&self) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Service".into()),
            namespace: Some(self.key.namespace.clone()),
            name: Some(self.key.name.clone()),
            uid: self.uid.clone(),
            ..ObjectReference::default()
        }
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
    svc: &View,
    namespace_labels: &Arc<BTreeMap<String, String>>,
) -> Result<AllocRequest, RequestError> {
    request_with(svc, &map(&svc.annotations), namespace_labels)
}

/// A request that ignores every annotation except the sharing key: used
/// to keep the IPs a Service already holds when its annotations are
/// malformed, so a typo never costs it its address.
pub fn lenient_request(
    svc: &View,
    namespace_labels: &Arc<BTreeMap<String, String>>,
) -> Result<AllocRequest, RequestError> {
    let sharing: BTreeMap<String, String> = svc
        .annotations
        .iter()
        .filter(|(k, _)| allocator::SHARING_KEY_ANNOTATIONS.contains(&k.as_str()))
        .cloned()
        .collect();
    request_with(svc, &sharing, namespace_labels)
}

fn request_with(
    svc: &View,
    annotations: &BTreeMap<String, String>,
    namespace_labels: &Arc<BTreeMap<String, String>>,
) -> Result<AllocRequest, RequestError> {
    AllocRequest::from_service(&ServiceParts {
        annotations,
        load_balancer_ip: svc.load_balancer_ip.as_deref(),
        ip_families: &svc.ip_families,
        ip_family_policy: svc.ip_family_policy.as_deref(),
        ports: &svc.ports,
        external_traffic_policy: svc.external_traffic_policy.as_deref(),
        selector: &map(&svc.selector),
        labels: &map(&svc.labels),
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

/// What a request asks for, for Event texts: `requested IP ["192.0.2.7"]`,
/// `an IP from requested pool "green"` or `an IPv4 IP`, with ` sharing key
/// "k"` when it has one.
pub fn asked(request: &AllocRequest) -> String {
    let mut asked = if !request.requested_ips.is_empty() {
        let mut ips = format!("requested IP {}", go_quoted(&request.requested_ips));
        if let Some(pool) = &request.requested_pool {
            ips.push_str(&format!(" from requested pool {pool:?}"));
        }
        ips
    } else if let Some(pool) = &request.requested_pool {
        format!("an IP from requested pool {pool:?}")
    } else {
        let families: Vec<&str> = request
            .wanted_families()
            .iter()
            .map(|f| f.as_k8s_str())
            .collect();
        match (request.family_policy, families.as_slice()) {
            (FamilyPolicy::RequireDualStack, [a, b]) => format!("an {a} and an {b} IP"),
            (FamilyPolicy::PreferDualStack, [a, b]) => format!("an {a} or {b} IP"),
            (_, [first, ..]) => format!("an {first} IP"),
            (_, []) => "an IP".to_string(),
        }
    };
    if let Some(sharing_key) = request.sharing_key.as_deref().filter(|k| !k.is_empty()) {
        asked.push_str(&format!(" with sharing key {sharing_key:?}"));
    }
    asked
}

/// `RequestNotSatisfiable` text: what was asked, why it cannot be given,
/// and which IPs stay.
pub fn not_satisfiable_note(
    key: &ServiceKey,
    request: &AllocRequest,
    err: &AllocationError,
    kept: &Assignment,
) -> String {
    format!(
        "Cannot give {:?} {}: {err}; it keeps IP {} from pool {:?} until the request can be met",
        key.to_string(),
        asked(request),
        go_quoted(&kept.ips),
        kept.pool
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
    fn a_request_that_cannot_be_met_is_described_as_asked() {
        use ferrolb_core::allocator::Family;
        let ips = |list: &[&str]| list.iter().map(|s| s.parse().unwrap()).collect();
        let request = |f: fn(&mut AllocRequest)| {
            let mut r = AllocRequest::default();
            f(&mut r);
            asked(&r)
        };
        assert_eq!(request(|_| {}), "an IPv4 IP");
        assert_eq!(
            request(|r| {
                r.families = vec![Family::V6, Family::V4];
                r.family_policy = FamilyPolicy::RequireDualStack;
            }),
            "an IPv6 and an IPv4 IP"
        );
        assert_eq!(
            request(|r| {
                r.families = vec![Family::V4, Family::V6];
                r.family_policy = FamilyPolicy::PreferDualStack;
                r.sharing_key = Some("k".into());
            }),
            r#"an IPv4 or IPv6 IP with sharing key "k""#
        );
        assert_eq!(
            request(|r| r.requested_pool = Some("green".into())),
            r#"an IP from requested pool "green""#
        );
        let mut r = AllocRequest {
            requested_ips: ips(&["192.0.2.7", "2001:db8::7"]),
            requested_pool: Some("green".into()),
            ..Default::default()
        };
        assert_eq!(
            asked(&r),
            r#"requested IP ["192.0.2.7" "2001:db8::7"] from requested pool "green""#
        );
        r.requested_pool = None;
        let kept = Assignment {
            pool: "blue".into(),
            ips: ips(&["198.51.100.1"]),
        };
        let err = AllocationError::RequestedIpOutsidePools {
            ip: "192.0.2.7".parse().unwrap(),
        };
        assert_eq!(
            not_satisfiable_note(&ServiceKey::new("default", "web"), &r, &err, &kept),
            r#"Cannot give "default/web" requested IP ["192.0.2.7" "2001:db8::7"]: IP 192.0.2.7 is not in any IPAddressPool; it keeps IP ["198.51.100.1"] from pool "blue" until the request can be met"#
        );
    }

    #[test]
    fn a_view_keeps_what_requests_read_and_nothing_that_changes_nothing() {
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
        let view = View::of(&svc);
        let request = request(&view, &Arc::default()).unwrap();
        assert_eq!(
            request.requested_ips,
            vec!["192.0.2.10".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(view.observed, Observed::of(&svc));
        assert!(view.load_balancer && view.class_is(None));
        assert_eq!(view.reference().uid.as_deref(), Some("u1"));
        let kept: Vec<&str> = view.annotations.iter().map(|(k, _)| k.as_str()).collect();
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
        assert_eq!(View::of(&touched), view);
    }
}

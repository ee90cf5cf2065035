//! Turning the parts of a Service into an AllocRequest.

mod common;

use std::collections::BTreeMap;

use common::{ip, labels};
use ferrolb_core::allocator::{
    AllocRequest, Error, Family, FamilyPolicy, Port, Protocol, RequestError, ServiceParts,
};

fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    labels(pairs)
}

fn from_annotations(pairs: &[(&str, &str)]) -> Result<AllocRequest, RequestError> {
    let annotations = annotations(pairs);
    AllocRequest::from_service(&ServiceParts {
        annotations: &annotations,
        ..Default::default()
    })
}

#[test]
fn a_bare_service_is_an_ipv4_single_stack_request_for_anything() {
    let req = AllocRequest::from_service(&ServiceParts::default()).unwrap();
    assert_eq!(req, AllocRequest::default());
    assert_eq!(req.wanted_families(), vec![Family::V4]);
}

#[test]
fn every_field_is_carried_over() {
    let families = vec!["IPv6".to_string(), "IPv4".to_string()];
    let ports = vec![
        ("TCP".to_string(), 80),
        ("UDP".to_string(), 53),
        ("SCTP".to_string(), 9),
    ];
    let selector = labels(&[("app", "web")]);
    let svc_labels = labels(&[("tier", "gold")]);
    let ns_labels = std::sync::Arc::new(labels(&[("team", "a")]));
    let annotations = annotations(&[
        ("ferrolb.io/address-pool", "blue"),
        ("ferrolb.io/allow-shared-ip", "k"),
    ]);
    let req = AllocRequest::from_service(&ServiceParts {
        annotations: &annotations,
        ip_families: &families,
        ip_family_policy: Some("PreferDualStack"),
        ports: &ports,
        external_traffic_policy: Some("Local"),
        selector: &selector,
        labels: &svc_labels,
        namespace_labels: &ns_labels,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(req.families, vec![Family::V6, Family::V4]);
    assert_eq!(req.family_policy, FamilyPolicy::PreferDualStack);
    assert_eq!(req.requested_pool.as_deref(), Some("blue"));
    assert_eq!(req.sharing_key.as_deref(), Some("k"));
    assert_eq!(
        req.ports,
        vec![
            Port::tcp(80),
            Port::udp(53),
            Port {
                protocol: Protocol::Sctp,
                port: 9
            }
        ]
    );
    assert!(req.external_traffic_local);
    assert_eq!(req.selector, selector);
    assert_eq!(req.labels, svc_labels);
    assert_eq!(req.namespace_labels, ns_labels);
}

#[test]
fn only_a_local_service_keeps_its_selector() {
    let selector = labels(&[("app", "web")]);
    let request = |policy: &str| {
        AllocRequest::from_service(&ServiceParts {
            external_traffic_policy: Some(policy),
            selector: &selector,
            ..Default::default()
        })
        .unwrap()
    };
    assert_eq!(request("Local").selector, selector);
    assert!(
        request("Cluster").selector.is_empty(),
        "nothing compares it"
    );
}

#[test]
fn an_empty_protocol_means_tcp() {
    let ports = vec![(String::new(), 80)];
    let req = AllocRequest::from_service(&ServiceParts {
        ports: &ports,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(req.ports, vec![Port::tcp(80)]);
}

#[test]
fn each_spelling_of_the_pool_annotation_is_understood() {
    for name in [
        "ferrolb.io/address-pool",
        "metallb.universe.tf/address-pool",
        "metallb.io/address-pool",
    ] {
        let req = from_annotations(&[(name, "blue")]).unwrap();
        assert_eq!(req.requested_pool.as_deref(), Some("blue"), "{name}");
    }
}

#[test]
fn each_spelling_of_the_sharing_annotation_is_understood() {
    for name in [
        "ferrolb.io/allow-shared-ip",
        "metallb.universe.tf/allow-shared-ip",
        "metallb.io/allow-shared-ip",
    ] {
        let req = from_annotations(&[(name, "key")]).unwrap();
        assert_eq!(req.sharing_key.as_deref(), Some("key"), "{name}");
    }
}

#[test]
fn each_spelling_of_the_ips_annotation_is_understood() {
    for name in [
        "ferrolb.io/loadBalancerIPs",
        "metallb.universe.tf/loadBalancerIPs",
        "metallb.io/loadBalancerIPs",
    ] {
        let req = from_annotations(&[(name, "198.51.100.7, 2001:db8::7")]).unwrap();
        assert_eq!(
            req.requested_ips,
            vec![ip("198.51.100.7"), ip("2001:db8::7")]
        );
    }
}

#[test]
fn empty_annotations_count_as_absent() {
    let req = from_annotations(&[
        ("ferrolb.io/address-pool", ""),
        ("ferrolb.io/allow-shared-ip", " "),
        ("ferrolb.io/loadBalancerIPs", ""),
    ])
    .unwrap();
    assert_eq!(req, AllocRequest::default());
}

#[test]
fn a_bad_ip_in_the_annotation_quotes_annotation_and_value() {
    let err =
        from_annotations(&[("ferrolb.io/loadBalancerIPs", "198.51.100.7,banana")]).unwrap_err();
    assert_eq!(err.reason(), "malformed_annotation");
    assert_eq!(
        err.to_string(),
        "annotation \"ferrolb.io/loadBalancerIPs\" has value \"198.51.100.7,banana\", and \"banana\" is not an IP address"
    );
    assert!(Error::from(err).is_malformed_service());
}

#[test]
fn a_trailing_comma_is_a_malformed_annotation() {
    let err = from_annotations(&[("metallb.io/loadBalancerIPs", "198.51.100.7,")]).unwrap_err();
    assert!(matches!(err, RequestError::AnnotationBadIp { .. }), "{err}");
}

#[test]
fn two_ips_of_one_family_are_refused_quoting_the_annotation() {
    let err = from_annotations(&[("ferrolb.io/loadBalancerIPs", "198.51.100.7,198.51.100.8")])
        .unwrap_err();
    assert_eq!(err.reason(), "annotation_same_family_twice");
    let text = err.to_string();
    assert!(text.contains("\"ferrolb.io/loadBalancerIPs\""), "{text}");
    assert!(text.contains("\"198.51.100.7,198.51.100.8\""), "{text}");
    assert!(text.contains("IPv4"), "{text}");
}

#[test]
fn two_spellings_with_different_values_are_refused_quoting_both() {
    let err = from_annotations(&[
        ("ferrolb.io/address-pool", "blue"),
        ("metallb.io/address-pool", "green"),
    ])
    .unwrap_err();
    assert_eq!(err.reason(), "annotations_disagree");
    let text = err.to_string();
    for part in [
        "\"ferrolb.io/address-pool\"",
        "\"blue\"",
        "\"metallb.io/address-pool\"",
        "\"green\"",
    ] {
        assert!(text.contains(part), "{text}");
    }
}

#[test]
fn two_spellings_with_the_same_value_are_fine() {
    let req = from_annotations(&[
        ("ferrolb.io/allow-shared-ip", "k"),
        ("metallb.universe.tf/allow-shared-ip", "k"),
        ("ferrolb.io/loadBalancerIPs", "198.51.100.7,2001:db8::7"),
        ("metallb.io/loadBalancerIPs", "2001:db8::7, 198.51.100.7"),
    ])
    .unwrap();
    assert_eq!(req.sharing_key.as_deref(), Some("k"));
    assert_eq!(req.requested_ips.len(), 2);
}

#[test]
fn ip_annotations_naming_different_ips_disagree() {
    let err = from_annotations(&[
        ("ferrolb.io/loadBalancerIPs", "198.51.100.7"),
        ("metallb.universe.tf/loadBalancerIPs", "198.51.100.8"),
    ])
    .unwrap_err();
    assert!(
        matches!(err, RequestError::AnnotationsDisagree { .. }),
        "{err}"
    );
}

#[test]
fn spec_load_balancer_ip_is_a_requested_ip() {
    let req = AllocRequest::from_service(&ServiceParts {
        load_balancer_ip: Some("203.0.113.9"),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(req.requested_ips, vec![ip("203.0.113.9")]);
}

#[test]
fn a_bad_spec_load_balancer_ip_is_quoted() {
    let err = AllocRequest::from_service(&ServiceParts {
        load_balancer_ip: Some("203.0.113.999"),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "spec.loadBalancerIP \"203.0.113.999\" is not an IP address"
    );
}

#[test]
fn spec_load_balancer_ip_must_agree_with_the_annotation() {
    let annotations = annotations(&[("ferrolb.io/loadBalancerIPs", "203.0.113.9")]);
    let same = AllocRequest::from_service(&ServiceParts {
        annotations: &annotations,
        load_balancer_ip: Some("203.0.113.9"),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(same.requested_ips, vec![ip("203.0.113.9")]);
    let err = AllocRequest::from_service(&ServiceParts {
        annotations: &annotations,
        load_balancer_ip: Some("203.0.113.10"),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.reason(), "load_balancer_ip_disagrees");
    assert!(
        err.to_string().contains("\"ferrolb.io/loadBalancerIPs\""),
        "{err}"
    );
}

#[test]
fn an_unknown_protocol_is_refused_naming_it() {
    let ports = vec![("QUIC".to_string(), 443)];
    let err = AllocRequest::from_service(&ServiceParts {
        ports: &ports,
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.reason(), "unknown_protocol");
    assert!(err.to_string().contains("\"QUIC\""), "{err}");
    assert!(err.to_string().contains("443"), "{err}");
}

#[test]
fn unknown_or_repeated_ip_families_are_refused() {
    for families in [vec!["IPv5"], vec!["IPv4", "IPv4"]] {
        let families: Vec<String> = families.into_iter().map(String::from).collect();
        let err = AllocRequest::from_service(&ServiceParts {
            ip_families: &families,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.reason(), "unknown_ip_family");
    }
}

#[test]
fn an_unknown_ip_family_policy_is_refused() {
    let err = AllocRequest::from_service(&ServiceParts {
        ip_family_policy: Some("MaybeDualStack"),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.reason(), "unknown_ip_family_policy");
    assert!(err.to_string().contains("\"MaybeDualStack\""), "{err}");
}

#[test]
fn an_unknown_traffic_policy_is_refused() {
    let err = AllocRequest::from_service(&ServiceParts {
        external_traffic_policy: Some("Everywhere"),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.reason(), "unknown_traffic_policy");
}

#[test]
fn wanted_families_follow_the_policy() {
    let req = |families: Vec<Family>, family_policy| AllocRequest {
        families,
        family_policy,
        ..Default::default()
    };
    use Family::*;
    use FamilyPolicy::*;
    assert_eq!(req(vec![V6, V4], SingleStack).wanted_families(), vec![V6]);
    assert_eq!(
        req(vec![V6, V4], PreferDualStack).wanted_families(),
        vec![V6, V4]
    );
    assert_eq!(req(vec![V4], PreferDualStack).wanted_families(), vec![V4]);
    assert_eq!(
        req(vec![V6], RequireDualStack).wanted_families(),
        vec![V6, V4]
    );
    assert_eq!(
        req(vec![], RequireDualStack).wanted_families(),
        vec![V4, V6]
    );
}

//! Properties of the generated CRD schemas: defaults, validations, printer
//! columns, subresources, and that the API server would accept good objects
//! and reject bad ones.

mod common;

use common::{openapi, rejections};
use ferrolb_crds::generate::{
    crds, ip_address_pool_crd, l2_advertisement_crd, service_l2_status_crd,
};
use serde_json::{json, Value};

fn pool(spec: Value) -> Value {
    json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "p", "namespace": "ferrolb-system"},
        "spec": spec,
    })
}

fn advertisement(spec: Value) -> Value {
    json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": "a", "namespace": "ferrolb-system"},
        "spec": spec,
    })
}

fn pool_rejections(addresses: &[&str]) -> Vec<String> {
    rejections(
        &ip_address_pool_crd(),
        &pool(json!({ "addresses": addresses })),
    )
}

/// Every node of the schema, with its path.
fn walk<'a>(schema: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    out.push((path.clone(), schema));
    if let Some(props) = schema["properties"].as_object() {
        for (k, v) in props {
            walk(v, format!("{path}.{k}"), out);
        }
    }
    if schema["items"].is_object() {
        walk(&schema["items"], format!("{path}[]"), out);
    }
    if schema["additionalProperties"].is_object() {
        walk(&schema["additionalProperties"], format!("{path}{{}}"), out);
    }
}

#[test]
fn every_schema_is_structural() {
    for crd in crds() {
        let schema = openapi(&crd);
        let mut nodes = Vec::new();
        walk(&schema, String::new(), &mut nodes);
        for (path, node) in nodes {
            for keyword in ["anyOf", "oneOf", "allOf", "not", "$ref"] {
                assert!(
                    node.get(keyword).is_none(),
                    "{}: {path} uses {keyword}",
                    crd.spec.names.kind
                );
            }
            assert!(
                node["type"].is_string(),
                "{}: {path} has no type",
                crd.spec.names.kind
            );
            if node["type"] == "array" {
                assert!(node["items"].is_object(), "{path}: array without items");
            }
        }
    }
}

#[test]
fn auto_assign_and_avoid_buggy_ips_defaults_are_in_the_schema() {
    let spec = &openapi(&ip_address_pool_crd())["properties"]["spec"]["properties"];
    assert_eq!(spec["autoAssign"]["default"], json!(true));
    assert_eq!(spec["avoidBuggyIPs"]["default"], json!(false));
}

#[test]
fn addresses_are_required_non_empty_and_bounded() {
    let spec = &openapi(&ip_address_pool_crd())["properties"]["spec"];
    assert_eq!(spec["required"], json!(["addresses"]));
    let addresses = &spec["properties"]["addresses"];
    assert_eq!(addresses["minItems"], json!(1));
    assert!(addresses["maxItems"].as_u64().is_some());
    assert!(addresses["items"]["maxLength"].as_u64().is_some());
    assert!(addresses["items"]["pattern"].as_str().is_some());
    let rules = addresses["items"]["x-kubernetes-validations"]
        .as_array()
        .expect("CEL rules");
    assert_eq!(rules.len(), 1);
    let rule = rules[0]["rule"].as_str().expect("rule text");
    assert!(
        rule.contains("isCIDR(self)") && rule.contains("isIP("),
        "{rule}"
    );
    assert!(rules[0]["messageExpression"]
        .as_str()
        .is_some_and(|m| m.contains("self")));
}

#[test]
fn well_formed_addresses_are_accepted() {
    let good = [
        "198.51.100.0/24",
        "203.0.113.7/32",
        "2001:db8::/120",
        "2001:db8::1/128",
        "198.51.100.10-198.51.100.20",
        "198.51.100.10 - 198.51.100.20",
        "2001:db8:0:1::10-2001:db8:0:1::ff",
        "192.0.2.0/24",
    ];
    assert_eq!(pool_rejections(&good), Vec::<String>::new());
}

#[test]
fn malformed_addresses_are_rejected_naming_the_entry() {
    for bad in [
        "not-an-address",
        "198.51.100.0",
        "198.51.100.300/24",
        "198.51.100.0/33",
        "2001:db8::/129",
        "198.51.100.10-2001:db8::10",
        "198.51.100.10-198.51.100.20-198.51.100.30",
        "198.51.100.10-",
        "2001:db8::g/64",
        "198.51.100.0/24; rm -rf /",
    ] {
        let problems = pool_rejections(&["203.0.113.0/24", bad]);
        assert!(!problems.is_empty(), "{bad:?} was accepted");
        assert!(
            problems
                .iter()
                .all(|p| p.contains("addresses[1]") || p.contains(bad)),
            "{bad:?}: {problems:?}"
        );
    }
}

#[test]
fn cel_rule_alone_rejects_what_the_loose_pattern_lets_through() {
    // These match the pattern's shape; only the CEL rule knows they are wrong.
    for (bad, why) in [
        ("198.51.100.300/24", "octet out of range"),
        ("2001:db8::1::2/64", "two '::'"),
        ("198.51.100.1-2001:db8::1", "mixed families"),
        ("198.51.100.0/40", "prefix too long"),
    ] {
        let problems = pool_rejections(&[bad]);
        assert!(
            problems
                .iter()
                .any(|p| p.contains(&format!("address {bad} is neither a CIDR"))),
            "{bad} ({why}): {problems:?}"
        );
    }
}

#[test]
fn an_empty_address_list_is_rejected() {
    let problems = pool_rejections(&[]);
    assert!(
        problems.iter().any(|p| p.contains("fewer than 1")),
        "{problems:?}"
    );
}

#[test]
fn negative_priority_and_bad_namespace_names_are_rejected() {
    let crd = ip_address_pool_crd();
    let ok = pool(json!({
        "addresses": ["198.51.100.0/24"],
        "serviceAllocation": {"priority": 0, "namespaces": ["team-a"]},
    }));
    assert_eq!(rejections(&crd, &ok), Vec::<String>::new());
    let bad = pool(json!({
        "addresses": ["198.51.100.0/24"],
        "serviceAllocation": {"priority": -1, "namespaces": ["Team_A"]},
    }));
    let problems = rejections(&crd, &bad);
    assert!(
        problems.iter().any(|p| p.contains("priority")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("namespaces[0]")),
        "{problems:?}"
    );
}

#[test]
fn interface_names_follow_linux_rules() {
    let crd = l2_advertisement_crd();
    let ok = advertisement(json!({"interfaces": ["eth0", "enp0s31f6", "br-lan.100", "wlan0"]}));
    assert_eq!(rejections(&crd, &ok), Vec::<String>::new());
    for bad in [
        "eth0/1",
        "eth 0",
        "eth0:1",
        ".",
        "..",
        "a-name-over-15-chars",
        "",
    ] {
        let problems = rejections(&crd, &advertisement(json!({ "interfaces": [bad] })));
        assert!(!problems.is_empty(), "interface {bad:?} was accepted");
    }
}

#[test]
fn preference_weights_are_one_to_one_hundred_and_both_fields_are_required() {
    let crd = l2_advertisement_crd();
    let with = |entry: Value| advertisement(json!({ "preferredNodeSelectors": [entry] }));
    for weight in [1, 50, 100] {
        let ok = with(json!({"weight": weight, "preference": {"matchLabels": {"zone": "a"}}}));
        assert_eq!(rejections(&crd, &ok), Vec::<String>::new(), "{weight}");
    }
    for weight in [0, -5, 101, 1000] {
        let problems = rejections(&crd, &with(json!({"weight": weight, "preference": {}})));
        assert!(
            problems
                .iter()
                .any(|p| p.contains("preferredNodeSelectors[0].weight")),
            "{weight}: {problems:?}"
        );
    }
    let problems = rejections(&crd, &with(json!({"preference": {}})));
    assert!(
        problems.contains(&"spec.preferredNodeSelectors[0].weight: required".to_string()),
        "{problems:?}"
    );
    let problems = rejections(&crd, &with(json!({"weight": 10})));
    assert!(
        problems.contains(&"spec.preferredNodeSelectors[0].preference: required".to_string()),
        "{problems:?}"
    );
    // An empty preference is valid: it matches every node the
    // advertisement allows.
    let empty = with(json!({"weight": 10, "preference": {}}));
    assert_eq!(rejections(&crd, &empty), Vec::<String>::new());
}

#[test]
fn malformed_terms_of_service_and_preference_selectors_are_rejected_by_cel() {
    let crd = l2_advertisement_crd();
    let term = |operator: &str, values: Option<Vec<&str>>| {
        let mut t = json!({"key": "app", "operator": operator});
        if let Some(v) = values {
            t["values"] = json!(v);
        }
        json!({ "matchExpressions": [t] })
    };
    let in_both = |selector: Value| {
        [
            advertisement(json!({ "serviceSelectors": [selector.clone()] })),
            advertisement(json!({
                "preferredNodeSelectors": [{"weight": 1, "preference": selector}]
            })),
        ]
    };
    for good in [
        term("In", Some(vec!["web"])),
        term("NotIn", Some(vec!["web", "db"])),
        term("Exists", None),
        term("DoesNotExist", Some(vec![])),
    ] {
        for ad in in_both(good.clone()) {
            assert_eq!(rejections(&crd, &ad), Vec::<String>::new(), "{good}");
        }
    }
    for (bad, op) in [
        (term("Near", None), "Near"),
        (term("in", Some(vec!["web"])), "in"),
        (term("In", None), "In"),
        (term("NotIn", Some(vec![])), "NotIn"),
        (term("Exists", Some(vec!["web"])), "Exists"),
    ] {
        for ad in in_both(bad.clone()) {
            let problems = rejections(&crd, &ad);
            let want = format!("the {op} term on key app is invalid");
            assert!(
                problems.iter().any(|p| p.contains(&want)),
                "{bad}: {problems:?}"
            );
        }
    }
    let empty_key = json!({"matchExpressions": [{"key": "", "operator": "Exists"}]});
    for ad in in_both(empty_key) {
        assert!(!rejections(&crd, &ad).is_empty());
    }
}

#[test]
fn the_selector_term_rule_fits_the_cel_cost_budget() {
    let spec = &openapi(&l2_advertisement_crd())["properties"]["spec"]["properties"];
    for term in [
        &spec["serviceSelectors"]["items"]["properties"]["matchExpressions"]["items"],
        &spec["preferredNodeSelectors"]["items"]["properties"]["preference"]["properties"]
            ["matchExpressions"]["items"],
    ] {
        let compiled = kube_cel::compile_schema(term);
        let rule = term["x-kubernetes-validations"][0]["rule"]
            .as_str()
            .expect("rule");
        let warnings =
            kube_cel::analyze_rule(rule, &compiled, kube_cel::ScopeContext::CrdValidation);
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}

#[test]
fn pool_names_in_an_advertisement_must_be_object_names() {
    let crd = l2_advertisement_crd();
    let ok = advertisement(json!({"ipAddressPools": ["default", "edge.v4"]}));
    assert_eq!(rejections(&crd, &ok), Vec::<String>::new());
    let problems = rejections(
        &crd,
        &advertisement(json!({"ipAddressPools": ["Default Pool"]})),
    );
    assert!(
        problems.iter().any(|p| p.contains("ipAddressPools[0]")),
        "{problems:?}"
    );
}

#[test]
fn an_advertisement_spec_is_optional_and_defaults_to_empty() {
    let schema = openapi(&l2_advertisement_crd());
    assert!(!schema["required"]
        .as_array()
        .is_some_and(|r| r.contains(&json!("spec"))));
    assert_eq!(schema["properties"]["spec"]["default"], json!({}));
    let bare = json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": "a", "namespace": "ferrolb-system"},
    });
    assert_eq!(
        rejections(&l2_advertisement_crd(), &bare),
        Vec::<String>::new()
    );
}

#[test]
fn a_pool_without_spec_is_rejected_like_in_metallb() {
    let bare = json!({"apiVersion": "ferrolb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "p"}});
    assert!(rejections(&ip_address_pool_crd(), &bare).contains(&"spec: required".to_string()));
}

#[test]
fn unknown_spec_fields_are_reported() {
    let problems = rejections(
        &ip_address_pool_crd(),
        &pool(json!({"addresses": ["198.51.100.0/24"], "autoassign": false})),
    );
    assert_eq!(problems, ["spec.autoassign: unknown field"]);
}

#[test]
fn status_counts_use_metallb_names_and_conditions_are_a_map_by_type() {
    let status = &openapi(&ip_address_pool_crd())["properties"]["status"]["properties"];
    for count in [
        "assignedIPv4",
        "assignedIPv6",
        "availableIPv4",
        "availableIPv6",
    ] {
        assert_eq!(status[count]["type"], "integer", "{count}");
        assert_eq!(status[count]["format"], "int64", "{count}");
    }
    for crd in [ip_address_pool_crd(), l2_advertisement_crd()] {
        let conditions = &openapi(&crd)["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map");
        assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
        let required = &conditions["items"]["required"];
        for field in ["type", "status", "reason", "message", "lastTransitionTime"] {
            assert!(
                required
                    .as_array()
                    .is_some_and(|r| r.contains(&json!(field))),
                "{field}"
            );
        }
    }
}

#[test]
fn every_kind_is_namespaced_in_the_ferrolb_category() {
    for crd in crds() {
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.group, "ferrolb.io");
        assert_eq!(crd.spec.names.categories, Some(vec!["ferrolb".to_string()]));
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, "v1beta1");
        assert!(version.served && version.storage);
    }
}

#[test]
fn only_records_have_a_short_name_which_metallb_does_not_use() {
    // MetalLB has no short names. Pools and advertisements have none
    // either; records get one because, with MetalLB installed beside
    // ferrolb, `servicel2statuses` names two kinds.
    for crd in [ip_address_pool_crd(), l2_advertisement_crd()] {
        assert_eq!(crd.spec.names.short_names, None);
    }
    assert_eq!(
        service_l2_status_crd().spec.names.short_names,
        Some(vec!["l2status".to_string()])
    );
}

#[test]
fn pools_and_advertisements_have_a_status_subresource_and_records_none() {
    for crd in [ip_address_pool_crd(), l2_advertisement_crd()] {
        let subresources = crd.spec.versions[0].subresources.as_ref();
        let subresources = subresources.expect("subresources");
        assert!(subresources.status.is_some());
        assert!(subresources.scale.is_none());
    }
    // The speaker writes a whole record (labels, owner, status) in one
    // request; with a status subresource every create and move would
    // take two.
    assert_eq!(service_l2_status_crd().spec.versions[0].subresources, None);
}

fn columns(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Vec<(String, String, i32)> {
    crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| {
            (
                c.name.to_uppercase(),
                c.json_path.clone(),
                c.priority.unwrap_or(0),
            )
        })
        .collect()
}

#[test]
fn pool_printer_columns_match_the_issue() {
    let got = columns(&ip_address_pool_crd());
    let want = [
        ("ADDRESSES", ".spec.addresses"),
        ("AUTO ASSIGN", ".spec.autoAssign"),
        ("AVOID BUGGY IPS", ".spec.avoidBuggyIPs"),
        ("ASSIGNED IPV4", ".status.assignedIPv4"),
        ("ASSIGNED IPV6", ".status.assignedIPv6"),
        ("AVAILABLE IPV4", ".status.availableIPv4"),
        ("AVAILABLE IPV6", ".status.availableIPv6"),
        ("VALID", ".status.conditions[?(@.type==\"Valid\")].status"),
        ("AGE", ".metadata.creationTimestamp"),
    ];
    let got: Vec<_> = got
        .iter()
        .map(|(n, p, _)| (n.as_str(), p.as_str()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn advertisement_printer_columns_match_metallb() {
    let got = columns(&l2_advertisement_crd());
    let names: Vec<_> = got.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "IPADDRESSPOOLS",
            "IPADDRESSPOOL SELECTORS",
            "INTERFACES",
            "NODE SELECTORS",
            "POOLS SELECTED",
            "AGE"
        ]
    );
    let node_selectors = got
        .iter()
        .find(|(n, _, _)| n == "NODE SELECTORS")
        .expect("column");
    assert_eq!(
        node_selectors.2, 10,
        "MetalLB shows node selectors only with -o wide"
    );
}

#[test]
fn printer_column_paths_point_at_schema_fields() {
    let filters = regex::Regex::new(r"\[[^\]]*\]").expect("valid regex");
    for crd in crds() {
        let schema = openapi(&crd);
        for (name, path, _) in columns(&crd) {
            if path.starts_with(".metadata") {
                continue;
            }
            let path = filters.replace_all(&path, "[]");
            let mut node = &schema;
            for part in path.trim_start_matches('.').split('.') {
                let field = part.split('[').next().unwrap_or(part);
                node = &node["properties"][field];
                if part.contains('[') {
                    node = &node["items"];
                }
            }
            assert!(node.is_object(), "{name}: {path} is not in the schema");
        }
    }
}

/// The first CEL rule on `node` (a schema) is within the API server's
/// cost budget.
fn assert_rule_fits_the_cost_budget(node: &Value) {
    let compiled = kube_cel::compile_schema(node);
    let rule = node["x-kubernetes-validations"][0]["rule"]
        .as_str()
        .expect("rule");
    let warnings = kube_cel::analyze_rule(rule, &compiled, kube_cel::ScopeContext::CrdValidation);
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn the_address_rule_fits_the_cel_cost_budget() {
    assert_rule_fits_the_cost_budget(
        &openapi(&ip_address_pool_crd())["properties"]["spec"]["properties"]["addresses"]["items"],
    );
}

fn record(status: Value) -> Value {
    json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": "ServiceL2Status",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {},
        "status": status,
    })
}

fn announced_by(node: &str) -> Value {
    record(json!({
        "node": node,
        "serviceName": "web",
        "serviceNamespace": "shop",
        "interfaces": [{"name": "eth0"}, {"name": "bond0.20"}],
        "ips": ["198.51.100.7", "2001:db8::7"],
        "lastTransitionTime": "2026-01-02T03:04:05.678901Z",
    }))
}

#[test]
fn a_record_as_the_speaker_writes_it_is_accepted() {
    let problems = rejections(&service_l2_status_crd(), &announced_by("node-a"));
    assert!(problems.is_empty(), "{problems:?}");
}

#[test]
fn a_metallb_record_fits_after_changing_the_group() {
    // As MetalLB's speaker writes it (api/v1beta1/servicel2status_types.go):
    // no IPs, no time, interfaces only when the advertisement names some.
    let mut metallb = record(json!({
        "node": "node-a",
        "serviceName": "web",
        "serviceNamespace": "shop",
        "interfaces": [{"name": "eth0"}],
    }));
    metallb["metadata"]["labels"] = json!({
        "ferrolb.io/node": "node-a",
        "ferrolb.io/service-name": "web",
        "ferrolb.io/service-namespace": "shop",
    });
    let problems = rejections(&service_l2_status_crd(), &metallb);
    assert!(problems.is_empty(), "{problems:?}");
    let parsed: ferrolb_crds::ServiceL2Status =
        serde_json::from_value(metallb).expect("our type reads it");
    assert_eq!(parsed.node(), Some("node-a"));
}

#[test]
fn a_record_moves_to_another_node_but_never_to_another_service() {
    let schema = openapi(&service_l2_status_crd());
    let old = announced_by("node-a");
    let validate = |new: &Value| {
        kube_cel::Validator::new()
            .validate(&schema, new, Some(&old))
            .map_err(|e| {
                e.as_slice()
                    .iter()
                    .map(|e| e.message.clone())
                    .collect::<Vec<_>>()
            })
    };
    // MetalLB marks status.node immutable, so a new owner cannot take a
    // record over (metallb/metallb#2930); ferrolb's new owner does.
    assert_eq!(validate(&announced_by("node-b")), Ok(()));
    let mut other = announced_by("node-b");
    other["status"]["serviceName"] = json!("shop-2");
    let errors = validate(&other).expect_err("serviceName is immutable");
    assert!(
        errors
            .iter()
            .any(|m| m.contains("serviceName is immutable")),
        "{errors:?}"
    );
    let mut other = announced_by("node-a");
    other["status"]["serviceNamespace"] = json!("elsewhere");
    assert!(validate(&other).is_err());
}

#[test]
fn record_ips_and_interface_names_are_checked() {
    let mut bad = announced_by("node-a");
    bad["status"]["ips"] = json!(["198.51.100.7", "not-an-ip"]);
    bad["status"]["interfaces"] = json!([{"name": "eth0"}, {"name": "a/b"}]);
    let problems = rejections(&service_l2_status_crd(), &bad);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("not-an-ip is not an IP address")),
        "{problems:?}"
    );
    assert!(problems.iter().any(|p| p.contains("a/b")), "{problems:?}");
    let mut nameless = announced_by("node-a");
    nameless["status"]["interfaces"] = json!([{}]);
    assert!(!rejections(&service_l2_status_crd(), &nameless).is_empty());
}

#[test]
fn record_printer_columns_name_the_node_ips_interfaces_and_since() {
    let got = columns(&service_l2_status_crd());
    let got: Vec<_> = got
        .iter()
        .map(|(n, p, prio)| (n.as_str(), p.as_str(), *prio))
        .collect();
    assert_eq!(
        got,
        [
            ("NODE", ".status.node", 0),
            ("IPS", ".status.ips", 0),
            ("INTERFACES", ".status.interfaces", 0),
            ("SINCE", ".status.lastTransitionTime", 0),
            ("SERVICE NAME", ".status.serviceName", 1),
            ("SERVICE NAMESPACE", ".status.serviceNamespace", 1),
            ("AGE", ".metadata.creationTimestamp", 1),
        ]
    );
}

#[test]
fn the_ip_rule_fits_the_cel_cost_budget() {
    assert_rule_fits_the_cost_budget(
        &openapi(&service_l2_status_crd())["properties"]["status"]["properties"]["ips"]["items"],
    );
}

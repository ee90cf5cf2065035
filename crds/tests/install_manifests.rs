//! `deploy/ferrolb.yaml`, the install manifest for real clusters, parses
//! into the Kubernetes types and grants what the binaries need, no more.

mod common;

use std::path::PathBuf;

use common::yaml_documents;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use serde::de::DeserializeOwned;
use serde_json::Value;

fn install_manifest() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/ferrolb.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    yaml_documents(&text)
}

fn the<T: DeserializeOwned>(kind: &str, name: &str) -> T {
    let docs = install_manifest();
    let doc = docs
        .into_iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("deploy/ferrolb.yaml has no {kind} {name}"));
    serde_json::from_value(doc).unwrap_or_else(|e| panic!("{kind} {name} does not parse: {e}"))
}

fn pod_spec_of_deployment(name: &str) -> PodSpec {
    the::<Deployment>("Deployment", name)
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod spec")
}

fn pod_spec_of_daemonset(name: &str) -> PodSpec {
    the::<DaemonSet>("DaemonSet", name)
        .spec
        .and_then(|s| s.template.spec)
        .expect("pod spec")
}

fn container(spec: &PodSpec) -> &Container {
    assert_eq!(spec.containers.len(), 1, "one container");
    &spec.containers[0]
}

fn env_names(c: &Container) -> Vec<String> {
    c.env.iter().flatten().map(|e| e.name.clone()).collect()
}

/// Whether `rules` allow `verb` on `resource` in `group`.
fn allows(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|r| {
        r.api_groups.iter().flatten().any(|g| g == group)
            && r.resources.iter().flatten().any(|x| x == resource)
            && r.verbs.iter().any(|v| v == verb)
    })
}

#[test]
fn every_document_has_a_kind_a_name_and_the_ferrolb_namespace_where_namespaced() {
    let docs = install_manifest();
    assert!(docs.len() >= 10, "{} documents", docs.len());
    for doc in &docs {
        let kind = doc["kind"].as_str().expect("kind");
        assert!(doc["metadata"]["name"].is_string(), "{kind} has a name");
        let cluster_scoped = matches!(
            kind,
            "Namespace" | "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition"
        );
        if !cluster_scoped {
            assert_eq!(doc["metadata"]["namespace"], "ferrolb-system", "{kind}");
        }
    }
}

#[test]
fn the_speaker_runs_on_the_host_network_with_only_net_raw() {
    let spec = pod_spec_of_daemonset("ferrolb-speaker");
    assert_eq!(spec.host_network, Some(true));
    let c = container(&spec);
    let caps = c
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref())
        .expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert_eq!(
        caps.add.as_deref(),
        Some(&["NET_RAW".to_string(), "SYS_NICE".to_string()][..])
    );
    let sc = c.security_context.as_ref().expect("security context");
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
}

#[test]
fn the_speaker_gets_its_node_name_gossip_address_and_secret() {
    let spec = pod_spec_of_daemonset("ferrolb-speaker");
    let names = env_names(container(&spec));
    for wanted in [
        "NODE_NAME",
        "FERROLB_MEMBERLIST_ADVERTISE_ADDR",
        "FERROLB_MEMBERLIST_SECRET_FILE",
        "FERROLB_NAMESPACE",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "speaker env lacks {wanted}"
        );
    }
    let secret = spec
        .volumes
        .iter()
        .flatten()
        .find_map(|v| v.secret.as_ref())
        .expect("memberlist secret volume");
    assert_eq!(secret.secret_name.as_deref(), Some("ferrolb-memberlist"));
    // A missing Secret must not keep the speaker from starting: it falls
    // back to Node conditions and says so.
    assert_eq!(secret.optional, Some(true));
}

#[test]
fn the_controller_runs_unprivileged_with_its_identity_from_the_downward_api() {
    let spec = pod_spec_of_deployment("ferrolb-controller");
    assert_ne!(spec.host_network, Some(true));
    let pod_sc = spec
        .security_context
        .as_ref()
        .expect("pod security context");
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    let c = container(&spec);
    let caps = c
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref())
        .expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert!(caps.add.is_none());
    let names = env_names(c);
    assert!(names.iter().any(|n| n == "POD_NAME"));
    assert!(names.iter().any(|n| n == "POD_NAMESPACE"));
    let probes = [&c.liveness_probe, &c.readiness_probe];
    let paths: Vec<_> = probes
        .iter()
        .map(|p| {
            p.as_ref()
                .and_then(|p| p.http_get.as_ref())
                .and_then(|h| h.path.clone())
        })
        .collect();
    assert_eq!(
        paths,
        [Some("/healthz".to_string()), Some("/readyz".to_string())]
    );
}

#[test]
fn the_controller_may_write_service_status_pool_status_events_and_its_lease() {
    let cluster: ClusterRole = the("ClusterRole", "ferrolb-controller");
    let rules = cluster.rules.unwrap_or_default();
    for (group, resource, verb) in [
        ("", "services", "watch"),
        ("", "services", "patch"),
        ("", "services/status", "patch"),
        ("", "namespaces", "watch"),
        ("events.k8s.io", "events", "create"),
    ] {
        assert!(
            allows(&rules, group, resource, verb),
            "controller: {verb} {group}/{resource}"
        );
    }
    let role: Role = the("Role", "ferrolb-controller");
    let rules = role.rules.unwrap_or_default();
    for (group, resource, verb) in [
        ("ferrolb.io", "ipaddresspools", "watch"),
        ("ferrolb.io", "l2advertisements", "watch"),
        ("ferrolb.io", "ipaddresspools/status", "patch"),
        ("ferrolb.io", "l2advertisements/status", "patch"),
        ("coordination.k8s.io", "leases", "patch"),
        ("coordination.k8s.io", "leases", "create"),
        ("coordination.k8s.io", "leases", "watch"),
    ] {
        assert!(
            allows(&rules, group, resource, verb),
            "controller: {verb} {group}/{resource}"
        );
    }
}

#[test]
fn the_speaker_only_reads_and_writes_events_and_its_records() {
    let cluster: ClusterRole = the("ClusterRole", "ferrolb-speaker");
    let rules = cluster.rules.unwrap_or_default();
    for (group, resource) in [
        ("", "services"),
        ("", "nodes"),
        ("discovery.k8s.io", "endpointslices"),
        ("ferrolb.io", "servicel2statuses"),
    ] {
        assert!(
            allows(&rules, group, resource, "watch"),
            "speaker: watch {group}/{resource}"
        );
    }
    for verb in ["create", "patch", "delete"] {
        assert!(
            allows(&rules, "ferrolb.io", "servicel2statuses", verb),
            "speaker: {verb} its records"
        );
    }
    for rule in &rules {
        let writable = rule
            .resources
            .iter()
            .flatten()
            .all(|r| r == "events" || r == "servicel2statuses");
        for verb in &rule.verbs {
            let read = matches!(verb.as_str(), "get" | "list" | "watch");
            assert!(read || writable, "speaker may {verb} {:?}", rule.resources);
        }
    }
    assert!(
        !allows(&rules, "", "services", "patch")
            && !allows(&rules, "ferrolb.io", "servicel2statuses/status", "patch"),
        "no status subresource, no Service writes"
    );
    let role: Role = the("Role", "ferrolb-speaker");
    let rules = role.rules.unwrap_or_default();
    assert!(allows(&rules, "ferrolb.io", "ipaddresspools", "watch"));
    assert!(allows(&rules, "ferrolb.io", "l2advertisements", "watch"));
    assert!(rules
        .iter()
        .flat_map(|r| r.verbs.iter())
        .all(|v| matches!(v.as_str(), "get" | "list" | "watch")));
}

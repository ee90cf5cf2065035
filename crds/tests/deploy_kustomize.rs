//! `deploy/` is a kustomize base (`deploy/base`, which includes
//! `deploy/crds`) and an overlay (`deploy/overlays/monitoring`);
//! `deploy/ferrolb.yaml` is the base rendered by `scripts/render-deploy`.
//! These tests keep the rendered file, the image reference and the
//! version in step. The ones that render need kubectl (it embeds
//! kustomize): without it they skip outside CI and fail under `CI=true`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::yaml_documents;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

/// The comment `scripts/render-deploy` writes above the rendered base
/// (kustomize drops comments, so the header is added, not rendered).
const HEADER: &str = "\
# ferrolb: CRDs, RBAC, controller and speaker. Generated from deploy/base
# by scripts/render-deploy (kubectl kustomize deploy/base); do not edit.
#
#   kubectl apply -f deploy/ferrolb.yaml
#
# Then configure addresses (deploy/examples/ipaddresspool.yaml) and where
# to announce them (deploy/examples/l2advertisement.yaml). With kube-proxy
# in IPVS mode, set \"strictARP: true\" in its configuration, or every node
# answers ARP for every LoadBalancer IP. See docs/operations.md.
";

const REGENERATE: &str = "run scripts/render-deploy to regenerate deploy/ferrolb.yaml";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the crate lives in the workspace")
        .to_path_buf()
}

fn read(path: &str) -> String {
    let path = repo().join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `images:` entry of a kustomization, in the shape the image tool
/// reads: `name`, `newName`, `newTag`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ImageEntry {
    name: String,
    new_name: String,
    new_tag: String,
}

#[derive(Debug, Deserialize)]
struct Kustomization {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    images: Vec<ImageEntry>,
}

fn kustomization(dir: &str) -> Kustomization {
    serde_yaml::from_str(&read(&format!("{dir}/kustomization.yaml")))
        .unwrap_or_else(|e| panic!("{dir}/kustomization.yaml: {e}"))
}

/// The image reference the base sets: `newName:newTag` of its `ferrolb`
/// entry.
fn image_ref() -> String {
    let k = kustomization("deploy/base");
    assert_eq!(k.images.len(), 1, "one image entry in deploy/base");
    let image = &k.images[0];
    assert_eq!(image.name, "ferrolb", "the manifests say `image: ferrolb`");
    format!("{}:{}", image.new_name, image.new_tag)
}

/// `kubectl kustomize DIR`. Its tests are `#[ignore = "needs kubectl"]`;
/// run without kubectl, they fail with the reason.
fn kustomize(test: &str, dir: &str) -> String {
    let out = Command::new("kubectl")
        .args(["kustomize", &repo().join(dir).to_string_lossy()])
        .output()
        .unwrap_or_else(|e| netlab::unavailable(test, format!("kubectl not runnable ({e})")));
    assert!(
        out.status.success(),
        "kubectl kustomize {dir} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn the<T: DeserializeOwned>(docs: &[Value], kind: &str, name: &str) -> T {
    let doc = docs
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"));
    serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{kind} {name}: {e}"))
}

/// Parses `doc` into the Kubernetes type of its kind, so a misspelt field
/// or a wrong type fails here rather than at `kubectl apply`.
fn parses_as_its_kind(doc: &Value) -> Result<(), String> {
    fn into<T: DeserializeOwned>(doc: &Value) -> Result<(), String> {
        serde_json::from_value::<T>(doc.clone())
            .map(drop)
            .map_err(|e| e.to_string())
    }
    match doc["kind"].as_str().unwrap_or_default() {
        "Namespace" => into::<Namespace>(doc),
        "CustomResourceDefinition" => into::<CustomResourceDefinition>(doc),
        "ServiceAccount" => into::<ServiceAccount>(doc),
        "ClusterRole" => into::<ClusterRole>(doc),
        "ClusterRoleBinding" => into::<ClusterRoleBinding>(doc),
        "Role" => into::<Role>(doc),
        "RoleBinding" => into::<RoleBinding>(doc),
        "Deployment" => into::<Deployment>(doc),
        "DaemonSet" => into::<DaemonSet>(doc),
        "PodDisruptionBudget" => into::<PodDisruptionBudget>(doc),
        other => Err(format!("unexpected kind {other:?} in the base")),
    }
}

fn images_of(spec: Option<k8s_openapi::api::core::v1::PodSpec>) -> Vec<String> {
    spec.expect("pod spec")
        .containers
        .into_iter()
        .map(|c| c.image.unwrap_or_default())
        .collect()
}

#[test]
#[ignore = "needs kubectl"]
fn rendered_install_manifest_is_exactly_the_kustomize_base() {
    let test = "rendered_install_manifest_is_exactly_the_kustomize_base";
    let rendered = kustomize(test, "deploy/base");
    let want = format!("{HEADER}{rendered}");
    let have = read("deploy/ferrolb.yaml");
    if have != want {
        let line = have
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .map_or_else(
                || have.lines().count().min(want.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "deploy/ferrolb.yaml differs from `kubectl kustomize deploy/base` \
             (first difference at line {line}); {REGENERATE}"
        );
    }
}

#[test]
fn the_render_script_writes_the_header_the_drift_test_expects() {
    let script = read("scripts/render-deploy");
    let quoted = format!("header='{HEADER}'");
    assert!(
        script.contains(&quoted),
        "scripts/render-deploy and this test must prepend the same header"
    );
    assert!(
        read("deploy/ferrolb.yaml").starts_with(HEADER),
        "{REGENERATE}"
    );
}

#[test]
fn every_rendered_object_parses_as_its_kind_and_runs_the_kustomized_image() {
    let docs = yaml_documents(&read("deploy/ferrolb.yaml"));
    for doc in &docs {
        if let Err(e) = parses_as_its_kind(doc) {
            panic!(
                "{} {}: {e}",
                doc["kind"].as_str().unwrap_or("?"),
                doc["metadata"]["name"].as_str().unwrap_or("?")
            );
        }
    }
    let image = image_ref();
    let deployment: Deployment = the(&docs, "Deployment", "ferrolb-controller");
    let daemonset: DaemonSet = the(&docs, "DaemonSet", "ferrolb-speaker");
    for (kind, images) in [
        (
            "Deployment",
            images_of(deployment.spec.and_then(|s| s.template.spec)),
        ),
        (
            "DaemonSet",
            images_of(daemonset.spec.and_then(|s| s.template.spec)),
        ),
    ] {
        assert_eq!(images, [image.as_str()], "{kind}");
    }
}

#[test]
fn one_apply_installs_the_crds_too() {
    assert!(
        kustomization("deploy/base")
            .resources
            .iter()
            .any(|r| r == "../crds"),
        "deploy/base must include ../crds"
    );
    let docs = yaml_documents(&read("deploy/ferrolb.yaml"));
    let crds: Vec<&str> = docs
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .map(|d| d["metadata"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        crds,
        [
            "ipaddresspools.ferrolb.io",
            "l2advertisements.ferrolb.io",
            "servicel2statuses.ferrolb.io"
        ]
    );
}

#[test]
fn deploy_crds_still_applies_with_kubectl_apply_f() {
    // `kubectl apply -f deploy/crds/` reads every *.yaml, *.yml and *.json
    // file there: a `kustomization.yaml` would be sent to the API server as
    // an object and fail the apply. The kustomization is called
    // `Kustomization` (a name kustomize accepts) for that reason.
    let dir = repo().join("deploy/crds");
    let mut manifests = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("deploy/crds") {
        let path = entry.expect("entry").path();
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if matches!(ext, "yaml" | "yml" | "json") {
            let text = std::fs::read_to_string(&path).expect("readable");
            for doc in yaml_documents(&text) {
                assert_eq!(
                    doc["kind"],
                    "CustomResourceDefinition",
                    "{} would break `kubectl apply -f deploy/crds/`",
                    path.display()
                );
            }
            manifests.push(path);
        }
    }
    assert_eq!(manifests.len(), 3, "{manifests:?}");
    let k: Kustomization =
        serde_yaml::from_str(&read("deploy/crds/Kustomization")).expect("a kustomization");
    let mut listed = k.resources;
    listed.sort();
    assert_eq!(
        listed,
        [
            "ferrolb.io_ipaddresspools.yaml",
            "ferrolb.io_l2advertisements.yaml",
            "ferrolb.io_servicel2statuses.yaml"
        ]
    );
}

#[test]
fn image_tag_is_v_and_the_workspace_version() {
    let k = kustomization("deploy/base");
    let tag = &k.images.first().expect("an image entry").new_tag;
    assert_eq!(
        *tag,
        format!("v{}", env!("CARGO_PKG_VERSION")),
        "deploy/base/kustomization.yaml images[ferrolb].newTag must follow \
         the workspace version in Cargo.toml; then {REGENERATE}"
    );
}

#[test]
#[ignore = "needs kubectl"]
fn the_monitoring_overlay_adds_a_pod_monitor_for_each_metrics_port() {
    let test = "the_monitoring_overlay_adds_a_pod_monitor_for_each_metrics_port";
    let rendered = kustomize(test, "deploy/overlays/monitoring");
    let docs = yaml_documents(&rendered);
    let base = yaml_documents(&read("deploy/ferrolb.yaml"));
    assert_eq!(docs.len(), base.len() + 2, "the base plus two PodMonitors");
    for (component, port) in [("controller", 7472), ("speaker", 7473)] {
        let name = format!("ferrolb-{component}");
        let monitor = docs
            .iter()
            .find(|d| d["kind"] == "PodMonitor" && d["metadata"]["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no PodMonitor {name}"));
        assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
        assert_eq!(monitor["metadata"]["namespace"], "ferrolb-system");
        let selector = &monitor["spec"]["selector"]["matchLabels"];
        assert_eq!(selector["app.kubernetes.io/component"], component);
        let endpoint_port = monitor["spec"]["podMetricsEndpoints"][0]["port"]
            .as_str()
            .expect("a named port");
        // The named port must exist on the selected pods, at the right number.
        let workload = docs
            .iter()
            .find(|d| d["metadata"]["name"] == name.as_str() && d["spec"]["template"].is_object())
            .expect("the component's workload");
        let ports = &workload["spec"]["template"]["spec"]["containers"][0]["ports"];
        let found = ports
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == endpoint_port)
            .unwrap_or_else(|| panic!("{name} has no port named {endpoint_port}"));
        assert_eq!(found["containerPort"], port, "{name}");
        let labels = &workload["spec"]["template"]["metadata"]["labels"];
        for (k, v) in selector.as_object().expect("matchLabels") {
            assert_eq!(&labels[k], v, "{name}'s pods carry {k}");
        }
    }
}

#[test]
fn the_controller_budget_allows_one_eviction_at_a_time() {
    let docs = yaml_documents(&read("deploy/ferrolb.yaml"));
    let pdb: PodDisruptionBudget = the(&docs, "PodDisruptionBudget", "ferrolb-controller");
    let spec = pdb.spec.expect("spec");
    assert_eq!(
        spec.max_unavailable,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))
    );
    assert_eq!(spec.min_available, None);
    let deployment: Deployment = the(&docs, "Deployment", "ferrolb-controller");
    let deployment = deployment.spec.expect("spec");
    assert_eq!(deployment.replicas, Some(2));
    assert_eq!(
        spec.selector.and_then(|s| s.match_labels),
        deployment.selector.match_labels,
        "the budget selects the controller's pods"
    );
}

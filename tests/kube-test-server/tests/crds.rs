//! CRDs: registration, custom resources, schema validation, pruning,
//! defaulting, the status subresource, and the project's own deploy/crds.

mod common;

use std::path::PathBuf;

use common::{server, status};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::discovery::Discovery;
use serde_json::{json, Value};

const FIXTURE: &str = include_str!("fixtures/widgets-crd.yaml");

async fn apply_crd(client: &kube::Client, yaml: &str) -> CustomResourceDefinition {
    let crd: CustomResourceDefinition = serde_yaml::from_str(yaml).unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.create(&PostParams::default(), &crd).await.unwrap()
}

fn widgets(client: &kube::Client, version: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("fixture.ferrolb.io", version, "Widget");
    Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "widgets"),
    )
}

fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "fixture.ferrolb.io/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec})).unwrap()
}

#[tokio::test]
async fn a_created_crd_is_established_and_discoverable() {
    let (_s, client) = server().await;
    let crd = apply_crd(&client, FIXTURE).await;
    let conds = crd.status.unwrap().conditions.unwrap();
    assert!(conds
        .iter()
        .any(|c| c.type_ == "Established" && c.status == "True"));
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let group = discovery
        .groups()
        .find(|g| g.name() == "fixture.ferrolb.io")
        .expect("group served");
    let (ar, caps) = group.recommended_kind("Widget").unwrap();
    assert_eq!(ar.version, "v1");
    assert_eq!(ar.plural, "widgets");
    assert!(
        caps.subresources
            .iter()
            .any(|(s, _)| s.plural == "status" || s.plural == "widgets/status"),
        "{:?}",
        caps.subresources
    );
}

#[tokio::test]
async fn custom_resources_are_defaulted_and_pruned() {
    let (_s, client) = server().await;
    apply_crd(&client, FIXTURE).await;
    let api = widgets(&client, "v1");
    let w = widget(
        "a",
        json!({"addresses": ["192.0.2.0/24"], "unknown": 1, "extra": {"kept": {"deep": true}}}),
    );
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    let spec = &created.data["spec"];
    assert_eq!(spec["autoAssign"], true);
    assert!(spec.get("unknown").is_none());
    assert_eq!(spec["extra"]["kept"]["deep"], true);
    assert_eq!(created.metadata.generation, Some(1));
}

#[tokio::test]
async fn an_object_breaking_the_schema_is_invalid_with_field_causes() {
    let (_s, client) = server().await;
    apply_crd(&client, FIXTURE).await;
    let api = widgets(&client, "v1");
    let w = widget(
        "bad",
        json!({"addresses": ["nope"], "mode": "l3", "priority": 101, "name": "too-long-name", "gateway": "192.0.2.300"}),
    );
    let err = status(api.create(&PostParams::default(), &w).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(err.message.starts_with("Widget.fixture.ferrolb.io \"bad\" is invalid: [spec.addresses[0]: Invalid value: \"nope\": spec.addresses[0] in body should match"), "{}", err.message);
    let fields: Vec<String> = err
        .details
        .unwrap()
        .causes
        .into_iter()
        .map(|c| c.field)
        .collect();
    assert_eq!(
        fields,
        [
            "spec.addresses[0]",
            "spec.gateway",
            "spec.mode",
            "spec.name",
            "spec.priority"
        ]
    );
    let missing = widget("empty", json!({}));
    let err = status(
        api.create(&PostParams::default(), &missing)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "Widget.fixture.ferrolb.io \"empty\" is invalid: spec.addresses: Required value"
    );
    let too_many = widget("many", json!({"addresses": ["a/1", "b/2", "c/3", "d/4"]}));
    let err = status(
        api.create(&PostParams::default(), &too_many)
            .await
            .unwrap_err(),
    );
    assert!(
        err.message
            .contains("spec.addresses: Too many: 4: must have at most 3 items"),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn the_status_subresource_separates_spec_and_status_writes() {
    let (_s, client) = server().await;
    apply_crd(&client, FIXTURE).await;
    let api = widgets(&client, "v1");
    let mut w = widget("a", json!({"addresses": ["192.0.2.0/24"]}));
    w.data["status"] = json!({"assigned": 5});
    let created = api.create(&PostParams::default(), &w).await.unwrap();
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );
    let pp = PatchParams::default();
    let after = api
        .patch_status(
            "a",
            &pp,
            &Patch::Merge(json!({"status": {"assigned": 3}, "spec": {"priority": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(after.data["status"]["assigned"], 3);
    assert!(
        after.data["spec"].get("priority").is_none(),
        "a status write ignores spec"
    );
    assert_eq!(after.metadata.generation, Some(1));
    let after = api
        .patch(
            "a",
            &pp,
            &Patch::Merge(json!({"status": {"assigned": 9}, "spec": {"priority": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(
        after.data["status"]["assigned"], 3,
        "a main write ignores status"
    );
    assert_eq!(after.data["spec"]["priority"], 7);
    assert_eq!(after.metadata.generation, Some(2));
    let invalid = api
        .patch_status(
            "a",
            &pp,
            &Patch::Merge(json!({"status": {"assigned": "many"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(status(invalid).code, 422);
}

#[tokio::test]
async fn strategic_merge_is_refused_for_custom_resources_but_apply_works() {
    let (_s, client) = server().await;
    apply_crd(&client, FIXTURE).await;
    let api = widgets(&client, "v1");
    let pp = PatchParams::apply("test-manager");
    let applied = api
        .patch(
            "a",
            &pp,
            &Patch::Apply(widget("a", json!({"addresses": ["192.0.2.0/24"]}))),
        )
        .await
        .unwrap();
    assert_eq!(applied.data["spec"]["autoAssign"], true);
    let applied = api
        .patch(
            "a",
            &pp,
            &Patch::Apply(widget(
                "a",
                json!({"addresses": ["192.0.2.0/25"], "priority": 1}),
            )),
        )
        .await
        .unwrap();
    assert_eq!(applied.data["spec"]["addresses"], json!(["192.0.2.0/25"]));
    let err = status(
        api.patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"priority": 2}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
}

#[tokio::test]
async fn every_served_version_reads_the_same_objects() {
    let (_s, client) = server().await;
    apply_crd(&client, FIXTURE).await;
    widgets(&client, "v1")
        .create(
            &PostParams::default(),
            &widget("a", json!({"addresses": ["192.0.2.0/24"]})),
        )
        .await
        .unwrap();
    let old = widgets(&client, "v1alpha1").get("a").await.unwrap();
    assert_eq!(
        old.types.unwrap().api_version,
        "fixture.ferrolb.io/v1alpha1"
    );
    assert_eq!(old.data["spec"]["addresses"], json!(["192.0.2.0/24"]));
}

#[tokio::test]
async fn deleting_a_crd_deletes_its_objects_and_stops_serving_them() {
    let (_s, client) = server().await;
    apply_crd(&client, FIXTURE).await;
    let api = widgets(&client, "v1");
    api.create(
        &PostParams::default(),
        &widget("a", json!({"addresses": ["192.0.2.0/24"]})),
    )
    .await
    .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("widgets.fixture.ferrolb.io", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(status(api.get("a").await.unwrap_err()).code, 404);
    apply_crd(&client, FIXTURE).await;
    assert!(api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn a_crd_with_a_wrong_name_is_invalid() {
    let (_s, client) = server().await;
    let yaml = FIXTURE.replace(
        "name: widgets.fixture.ferrolb.io",
        "name: gadgets.fixture.ferrolb.io",
    );
    let crd: CustomResourceDefinition = serde_yaml::from_str(&yaml).unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let err = status(api.create(&PostParams::default(), &crd).await.unwrap_err());
    assert_eq!(err.code, 422);
    assert!(err.message.contains("metadata.name"), "{}", err.message);
}

/// A minimal valid object for a ferrolb kind.
fn sample_spec(kind: &str) -> Value {
    match kind {
        "IPAddressPool" => {
            json!({"addresses": ["192.0.2.0/24", "2001:db8::/120", "198.51.100.10-198.51.100.20"]})
        }
        _ => json!({}),
    }
}

#[tokio::test]
async fn every_crd_in_deploy_crds_applies_and_accepts_a_sample_object() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if files.is_empty() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no CRD YAML in {}",
            dir.display()
        );
        println!("skipped: no CRD YAML in {} yet", dir.display());
        return;
    }
    let (_s, client) = server().await;
    let mut applied = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value: Value = serde::Deserialize::deserialize(doc).unwrap();
            if value["kind"] != "CustomResourceDefinition" {
                continue;
            }
            let crd = apply_crd(&client, &serde_yaml::to_string(&value).unwrap()).await;
            let spec = &crd.spec;
            let version = spec.versions.iter().find(|v| v.storage).unwrap();
            let gvk = GroupVersionKind::gvk(&spec.group, &version.name, &spec.names.kind);
            let ar = ApiResource::from_gvk_with_plural(&gvk, &spec.names.plural);
            let api: Api<DynamicObject> = if spec.scope == "Namespaced" {
                Api::namespaced_with(client.clone(), "default", &ar)
            } else {
                Api::all_with(client.clone(), &ar)
            };
            let obj: DynamicObject = serde_json::from_value(json!({
                "apiVersion": ar.api_version, "kind": ar.kind, "metadata": {"name": "sample"}, "spec": sample_spec(&ar.kind)
            })).unwrap();
            let created = api
                .create(&PostParams::default(), &obj)
                .await
                .unwrap_or_else(|e| panic!("{} sample refused: {e}", ar.kind));
            assert_eq!(created.metadata.generation, Some(1));
            api.get("sample").await.unwrap();
            applied += 1;
        }
    }
    assert!(applied > 0, "no CustomResourceDefinition documents found");
}

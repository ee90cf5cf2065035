//! Patch flavours through the API on the core types ferrolb patches.

mod common;

use common::{server, status};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

#[tokio::test]
async fn strategic_merge_on_node_labels_and_conditions() {
    let (_s, client) = server().await;
    let api: Api<Node> = Api::all(client);
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n1", "labels": {"a": "1"}},
        "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}]}})).unwrap();
    api.create(&PostParams::default(), &node).await.unwrap();
    let pp = PatchParams::default();
    let n = api
        .patch(
            "n1",
            &pp,
            &Patch::Strategic(json!({"metadata": {"labels": {"b": "2", "a": null}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        n.metadata.labels.unwrap(),
        [("b".to_string(), "2".to_string())].into()
    );
    let n = api
        .patch_status(
            "n1",
            &pp,
            &Patch::Strategic(
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            ),
        )
        .await
        .unwrap();
    let conds = n.status.unwrap().conditions.unwrap();
    assert_eq!(conds.len(), 2);
    assert_eq!(
        conds.iter().find(|c| c.type_ == "Ready").unwrap().status,
        "True"
    );
}

#[tokio::test]
async fn strategic_merge_on_service_ports_merges_by_port() {
    let (_s, client) = server().await;
    let api: Api<Service> = Api::namespaced(client, "default");
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "s"}, "spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}})).unwrap();
    api.create(&PostParams::default(), &svc).await.unwrap();
    let s = api
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"ports": [{"port": 81, "targetPort": 8081}]}})),
        )
        .await
        .unwrap();
    let ports = s.spec.unwrap().ports.unwrap();
    assert_eq!(ports.len(), 2);
    assert_eq!(
        ports[1].target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8081))
    );
    let s = api.patch_status("s", &PatchParams::default(), &Patch::Strategic(json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"ip": "2001:db8::10"}]}}}))).await.unwrap();
    assert_eq!(
        s.status
            .unwrap()
            .load_balancer
            .unwrap()
            .ingress
            .unwrap()
            .len(),
        2
    );
    let s = api
        .patch_status(
            "s",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.11"}]}}}),
            ),
        )
        .await
        .unwrap();
    let ingress = s.status.unwrap().load_balancer.unwrap().ingress.unwrap();
    assert_eq!(ingress.len(), 1, "ingress is replaced as a whole");
}

#[tokio::test]
async fn json_patch_applies_and_a_failed_test_is_unprocessable() {
    let (_s, client) = server().await;
    let api: Api<Lease> = Api::namespaced(client, "default");
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}))
            .unwrap();
    api.create(&PostParams::default(), &lease).await.unwrap();
    let ops: json_patch::Patch = serde_json::from_value(json!([{"op": "test", "path": "/spec/holderIdentity", "value": "a"}, {"op": "replace", "path": "/spec/holderIdentity", "value": "b"}])).unwrap();
    let l = api
        .patch(
            "l",
            &PatchParams::default(),
            &Patch::<()>::Json(ops.clone()),
        )
        .await
        .unwrap();
    assert_eq!(l.spec.unwrap().holder_identity.as_deref(), Some("b"));
    let err = status(
        api.patch("l", &PatchParams::default(), &Patch::<()>::Json(ops))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
}

#[tokio::test]
async fn a_merge_patch_carrying_a_stale_resource_version_conflicts() {
    let (_s, client) = server().await;
    let api: Api<Lease> = Api::namespaced(client, "default");
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}))
            .unwrap();
    let created = api.create(&PostParams::default(), &lease).await.unwrap();
    let rv = created.metadata.resource_version.unwrap();
    api.patch(
        "l",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"resourceVersion": rv}, "spec": {"holderIdentity": "b"}}),
        ),
    )
    .await
    .unwrap();
    let err = status(
        api.patch(
            "l",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"resourceVersion": rv}, "spec": {"holderIdentity": "c"}}),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
}

#[tokio::test]
async fn server_side_apply_creates_then_merges_and_needs_a_field_manager() {
    let (_s, client) = server().await;
    let api: Api<Event> = Api::namespaced(client, "default");
    let ev = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"}, "reason": "Assigned", "message": "first",
        "involvedObject": {"kind": "Service", "name": "s", "namespace": "default"}});
    let e = api
        .patch(
            "e1",
            &PatchParams::apply("ferrolb-controller"),
            &Patch::Apply(&ev),
        )
        .await
        .unwrap();
    assert_eq!(e.message.as_deref(), Some("first"));
    let e = api.patch("e1", &PatchParams::apply("ferrolb-controller").force(), &Patch::Apply(json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1"}, "count": 2}))).await.unwrap();
    assert_eq!((e.message.as_deref(), e.count), (Some("first"), Some(2)));
    let err = status(
        api.patch("e1", &PatchParams::default(), &Patch::Apply(&ev))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
}

#[tokio::test]
async fn pods_start_pending_and_ignore_status_on_the_main_resource() {
    let (_s, client) = server().await;
    let api: Api<Pod> = Api::namespaced(client, "default");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}, "status": {"phase": "Running"}})).unwrap();
    let p = api.create(&PostParams::default(), &pod).await.unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Pending"));
    let p = api
        .patch_status(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Running", "podIP": "192.0.2.5"}})),
        )
        .await
        .unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
    let p = api.patch("p", &PatchParams::default(), &Patch::Strategic(json!({"spec": {"containers": [{"name": "c", "image": "y"}]}, "status": {"phase": "Failed"}}))).await.unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
    assert_eq!(p.spec.unwrap().containers[0].image.as_deref(), Some("y"));
}

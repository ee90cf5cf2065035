//! Service allocation and defaults through the API.

mod common;

use common::{server, status};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

fn svc(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

#[tokio::test]
async fn a_load_balancer_service_gets_a_cluster_ip_node_ports_and_defaults() {
    let (_s, client) = server().await;
    let api: Api<Service> = Api::namespaced(client, "default");
    let created = api.create(&PostParams::default(), &svc("web", json!({"type": "LoadBalancer", "ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}))).await.unwrap();
    let spec = created.spec.unwrap();
    let ip = spec.cluster_ip.unwrap();
    let parsed: std::net::Ipv4Addr = ip.parse().unwrap();
    assert!("192.0.2.128/25"
        .parse::<ipnet::Ipv4Net>()
        .unwrap()
        .contains(&parsed));
    assert_eq!(spec.ip_families.unwrap(), ["IPv4"]);
    assert_eq!(spec.ip_family_policy.as_deref(), Some("SingleStack"));
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(spec.internal_traffic_policy.as_deref(), Some("Cluster"));
    assert_eq!(spec.session_affinity.as_deref(), Some("None"));
    assert_eq!(spec.allocate_load_balancer_node_ports, Some(true));
    let ports = spec.ports.unwrap();
    let node_ports: Vec<i32> = ports.iter().map(|p| p.node_port.unwrap()).collect();
    assert!(node_ports.iter().all(|p| (30000..=32767).contains(p)));
    assert_ne!(node_ports[0], node_ports[1]);
    assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
    assert_eq!(
        ports[0].target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(80))
    );
    assert!(created
        .status
        .unwrap()
        .load_balancer
        .unwrap()
        .ingress
        .is_none());
}

#[tokio::test]
async fn a_requested_node_port_that_is_taken_is_invalid() {
    let (_s, client) = server().await;
    let api: Api<Service> = Api::namespaced(client, "default");
    api.create(
        &PostParams::default(),
        &svc(
            "a",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
        ),
    )
    .await
    .unwrap();
    let err = status(
        api.create(
            &PostParams::default(),
            &svc(
                "b",
                json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(err.message, "Service \"b\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated");
    api.delete("a", &DeleteParams::default()).await.unwrap();
    api.create(
        &PostParams::default(),
        &svc(
            "b",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
        ),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn dual_stack_services_get_both_families() {
    let (_s, client) = server().await;
    let api: Api<Service> = Api::namespaced(client, "default");
    let created = api.create(&PostParams::default(), &svc("a", json!({"type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]}))).await.unwrap();
    let spec = created.spec.unwrap();
    assert_eq!(spec.ip_families.unwrap(), ["IPv4", "IPv6"]);
    let ips = spec.cluster_ips.unwrap();
    assert!(ips[1].starts_with("2001:db8:ffff::"), "{ips:?}");
    let v6 = api
        .create(
            &PostParams::default(),
            &svc(
                "b",
                json!({"ipFamilies": ["IPv6"], "ports": [{"port": 80}]}),
            ),
        )
        .await
        .unwrap();
    assert!(v6
        .spec
        .unwrap()
        .cluster_ip
        .unwrap()
        .starts_with("2001:db8:ffff::"));
}

#[tokio::test]
async fn changing_to_cluster_ip_releases_node_ports_and_keeps_the_cluster_ip() {
    let (_s, client) = server().await;
    let api: Api<Service> = Api::namespaced(client, "default");
    let created = api
        .create(
            &PostParams::default(),
            &svc(
                "a",
                json!({"type": "LoadBalancer", "ports": [{"port": 80, "nodePort": 30001}]}),
            ),
        )
        .await
        .unwrap();
    let ip = created.spec.unwrap().cluster_ip;
    let patched = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
        )
        .await
        .unwrap();
    let spec = patched.spec.unwrap();
    assert_eq!(spec.cluster_ip, ip);
    assert_eq!(spec.ports.unwrap()[0].node_port, None);
    assert_eq!(spec.external_traffic_policy, None);
    assert_eq!(patched.metadata.generation, Some(2));
    api.create(
        &PostParams::default(),
        &svc(
            "b",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}]}),
        ),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_cluster_ip_cannot_change_once_set_but_can_be_omitted() {
    let (_s, client) = server().await;
    let api: Api<Service> = Api::namespaced(client, "default");
    let created = api
        .create(
            &PostParams::default(),
            &svc("a", json!({"ports": [{"port": 80}]})),
        )
        .await
        .unwrap();
    let mut replaced = created.clone();
    replaced.spec.as_mut().unwrap().cluster_ip = None;
    replaced.spec.as_mut().unwrap().cluster_ips = None;
    let kept = api
        .replace("a", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(
        kept.spec.unwrap().cluster_ip,
        created.spec.as_ref().unwrap().cluster_ip
    );
    let err = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"clusterIP": "192.0.2.200", "clusterIPs": ["192.0.2.200"]}}),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(status(err).code, 422);
}

#[tokio::test]
async fn a_status_write_changes_only_the_load_balancer_status() {
    let (_s, client) = server().await;
    let api: Api<Service> = Api::namespaced(client, "default");
    api.create(
        &PostParams::default(),
        &svc(
            "a",
            json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
        ),
    )
    .await
    .unwrap();
    let patch = json!({"spec": {"type": "ClusterIP"}, "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}}});
    let after = api
        .patch_status("a", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    assert_eq!(after.spec.unwrap().type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(
        after
            .status
            .unwrap()
            .load_balancer
            .unwrap()
            .ingress
            .unwrap()[0]
            .ip
            .as_deref(),
        Some("198.51.100.7")
    );
    assert_eq!(after.metadata.generation, Some(1));
    let ignored = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"loadBalancer": {"ingress": []}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        ignored
            .status
            .unwrap()
            .load_balancer
            .unwrap()
            .ingress
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn deleting_a_service_releases_its_cluster_ip() {
    let (_s, client) = server().await;
    let api: Api<Service> = Api::namespaced(client, "default");
    let a = api
        .create(
            &PostParams::default(),
            &svc(
                "a",
                json!({"clusterIP": "192.0.2.150", "ports": [{"port": 80}]}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(a.spec.unwrap().cluster_ip.as_deref(), Some("192.0.2.150"));
    let err = status(
        api.create(
            &PostParams::default(),
            &svc(
                "b",
                json!({"clusterIP": "192.0.2.150", "ports": [{"port": 80}]}),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert!(
        err.message.contains("provided IP is already allocated"),
        "{}",
        err.message
    );
    api.delete("a", &DeleteParams::default()).await.unwrap();
    api.create(
        &PostParams::default(),
        &svc(
            "b",
            json!({"clusterIP": "192.0.2.150", "ports": [{"port": 80}]}),
        ),
    )
    .await
    .unwrap();
}

//! The EndpointSlice controller's part: every Service with a selector gets,
//! per IP family, an EndpointSlice with one ready endpoint on every node,
//! as if each node ran one ready Pod of it. The API test server runs no
//! controllers, and the speakers only announce Services with ready
//! endpoints, so without this a Service applied with `kubectl` (the
//! examples, or a user's own in `ferrolb-lab up`) would never be announced.
//!
//! Slices are created once per Service (by UID) and never updated: tests
//! that move endpoints (`Cluster::set_endpoint_nodes`) or create a Service
//! with endpoints on some nodes only (`Cluster::create_service`, which
//! writes its slices first) own them from then on. Slices of a deleted
//! Service are deleted, as garbage collection of their owner would.

use std::collections::HashMap;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{json, Value};

use crate::objects;
use crate::AbortOnDrop;

/// The slices Service `svc` should get, one per family; empty when it has
/// no selector (its endpoints are managed by hand) (pure).
pub fn slices_for(svc: &Service, nodes: &[(usize, String)]) -> Vec<Value> {
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    if spec.selector.as_ref().is_none_or(|s| s.is_empty()) {
        return Vec::new();
    }
    let ports: Vec<Value> = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let target = match &p.target_port {
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => *n,
                _ => p.port,
            };
            json!({
                "name": p.name.clone().unwrap_or_default(),
                "protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                "port": target,
            })
        })
        .collect();
    let families = spec
        .ip_families
        .clone()
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| vec!["IPv4".into()]);
    let ns = svc.namespace().unwrap_or_else(|| "default".into());
    families
        .iter()
        .map(|f| objects::endpoint_slice(&ns, &svc.name_any(), json!(ports), f == "IPv6", nodes))
        .collect()
}

/// Follows Services and writes their slices until dropped.
pub fn start(client: Client, nodes: Vec<(usize, String)>) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let services: Api<Service> = Api::all(client.clone());
        let stream = crate::follow::states(services);
        futures::pin_mut!(stream);
        // UID -> (namespace, name) of every Service whose slices exist.
        let mut done: HashMap<String, (String, String)> = HashMap::new();
        while let Some(state) = stream.next().await {
            for svc in &state {
                let Some(uid) = svc.uid() else { continue };
                if done.contains_key(&uid) {
                    continue;
                }
                let ns = svc.namespace().unwrap_or_else(|| "default".into());
                let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
                let mut ok = true;
                for slice in slices_for(svc, &nodes) {
                    let Ok(slice) = serde_json::from_value::<EndpointSlice>(slice) else {
                        ok = false;
                        continue;
                    };
                    match api.create(&PostParams::default(), &slice).await {
                        Ok(_) => {}
                        // Written first by whoever owns them (a test).
                        Err(kube::Error::Api(e)) if e.code == 409 => {}
                        Err(e) => {
                            eprintln!(
                                "ferrolb-lab endpoints: EndpointSlice for {ns}/{}: {e}",
                                svc.name_any()
                            );
                            ok = false;
                        }
                    }
                }
                if ok {
                    done.insert(uid, (ns, svc.name_any()));
                }
            }
            let live: std::collections::HashSet<String> =
                state.iter().filter_map(|s| s.uid()).collect();
            let gone: Vec<String> = done
                .keys()
                .filter(|u| !live.contains(*u))
                .cloned()
                .collect();
            for uid in gone {
                if let Some((ns, name)) = done.remove(&uid) {
                    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), &ns);
                    for v6 in [false, true] {
                        let _ = api
                            .delete(&objects::slice_name(&name, v6), &DeleteParams::default())
                            .await;
                    }
                }
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(v: Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    fn nodes() -> Vec<(usize, String)> {
        vec![(1, "node-1".into()), (2, "node-2".into())]
    }

    #[test]
    fn a_dual_stack_service_gets_one_slice_per_family_on_every_node() {
        let s = svc(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "u"},
            "spec": {
                "selector": {"app": "web"},
                "ipFamilies": ["IPv4", "IPv6"],
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                          {"name": "dns", "port": 53, "protocol": "UDP"}],
            },
        }));
        let slices = slices_for(&s, &nodes());
        assert_eq!(slices.len(), 2);
        assert_eq!(slices[0]["metadata"]["namespace"], "shop");
        assert_eq!(slices[0]["addressType"], "IPv4");
        assert_eq!(slices[1]["metadata"]["name"], "web-v6");
        assert_eq!(slices[1]["endpoints"].as_array().unwrap().len(), 2);
        assert_eq!(slices[0]["ports"][0]["port"], 8080, "targetPort");
        assert_eq!(slices[0]["ports"][1]["port"], 53, "no targetPort: port");
        assert_eq!(slices[0]["ports"][1]["protocol"], "UDP");
    }

    #[test]
    fn services_without_a_selector_are_left_alone_and_ipv4_is_the_default() {
        let manual = svc(json!({"metadata": {"name": "m"}, "spec": {"ports": [{"port": 1}]}}));
        assert!(slices_for(&manual, &nodes()).is_empty());
        let v4 = svc(json!({
            "metadata": {"name": "a"},
            "spec": {"selector": {"app": "a"}, "ports": [{"port": 1}]},
        }));
        let slices = slices_for(&v4, &nodes());
        assert_eq!(slices.len(), 1);
        assert_eq!(slices[0]["addressType"], "IPv4");
        assert_eq!(slices[0]["metadata"]["namespace"], "default");
    }
}

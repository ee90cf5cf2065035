//! The objects tests read and write through the API: Services with their
//! EndpointSlices, ferrolb's custom objects, Node labels, and Events.

use anyhow::Context;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::Api;
use serde_json::Value;

use super::Cluster;
use crate::objects::{self, ServiceSpec};
use crate::topology::SYSTEM_NS;

impl Cluster {
    /// Creates a LoadBalancer Service and its EndpointSlices (a ready
    /// endpoint on every node, or on `endpoint_nodes` when given). The
    /// slices are written first, so the EndpointSlice stand-in leaves them
    /// alone.
    pub async fn create_service(
        &self,
        spec: &ServiceSpec,
        endpoint_nodes: Option<&[&str]>,
    ) -> anyhow::Result<()> {
        let nodes = self.endpoint_nodes(endpoint_nodes);
        let slices: Vec<Value> = spec
            .families
            .v6_flags()
            .iter()
            .map(|&v6| {
                objects::endpoint_slice(
                    "default",
                    &spec.name,
                    objects::tcp_port(spec.port),
                    v6,
                    &nodes,
                )
            })
            .collect();
        self.create_service_object(&slices, objects::service(spec))
            .await
    }

    /// Creates the EndpointSlices `slices`, then the Service `svc` (both
    /// JSON, in `default`): [`Cluster::create_service`] for Services and
    /// slices shaped by hand.
    pub async fn create_service_object(&self, slices: &[Value], svc: Value) -> anyhow::Result<()> {
        let pp = PostParams::default();
        let api: Api<EndpointSlice> = Api::namespaced(self.kube.clone(), "default");
        for slice in slices {
            api.create(&pp, &serde_json::from_value(slice.clone())?)
                .await
                .with_context(|| format!("creating EndpointSlice {}", slice["metadata"]["name"]))?;
        }
        let name = svc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let svcs: Api<Service> = Api::namespaced(self.kube.clone(), "default");
        svcs.create(&pp, &serde_json::from_value(svc)?)
            .await
            .with_context(|| format!("creating Service {name}"))?;
        Ok(())
    }

    /// `(index, name)` of every node, for [`objects::endpoint_slice`].
    pub fn node_indices(&self) -> Vec<(usize, String)> {
        self.endpoint_nodes(None)
    }

    /// Deletes a Service and its EndpointSlices.
    pub async fn delete_service(&self, name: &str) -> anyhow::Result<()> {
        let svcs: Api<Service> = Api::namespaced(self.kube.clone(), "default");
        svcs.delete(name, &DeleteParams::default()).await?;
        let slices: Api<EndpointSlice> = Api::namespaced(self.kube.clone(), "default");
        for v6 in [false, true] {
            let _ = slices
                .delete(&objects::slice_name(name, v6), &DeleteParams::default())
                .await;
        }
        Ok(())
    }

    /// The Service as JSON.
    pub async fn service(&self, name: &str) -> anyhow::Result<Value> {
        let svcs: Api<Service> = Api::namespaced(self.kube.clone(), "default");
        Ok(serde_json::to_value(svcs.get(name).await?)?)
    }

    /// Every Service in `default`, as JSON.
    pub async fn services(&self) -> anyhow::Result<Vec<Value>> {
        let svcs: Api<Service> = Api::namespaced(self.kube.clone(), "default");
        let list = svcs.list(&ListParams::default()).await?;
        list.items
            .into_iter()
            .map(|s| Ok(serde_json::to_value(s)?))
            .collect()
    }

    /// Replaces the endpoints of Service `service`'s EndpointSlice of one
    /// family with one ready endpoint on each of `endpoint_nodes`.
    pub async fn set_endpoint_nodes(
        &self,
        service: &str,
        port: u16,
        v6: bool,
        endpoint_nodes: &[&str],
    ) -> anyhow::Result<()> {
        let pods: Vec<(&str, objects::Pod)> = endpoint_nodes
            .iter()
            .map(|n| (*n, objects::Pod::Ready))
            .collect();
        self.set_endpoints(service, port, v6, &pods).await
    }

    /// Replaces the endpoints of Service `service`'s EndpointSlice of one
    /// family with one endpoint per `(node, pod)`, its conditions as the
    /// Pod's state makes them (a rolling update, step by step).
    pub async fn set_endpoints(
        &self,
        service: &str,
        port: u16,
        v6: bool,
        pods: &[(&str, objects::Pod)],
    ) -> anyhow::Result<()> {
        let names: Vec<&str> = pods.iter().map(|(n, _)| *n).collect();
        let nodes = self.endpoint_nodes(Some(&names));
        let mut slice =
            objects::endpoint_slice("default", service, objects::tcp_port(port), v6, &nodes);
        if let Some(endpoints) = slice["endpoints"].as_array_mut() {
            for ep in endpoints {
                let node = ep["nodeName"].as_str().unwrap_or_default().to_owned();
                if let Some((_, pod)) = pods.iter().find(|(n, _)| *n == node) {
                    ep["conditions"] = pod.conditions();
                }
            }
        }
        let name = slice["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let patch = serde_json::json!({"endpoints": slice["endpoints"]});
        let slices: Api<EndpointSlice> = Api::namespaced(self.kube.clone(), "default");
        slices
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .with_context(|| format!("updating EndpointSlice {name}"))?;
        Ok(())
    }

    /// `(index, name)` of every node, or of those named in `only`.
    fn endpoint_nodes(&self, only: Option<&[&str]>) -> Vec<(usize, String)> {
        self.nodes
            .iter()
            .filter(|n| only.is_none_or(|list| list.contains(&n.name.as_str())))
            .map(|n| (n.index, n.name.clone()))
            .collect()
    }

    fn custom_api(&self, kind: &str, plural: &str) -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk("ferrolb.io", "v1beta1", kind);
        let ar = ApiResource::from_gvk_with_plural(&gvk, plural);
        Api::namespaced_with(self.kube.clone(), SYSTEM_NS, &ar)
    }

    /// Creates a ferrolb custom object (`IPAddressPool`, `L2Advertisement`)
    /// in the system namespace.
    pub async fn create_custom_object(
        &self,
        obj: Value,
        kind: &str,
        plural: &str,
    ) -> anyhow::Result<()> {
        let obj: DynamicObject = serde_json::from_value(obj)?;
        self.custom_api(kind, plural)
            .create(&PostParams::default(), &obj)
            .await
            .with_context(|| format!("creating {kind}"))?;
        Ok(())
    }

    /// Creates IPAddressPool `name` in the system namespace with
    /// `addresses` and `autoAssign: false` (Services ask for it with
    /// `ferrolb.io/address-pool`).
    pub async fn create_pool(&self, name: &str, addresses: &[String]) -> anyhow::Result<()> {
        let pool = serde_json::json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": SYSTEM_NS},
            "spec": {"addresses": addresses, "autoAssign": false},
        });
        self.create_custom_object(pool, "IPAddressPool", "ipaddresspools")
            .await
    }

    /// Creates L2Advertisement `pool` selecting pool `pool`, on every node.
    pub async fn advertise_pool(&self, pool: &str) -> anyhow::Result<()> {
        let adv = serde_json::json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": pool, "namespace": SYSTEM_NS},
            "spec": {"ipAddressPools": [pool]},
        });
        self.create_custom_object(adv, "L2Advertisement", "l2advertisements")
            .await
    }

    /// Merge-patches the ferrolb custom object `name` (spec or metadata).
    pub async fn patch_custom(
        &self,
        kind: &str,
        plural: &str,
        name: &str,
        patch: Value,
    ) -> anyhow::Result<()> {
        self.custom_api(kind, plural)
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .with_context(|| format!("patching {kind} {name}"))?;
        Ok(())
    }

    /// The ferrolb custom object `name`, as JSON.
    pub async fn custom(&self, kind: &str, plural: &str, name: &str) -> anyhow::Result<Value> {
        Ok(serde_json::to_value(
            self.custom_api(kind, plural).get(name).await?,
        )?)
    }

    /// Sets (`Some`) or removes (`None`) the label `key` on Node `node`.
    pub async fn label_node(
        &self,
        node: &str,
        key: &str,
        value: Option<&str>,
    ) -> anyhow::Result<()> {
        let nodes: Api<Node> = Api::all(self.kube.clone());
        let patch = serde_json::json!({"metadata": {"labels": {key: value}}});
        nodes
            .patch(node, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .with_context(|| format!("labelling Node {node}"))?;
        Ok(())
    }

    /// Every events.k8s.io Event in `default`, oldest (lowest
    /// resourceVersion) first.
    async fn events_oldest_first(&self) -> anyhow::Result<Vec<Event>> {
        let api: Api<Event> = Api::namespaced(self.kube.clone(), "default");
        let mut list = api.list(&ListParams::default()).await?.items;
        list.sort_by_key(|e| {
            e.metadata
                .resource_version
                .clone()
                .unwrap_or_default()
                .parse::<u64>()
                .unwrap_or(0)
        });
        Ok(list)
    }

    /// The `nodeAssigned` Events of Service `name`, oldest first, as
    /// (node, message).
    pub async fn node_assigned_events(&self, name: &str) -> anyhow::Result<Vec<(String, String)>> {
        Ok(self
            .events_oldest_first()
            .await?
            .into_iter()
            .filter(|e| {
                e.reason.as_deref() == Some("nodeAssigned")
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
            })
            .map(|e| {
                let msg = e.note.unwrap_or_default();
                let node = msg.split('"').nth(1).map(str::to_owned).unwrap_or_default();
                (node, msg)
            })
            .collect())
    }

    /// Every Event about Service `name`, oldest first, as (type, reason,
    /// note).
    pub async fn service_events(
        &self,
        name: &str,
    ) -> anyhow::Result<Vec<(String, String, String)>> {
        Ok(self
            .events_oldest_first()
            .await?
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect())
    }

    /// The Events `kubectl describe service NAME` shows, as (reason,
    /// message): core/v1 Events selected the way kubectl selects them,
    /// by kind, name, namespace and the Service's UID, so an Event whose
    /// reference lacks the UID is not among them.
    pub async fn describe_events(&self, name: &str) -> anyhow::Result<Vec<(String, String)>> {
        let svcs: Api<Service> = Api::namespaced(self.kube.clone(), "default");
        let uid = svcs
            .get(name)
            .await?
            .metadata
            .uid
            .context("the Service has no uid")?;
        let api: Api<k8s_openapi::api::core::v1::Event> =
            Api::namespaced(self.kube.clone(), "default");
        let fields = format!(
            "involvedObject.kind=Service,involvedObject.uid={uid},\
             involvedObject.name={name},involvedObject.namespace=default"
        );
        let list = api.list(&ListParams::default().fields(&fields)).await?;
        Ok(list
            .items
            .into_iter()
            .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
            .collect())
    }
}

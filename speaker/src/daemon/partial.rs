//! Partial objects: the parts of a watched kind the speaker reads, so the
//! watch deserializes nothing else. An EndpointSlice changes far more
//! often than anything else the speaker watches (every Pod becoming ready
//! or not), and kube-runtime would otherwise parse each whole object,
//! managedFields and addresses included, only for the watch edge to keep a
//! count and a few node names. serde skips the unknown fields without
//! allocating them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// `discovery.k8s.io/v1` EndpointSlice, as far as the speaker reads it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EndpointSlice {
    /// Name, namespace, labels, uid, resourceVersion (what a watch needs
    /// to resume) only.
    #[serde(deserialize_with = "lean_meta")]
    pub metadata: ObjectMeta,
    /// The endpoints' conditions and nodes.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub endpoints: Vec<Endpoint>,
}

/// One endpoint: its conditions and node.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// `conditions`.
    #[serde(default)]
    pub conditions: Option<Conditions>,
    /// `nodeName`.
    #[serde(default)]
    pub node_name: Option<String>,
}

/// An endpoint's conditions.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct Conditions {
    /// `ready`.
    #[serde(default)]
    pub ready: Option<bool>,
    /// `serving`.
    #[serde(default)]
    pub serving: Option<bool>,
    /// `terminating`.
    #[serde(default)]
    pub terminating: Option<bool>,
}

impl Conditions {
    /// `ready`; unset means ready, as the API documents.
    pub fn is_ready(this: Option<&Self>) -> bool {
        this.and_then(|c| c.ready).unwrap_or(true)
    }

    /// Terminating but still serving: what kube-proxy falls back to when
    /// a Service has no ready endpoint. `serving` unset defers to `ready`,
    /// as the API documents.
    pub fn is_terminating_and_serving(this: Option<&Self>) -> bool {
        let ready = Self::is_ready(this);
        let serving = this.and_then(|c| c.serving).unwrap_or(ready);
        let terminating = this.and_then(|c| c.terminating).unwrap_or(false);
        !ready && serving && terminating
    }
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// The metadata fields the speaker and a watch use.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeanMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

fn lean_meta<'de, D: Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = LeanMeta::deserialize(d)?;
    Ok(ObjectMeta {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resource_version: m.resource_version,
        labels: m.labels,
        ..ObjectMeta::default()
    })
}

impl kube::Resource for EndpointSlice {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("EndpointSlice")
    }

    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("discovery.k8s.io")
    }

    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }

    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("endpointslices")
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;
    use serde_json::json;

    #[test]
    fn a_slice_reads_what_the_speaker_needs_and_skips_the_rest() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-x", "namespace": "shop", "uid": "u1",
                         "resourceVersion": "42",
                         "labels": {"kubernetes.io/service-name": "web"},
                         "managedFields": [{"manager": "kube-controller-manager",
                                            "fieldsType": "FieldsV1",
                                            "fieldsV1": {"f:endpoints": {}}}]},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1"], "nodeName": "a",
                 "conditions": {"ready": false, "serving": true, "terminating": true},
                 "targetRef": {"kind": "Pod", "name": "web-1"}},
                {"addresses": ["10.0.0.2"]},
            ],
            "ports": [{"port": 8080, "protocol": "TCP"}],
        }))
        .unwrap();
        assert_eq!(slice.name_any(), "web-x");
        assert_eq!(slice.namespace().as_deref(), Some("shop"));
        assert_eq!(slice.resource_version().as_deref(), Some("42"));
        assert_eq!(slice.labels()["kubernetes.io/service-name"], "web");
        assert!(slice.metadata.managed_fields.is_none());
        assert_eq!(slice.endpoints.len(), 2);
        assert_eq!(slice.endpoints[0].node_name.as_deref(), Some("a"));
        assert_eq!(
            slice.endpoints[0].conditions.and_then(|c| c.ready),
            Some(false)
        );
        assert_eq!(
            slice.endpoints[0]
                .conditions
                .map(|c| (c.serving, c.terminating)),
            Some((Some(true), Some(true)))
        );
        assert!(slice.endpoints[1].conditions.is_none());
        // `endpoints: null` is an empty slice, as the API allows.
        let empty: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "e"}, "addressType": "IPv4", "endpoints": null,
        }))
        .unwrap();
        assert!(empty.endpoints.is_empty());
        assert_eq!(
            <EndpointSlice as kube::Resource>::plural(&()),
            "endpointslices"
        );
        assert_eq!(
            <EndpointSlice as kube::Resource>::api_version(&()),
            "discovery.k8s.io/v1"
        );
    }
}

//! What to send for a [`Want`], given the record that exists: pure.
//!
//! The writer keeps every record in the compact form [`Existing`] (from
//! its watch and its own writes) and asks [`step`] for the one request a
//! want needs, or none when the record already says it. The record's
//! `lastTransitionTime` is not compared: a node that announces on (a
//! restart, new IPs) keeps the time it started.

use super::plan::{Record, Want};
use ferrolb_core::announce::model::ObjectKey;
use ferrolb_crds::service_l2_status::{
    self, NODE_LABEL, SERVICE_NAMESPACE_LABEL, SERVICE_NAME_LABEL,
};
use ferrolb_crds::{InterfaceInfo, ServiceL2Status, ServiceL2StatusSpec, ServiceL2StatusStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::ResourceExt;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// What the writer keeps of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// `metadata.uid`.
    pub uid: Option<String>,
    /// `metadata.resourceVersion`.
    pub resource_version: Option<String>,
    /// `status.node`.
    pub node: String,
    /// `status.serviceName` and `status.serviceNamespace`.
    pub service: (String, String),
    /// `status.interfaces[].name`.
    pub interfaces: Vec<String>,
    /// `status.ips`.
    pub ips: Vec<String>,
    /// `status.lastTransitionTime`.
    pub since: Option<MicroTime>,
    /// The UID of the Service it is owned by.
    pub owner: Option<String>,
    /// Its values of the three record labels.
    pub labels: BTreeMap<String, String>,
}

impl Existing {
    /// The compact form of `record`.
    pub fn of(record: &ServiceL2Status) -> Self {
        let status = record.status.clone().unwrap_or_default();
        let owner = record
            .owner_references()
            .iter()
            .find(|o| o.kind == "Service" && o.api_version == "v1")
            .map(|o| o.uid.clone());
        let labels = record
            .labels()
            .iter()
            .filter(|(k, _)| {
                [NODE_LABEL, SERVICE_NAME_LABEL, SERVICE_NAMESPACE_LABEL].contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Self {
            uid: record.metadata.uid.clone(),
            resource_version: record.metadata.resource_version.clone(),
            node: status.node,
            service: (status.service_name, status.service_namespace),
            interfaces: status.interfaces.into_iter().map(|i| i.name).collect(),
            ips: status.ips,
            since: status.last_transition_time,
            owner,
            labels,
        }
    }

    /// Whether it already says what `record` would, for the Service
    /// `key` whose UID is `owner`.
    fn says(&self, key: &ObjectKey, record: &Record, owner: &str) -> bool {
        self.node == record.node
            && self.service == (key.name.to_string(), key.namespace.to_string())
            && self.interfaces == record.interfaces
            && self.ips == ip_strings(record)
            && self.owner.as_deref() == Some(owner)
            && self.labels == service_l2_status::labels(&record.node, &key.namespace, &key.name)
            && self.since.is_some()
    }
}

/// One request to the API server.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// No record exists: create this one.
    Create(Box<ServiceL2Status>),
    /// The record differs: merge-patch it with this body (every field the
    /// speaker writes, lists whole).
    Patch(Value),
    /// Delete the record, only if it is still the version seen.
    Delete {
        /// `metadata.uid` seen.
        uid: Option<String>,
        /// `metadata.resourceVersion` seen.
        resource_version: Option<String>,
    },
}

/// The request `want` needs for the Service `key` given the record that
/// exists (`None`: none), or `None` when there is nothing to do.
/// `service_uid` is the Service's UID as the world knows it; a record is
/// written only for a Service the world holds.
pub fn step(
    key: &ObjectKey,
    want: &Want,
    existing: Option<&Existing>,
    service_uid: Option<&str>,
) -> Option<Op> {
    match (want, existing) {
        (Want::Absent, None) => None,
        (Want::Absent, Some(e)) => Some(Op::Delete {
            uid: e.uid.clone(),
            resource_version: e.resource_version.clone(),
        }),
        (Want::Record(r), existing) => {
            // Gone from the world meanwhile: its Absent follows.
            let uid = service_uid?;
            match existing {
                None => Some(Op::Create(Box::new(object(key, r, uid, micro(r.since))))),
                Some(e) if e.says(key, r, uid) => None,
                Some(e) => {
                    // The same node announcing on keeps its start time.
                    let since = match &e.since {
                        Some(t) if e.node == r.node => t.clone(),
                        _ => micro(r.since),
                    };
                    Some(Op::Patch(patch(key, r, uid, since)))
                }
            }
        }
    }
}

/// The record for `key` saying `record`, owned by the Service `uid`.
pub fn object(key: &ObjectKey, record: &Record, uid: &str, since: MicroTime) -> ServiceL2Status {
    ServiceL2Status {
        metadata: ObjectMeta {
            name: Some(key.name.to_string()),
            namespace: Some(key.namespace.to_string()),
            labels: Some(service_l2_status::labels(
                &record.node,
                &key.namespace,
                &key.name,
            )),
            owner_references: Some(vec![owner_reference(key, uid)]),
            ..ObjectMeta::default()
        },
        spec: ServiceL2StatusSpec {},
        status: Some(ServiceL2StatusStatus {
            node: record.node.clone(),
            service_name: key.name.to_string(),
            service_namespace: key.namespace.to_string(),
            interfaces: record
                .interfaces
                .iter()
                .map(|name| InterfaceInfo { name: name.clone() })
                .collect(),
            ips: ip_strings(record),
            last_transition_time: Some(since),
        }),
    }
}

/// The merge patch that makes an existing record say `record`: labels
/// (the node's removed when it cannot be a label value), the owner, the
/// whole status. Lists in a merge patch replace what was there.
fn patch(key: &ObjectKey, record: &Record, uid: &str, since: MicroTime) -> Value {
    let full = object(key, record, uid, since);
    let mut labels: serde_json::Map<String, Value> = full
        .labels()
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    labels.entry(NODE_LABEL).or_insert(Value::Null);
    json!({
        "metadata": {
            "labels": labels,
            "ownerReferences": full.metadata.owner_references,
        },
        "spec": {},
        "status": full.status,
    })
}

/// The ownerReference that lets the garbage collector delete a record
/// with its Service. Not `blockOwnerDeletion`: that would need the right
/// to set finalizers on Services.
fn owner_reference(key: &ObjectKey, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: key.name.to_string(),
        uid: uid.to_owned(),
        ..OwnerReference::default()
    }
}

fn ip_strings(record: &Record) -> Vec<String> {
    record.ips.iter().map(ToString::to_string).collect()
}

fn micro(t: SystemTime) -> MicroTime {
    let ts = k8s_openapi::jiff::Timestamp::try_from(t)
        .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now());
    MicroTime(ts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn key() -> ObjectKey {
        ObjectKey::new("shop", "web")
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn record(node: &str, interfaces: &[&str], since: u64) -> Record {
        Record {
            node: node.into(),
            interfaces: interfaces.iter().map(|i| (*i).to_owned()).collect(),
            ips: vec![
                "198.51.100.7".parse().unwrap(),
                "2001:db8::7".parse().unwrap(),
            ],
            since: at(since),
        }
    }

    /// The record as the API server would hand it back after `record` was
    /// written.
    fn stored(record: &Record) -> Existing {
        let mut obj = object(&key(), record, "u-web", micro(record.since));
        obj.metadata.uid = Some("u-rec".into());
        obj.metadata.resource_version = Some("41".into());
        Existing::of(&obj)
    }

    #[test]
    fn a_missing_record_is_created_naming_the_node_interfaces_ips_and_service() {
        let want = Want::Record(record("node-a", &["eth0"], 0));
        let Some(Op::Create(obj)) = step(&key(), &want, None, Some("u-web")) else {
            panic!("a create");
        };
        let value = serde_json::to_value(&obj).unwrap();
        assert_eq!(value["metadata"]["name"], "web");
        assert_eq!(value["metadata"]["namespace"], "shop");
        assert_eq!(
            value["metadata"]["labels"],
            json!({"ferrolb.io/node": "node-a", "ferrolb.io/service-name": "web",
                   "ferrolb.io/service-namespace": "shop"})
        );
        assert_eq!(
            value["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "u-web"}])
        );
        assert_eq!(value["kind"], "ServiceL2Status");
        assert_eq!(value["apiVersion"], "ferrolb.io/v1beta1");
        assert_eq!(
            value["status"],
            json!({"node": "node-a", "serviceName": "web", "serviceNamespace": "shop",
                   "interfaces": [{"name": "eth0"}], "ips": ["198.51.100.7", "2001:db8::7"],
                   "lastTransitionTime": "2023-11-14T22:13:20.000000Z"})
        );
    }

    #[test]
    fn a_record_that_already_says_it_is_left_alone_whatever_its_time() {
        let existing = stored(&record("node-a", &["eth0"], 0));
        // A restart: the same owner, a later start time.
        let want = Want::Record(record("node-a", &["eth0"], 3600));
        assert_eq!(step(&key(), &want, Some(&existing), Some("u-web")), None);
    }

    #[test]
    fn a_new_owner_patches_the_record_with_its_own_time() {
        let existing = stored(&record("node-a", &["eth0"], 0));
        let want = Want::Record(record("node-b", &["eth1"], 60));
        let Some(Op::Patch(body)) = step(&key(), &want, Some(&existing), Some("u-web")) else {
            panic!("a patch");
        };
        assert_eq!(body["metadata"]["labels"]["ferrolb.io/node"], "node-b");
        assert_eq!(body["status"]["node"], "node-b");
        assert_eq!(body["status"]["interfaces"], json!([{"name": "eth1"}]));
        assert_eq!(
            body["status"]["lastTransitionTime"],
            "2023-11-14T22:14:20.000000Z"
        );
        assert!(
            body["metadata"].get("resourceVersion").is_none(),
            "the new owner wins"
        );
    }

    #[test]
    fn the_same_owner_on_new_interfaces_keeps_its_time() {
        let existing = stored(&record("node-a", &["eth0"], 0));
        let want = Want::Record(record("node-a", &[], 60));
        let Some(Op::Patch(body)) = step(&key(), &want, Some(&existing), Some("u-web")) else {
            panic!("a patch");
        };
        assert_eq!(
            body["status"]["interfaces"],
            json!([]),
            "cleared, not left out"
        );
        assert_eq!(
            body["status"]["lastTransitionTime"],
            "2023-11-14T22:13:20.000000Z"
        );
    }

    #[test]
    fn a_record_of_a_recreated_service_or_with_edited_labels_is_rewritten() {
        let existing = stored(&record("node-a", &["eth0"], 0));
        let want = Want::Record(record("node-a", &["eth0"], 0));
        assert!(matches!(
            step(&key(), &want, Some(&existing), Some("u-web-2")),
            Some(Op::Patch(_))
        ));
        let mut edited = existing.clone();
        edited.labels.remove(NODE_LABEL);
        assert!(matches!(
            step(&key(), &want, Some(&edited), Some("u-web")),
            Some(Op::Patch(_))
        ));
        let mut timeless = existing;
        timeless.since = None;
        assert!(matches!(
            step(&key(), &want, Some(&timeless), Some("u-web")),
            Some(Op::Patch(_))
        ));
    }

    #[test]
    fn a_node_name_too_long_for_a_label_removes_the_node_label() {
        let existing = stored(&record("node-a", &["eth0"], 0));
        let long = "n".repeat(70);
        let want = Want::Record(record(&long, &["eth0"], 0));
        let Some(Op::Patch(body)) = step(&key(), &want, Some(&existing), Some("u-web")) else {
            panic!("a patch");
        };
        assert_eq!(body["metadata"]["labels"]["ferrolb.io/node"], Value::Null);
        assert_eq!(body["status"]["node"], json!(long));
    }

    #[test]
    fn no_record_is_written_for_a_service_the_world_no_longer_holds() {
        let want = Want::Record(record("node-a", &["eth0"], 0));
        assert_eq!(step(&key(), &want, None, None), None);
    }

    #[test]
    fn absent_deletes_the_version_seen_or_nothing() {
        assert_eq!(step(&key(), &Want::Absent, None, Some("u-web")), None);
        let existing = stored(&record("node-a", &["eth0"], 0));
        assert_eq!(
            step(&key(), &Want::Absent, Some(&existing), None),
            Some(Op::Delete {
                uid: Some("u-rec".into()),
                resource_version: Some("41".into()),
            })
        );
    }

    #[test]
    fn labels_of_other_tools_are_not_compared() {
        let r = record("node-a", &["eth0"], 0);
        let mut obj = object(&key(), &r, "u-web", micro(r.since));
        obj.metadata
            .labels
            .get_or_insert_default()
            .insert("team".into(), "edge".into());
        let existing = Existing::of(&obj);
        assert_eq!(
            step(&key(), &Want::Record(r), Some(&existing), Some("u-web")),
            None
        );
    }
}

//! Publishing `events.k8s.io/v1` Events.
//!
//! kube-runtime's `Recorder` aggregates Events by (reason, action, object)
//! and, within six minutes, turns a second one into a series count on the
//! first, keeping the first message. Our Events with one reason carry
//! different messages (an `AllocationFailed` for "pool exhausted" followed
//! by one for "unknown pool"), and the index already emits only on change,
//! so every Event here is a new object with the same fields the Recorder
//! fills in.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;

use crate::index::Event;

/// The reporting controller of every Event and the field manager of every
/// write.
pub const CONTROLLER: &str = "ferrolb-controller";

/// Creates Events as this replica.
#[derive(Clone)]
pub struct Publisher {
    client: Client,
    instance: String,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("instance", &self.instance)
            .finish()
    }
}

impl Publisher {
    /// A publisher reporting as `instance` (the Pod name).
    pub fn new(client: Client, instance: impl Into<String>) -> Self {
        Publisher {
            client,
            instance: instance.into(),
        }
    }

    /// Creates the Event in the object's namespace.
    pub async fn publish(&self, event: &Event) -> Result<(), kube::Error> {
        let object = build(event, &self.instance, Timestamp::now());
        let namespace = event.regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        api.create(&PostParams::default(), &object)
            .await
            .map(|_| ())
    }
}

/// The Event object, named as kube-runtime names them.
pub fn build(event: &Event, instance: &str, now: Timestamp) -> K8sEvent {
    let regarding: &ObjectReference = &event.regarding;
    let name = regarding.name.as_deref().unwrap_or(CONTROLLER);
    K8sEvent {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: regarding.namespace.clone(),
            ..Default::default()
        },
        action: Some(action(event.reason).to_string()),
        reason: Some(event.reason.to_string()),
        note: Some(event.note.clone()),
        type_: Some(if event.warning { "Warning" } else { "Normal" }.to_string()),
        event_time: Some(MicroTime(now)),
        regarding: Some(regarding.clone()),
        reporting_controller: Some(CONTROLLER.to_string()),
        reporting_instance: Some(instance.to_string()),
        ..Default::default()
    }
}

/// The `action` field: what the controller was doing.
fn action(reason: &str) -> &'static str {
    match reason {
        "IPAllocated" | "AllocationFailed" => "Allocate",
        "ClearAssignment" => "Release",
        crate::memberlist::INVALID_REASON => "CheckMemberlistSecret",
        _ => "SelectPools",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_names_the_object_and_this_replica() {
        let event = Event {
            regarding: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Service".into()),
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            warning: true,
            reason: "AllocationFailed",
            note: "Failed to allocate IP for \"shop/web\": x".into(),
        };
        let now = Timestamp::from_second(1).expect("ok");
        let k = build(&event, "pod-a", now);
        assert_eq!(k.metadata.namespace.as_deref(), Some("shop"));
        assert!(k.metadata.name.as_deref().unwrap().starts_with("web."));
        assert_eq!(k.type_.as_deref(), Some("Warning"));
        assert_eq!(k.action.as_deref(), Some("Allocate"));
        assert_eq!(k.reporting_controller.as_deref(), Some(CONTROLLER));
        assert_eq!(k.reporting_instance.as_deref(), Some("pod-a"));
    }
}

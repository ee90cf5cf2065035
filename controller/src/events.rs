//! Publishing `events.k8s.io/v1` Events.
//!
//! The index emits an Event only when what it says changes, so most
//! Events are new objects. When one repeats (same object, reason and
//! message) within [`SERIES_WINDOW`] of the first, as when a Service
//! flaps between two states, the first object's `series` count and
//! `lastObservedTime` are patched instead of creating another object, as
//! client-go's event recorder does. kube-runtime's `Recorder` aggregates
//! by (reason, action, object) and keeps the first message, which would
//! hide a changed message, so [`Series`] keys on the message too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

use crate::index::Event;

/// The reporting controller of every Event and the field manager of every
/// write.
pub const CONTROLLER: &str = "ferrolb-controller";

/// A repeat within this long of the first Event counts in its series.
pub const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// Series remembered at most; the oldest are forgotten first.
pub const SERIES_KEPT: usize = 4096;

/// Creates Events as this replica.
#[derive(Clone)]
pub struct Publisher {
    client: Client,
    instance: String,
    series: Arc<Mutex<Series>>,
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
            series: Arc::default(),
        }
    }

    /// Creates the Event in the object's namespace, or counts a repeat in
    /// the series of the first.
    pub async fn publish(&self, event: &Event) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let object = build(event, &self.instance, now);
        let namespace = event.regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let name = object.metadata.name.clone().unwrap_or_default();
        let seen = self
            .series
            .lock()
            .map(|mut s| s.observe(event, &name, now))
            .unwrap_or(Seen::First);
        match seen {
            Seen::First => api
                .create(&PostParams::default(), &object)
                .await
                .map(|_| ()),
            Seen::Repeat { name, count } => {
                let patch = json!({"series": {"count": count, "lastObservedTime": MicroTime(now)}});
                let pp = PatchParams::default();
                match api.patch(&name, &pp, &Patch::Merge(&patch)).await {
                    Ok(_) => Ok(()),
                    // The first expired or was deleted: start again.
                    Err(kube::Error::Api(e)) if e.code == 404 => {
                        if let Ok(mut s) = self.series.lock() {
                            s.forget(event);
                            s.observe(
                                event,
                                object.metadata.name.as_deref().unwrap_or_default(),
                                now,
                            );
                        }
                        api.create(&PostParams::default(), &object)
                            .await
                            .map(|_| ())
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }
}

/// What [`Series::observe`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// Create a new Event.
    First,
    /// Patch the series of Event `name` to `count`.
    Repeat {
        /// The first Event's name.
        name: String,
        /// Occurrences so far, this one included.
        count: i32,
    },
}

/// (object namespace, name, uid, reason, message).
type SeriesKey = (String, String, String, &'static str, String);

/// The Events published recently, to count repeats ([`Publisher`]).
#[derive(Debug, Default)]
pub struct Series {
    recent: HashMap<SeriesKey, (String, i32, Timestamp)>,
}

fn series_key(event: &Event) -> SeriesKey {
    let r = &event.regarding;
    (
        r.namespace.clone().unwrap_or_default(),
        r.name.clone().unwrap_or_default(),
        r.uid.clone().unwrap_or_default(),
        event.reason,
        event.note.clone(),
    )
}

impl Series {
    /// Records `event`, to be created as `name` if it is the first of its
    /// series, at `now`.
    pub fn observe(&mut self, event: &Event, name: &str, now: Timestamp) -> Seen {
        let key = series_key(event);
        if let Some((first, count, at)) = self.recent.get_mut(&key) {
            if now.duration_since(*at) < SERIES_WINDOW {
                *count += 1;
                return Seen::Repeat {
                    name: first.clone(),
                    count: *count,
                };
            }
        }
        if self.recent.len() >= SERIES_KEPT {
            self.recent
                .retain(|_, (_, _, at)| now.duration_since(*at) < SERIES_WINDOW);
            while self.recent.len() >= SERIES_KEPT {
                let oldest = self
                    .recent
                    .iter()
                    .min_by_key(|(_, v)| v.2)
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => self.recent.remove(&k),
                    None => break,
                };
            }
        }
        self.recent.insert(key, (name.to_owned(), 1, now));
        Seen::First
    }

    /// Forgets the series of `event`.
    pub fn forget(&mut self, event: &Event) {
        self.recent.remove(&series_key(event));
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
        "IPAllocated" | "AllocationFailed" | "RequestNotSatisfiable" => "Allocate",
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
        let event = event("Failed to allocate IP for \"shop/web\": x");
        let now = Timestamp::from_second(1).expect("ok");
        let k = build(&event, "pod-a", now);
        assert_eq!(k.metadata.namespace.as_deref(), Some("shop"));
        assert!(k.metadata.name.as_deref().unwrap().starts_with("web."));
        assert_eq!(k.type_.as_deref(), Some("Warning"));
        assert_eq!(k.action.as_deref(), Some("Allocate"));
        assert_eq!(k.reporting_controller.as_deref(), Some(CONTROLLER));
        assert_eq!(k.reporting_instance.as_deref(), Some("pod-a"));
    }

    fn event(note: &str) -> Event {
        Event {
            regarding: ObjectReference {
                kind: Some("Service".into()),
                name: Some("web".into()),
                namespace: Some("shop".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            warning: true,
            reason: "AllocationFailed",
            note: note.into(),
        }
    }

    #[test]
    fn a_repeat_within_the_window_counts_in_the_first_events_series() {
        let t0 = Timestamp::from_second(1_000).expect("ok");
        let mut s = Series::default();
        assert_eq!(s.observe(&event("full"), "web.1", t0), Seen::First);
        // Another message is another series.
        assert_eq!(s.observe(&event("unknown pool"), "web.2", t0), Seen::First);
        let later = t0 + SignedDuration::from_mins(5);
        assert_eq!(
            s.observe(&event("full"), "web.3", later),
            Seen::Repeat {
                name: "web.1".into(),
                count: 2
            }
        );
        // Past the window from the first: a new object.
        let much_later = t0 + SERIES_WINDOW;
        assert_eq!(s.observe(&event("full"), "web.4", much_later), Seen::First);
        assert_eq!(
            s.observe(&event("full"), "web.5", much_later),
            Seen::Repeat {
                name: "web.4".into(),
                count: 2
            }
        );
    }

    #[test]
    fn the_series_memory_is_bounded() {
        let t0 = Timestamp::from_second(1_000).expect("ok");
        let mut s = Series::default();
        for i in 0..SERIES_KEPT + 10 {
            let at = t0 + SignedDuration::from_millis(i as i64);
            s.observe(&event(&format!("n{i}")), &format!("web.{i}"), at);
        }
        assert_eq!(s.recent.len(), SERIES_KEPT);
        // The newest are kept.
        let last = SERIES_KEPT + 9;
        let at = t0 + SignedDuration::from_secs(1);
        assert!(matches!(
            s.observe(&event(&format!("n{last}")), "x", at),
            Seen::Repeat { .. }
        ));
    }
}

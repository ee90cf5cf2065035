//! core/v1 Events and events.k8s.io/v1 Events are one resource, as in the
//! real API server: objects are stored once, in the core/v1 form, and
//! converted on the way in and out of events.k8s.io/v1 (the field mapping of
//! upstream's `pkg/apis/events/v1` conversion), so both APIs share objects,
//! resourceVersions and watches.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use crate::resources::{GroupResource, ResourceDef};

/// The events.k8s.io group.
pub const GROUP: &str = "events.k8s.io";

/// Fields with the same name and meaning in both forms.
const SAME: &[&str] = &[
    "eventTime",
    "series",
    "related",
    "action",
    "reason",
    "type",
    "reportingInstance",
];

/// `(events.k8s.io/v1 name, core/v1 name)` of the renamed fields.
const RENAMED: &[(&str, &str)] = &[
    ("note", "message"),
    ("regarding", "involvedObject"),
    ("reportingController", "reportingComponent"),
    ("deprecatedCount", "count"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
];

/// Whether a resource is events.k8s.io/v1 Events (served from core Events).
pub fn is_events_api(def: &ResourceDef) -> bool {
    def.group == GROUP && def.plural == "events"
}

/// Where events.k8s.io Events are stored: with core/v1 Events.
pub fn storage() -> GroupResource {
    GroupResource::new("", "events")
}

fn present_str<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `source` as derived from the reporting fields when an events.k8s.io
/// Event carries no `deprecatedSource` (None when both are empty).
fn derived_source(controller: &str, instance: &str) -> Option<Value> {
    let mut src = Map::new();
    if !controller.is_empty() {
        src.insert("component".into(), json!(controller));
    }
    if !instance.is_empty() {
        src.insert("host".into(), json!(instance));
    }
    (!src.is_empty()).then_some(Value::Object(src))
}

fn is_set(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Object(m)) => !m.is_empty(),
        Some(_) => true,
    }
}

/// events.k8s.io/v1 Event -> core/v1 Event (the stored form). Unknown
/// top-level fields are dropped, as decoding into the typed object does.
pub fn to_core(obj: &Value) -> Value {
    let empty = Map::new();
    let m = obj.as_object().unwrap_or(&empty);
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!("v1"));
    out.insert("kind".into(), json!("Event"));
    out.insert(
        "metadata".into(),
        m.get("metadata").cloned().unwrap_or_else(|| json!({})),
    );
    for k in SAME {
        if let Some(v) = m.get(*k).filter(|v| !v.is_null()) {
            out.insert((*k).into(), v.clone());
        }
    }
    for (ev, core) in RENAMED {
        if let Some(v) = m.get(*ev).filter(|v| !v.is_null()) {
            out.insert((*core).into(), v.clone());
        }
    }
    out.entry("involvedObject").or_insert_with(|| json!({}));
    let source = if is_set(m.get("deprecatedSource")) {
        m.get("deprecatedSource").cloned()
    } else {
        derived_source(
            present_str(m, "reportingController"),
            present_str(m, "reportingInstance"),
        )
    };
    if let Some(s) = source {
        out.insert("source".into(), s);
    }
    Value::Object(out)
}

/// core/v1 Event (stored) -> events.k8s.io/v1 Event. A `source` that is
/// just the reporting fields again (what [`to_core`] derives) is not echoed
/// back as `deprecatedSource`, so an events.k8s.io Event reads back as it
/// was written.
pub fn from_core(obj: &Value) -> Value {
    let empty = Map::new();
    let m = obj.as_object().unwrap_or(&empty);
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(format!("{GROUP}/v1")));
    out.insert("kind".into(), json!("Event"));
    out.insert(
        "metadata".into(),
        m.get("metadata").cloned().unwrap_or_else(|| json!({})),
    );
    for k in SAME {
        if let Some(v) = m.get(*k).filter(|v| !v.is_null()) {
            out.insert((*k).into(), v.clone());
        }
    }
    for (ev, core) in RENAMED {
        if let Some(v) = m.get(*core).filter(|v| !v.is_null()) {
            out.insert((*ev).into(), v.clone());
        }
    }
    out.entry("regarding").or_insert_with(|| json!({}));
    if is_set(m.get("source")) {
        let derived = derived_source(
            present_str(m, "reportingComponent"),
            present_str(m, "reportingInstance"),
        );
        if m.get("source") != derived.as_ref() {
            out.insert("deprecatedSource".into(), m["source"].clone());
        }
    }
    Value::Object(out)
}

/// A stored object as the API `def` serves it.
pub fn present<'a>(def: &ResourceDef, obj: &'a Value) -> Cow<'a, Value> {
    if is_events_api(def) {
        Cow::Owned(from_core(obj))
    } else {
        Cow::Borrowed(obj)
    }
}

/// The core/v1 field a field-selector label of events.k8s.io/v1 Events
/// selects on (upstream's field label conversion), or None if unsupported.
pub fn field_label(label: &str) -> Option<String> {
    if let Some(rest) = label.strip_prefix("regarding.") {
        return matches!(
            rest,
            "kind" | "namespace" | "name" | "uid" | "apiVersion" | "resourceVersion" | "fieldPath"
        )
        .then(|| format!("involvedObject.{rest}"));
    }
    match label {
        "metadata.name" | "metadata.namespace" | "reason" | "type" => Some(label.to_string()),
        "reportingController" => Some("reportingComponent".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_events_api_event_maps_onto_core_fields_and_back() {
        let ev = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "default"},
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2024-01-01T00:00:01.000000Z"},
            "reportingController": "ferrolb.io/controller",
            "reportingInstance": "ctl-1",
            "action": "Allocate", "reason": "IPAllocated", "type": "Normal",
            "note": "assigned 192.0.2.1",
            "regarding": {"kind": "Service", "name": "web", "namespace": "default", "uid": "u1"},
            "related": {"kind": "Node", "name": "n1"},
            "deprecatedCount": 3,
            "deprecatedFirstTimestamp": "2024-01-01T00:00:00Z",
            "deprecatedLastTimestamp": "2024-01-01T00:00:02Z",
            "bogus": true,
        });
        let core = to_core(&ev);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["message"], "assigned 192.0.2.1");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["related"]["name"], "n1");
        assert_eq!(core["reportingComponent"], "ferrolb.io/controller");
        assert_eq!(
            core["source"],
            json!({"component": "ferrolb.io/controller", "host": "ctl-1"})
        );
        assert_eq!(core["reportingInstance"], "ctl-1");
        assert_eq!(core["count"], 3);
        assert_eq!(core["firstTimestamp"], "2024-01-01T00:00:00Z");
        assert_eq!(core["lastTimestamp"], "2024-01-01T00:00:02Z");
        assert_eq!(core["series"]["count"], 2);
        assert!(core.get("bogus").is_none() && core.get("note").is_none());
        let mut back = ev.clone();
        back.as_object_mut().unwrap().remove("bogus");
        assert_eq!(from_core(&core), back);
    }

    #[test]
    fn a_core_event_source_becomes_deprecated_source() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "message": "m", "source": {"component": "kubelet", "host": "n1"},
        });
        let ev = from_core(&core);
        assert_eq!(ev["deprecatedSource"], core["source"]);
        assert_eq!(ev["note"], "m");
        assert_eq!(ev["regarding"]["kind"], "Pod");
        assert_eq!(to_core(&ev), core);
        let explicit = to_core(&json!({"deprecatedSource": {"component": "x"},
            "reportingController": "y"}));
        assert_eq!(explicit["source"], json!({"component": "x"}));
    }

    #[test]
    fn events_api_field_labels_select_on_core_fields() {
        assert_eq!(
            field_label("regarding.name").as_deref(),
            Some("involvedObject.name")
        );
        assert_eq!(
            field_label("reportingController").as_deref(),
            Some("reportingComponent")
        );
        assert_eq!(field_label("involvedObject.name"), None);
    }
}

//! core/v1 and events.k8s.io/v1 Events are one stored resource: written
//! through either API, read, listed (with field selectors) and watched
//! through the other with upstream's field mapping.

mod common;

use std::time::Duration;

use common::server;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event as CoreEvent, ObjectReference};
use k8s_openapi::api::events::v1::Event as NewEvent;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::json;

fn new_event(name: &str, uid: &str) -> NewEvent {
    serde_json::from_value(json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "eventTime": "2025-01-02T03:04:05.000000Z",
        "reportingController": "ferrolb.io/controller",
        "reportingInstance": "ferrolb-controller-0",
        "action": "Allocate", "reason": "IPAllocated", "type": "Normal",
        "note": "assigned 192.0.2.10",
        "regarding": {"apiVersion": "v1", "kind": "Service", "name": "web", "namespace": "default", "uid": uid},
        "related": {"kind": "Node", "name": "n1"},
        "series": {"count": 2, "lastObservedTime": "2025-01-02T03:04:06.000000Z"},
    }))
    .unwrap()
}

async fn next<K: Clone + serde::de::DeserializeOwned + std::fmt::Debug>(
    stream: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<K>>> + Unpin),
) -> WatchEvent<K> {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event in time")
        .expect("stream open")
        .unwrap()
}

#[tokio::test]
async fn an_event_written_through_events_k8s_io_is_a_core_event() {
    let (_s, client) = server().await;
    let new: Api<NewEvent> = Api::namespaced(client.clone(), "default");
    let core: Api<CoreEvent> = Api::namespaced(client, "default");
    let mut watch = core
        .watch(&WatchParams::default().disable_bookmarks(), "0")
        .await
        .unwrap()
        .boxed();
    let created = new
        .create(&PostParams::default(), &new_event("e1", "uid-1"))
        .await
        .unwrap();
    assert_eq!(created.note.as_deref(), Some("assigned 192.0.2.10"));
    assert!(created.deprecated_source.is_none(), "{created:?}");

    let got = core.get("e1").await.unwrap();
    assert_eq!(
        got.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert_eq!(got.message.as_deref(), Some("assigned 192.0.2.10"));
    assert_eq!(got.involved_object.kind.as_deref(), Some("Service"));
    assert_eq!(got.involved_object.name.as_deref(), Some("web"));
    assert_eq!(got.involved_object.uid.as_deref(), Some("uid-1"));
    assert_eq!(got.related.as_ref().unwrap().name.as_deref(), Some("n1"));
    assert_eq!(
        got.reporting_component.as_deref(),
        Some("ferrolb.io/controller")
    );
    assert_eq!(
        got.reporting_instance.as_deref(),
        Some("ferrolb-controller-0")
    );
    let source = got.source.clone().unwrap();
    assert_eq!(source.component.as_deref(), Some("ferrolb.io/controller"));
    assert_eq!(source.host.as_deref(), Some("ferrolb-controller-0"));
    assert_eq!(got.reason.as_deref(), Some("IPAllocated"));
    assert_eq!(got.action.as_deref(), Some("Allocate"));
    assert_eq!(got.type_.as_deref(), Some("Normal"));
    assert_eq!(got.series.as_ref().unwrap().count, Some(2));
    assert!(got.event_time.is_some());

    match next(&mut watch).await {
        WatchEvent::Added(e) => assert_eq!(e.message.as_deref(), Some("assigned 192.0.2.10")),
        other => panic!("{other:?}"),
    }

    // kubectl describe's selector, and kube-rs' by name.
    let sel = "involvedObject.name=web,involvedObject.namespace=default,involvedObject.kind=Service,involvedObject.uid=uid-1";
    let listed = core.list(&ListParams::default().fields(sel)).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    let other = core
        .list(&ListParams::default().fields("involvedObject.uid=uid-2"))
        .await
        .unwrap();
    assert!(other.items.is_empty());
    let by_source = core
        .list(&ListParams::default().fields("source=ferrolb.io/controller,reason=IPAllocated"))
        .await
        .unwrap();
    assert_eq!(by_source.items.len(), 1);

    // A core/v1 update is a MODIFIED event on the core watch and shows
    // through events.k8s.io with the same version.
    let patched = core
        .patch(
            "e1",
            &PatchParams::default(),
            &Patch::Merge(json!({"count": 5, "message": "again"})),
        )
        .await
        .unwrap();
    assert!(matches!(next(&mut watch).await, WatchEvent::Modified(_)));
    let seen = new.get("e1").await.unwrap();
    assert_eq!(
        seen.metadata.resource_version,
        patched.metadata.resource_version
    );
    assert_eq!(seen.deprecated_count, Some(5));
    assert_eq!(seen.note.as_deref(), Some("again"));

    new.delete("e1", &DeleteParams::default()).await.unwrap();
    assert!(matches!(next(&mut watch).await, WatchEvent::Deleted(_)));
    assert!(core.get_opt("e1").await.unwrap().is_none());
}

#[tokio::test]
async fn a_core_event_is_served_and_watched_through_events_k8s_io() {
    let (_s, client) = server().await;
    let new: Api<NewEvent> = Api::namespaced(client.clone(), "default");
    let core: Api<CoreEvent> = Api::namespaced(client, "default");
    let start = new.list(&ListParams::default()).await.unwrap();
    let rv = start.metadata.resource_version.clone().unwrap();
    let mut watch = new
        .watch(
            &WatchParams::default()
                .disable_bookmarks()
                .fields("regarding.name=db,regarding.kind=Pod"),
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    let ev: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "c1"},
        "involvedObject": {"kind": "Pod", "name": "db", "namespace": "default", "uid": "p1"},
        "reason": "Started", "message": "started container", "type": "Normal",
        "source": {"component": "kubelet", "host": "node-a"},
        "count": 3,
        "firstTimestamp": "2025-01-02T03:04:05Z", "lastTimestamp": "2025-01-02T03:04:09Z",
    }))
    .unwrap();
    let created = core.create(&PostParams::default(), &ev).await.unwrap();
    // Not selected by the watch: another object.
    core.create(
        &PostParams::default(),
        &CoreEvent {
            metadata: kube::api::ObjectMeta {
                name: Some("c2".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let got = match next(&mut watch).await {
        WatchEvent::Added(e) => e,
        other => panic!("{other:?}"),
    };
    assert_eq!(got.metadata.name.as_deref(), Some("c1"));
    assert_eq!(
        got.metadata.resource_version,
        created.metadata.resource_version
    );
    assert_eq!(got.note.as_deref(), Some("started container"));
    assert_eq!(got.regarding.as_ref().unwrap().uid.as_deref(), Some("p1"));
    let src = got.deprecated_source.clone().unwrap();
    assert_eq!(src.component.as_deref(), Some("kubelet"));
    assert_eq!(src.host.as_deref(), Some("node-a"));
    assert_eq!(got.deprecated_count, Some(3));
    assert!(got.deprecated_first_timestamp.is_some() && got.deprecated_last_timestamp.is_some());

    let listed = new
        .list(&ListParams::default().fields("regarding.uid=p1"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let all: Vec<String> = new
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.metadata.name)
        .collect();
    assert_eq!(all, ["c1", "c2"]);

    // An update through events.k8s.io is one new version, seen by both.
    let mut upd = got.clone();
    upd.note = Some("restarted".into());
    let replaced = new
        .replace("c1", &PostParams::default(), &upd)
        .await
        .unwrap();
    match next(&mut watch).await {
        WatchEvent::Modified(e) => assert_eq!(e.note.as_deref(), Some("restarted")),
        other => panic!("{other:?}"),
    }
    let back = core.get("c1").await.unwrap();
    assert_eq!(back.message.as_deref(), Some("restarted"));
    assert_eq!(
        back.metadata.resource_version,
        replaced.metadata.resource_version
    );
    assert_eq!(back.source, ev.source, "deprecatedSource round-trips");
    // Writing back what was read changes nothing: same version.
    let same = new
        .replace("c1", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version,
        replaced.metadata.resource_version
    );

    core.delete("c1", &DeleteParams::default()).await.unwrap();
    assert!(matches!(next(&mut watch).await, WatchEvent::Deleted(_)));
    let names: Vec<_> = new
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.metadata.name)
        .collect();
    assert_eq!(names, ["c2"]);
    // Unsupported labels are refused per API.
    let bad = new
        .list(&ListParams::default().fields("involvedObject.name=db"))
        .await
        .unwrap_err();
    assert_eq!(common::status(bad).code, 400);
}

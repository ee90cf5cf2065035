//! Watch semantics and a kube-runtime reflector surviving watch drops,
//! server restarts and history compaction without losing deletes.

mod common;

use std::time::Duration;

use common::{eventually, server};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube_test_server::{FaultConfig, ServerOptions, TestServer};
use serde_json::json;

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn rv(c: &ConfigMap) -> String {
    c.metadata.resource_version.clone().unwrap()
}

async fn next(
    stream: &mut (impl futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin),
) -> WatchEvent<ConfigMap> {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event in time")
        .expect("stream open")
        .unwrap()
}

fn describe(e: &WatchEvent<ConfigMap>) -> String {
    match e {
        WatchEvent::Added(o) => format!("ADDED {}", o.metadata.name.as_deref().unwrap()),
        WatchEvent::Modified(o) => format!("MODIFIED {}", o.metadata.name.as_deref().unwrap()),
        WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.as_deref().unwrap()),
        WatchEvent::Bookmark(_) => "BOOKMARK".into(),
        WatchEvent::Error(s) => format!("ERROR {}", s.code),
    }
}

#[tokio::test]
async fn a_watch_from_a_version_sees_every_later_change_in_order() {
    let (_s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let a = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let mut stream = api
        .watch(&WatchParams::default().disable_bookmarks(), &rv(&a))
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &cm("b")).await.unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    api.delete("b", &DeleteParams::default()).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(describe(&next(&mut stream).await));
    }
    assert_eq!(seen, ["ADDED b", "MODIFIED a", "DELETED b"]);
}

#[tokio::test]
async fn a_watch_from_zero_starts_with_the_current_objects() {
    let (_s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    assert_eq!(describe(&next(&mut stream).await), "ADDED a");
}

#[tokio::test]
async fn a_compacted_version_gets_410_expired() {
    let (s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let a = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    api.create(&PostParams::default(), &cm("b")).await.unwrap();
    s.compact();
    let mut stream = api
        .watch(&WatchParams::default(), &rv(&a))
        .await
        .unwrap()
        .boxed();
    match next(&mut stream).await {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
            assert!(
                status.message.starts_with("too old resource version"),
                "{}",
                status.message
            );
        }
        other => panic!("expected 410, got {}", describe(&other)),
    }
}

#[tokio::test]
async fn a_bounded_history_expires_the_oldest_versions() {
    let options = ServerOptions {
        history_limit: 3,
        ..Default::default()
    };
    let s = TestServer::start_with("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(s.client().await.unwrap(), "default");
    let a = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    for n in ["b", "c", "d", "e"] {
        api.create(&PostParams::default(), &cm(n)).await.unwrap();
    }
    let mut stream = api
        .watch(&WatchParams::default(), &rv(&a))
        .await
        .unwrap()
        .boxed();
    assert_eq!(describe(&next(&mut stream).await), "ERROR 410");
}

#[tokio::test]
async fn bookmarks_come_when_allowed_and_carry_the_latest_version() {
    let options = ServerOptions {
        bookmark_interval: Duration::from_millis(100),
        ..Default::default()
    };
    let s = TestServer::start_with("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(s.client().await.unwrap(), "default");
    let a = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv(&a))
        .await
        .unwrap()
        .boxed();
    match next(&mut stream).await {
        WatchEvent::Bookmark(b) => assert_eq!(b.metadata.resource_version, rv(&a)),
        other => panic!("expected a bookmark, got {}", describe(&other)),
    }
}

#[tokio::test]
async fn a_watch_ends_after_its_timeout() {
    let (_s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let started = std::time::Instant::now();
    let stream = api
        .watch(&WatchParams::default().timeout(1).disable_bookmarks(), "0")
        .await
        .unwrap();
    let rest: Vec<_> = tokio::time::timeout(Duration::from_secs(5), stream.collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(rest.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn leaving_a_label_selector_is_seen_as_a_delete() {
    let (_s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let mut obj = cm("a");
    obj.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
    let a = api.create(&PostParams::default(), &obj).await.unwrap();
    let wp = WatchParams::default().labels("app=web").disable_bookmarks();
    let mut stream = api.watch(&wp, &rv(&a)).await.unwrap().boxed();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
    )
    .await
    .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    assert_eq!(describe(&next(&mut stream).await), "DELETED a");
    assert_eq!(describe(&next(&mut stream).await), "ADDED a");
}

#[tokio::test]
async fn dropping_watches_ends_open_streams() {
    let (s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let stream = api
        .watch(&WatchParams::default().disable_bookmarks(), "0")
        .await
        .unwrap();
    s.drop_watches();
    let rest: Vec<_> = tokio::time::timeout(Duration::from_secs(5), stream.collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn streaming_lists_end_their_initial_events_with_a_bookmark() {
    let (_s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let mut stream = api
        .watch(&WatchParams::default().initial_events(), "")
        .await
        .unwrap()
        .boxed();
    assert_eq!(describe(&next(&mut stream).await), "ADDED a");
    match next(&mut stream).await {
        WatchEvent::Bookmark(b) => assert_eq!(
            b.metadata
                .annotations
                .get("k8s.io/initial-events-end")
                .map(String::as_str),
            Some("true")
        ),
        other => panic!("expected a bookmark, got {}", describe(&other)),
    }
}

/// Starts a reflector over config maps in `default`; returns its reader.
fn start_reflector(
    client: kube::Client,
    streaming: bool,
) -> (reflector::Store<ConfigMap>, tokio::task::JoinHandle<()>) {
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let (reader, writer) = reflector::store();
    let config = if streaming {
        watcher::Config::default().streaming_lists()
    } else {
        watcher::Config::default()
    };
    let stream = reflector(writer, watcher(api, config))
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(async move {
        // Errors are expected while faults are on; the backoff retries.
        stream.for_each(|_| async {}).await;
    });
    (reader, task)
}

fn names(store: &reflector::Store<ConfigMap>) -> Vec<String> {
    let mut n: Vec<String> = store
        .state()
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    n.sort();
    n
}

async fn wait_names(store: &reflector::Store<ConfigMap>, want: &[&str]) {
    let ok = eventually(30, || async { names(store) == want }).await;
    assert!(ok, "reflector has {:?}, want {want:?}", names(store));
}

fn fail_watches() -> FaultConfig {
    FaultConfig {
        fail_ratio: 1.0,
        fail_code: 500,
        only_watches: true,
        ..Default::default()
    }
}

async fn survive(restart: bool, compact: bool, streaming: bool) {
    let (s, client) = server().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for n in ["a", "b", "c"] {
        api.create(&PostParams::default(), &cm(n)).await.unwrap();
    }
    let (store, task) = start_reflector(client, streaming);
    wait_names(&store, &["a", "b", "c"]).await;
    // Keep watches down while the cluster changes underneath.
    s.set_faults(fail_watches());
    if restart {
        s.stop().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.restart().await.unwrap();
    } else {
        s.drop_watches();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    api.delete("b", &DeleteParams::default()).await.unwrap();
    api.create(&PostParams::default(), &cm("d")).await.unwrap();
    if compact {
        s.compact();
    }
    s.clear_faults();
    wait_names(&store, &["a", "c", "d"]).await;
    task.abort();
}

#[tokio::test]
async fn a_reflector_survives_a_watch_drop_without_losing_a_delete() {
    survive(false, false, false).await;
}

#[tokio::test]
async fn a_reflector_survives_a_server_restart_without_losing_a_delete() {
    survive(true, false, false).await;
}

#[tokio::test]
async fn a_reflector_relists_after_410_and_drops_what_was_deleted() {
    survive(true, true, false).await;
}

#[tokio::test]
async fn a_streaming_list_reflector_survives_a_restart_and_compaction() {
    survive(true, true, true).await;
}

/// Twenty stop/restart cycles (and twenty plain restarts) in a row, each of
/// which must rebind on its first attempt while a reflector keeps watching
/// and reconnecting: `restart` does not retry, so a lingering listener or
/// connection fails it with AddrInUse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_rebinds_at_once_twenty_times_while_a_watcher_is_connected() {
    let (s, client) = server().await;
    let addr = s.addr();
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    let (store, task) = start_reflector(client, false);
    wait_names(&store, &["a"]).await;
    for i in 0..20 {
        // Let the reflector reconnect so every cycle cuts a live watch.
        let watching = eventually(10, || async { s.open_connections() > 0 }).await;
        assert!(watching, "cycle {i}: the watcher never reconnected");
        if i % 2 == 0 {
            s.stop().await;
            assert_eq!(s.open_connections(), 0, "cycle {i}: connections left");
            let refused = tokio::net::TcpStream::connect(addr).await;
            assert!(refused.is_err(), "cycle {i}: still listening after stop");
        }
        s.restart()
            .await
            .unwrap_or_else(|e| panic!("cycle {i}: restart failed: {e}"));
        assert_eq!(s.addr(), addr);
        let name = format!("c{i}");
        // The client's pooled connection may be one the stop cut: retry
        // transport errors (as controllers do) until the write lands.
        let created = eventually(10, || async {
            match api.create(&PostParams::default(), &cm(&name)).await {
                Ok(_) => true,
                Err(kube::Error::Api(s)) if s.code == 409 => true,
                Err(kube::Error::Api(s)) => panic!("cycle {i}: {s:?}"),
                Err(_) => false,
            }
        })
        .await;
        assert!(created, "cycle {i}: could not create {name}");
        let seen = eventually(10, || async { names(&store).contains(&name) }).await;
        assert!(seen, "cycle {i}: the reflector missed {name}");
    }
    assert_eq!(s.bind_failures(), 0);
    task.abort();
}

/// The port is held at every moment of a restart: a plain bind of it (no
/// SO_REUSEADDR, no SO_REUSEPORT: it succeeds exactly when no socket holds
/// the port, which is also when an outgoing connection could be given it
/// as its ephemeral port) never succeeds while the server stops and
/// listens again, 50 times over. Before the port was held throughout, the
/// window between closing the listener and holding the port again let such
/// a socket in, and the next listen failed with AddrInUse (seen in the lab
/// on a busy machine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_other_socket_can_take_the_port_during_restarts() {
    let (s, _client) = server().await;
    let addr = s.addr();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let thief = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut tries = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && tries < 2_000_000 {
                tries += 1;
                // std's bind would set SO_REUSEADDR, which may share a
                // port held by a socket that does not listen.
                let socket =
                    socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                        .expect("a socket");
                if socket.bind(&addr.into()).is_ok() {
                    return Some(tries);
                }
            }
            None
        })
    };
    for i in 0..50 {
        s.stop().await;
        s.restart()
            .await
            .unwrap_or_else(|e| panic!("cycle {i}: restart failed: {e}"));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let stolen = thief.join().unwrap();
    assert_eq!(stolen, None, "another socket bound the server's port");
    assert_eq!(s.bind_failures(), 0);
}

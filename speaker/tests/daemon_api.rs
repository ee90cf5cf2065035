//! The daemon's watches and decision loop against the in-process API test
//! server, over an in-memory L2 segment: no root, no network beyond
//! loopback. Two speakers (node-a, node-b) with a fixed liveness set agree
//! on one owner, the owner alone sends `nodeAssigned` once (not again on a
//! relist), and deleting the Service empties both desired sets; an owner
//! that stops hands its IP over to the other make-before-break; a station
//! announcing the owner's IP gets one `AddressConflict` Event.

mod common;

use common::{set_ingress, setup, speaker, speaker_with, wait_for, Options, TestResult, NS, VIP};
use ferrolb_core::announce::model::ObjectKey;
use ferrolb_core::announce::{Desired, Verdict};
use ferrolb_core::election;
use ferrolb_speaker::daemon::conflicts;
use ferrolb_speaker::daemon::{events, watch as watches};
use ferrolb_speaker::transport::memory::Hub;
use ferrolb_speaker::transport::Datalink;
use ferrolb_speaker::wire::{ArpFrame, MacAddr};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

async fn assigned_events(client: &Client) -> Result<Vec<K8sEvent>, kube::Error> {
    let list = Api::<K8sEvent>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await?;
    Ok(list
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(events::NODE_ASSIGNED))
        .collect())
}

#[tokio::test]
async fn two_speakers_agree_on_one_owner_which_alone_reports_node_assigned() -> TestResult {
    let server = kube_test_server::TestServer::start("127.0.0.1:0".parse()?).await?;
    let client = server.client().await?;
    setup(&client).await?;

    let mut tasks = JoinSet::new();
    let watched = watches::spawn(&client, NS, None, &mut tasks);
    let (_live_tx, live) =
        watch::channel(BTreeSet::from(["node-a".to_string(), "node-b".to_string()]));
    let hub = Hub::new();
    let mut a = speaker(
        "node-a", 0xa, &hub, &client, &watched, &live, &mut tasks, None,
    )?;
    let mut b = speaker(
        "node-b", 0xb, &hub, &client, &watched, &live, &mut tasks, None,
    )?;

    let vip: IpAddr = VIP.parse()?;
    let owner = election::elect(vip, ["node-a", "node-b"]).ok_or("no owner")?;
    let key = ObjectKey::new("default", "web");
    let owned = |d: &Desired| {
        matches!(d.services.get(&ObjectKey::new("default", "web")).map(|s| &s.verdict),
                 Some(Verdict::Owner { node, .. }) if node == owner)
    };
    wait_for(&mut a, "node-a to elect the owner", owned).await?;
    wait_for(&mut b, "node-b to elect the owner", owned).await?;
    for (name, s) in [("node-a", &a), ("node-b", &b)] {
        let d = s.desired.borrow();
        let want: BTreeSet<(IpAddr, String)> = if name == owner {
            [(vip, "eth0".to_string())].into()
        } else {
            BTreeSet::new()
        };
        assert_eq!(d.announce, want, "{name} announces only if it owns the IP");
        assert!(d.services.contains_key(&key));
    }
    // The Service was announced before the speakers started: a start is
    // no transition and writes no Event.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        assigned_events(&client).await?,
        vec![],
        "a start reports nothing"
    );

    // The Service loses its IP and gets it back: a transition, which the
    // owner alone reports.
    set_ingress(&client, "web", None).await?;
    for s in [&mut a, &mut b] {
        wait_for(s, "the Service to leave", |d| d.services.is_empty()).await?;
    }
    set_ingress(&client, "web", Some(VIP)).await?;
    for s in [&mut a, &mut b] {
        wait_for(s, "the owner to be elected again", owned).await?;
    }

    // A relist (all watches dropped) and an unrelated change recompute the
    // same answer and must not repeat the Event.
    server.drop_watches();
    Api::<Node>::all(client.clone())
        .patch(
            "node-a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await?;
    for _ in 0..40 {
        if !assigned_events(&client).await?.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Time for a wrong duplicate to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = assigned_events(&client).await?;
    assert_eq!(
        events.len(),
        1,
        "exactly one nodeAssigned event: {events:#?}"
    );
    let ev = &events[0];
    assert_eq!(ev.reporting_instance.as_deref(), Some(owner));
    let note = ev.note.as_deref().unwrap_or_default();
    assert!(
        note.starts_with(&format!(
            "announcing from node \"{owner}\" with protocol \"layer2\""
        )),
        "{note}"
    );
    assert!(note.contains("\"eth0\""), "{note}");
    assert_eq!(
        ev.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("web")
    );
    // `kubectl describe service web` selects Events by the Service's UID.
    let web = Api::<Service>::namespaced(client.clone(), "default")
        .get("web")
        .await?;
    assert_eq!(
        ev.regarding.as_ref().and_then(|r| r.uid.clone()),
        web.metadata.uid,
        "the reference carries the UID"
    );
    assert_eq!(ev.series.as_ref().map(|s| s.count), None, "never repeated");

    // Both speakers restart with nothing changed: no new Event.
    let _ = a.stop.send(());
    let _ = b.stop.send(());
    let mut a = speaker(
        "node-a", 0xa, &hub, &client, &watched, &live, &mut tasks, None,
    )?;
    let mut b = speaker(
        "node-b", 0xb, &hub, &client, &watched, &live, &mut tasks, None,
    )?;
    wait_for(&mut a, "node-a to decide after its restart", owned).await?;
    wait_for(&mut b, "node-b to decide after its restart", owned).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        assigned_events(&client).await?.len(),
        1,
        "a restart reports nothing"
    );

    Api::<Service>::namespaced(client.clone(), "default")
        .delete("web", &DeleteParams::default())
        .await?;
    for s in [&mut a, &mut b] {
        wait_for(s, "the Service to disappear", |d| {
            d.announce.is_empty() && d.services.is_empty()
        })
        .await?;
    }

    let _ = a.stop.send(());
    let _ = b.stop.send(());
    tasks.abort_all();
    Ok(())
}

/// The owner stops gracefully: its leave takes it out of the live set, the
/// other speaker takes the IP over and announces it, and the owner, which
/// answered meanwhile, sees that announcement and hands the IP over well
/// before its bound.
#[tokio::test]
async fn a_stopping_owner_hands_its_ip_over_to_the_new_owner() -> TestResult {
    let server = kube_test_server::TestServer::start("127.0.0.1:0".parse()?).await?;
    let client = server.client().await?;
    setup(&client).await?;
    let mut tasks = JoinSet::new();
    let watched = watches::spawn(&client, NS, None, &mut tasks);
    let both = BTreeSet::from(["node-a".to_string(), "node-b".to_string()]);
    let (live_tx, live) = watch::channel(both);
    let vip: IpAddr = VIP.parse()?;
    let owner = election::elect(vip, ["node-a", "node-b"]).ok_or("no owner")?;
    let other = if owner == "node-a" {
        "node-b"
    } else {
        "node-a"
    };
    let mac = |n: &str| if n == "node-a" { 0xa } else { 0xb };
    let hub = Hub::new();
    let leave = {
        let other = other.to_string();
        Box::pin(async move {
            live_tx.send_replace(BTreeSet::from([other]));
        })
    };
    #[rustfmt::skip]
    let mut o = speaker_with(owner, mac(owner), &hub, &client, &watched, &live, &mut tasks, Options { leave, ..Options::default() })?;
    #[rustfmt::skip]
    let mut n = speaker_with(other, mac(other), &hub, &client, &watched, &live, &mut tasks, Options::default())?;
    let announces = |node: &str| {
        let node = node.to_string();
        move |d: &Desired| d.announce.iter().any(|(ip, _)| ip.to_string() == VIP) == (node == owner)
    };
    wait_for(&mut o, "the owner to announce", announces(owner)).await?;
    wait_for(&mut n, "the other not to", announces(other)).await?;

    let _ = o.stop.send(());
    wait_for(&mut n, "the other to take over", |d| !d.announce.is_empty()).await?;
    let report = tokio::time::timeout(Duration::from_secs(5), o.stopped).await??;
    assert_eq!(report.total, 1, "{report:?}");
    assert_eq!(report.timed_out, vec![], "{report:?}");
    assert_eq!(report.handed_over[0].ip, vip);
    assert_eq!(report.handed_over[0].to.0, [2, 0, 0, 0, 0, mac(other)]);
    assert!(report.elapsed < Duration::from_secs(1), "{report:?}");
    let _ = n.stop.send(());
    tasks.abort_all();
    drop(server);
    Ok(())
}

/// A station on the segment announces the owner's IP in bursts: the owner
/// alone sends one `AddressConflict` Event naming its MAC, however many
/// frames it sends, and announces the IP again.
#[tokio::test]
async fn a_second_announcer_gets_one_address_conflict_event_from_the_owner() -> TestResult {
    let server = kube_test_server::TestServer::start("127.0.0.1:0".parse()?).await?;
    let client = server.client().await?;
    setup(&client).await?;
    let mut tasks = JoinSet::new();
    let watched = watches::spawn(&client, NS, None, &mut tasks);
    let (_live_tx, live) =
        watch::channel(BTreeSet::from(["node-a".to_string(), "node-b".to_string()]));
    let hub = Hub::new();
    let quick = conflicts::Settings {
        settle: Duration::from_millis(300),
        grace: Duration::from_millis(200),
        forget_after: Duration::from_secs(60),
    };
    #[rustfmt::skip]
    let mut a = speaker_with("node-a", 0xa, &hub, &client, &watched, &live, &mut tasks, Options { conflicts: quick, ..Options::default() })?;
    #[rustfmt::skip]
    let mut b = speaker_with("node-b", 0xb, &hub, &client, &watched, &live, &mut tasks, Options { conflicts: quick, ..Options::default() })?;
    let vip: std::net::Ipv4Addr = VIP.parse()?;
    let owner = election::elect(vip.into(), ["node-a", "node-b"]).ok_or("no owner")?;
    let owner_mac = MacAddr([2, 0, 0, 0, 0, if owner == "node-a" { 0xa } else { 0xb }]);
    for s in [&mut a, &mut b] {
        wait_for(s, "the owner to be elected", |d| !d.services.is_empty()).await?;
    }
    tokio::time::sleep(Duration::from_millis(400)).await; // past the grace
    let rogue_mac = MacAddr([2, 0, 0, 0, 0, 0x99]);
    let mut rogue = hub.endpoint("eth0", rogue_mac);
    let conflicts = || async {
        let list = Api::<K8sEvent>::namespaced(client.clone(), "default")
            .list(&Default::default())
            .await?;
        Ok::<_, kube::Error>(
            list.items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some(events::ADDRESS_CONFLICT))
                .collect::<Vec<_>>(),
        )
    };
    for burst in 0..2 {
        for _ in 0..5 {
            rogue.send(&ArpFrame::gratuitous_request(rogue_mac, vip).to_bytes())?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The owner announces the IP again, a spacing after the burst
        // began. `recv` blocks (50 ms at a time): off the runtime, which
        // the daemons share.
        let answered;
        (rogue, answered) = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while std::time::Instant::now() < deadline {
                let Ok(Some(frame)) = rogue.recv() else {
                    continue;
                };
                if ArpFrame::parse(&frame).is_ok_and(|f| {
                    f.arp.is_gratuitous() && f.arp.sender_mac == owner_mac && f.arp.sender_ip == vip
                }) {
                    return (rogue, true);
                }
            }
            (rogue, false)
        })
        .await?;
        assert!(answered, "burst {burst}: no gratuitous ARP from the owner");
        for _ in 0..30 {
            if !conflicts().await?.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // time for a duplicate
    let events = conflicts().await?;
    assert_eq!(events.len(), 1, "one Event per episode: {events:#?}");
    let ev = &events[0];
    assert_eq!(ev.type_.as_deref(), Some("Warning"));
    assert_eq!(ev.reporting_instance.as_deref(), Some(owner));
    let note = ev.note.as_deref().unwrap_or_default();
    assert!(note.contains("02:00:00:00:00:99"), "{note}");
    assert!(
        note.contains(&format!("of node \"{owner}\", which owns it")),
        "{note}"
    );
    let _ = a.stop.send(());
    let _ = b.stop.send(());
    tasks.abort_all();
    drop(server);
    Ok(())
}

/// Which Services each of two speakers (one without `--lb-class`, one
/// with MetalLB's class) holds once every watch has listed.
#[tokio::test]
async fn a_speaker_acts_only_on_services_of_its_load_balancer_class() -> TestResult {
    const METALLB: &str = "metallb.io/metallb";
    let server = kube_test_server::TestServer::start("127.0.0.1:0".parse()?).await?;
    let client = server.client().await?;
    setup(&client).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let other: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "metallbs", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "loadBalancerClass": METALLB,
                 "ports": [{"port": 80, "protocol": "TCP"}]},
    }))?;
    services.create(&PostParams::default(), &other).await?;
    // Inside ferrolb's pool, as when both implementations were given
    // overlapping ranges by mistake.
    set_ingress(&client, "metallbs", Some("192.0.2.20")).await?;

    let mut tasks = JoinSet::new();
    let ours = watches::spawn(&client, NS, None, &mut tasks);
    let metallbs = watches::spawn(&client, NS, Some(METALLB.into()), &mut tasks);
    let names = |w: &watches::Watched| -> Vec<String> {
        w.world
            .borrow()
            .services()
            .keys()
            .map(|k| k.name.to_string())
            .collect()
    };
    for (w, want) in [(&ours, "web"), (&metallbs, "metallbs")] {
        let mut world = w.world.clone();
        tokio::time::timeout(
            Duration::from_secs(10),
            world.wait_for(|world| world.services().keys().any(|k| *k.name == *want)),
        )
        .await??;
        let mut synced = w.synced.clone();
        tokio::time::timeout(
            Duration::from_secs(10),
            synced.wait_for(|s| s.len() == watches::KINDS.len()),
        )
        .await??;
    }
    assert_eq!(names(&ours), ["web"], "no class: only classless Services");
    assert_eq!(
        names(&metallbs),
        ["metallbs"],
        "--lb-class: only that class"
    );
    tasks.abort_all();
    Ok(())
}

//! Pool edits and deletions, sharing, dual stack and bad input.

mod support;

use std::collections::BTreeMap;

use ferrolb_crds::conditions::{self, TYPE_POOLS_SELECTED, TYPE_VALID};
use ferrolb_crds::L2Advertisement;
use kube::api::PostParams;
use support::{eventually, lb, Cluster, SYSTEM_NS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shrinking_and_deleting_a_pool_moves_its_services_with_a_clear_assignment_event() {
    let cluster = Cluster::start().await;
    cluster.pool("blue", &["198.51.100.0/31"]).await;
    let _ctl = cluster.controller("a", &[]);
    cluster.create_service(&lb("default", "a")).await;
    cluster.wait_ips("default", "a", &["198.51.100.0"]).await;
    cluster.create_service(&lb("default", "b")).await;
    cluster.wait_ips("default", "b", &["198.51.100.1"]).await;

    cluster
        .set_addresses("blue", &["198.51.100.1/32", "198.51.100.8/32"])
        .await;
    cluster.wait_ips("default", "a", &["198.51.100.8"]).await;
    assert_eq!(
        cluster.wait_event("default", "a", "ClearAssignment").await,
        r#"current IP for "default/a" not allowed by config, will attempt for new IP assignment: IP 198.51.100.0 is no longer in IPAddressPool "blue" or any other pool"#
    );
    assert_eq!(cluster.ips("default", "b").await, ["198.51.100.1"]);

    cluster.pool("green", &["203.0.113.0/31"]).await;
    cluster
        .pools()
        .delete("blue", &Default::default())
        .await
        .unwrap();
    // Evicted Services are reassigned in key order.
    cluster.wait_ips("default", "a", &["203.0.113.0"]).await;
    cluster.wait_ips("default", "b", &["203.0.113.1"]).await;
    let events = cluster.events("default", "b").await;
    assert!(
        events.iter().any(|e| e.1 == "ClearAssignment"
            && e.2.ends_with(
                r#"IPAddressPool "blue" was deleted, so IP 198.51.100.1 is no longer in any pool"#
            )),
        "{events:?}"
    );

    // Deleting the last pool leaves them with nothing, and says why.
    cluster
        .pools()
        .delete("green", &Default::default())
        .await
        .unwrap();
    cluster.wait_ips("default", "a", &[]).await;
    let note = cluster.wait_event("default", "a", "AllocationFailed").await;
    assert!(
        note.starts_with(r#"Failed to allocate IP for "default/a": "#),
        "{note}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_with_one_key_share_an_ip_unless_their_ports_clash() {
    let cluster = Cluster::start().await;
    cluster.pool("blue", &["198.51.100.0/24"]).await;
    let _ctl = cluster.controller("a", &[]);
    let shared = |name: &str, protocol: &str| {
        let mut svc = lb("default", name);
        svc.metadata.annotations = Some(BTreeMap::from([
            ("ferrolb.io/allow-shared-ip".to_string(), "dns".to_string()),
            (
                "ferrolb.io/loadBalancerIPs".to_string(),
                "198.51.100.53".to_string(),
            ),
        ]));
        let port = &mut svc.spec.as_mut().unwrap().ports.as_mut().unwrap()[0];
        port.port = 53;
        port.protocol = Some(protocol.into());
        svc
    };
    cluster.create_service(&shared("dns-tcp", "TCP")).await;
    cluster.create_service(&shared("dns-udp", "UDP")).await;
    cluster
        .wait_ips("default", "dns-tcp", &["198.51.100.53"])
        .await;
    cluster
        .wait_ips("default", "dns-udp", &["198.51.100.53"])
        .await;
    cluster.create_service(&shared("dns-tcp-2", "TCP")).await;
    let note = cluster
        .wait_event("default", "dns-tcp-2", "AllocationFailed")
        .await;
    assert_eq!(
        note,
        r#"Failed to allocate IP for "default/dns-tcp-2": IP 198.51.100.53 cannot be shared with default/dns-tcp: both use TCP/53"#
    );
    let pool = cluster.pools().get("blue").await.unwrap();
    assert!(
        eventually(20, || async {
            cluster
                .pools()
                .get("blue")
                .await
                .unwrap()
                .status
                .is_some_and(|s| s.assigned_ipv4 == 1)
        })
        .await,
        "a shared IP counts once: {:?}",
        pool.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_gets_one_ip_per_family_and_v6_against_a_v4_pool_fails_clearly() {
    let cluster = Cluster::start().await;
    cluster
        .pool("both", &["198.51.100.0/30", "2001:db8::/126"])
        .await;
    cluster.pool("v4only", &["203.0.113.0/30"]).await;
    let _ctl = cluster.controller("a", &[]);
    let mut dual = lb("default", "dual");
    let spec = dual.spec.as_mut().unwrap();
    spec.ip_family_policy = Some("RequireDualStack".into());
    spec.ip_families = Some(vec!["IPv4".into(), "IPv6".into()]);
    cluster.create_service(&dual).await;
    cluster
        .wait_ips("default", "dual", &["198.51.100.0", "2001:db8::"])
        .await;
    assert_eq!(
        cluster.wait_event("default", "dual", "IPAllocated").await,
        r#"Assigned IP ["198.51.100.0" "2001:db8::"] from pool "both"; no L2Advertisement selects pool "both", so nothing announces it"#
    );

    let mut v6 = lb("default", "v6");
    v6.metadata.annotations = Some(BTreeMap::from([(
        "ferrolb.io/address-pool".to_string(),
        "v4only".to_string(),
    )]));
    v6.spec.as_mut().unwrap().ip_families = Some(vec!["IPv6".into()]);
    cluster.create_service(&v6).await;
    assert_eq!(
        cluster
            .wait_event("default", "v6", "AllocationFailed")
            .await,
        r#"Failed to allocate IP for "default/v6": IPAddressPool "v4only" has no IPv6 addresses"#
    );

    let mut bad = lb("default", "bad");
    bad.metadata.annotations = Some(BTreeMap::from([(
        "ferrolb.io/loadBalancerIPs".to_string(),
        "198.51.100.x".to_string(),
    )]));
    cluster.create_service(&bad).await;
    let note = cluster
        .wait_event("default", "bad", "AllocationFailed")
        .await;
    assert!(note.contains(r#""198.51.100.x""#), "{note}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_pools_and_advertisements_say_what_is_wrong() {
    let cluster = Cluster::start().await;
    cluster.pool("old", &["198.51.100.0/24"]).await;
    // Later creation time: the overlap is blamed on this one.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    cluster.pool("young", &["198.51.100.128/25"]).await;
    let mut ad = L2Advertisement::new("typo", Default::default());
    ad.metadata.namespace = Some(SYSTEM_NS.into());
    ad.spec.ip_address_pools = vec!["olde".into()];
    cluster
        .ads()
        .create(&PostParams::default(), &ad)
        .await
        .unwrap();
    let _ctl = cluster.controller("a", &[]);
    let ok = eventually(20, || async {
        cluster
            .pools()
            .get("young")
            .await
            .unwrap()
            .status
            .is_some_and(|s| {
                conditions::find(&s.conditions, TYPE_VALID).is_some_and(|c| {
                    c.status == "False"
                        && c.reason == "OverlappingPool"
                        && c.message.contains(r#"IPAddressPool "old""#)
                })
            })
    })
    .await;
    assert!(
        ok,
        "{:?}",
        cluster.pools().get("young").await.unwrap().status
    );
    let ok = eventually(20, || async {
        cluster
            .ads()
            .get("typo")
            .await
            .unwrap()
            .status
            .is_some_and(|s| {
                conditions::find(&s.conditions, TYPE_POOLS_SELECTED).is_some_and(|c| {
                    c.reason == "UnknownPool"
                        && c.message
                            == r#"IPAddressPool "olde" named in ipAddressPools does not exist"#
                })
            })
    })
    .await;
    assert!(ok, "{:?}", cluster.ads().get("typo").await.unwrap().status);
    let note = cluster.wait_event(SYSTEM_NS, "typo", "UnknownPool").await;
    assert_eq!(
        note,
        r#"IPAddressPool "olde" named in ipAddressPools does not exist"#
    );
}

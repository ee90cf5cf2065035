//! rtnetlink inside a network namespace (netlab): the speaker sees the
//! host's `eth0` up with its MAC, and sees it go down. Needs root, so it
//! is `#[ignore = "needs root"]` (docs/testing.md). The namespaces are deleted when the lab drops, panics included.

use ferrolb_core::announce::interfaces::{select, Excludes, HostInterface};
use ferrolb_speaker::links::netlink::RtNetlink;
use ferrolb_speaker::links::Links;
use futures::StreamExt;
use netlab::Lab;
use std::time::Duration;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn eth0(links: &[HostInterface]) -> Option<&HostInterface> {
    links.iter().find(|l| l.name == "eth0")
}

#[test]
#[ignore = "needs root"]
fn rtnetlink_lists_eth0_with_its_mac_and_sees_it_go_down() -> TestResult {
    let mut lab = Lab::for_test("rtnetlink_lists_eth0_with_its_mac_and_sees_it_go_down");
    let host = lab.add_host("links")?;
    let mac = host.mac()?;
    let index = host.ifindex()?;
    let outcome = host.run_in(|| -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async {
            let links = RtNetlink::connect().map_err(|e| e.to_string())?;
            let mut changes = links.changes().map_err(|e| e.to_string())?;
            let before = links.list().await.map_err(|e| e.to_string())?;
            let link = eth0(&before).ok_or("no eth0 in the namespace")?;
            assert!(link.up, "eth0 starts up: {link:?}");
            assert_eq!(link.mac, Some(mac.0));
            assert_eq!(link.index, index);
            assert_eq!(link.kind.as_deref(), Some("veth"));
            assert!(!link.has_master && !link.noarp && !link.loopback);
            let lo = before.iter().find(|l| l.name == "lo").ok_or("no lo")?;
            assert!(lo.loopback);
            // eth0 is chosen even though it is a veth: the default excludes
            // match names, and netlab's is called eth0.
            assert_eq!(select(&before, &[], &Excludes::default()).names, ["eth0"]);

            host.link_down().map_err(|e| e.to_string())?;
            // Bounded: at most 20 notifications or 5 s.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            for _ in 0..20 {
                let next = tokio::time::timeout_at(deadline, changes.next()).await;
                if next.is_err() {
                    break;
                }
                let now = links.list().await.map_err(|e| e.to_string())?;
                if eth0(&now).is_some_and(|l| !l.up) {
                    let chosen = select(&now, &["eth0".to_string()], &Excludes::default());
                    assert!(chosen.names.is_empty());
                    assert_eq!(chosen.problems[0].reason(), "InterfaceDown");
                    return Ok(());
                }
            }
            Err("no change notification showed eth0 down within 5 s".into())
        })
    })?;
    outcome.map_err(|e| format!("{e}\n{}", host.dump()).into())
}

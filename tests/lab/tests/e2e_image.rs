//! The image pass of README's test command runs every lab test with
//! `FERROLB_LAB_IMAGE` set, so the controller and speakers come from the
//! shipped image under runc. This test proves that pass is what it claims:
//! every component is a container process with the manifests' privileges,
//! and the cluster still assigns, announces and answers. It is ignored in
//! the plain pass (there the components are the build's binaries) and run
//! with `--run-ignored all` in the image pass.

mod common;

use std::time::Duration;

use ferrolb_image::runc;
use ferrolb_lab::objects::{Families, ServiceSpec};

const TEST: &str = "from_the_image_every_component_runs_with_the_manifests_privileges";
/// `CAP_NET_RAW` (13) and `CAP_SYS_NICE` (23) as `/proc/<pid>/status`
/// shows a capability set.
const NET_RAW_SYS_NICE: &str = "0000000000802000";
const NO_CAPS: &str = "0000000000000000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the image pass of README's test command runs it, with FERROLB_LAB_IMAGE set"]
async fn from_the_image_every_component_runs_with_the_manifests_privileges() {
    assert!(
        std::env::var_os("FERROLB_LAB_IMAGE").is_some(),
        "set FERROLB_LAB_IMAGE to an archive built by scripts/image"
    );
    let (_g, c) = common::lab(TEST, "flbimg").await;

    let controller = c.controller.as_ref().expect("controller runs").id();
    let p = runc::privileges(controller).unwrap();
    assert_eq!(p["Uid"], "65534 65534 65534 65534", "controller: {p:?}");
    assert_eq!(p["Gid"], "65534 65534 65534 65534", "controller: {p:?}");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(p[set], NO_CAPS, "controller {set}: {p:?}");
    }
    assert_eq!(p["NoNewPrivs"], "1", "controller: {p:?}");
    assert!(runc::root_is_read_only(controller).unwrap());

    for node in &c.nodes {
        let pid = node.speaker.as_ref().expect("speaker runs").id();
        let p = runc::privileges(pid).unwrap();
        assert_eq!(p["Uid"], "0 0 0 0", "{}: {p:?}", node.name);
        for set in ["CapPrm", "CapEff", "CapBnd"] {
            assert_eq!(p[set], NET_RAW_SYS_NICE, "{} {set}: {p:?}", node.name);
        }
        for set in ["CapInh", "CapAmb"] {
            assert_eq!(p[set], NO_CAPS, "{} {set}: {p:?}", node.name);
        }
        assert_eq!(p["NoNewPrivs"], "1", "{}: {p:?}", node.name);
        assert!(runc::root_is_read_only(pid).unwrap(), "{}", node.name);
        // The image's binary, in a mount namespace (a root) of its own.
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert!(exe.ends_with("ferrolb-speaker"), "{}: {exe:?}", node.name);
        assert_ne!(
            std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap(),
            std::fs::read_link("/proc/self/ns/mnt").unwrap(),
            "{} runs in the host's mount namespace",
            node.name
        );
    }

    // And the cluster made of them works: an IP is assigned, announced and
    // answered.
    let mut spec = ServiceSpec::new("from-image", 8080);
    spec.families = Families::V4;
    c.create_service(&spec, None).await.unwrap();
    let ips = c
        .wait_ips("from-image", 1, Duration::from_secs(20))
        .await
        .unwrap();
    c.wait_answer(ips[0], 8080, Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(common::who_has(&c, ips[0]).len(), 1, "exactly one answer");
}

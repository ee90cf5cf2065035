//! The image really runs: the shipped archive (`FERROLB_IMAGE_ARCHIVE`) is
//! unpacked with our own reader and its controller and speaker run under
//! runc with `deploy/ferrolb.yaml`'s security settings, in network
//! namespaces of the test's own, against the in-process API server. The
//! controller assigns a pool IP to a Service; the speaker answers ARP for
//! it. Root only, and needs runc: `#[ignore]`d unless asked for
//! (docs/testing.md).

mod common;
// The lab's who-has helper, reused rather than copied.
#[allow(dead_code, unused_imports)]
#[path = "../../tests/lab/tests/common/mod.rs"]
mod lab_common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use ferrolb_image::runc::{self, Attached, Spec};
use ferrolb_lab::manifests;
use ferrolb_lab::objects::{self, Families, ServiceSpec};
use ferrolb_lab::topology::SYSTEM_NS;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams, PostParams};
use netlab::Host;

const TEST: &str = "the_image_runs_controller_and_speaker_under_runc_as_the_manifests_do";
const API: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const API_PORT: u16 = 6443;
const NODE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
const KUBECONFIG: &str = "/etc/ferrolb/kubeconfig";
/// `CAP_NET_RAW` (13) and `CAP_SYS_NICE` (23) as `/proc/<pid>/status`
/// shows a capability set.
const NET_RAW_SYS_NICE: &str = "0000000000802000";
const NO_CAPS: &str = "0000000000000000";

/// Whether `pid` lives in `host`'s network namespace.
fn in_netns(pid: u32, host: &Host) -> bool {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let ino = std::fs::metadata(format!("/var/run/netns/{}", host.netns()))
        .unwrap()
        .ino();
    link.to_string_lossy() == format!("net:[{ino}]")
}

fn logs(dir: &Path) -> String {
    ["controller", "speaker"]
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            format!(
                "== {n}.log (last 20 lines)\n{}",
                lines[lines.len().saturating_sub(20)..].join("\n")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One HTTP/1.0 GET from inside `host`'s namespace; the status line.
fn http_status(host: &Host, addr: SocketAddr, path: &'static str) -> Option<String> {
    host.run_in(move || -> std::io::Result<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())?;
        let mut out = String::new();
        s.take(4096).read_to_string(&mut out)?;
        Ok(out.lines().next().unwrap_or_default().to_owned())
    })
    .ok()?
    .ok()
}

async fn seed(kube: &kube::Client) {
    for (source, yaml) in manifests::CRDS {
        manifests::apply(kube, source, yaml).await.unwrap();
    }
    let pp = PostParams::default();
    let ns = serde_json::json!({"metadata": {"name": SYSTEM_NS}});
    Api::<Namespace>::all(kube.clone())
        .create(&pp, &serde_json::from_value(ns).unwrap())
        .await
        .unwrap();
    let now = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap()
        .to_string();
    let v6: IpAddr = "2001:db8::11".parse().unwrap();
    let nodes: Api<Node> = Api::all(kube.clone());
    let node = objects::node("node-1", NODE.into(), v6, &now);
    nodes
        .create(&pp, &serde_json::from_value(node).unwrap())
        .await
        .unwrap();
    let status =
        serde_json::json!({"status": objects::node_status("node-1", NODE.into(), v6, &now)});
    nodes
        .patch_status("node-1", &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
    // The pool and the L2 advertisement of deploy/examples.
    for (source, yaml) in manifests::CONFIG {
        manifests::apply(kube, source, yaml).await.unwrap();
    }
    let spec = ServiceSpec {
        families: Families::V4,
        ..ServiceSpec::new("web", 8080)
    };
    let slice = objects::endpoint_slice(
        "default",
        "web",
        objects::tcp_port(8080),
        false,
        &[(1, "node-1".into())],
    );
    Api::<EndpointSlice>::namespaced(kube.clone(), "default")
        .create(&pp, &serde_json::from_value(slice).unwrap())
        .await
        .unwrap();
    Api::<Service>::namespaced(kube.clone(), "default")
        .create(
            &pp,
            &serde_json::from_value(objects::service(&spec)).unwrap(),
        )
        .await
        .unwrap();
}

async fn service_ip(kube: &kube::Client, limit: Duration) -> Option<IpAddr> {
    let svcs: Api<Service> = Api::namespaced(kube.clone(), "default");
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(svc) = svcs.get("web").await {
            let ips = objects::ingress_ips(&serde_json::to_value(svc).unwrap());
            if let Some(ip) = ips.first() {
                return Some(*ip);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, runc and the image archive (bash scripts/image)"]
async fn the_image_runs_controller_and_speaker_under_runc_as_the_manifests_do() {
    let archive = common::shipped_archive(TEST);
    netlab::require_root(TEST);
    netlab::require_tool(TEST, "runc", &["--version"]);
    let image = common::load(&archive);
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    ferrolb_image::rootfs::write_tree(&image.tree, &rootfs).unwrap();

    let lab = netlab::Lab::for_test(TEST);
    let mut lab = lab;
    let api = lab.add_host("api").unwrap();
    api.add_addr(&format!("{API}/24")).unwrap();
    let node = lab.add_host("node-1").unwrap();
    node.add_addr(&format!("{NODE}/24")).unwrap();
    let client = lab.add_host("client").unwrap();
    client.add_addr(&format!("{CLIENT}/24")).unwrap();

    // The API server on loopback, reached from the namespaces through the
    // lab's relay in `api`, as ferrolb-lab does.
    let server = kube_test_server::TestServer::start(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let _relay =
        ferrolb_lab::relay::start(&api, SocketAddr::from((API, API_PORT)), server.addr()).unwrap();
    let kube = server.client().await.unwrap();
    seed(&kube).await;

    // What the Pods would mount: a kubeconfig (readable by nobody) and
    // the memberlist Secret (0400, root), both read-only.
    let kubeconfig = dir.path().join("kubeconfig");
    let url = format!("http://{API}:{API_PORT}");
    std::fs::write(
        &kubeconfig,
        server.kubeconfig().replace(&server.url(), &url),
    )
    .unwrap();
    std::fs::set_permissions(&kubeconfig, std::fs::Permissions::from_mode(0o644)).unwrap();
    let secret_dir = dir.path().join("memberlist");
    std::fs::create_dir(&secret_dir).unwrap();
    std::fs::write(secret_dir.join("secretkey"), [7u8; 32]).unwrap();
    std::fs::set_permissions(
        secret_dir.join("secretkey"),
        std::fs::Permissions::from_mode(0o400),
    )
    .unwrap();
    let netns = |h: &Host| format!("/var/run/netns/{}", h.netns());
    let id = |role: &str| format!("flbimg-{}-{role}", std::process::id());

    let log = |role: &str| {
        std::fs::File::options()
            .create(true)
            .append(true)
            .open(dir.path().join(format!("{role}.log")))
            .unwrap()
    };
    let controller_spec = Spec::controller(&image.config)
        .netns(netns(&api))
        .bind(&kubeconfig, KUBECONFIG)
        .env(&format!("KUBECONFIG={KUBECONFIG}"))
        .args(["--lease-namespace", SYSTEM_NS, "--identity", "image-test"])
        .args(["--http-addr", "127.0.0.1:7472", "--log-format", "text"]);
    let mut controller = Attached::spawn(
        &id("controller"),
        &rootfs,
        &controller_spec,
        log("controller"),
        log("controller"),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(dir.path())));
    let speaker_spec = Spec::speaker(&image.config)
        .netns(netns(&node))
        .bind(&kubeconfig, KUBECONFIG)
        .bind(&secret_dir, "/etc/ferrolb/memberlist")
        .env(&format!("KUBECONFIG={KUBECONFIG}"))
        .env("NODE_NAME=node-1")
        .args(["--namespace", SYSTEM_NS, "--log-format", "text"])
        .args([
            "--http-addr",
            &format!("{NODE}:7473"),
            "--memberlist-advertise-addr",
            &NODE.to_string(),
        ])
        .args([
            "--memberlist-secret-file",
            "/etc/ferrolb/memberlist/secretkey",
        ]);
    let mut speaker = Attached::spawn(
        &id("speaker"),
        &rootfs,
        &speaker_spec,
        log("speaker"),
        log("speaker"),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(dir.path())));

    // The manifests' security settings, as the kernel sees them.
    let c = runc::privileges(controller.pid()).unwrap();
    assert_eq!(c["Uid"], "65534 65534 65534 65534", "{c:?}");
    assert_eq!(c["Gid"], "65534 65534 65534 65534", "{c:?}");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(c[set], NO_CAPS, "controller {set}: {c:?}");
    }
    assert_eq!(c["NoNewPrivs"], "1");
    let s = runc::privileges(speaker.pid()).unwrap();
    assert_eq!(s["Uid"], "0 0 0 0", "{s:?}");
    for set in ["CapPrm", "CapEff", "CapBnd"] {
        assert_eq!(s[set], NET_RAW_SYS_NICE, "speaker {set}: {s:?}");
    }
    for set in ["CapInh", "CapAmb"] {
        assert_eq!(s[set], NO_CAPS, "speaker {set}: {s:?}");
    }
    assert_eq!(s["NoNewPrivs"], "1");
    for (name, ctr, host) in [
        ("controller", &controller, &api),
        ("speaker", &speaker, &node),
    ] {
        assert!(
            runc::root_is_read_only(ctr.pid()).unwrap(),
            "{name}: / is writable"
        );
        assert!(
            in_netns(ctr.pid(), host),
            "{name} is not in {}",
            host.netns()
        );
    }

    // The controller serves /healthz and assigns a pool IP.
    let health = SocketAddr::from(([127, 0, 0, 1], 7472));
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_status(&api, health, "/healthz").is_none_or(|l| !l.contains(" 200")) {
        assert!(
            Instant::now() < deadline,
            "no /healthz within 20 s\n{}",
            logs(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ip = service_ip(&kube, Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("Service web got no IP within 30 s\n{}", logs(dir.path())));
    assert!(
        ferrolb_lab::topology::in_pool_subnet(ip),
        "{ip} is not from the pool"
    );

    // The speaker, with only CAP_NET_RAW, answers who-has for it from node-1.
    let mac = node.mac().unwrap().0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answers =
            tokio::task::block_in_place(|| lab_common::who_has_from(&client, CLIENT.into(), ip));
        if answers.iter().any(|m| m.0 == mac) {
            assert!(answers.iter().all(|m| m.0 == mac), "{answers:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no ARP answer for {ip} from node-1 within 30 s (got {answers:?})\n{}\n{}",
            logs(dir.path()),
            node.dump()
        );
    }
    for (name, ctr) in [("controller", &mut controller), ("speaker", &mut speaker)] {
        assert_eq!(
            ctr.try_wait().unwrap(),
            None,
            "{name} is not running\n{}",
            logs(dir.path())
        );
    }
    // Containers first (declared last, dropped first), then the lab.
    drop(speaker);
    drop(controller);
    lab.teardown().unwrap();
}

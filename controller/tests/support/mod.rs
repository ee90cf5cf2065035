//! Shared helpers for the controller's integration tests: an in-process
//! API test server with ferrolb's CRDs, the real controller binary under a
//! kill-on-drop guard, object builders and bounded polling.
#![allow(dead_code)]

pub mod http;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrolb_crds::{IPAddressPool, IPAddressPoolSpec, L2Advertisement};
use k8s_openapi::api::core::v1::{Namespace, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::Client;
use kube_test_server::TestServer;

/// Namespace of the pools, advertisements and the Lease.
pub const SYSTEM_NS: &str = "ferrolb-system";

/// A test API server with the CRDs installed.
pub struct Cluster {
    pub server: TestServer,
    pub client: Client,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

impl Cluster {
    /// Starts the server, installs the CRDs, creates `ferrolb-system`.
    pub async fn start() -> Cluster {
        let server = TestServer::start("127.0.0.1:0".parse().unwrap())
            .await
            .expect("test server starts");
        let client = server.client().await.expect("client");
        let dir = tempfile::tempdir().expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in ferrolb_crds::generate::crds() {
            crds.create(&PostParams::default(), &crd)
                .await
                .expect("CRD created");
        }
        for ns in [SYSTEM_NS, "default"] {
            let _ = Api::<Namespace>::all(client.clone())
                .create(
                    &PostParams::default(),
                    &Namespace {
                        metadata: ObjectMeta {
                            name: Some(ns.into()),
                            ..Default::default()
                        },
                        ..Default::default()
                    },
                )
                .await;
        }
        let pools: Api<IPAddressPool> = Api::namespaced(client.clone(), SYSTEM_NS);
        assert!(
            eventually(10, || async {
                pools.list(&ListParams::default()).await.is_ok()
            })
            .await,
            "the IPAddressPool resource is served"
        );
        Cluster {
            server,
            client,
            dir,
            kubeconfig,
        }
    }

    /// Starts a controller replica named `identity`.
    pub fn controller(&self, identity: &str, extra: &[&str]) -> Controller {
        let log = self.dir.path().join(format!("{identity}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("POD_NAMESPACE")
            .env_remove("POD_NAME")
            .args([
                "--http-addr",
                "127.0.0.1:0",
                "--lease-namespace",
                SYSTEM_NS,
                "--identity",
                identity,
                "--lease-duration",
                "2s",
                "--log-level",
                "info,kube=warn",
            ])
            .args(extra)
            .stdout(Stdio::from(file.try_clone().expect("dup")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("controller starts");
        Controller {
            child: Some(child),
            log,
        }
    }

    pub fn services(&self, ns: &str) -> Api<Service> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub fn pools(&self) -> Api<IPAddressPool> {
        Api::namespaced(self.client.clone(), SYSTEM_NS)
    }

    pub fn ads(&self) -> Api<L2Advertisement> {
        Api::namespaced(self.client.clone(), SYSTEM_NS)
    }

    /// Creates (or replaces the spec of) a pool.
    pub async fn pool(&self, name: &str, addresses: &[&str]) -> IPAddressPool {
        let pool = IPAddressPool {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(SYSTEM_NS.into()),
                ..Default::default()
            },
            spec: IPAddressPoolSpec {
                addresses: addresses.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            status: None,
        };
        self.pools()
            .create(&PostParams::default(), &pool)
            .await
            .expect("pool created")
    }

    /// Changes a pool's addresses with a merge patch.
    pub async fn set_addresses(&self, name: &str, addresses: &[&str]) {
        let patch = serde_json::json!({"spec": {"addresses": addresses}});
        self.pools()
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .expect("pool patched");
    }

    pub async fn create_service(&self, svc: &Service) -> Service {
        let ns = svc.metadata.namespace.as_deref().unwrap_or("default");
        self.services(ns)
            .create(&PostParams::default(), svc)
            .await
            .expect("service created")
    }

    pub async fn delete_service(&self, ns: &str, name: &str) {
        self.services(ns)
            .delete(name, &DeleteParams::default())
            .await
            .expect("service deleted");
    }

    /// The ingress IPs of a Service (empty if none or gone).
    pub async fn ips(&self, ns: &str, name: &str) -> Vec<String> {
        match self.services(ns).get_opt(name).await {
            Ok(Some(svc)) => ingress(&svc),
            _ => Vec::new(),
        }
    }

    /// Waits until the Service shows exactly `want` (in order).
    pub async fn wait_ips(&self, ns: &str, name: &str, want: &[&str]) {
        let ok = eventually(20, || async { self.ips(ns, name).await == want }).await;
        assert!(
            ok,
            "Service {ns}/{name} should show {want:?}, shows {:?}",
            self.ips(ns, name).await
        );
    }

    /// Waits until the Service shows some IPs; returns them.
    pub async fn wait_any_ips(&self, ns: &str, name: &str) -> Vec<String> {
        let ok = eventually(20, || async { !self.ips(ns, name).await.is_empty() }).await;
        assert!(ok, "Service {ns}/{name} got no IP");
        self.ips(ns, name).await
    }

    /// Events about `name` in `ns`, as (type, reason, note), oldest first.
    pub async fn events(&self, ns: &str, name: &str) -> Vec<(String, String, String)> {
        let api: Api<Event> = Api::namespaced(self.client.clone(), ns);
        let mut list: Vec<Event> = api
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .collect();
        list.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        list.into_iter()
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Waits for an Event with `reason` about the object; returns its note.
    pub async fn wait_event(&self, ns: &str, name: &str, reason: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let events = self.events(ns, name).await;
            if let Some(e) = events.iter().find(|e| e.1 == reason) {
                return e.2.clone();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {reason} Event for {ns}/{name}; have {events:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The `status.loadBalancer.ingress[*].ip` of a Service.
pub fn ingress(svc: &Service) -> Vec<String> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone())
        .collect()
}

/// A LoadBalancer Service on TCP/80 in `ns`.
pub fn lb(ns: &str, name: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            annotations: Some(BTreeMap::new()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            selector: Some(BTreeMap::from([("app".to_string(), name.to_string())])),
            ports: Some(vec![ServicePort {
                port: 80,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// An IPv6 single-stack LoadBalancer without node ports: the test
/// server's IPv4 ClusterIP range (a /25) and NodePort range are too small
/// for thousands of Services, its IPv6 range (a /112) is not.
pub fn lb6(ns: &str, name: &str) -> Service {
    let mut svc = lb(ns, name);
    let spec = svc.spec.as_mut().expect("spec");
    spec.ip_families = Some(vec!["IPv6".into()]);
    spec.ip_family_policy = Some("SingleStack".into());
    spec.allocate_load_balancer_node_ports = Some(false);
    svc
}

/// A controller process, killed when dropped.
pub struct Controller {
    child: Option<Child>,
    pub log: PathBuf,
}

impl Controller {
    /// SIGTERM, then wait (killing after 10 s).
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            for _ in 0..200 {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `text`.
    pub async fn wait_log(&self, text: &str) -> bool {
        eventually(20, || async { self.log().contains(text) }).await
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` every 50 ms until true, for at most `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

//! kubectl v1.32 against the server: apply, get (Tables), get -o yaml,
//! patch (including --subresource=status), describe, delete, and the
//! imperative commands the lab suggests (create namespace|deployment, expose,
//! run; `create` sends protobuf). Every test needs kubectl, so each is
//! `#[ignore = "needs kubectl"]` (docs/testing.md).

mod common;

use std::path::Path;
use std::process::Output;

use kube_test_server::TestServer;

fn require_kubectl(test: &str) {
    netlab::require_tool(test, "kubectl", &["version", "--client"]);
}

struct Kubectl {
    server: TestServer,
    dir: tempfile::TempDir,
}

impl Kubectl {
    async fn start() -> Self {
        let server = TestServer::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        server
            .write_kubeconfig(&dir.path().join("kubeconfig"))
            .unwrap();
        Kubectl { server, dir }
    }

    async fn run(&self, args: &[&str]) -> Output {
        let out = tokio::process::Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.dir.path().join("kubeconfig"))
            .env("HOME", self.dir.path())
            .output()
            .await
            .unwrap();
        out
    }

    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

const SVC: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - port: 80
    targetPort: 8080
";

#[tokio::test]
#[ignore = "needs kubectl"]
async fn kubectl_applies_gets_patches_describes_and_deletes_a_service() {
    require_kubectl("kubectl_applies_gets_patches_describes_and_deletes_a_service");
    let k = Kubectl::start().await;
    let f = k.file("svc.yaml", SVC);
    assert!(k
        .ok(&["apply", "-f", &f])
        .await
        .contains("service/web created"));
    assert!(k
        .ok(&["apply", "-f", &f])
        .await
        .contains("service/web unchanged"));
    let table = k.ok(&["get", "svc"]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let row = table.lines().nth(1).unwrap();
    assert!(
        row.contains("LoadBalancer") && row.contains("<pending>") && row.contains("80:30000/TCP"),
        "{row}"
    );
    let yaml = k.ok(&["get", "svc", "web", "-o", "yaml"]).await;
    assert!(
        yaml.contains("clusterIP: 192.0.2.129")
            && yaml.contains("allocateLoadBalancerNodePorts: true"),
        "{yaml}"
    );
    k.ok(&[
        "patch",
        "svc",
        "web",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"198.51.100.7"}]}}}"#,
    ])
    .await;
    assert!(k.ok(&["get", "svc", "web"]).await.contains("198.51.100.7"));
    k.ok(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"metadata":{"labels":{"tier":"front"}}}"#,
    ])
    .await;
    let described = k.ok(&["describe", "svc", "web"]).await;
    assert!(
        described.contains("LoadBalancer Ingress:     198.51.100.7")
            && described.contains("tier=front"),
        "{described}"
    );
    std::fs::write(&f, SVC.replace("8080", "9090")).unwrap();
    assert!(k
        .ok(&["apply", "-f", &f])
        .await
        .contains("service/web configured"));
    assert_eq!(
        k.ok(&[
            "get",
            "svc",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].targetPort}"
        ])
        .await,
        "9090"
    );
    k.ok(&["delete", "-f", &f]).await;
    let out = k.run(&["get", "svc", "web"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("services \"web\" not found"));
    drop(k.server);
}

#[tokio::test]
#[ignore = "needs kubectl"]
async fn kubectl_applies_the_project_crds_and_prints_their_columns() {
    require_kubectl("kubectl_applies_the_project_crds_and_prints_their_columns");
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/widgets-crd.yaml");
    let k = Kubectl::start().await;
    k.ok(&["apply", "-f", fixture.to_str().unwrap()]).await;
    let widget = k.file("w.yaml", "apiVersion: fixture.ferrolb.io/v1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  addresses: [192.0.2.0/24]\n");
    k.ok(&["apply", "-f", &widget]).await;
    let table = k.ok(&["get", "wd"]).await;
    assert!(
        table
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .eq(["NAME", "ADDRESSES", "READY", "AGE"]),
        "{table}"
    );
    assert!(table.contains(r#"["192.0.2.0/24"]"#), "{table}");
    k.ok(&[
        "patch",
        "widget",
        "w",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#,
    ])
    .await;
    assert!(k
        .ok(&["get", "widgets", "w"])
        .await
        .lines()
        .nth(1)
        .unwrap()
        .contains("True"));
    let bad = k.file("bad.yaml", "apiVersion: fixture.ferrolb.io/v1\nkind: Widget\nmetadata:\n  name: bad\nspec:\n  addresses: [nope]\n");
    let out = k.run(&["apply", "-f", &bad]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("spec.addresses[0]"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(k
        .ok(&["describe", "widget", "w"])
        .await
        .contains("Addresses:"));
    k.ok(&["delete", "widget", "w"]).await;
    if crds.is_dir() && std::fs::read_dir(&crds).unwrap().next().is_some() {
        let out = k.ok(&["apply", "-f", crds.to_str().unwrap()]).await;
        assert!(out.contains("created"), "{out}");
    }
    drop(k.server);
}

#[tokio::test]
#[ignore = "needs kubectl"]
async fn kubectl_describe_shows_events_written_through_events_k8s_io() {
    require_kubectl("kubectl_describe_shows_events_written_through_events_k8s_io");
    let k = Kubectl::start().await;
    let f = k.file("svc.yaml", SVC);
    k.ok(&["apply", "-f", &f]).await;
    let client = k.server.client().await.unwrap();
    let svc: k8s_openapi::api::core::v1::Service = kube::Api::namespaced(client.clone(), "default")
        .get("web")
        .await
        .unwrap();
    let uid = svc.metadata.uid.clone().unwrap();
    // What a kube-rs Recorder writes (events.k8s.io/v1), plus an Event for
    // another object of the same name that describe must not show.
    let events: kube::Api<k8s_openapi::api::events::v1::Event> =
        kube::Api::namespaced(client, "default");
    for (name, kind, uid, note) in [
        ("web.1", "Service", uid.as_str(), "Assigned IP 198.51.100.7"),
        ("web.2", "Pod", "pod-uid", "not about the service"),
    ] {
        let ev = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "eventTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
            "reportingController": "ferrolb.io/controller",
            "reportingInstance": "ferrolb-controller-0",
            "action": "Allocate", "reason": "IPAllocated", "type": "Normal",
            "note": note,
            "regarding": {"apiVersion": "v1", "kind": kind, "name": "web", "namespace": "default", "uid": uid},
        }))
        .unwrap();
        events
            .create(&kube::api::PostParams::default(), &ev)
            .await
            .unwrap();
    }
    let out = k.run(&["describe", "svc", "web", "-v=6"]).await;
    let described = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{described}{log}");
    // kubectl 1.32 lists core/v1 events selected on the involved object.
    assert!(
        log.contains("/api/v1/namespaces/default/events?fieldSelector=")
            && log.contains("involvedObject.uid%3D"),
        "{log}"
    );
    let events_part = described.split("Events:").nth(1).unwrap_or("");
    assert!(
        events_part.contains("IPAllocated")
            && events_part.contains("Assigned IP 198.51.100.7")
            && events_part.contains("ferrolb.io/controller")
            && !events_part.contains("not about the service"),
        "{described}"
    );
}

fn json_of(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[tokio::test]
#[ignore = "needs kubectl"]
async fn kubectl_create_expose_and_run_make_a_namespace_deployment_service_and_pod() {
    require_kubectl("kubectl_create_expose_and_run_make_a_namespace_deployment_service_and_pod");
    let k = Kubectl::start().await;
    // `create` sends protobuf; `expose` and `run` send JSON.
    assert!(k
        .ok(&["create", "namespace", "demo"])
        .await
        .contains("namespace/demo created"));
    let ns = json_of(&k.ok(&["get", "namespace", "demo", "-o", "json"]).await);
    assert_eq!(ns["metadata"]["name"], "demo");
    assert_eq!(ns["status"]["phase"], "Active");

    assert!(k
        .ok(&["create", "deployment", "web", "--image=nginx", "-n", "demo"])
        .await
        .contains("deployment.apps/web created"));
    let deploy = json_of(
        &k.ok(&["get", "deployment", "web", "-n", "demo", "-o", "json"])
            .await,
    );
    assert_eq!(deploy["metadata"]["namespace"], "demo");
    assert_eq!(deploy["spec"]["replicas"], 1);
    assert_eq!(
        deploy["spec"]["selector"]["matchLabels"],
        serde_json::json!({"app": "web"})
    );
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "nginx");
    assert_eq!(container["image"], "nginx");

    assert!(k
        .ok(&[
            "expose",
            "deployment",
            "web",
            "--port",
            "80",
            "--type",
            "LoadBalancer",
            "-n",
            "demo"
        ])
        .await
        .contains("service/web exposed"));
    let svc = json_of(
        &k.ok(&["get", "svc", "web", "-n", "demo", "-o", "json"])
            .await,
    );
    assert_eq!(svc["metadata"]["namespace"], "demo");
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(svc["spec"]["selector"], serde_json::json!({"app": "web"}));
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);

    assert!(k
        .ok(&["run", "pod1", "--image=nginx", "-n", "demo"])
        .await
        .contains("pod/pod1 created"));
    let pod = json_of(
        &k.ok(&["get", "pod", "pod1", "-n", "demo", "-o", "json"])
            .await,
    );
    assert_eq!(pod["metadata"]["namespace"], "demo");
    assert_eq!(pod["metadata"]["labels"]["run"], "pod1");
    assert_eq!(pod["spec"]["containers"][0]["image"], "nginx");

    let table = k.ok(&["get", "svc", "-n", "demo"]).await;
    let row = table.lines().nth(1).unwrap_or("");
    assert!(
        row.starts_with("web ") && row.contains("LoadBalancer") && row.contains("80:30000/TCP"),
        "{table}"
    );
    // The same objects through the API, as ferrolb's controller reads them.
    let client = k.server.client().await.unwrap();
    let svc: k8s_openapi::api::core::v1::Service = kube::Api::namespaced(client.clone(), "demo")
        .get("web")
        .await
        .unwrap();
    assert_eq!(svc.spec.unwrap().type_.as_deref(), Some("LoadBalancer"));
    let deploy: k8s_openapi::api::apps::v1::Deployment = kube::Api::namespaced(client, "demo")
        .get("web")
        .await
        .unwrap();
    assert_eq!(deploy.spec.unwrap().replicas, Some(1));
}

#[tokio::test]
#[ignore = "needs kubectl"]
async fn kubectl_create_configmap_secret_and_service_send_protobuf_the_server_decodes() {
    require_kubectl("kubectl_create_configmap_secret_and_service_send_protobuf_the_server_decodes");
    let k = Kubectl::start().await;
    let out = k
        .run(&["create", "configmap", "c", "--from-literal=k=v", "-v=8"])
        .await;
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    // What makes this test about protobuf: kubectl sends it, asking for
    // protobuf or JSON back (the server answers JSON).
    assert!(
        log.contains("Content-Type: application/vnd.kubernetes.protobuf")
            && log.contains("Accept: application/vnd.kubernetes.protobuf,application/json"),
        "{log}"
    );
    let cm = json_of(&k.ok(&["get", "configmap", "c", "-o", "json"]).await);
    assert_eq!(cm["data"], serde_json::json!({"k": "v"}));

    k.ok(&["create", "secret", "generic", "s", "--from-literal=k=v"])
        .await;
    let secret = json_of(&k.ok(&["get", "secret", "s", "-o", "json"]).await);
    assert_eq!(secret["data"]["k"], "dg==");

    k.ok(&["create", "service", "loadbalancer", "lb", "--tcp=443:8443"])
        .await;
    let svc = json_of(&k.ok(&["get", "svc", "lb", "-o", "json"]).await);
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8443);
    assert_eq!(svc["spec"]["selector"], serde_json::json!({"app": "lb"}));
}

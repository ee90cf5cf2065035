//! The binary: --listen, --kubeconfig-out, and the /_test admin endpoints.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};

struct Server {
    child: Child,
    url: String,
    kubeconfig: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kube-test-server"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    Server {
        child,
        url,
        kubeconfig,
        _dir: dir,
    }
}

async fn client(path: &std::path::Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(path).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

async fn admin(url: &str, method: &str, path: &str, body: &str) -> u16 {
    // A raw HTTP/1.1 request keeps the test free of an HTTP client crate.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    resp.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn cm(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[tokio::test]
async fn the_binary_serves_its_kubeconfig_and_injects_faults_on_request() {
    let server = spawn();
    let api: Api<ConfigMap> = Api::namespaced(client(&server.kubeconfig).await, "default");
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    assert_eq!(
        admin(
            &server.url,
            "POST",
            "/_test/faults",
            r#"{"failRatio": 1.0, "failCode": 500}"#
        )
        .await,
        200
    );
    let err = api.get("a").await.unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 500),
        "{err:?}"
    );
    assert_eq!(admin(&server.url, "DELETE", "/_test/faults", "").await, 200);
    api.get("a").await.unwrap();
    assert_eq!(
        admin(&server.url, "POST", "/_test/drop-watches", "").await,
        200
    );
    assert_eq!(admin(&server.url, "POST", "/_test/compact", "").await, 200);
}

#[tokio::test]
async fn a_restart_through_the_admin_endpoint_keeps_state_and_address() {
    let server = spawn();
    let api: Api<ConfigMap> = Api::namespaced(client(&server.kubeconfig).await, "default");
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    assert_eq!(
        admin(&server.url, "POST", "/_test/restart?downMillis=500", "").await,
        202
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        api.get("a").await.is_err(),
        "the server is down during the restart"
    );
    let mut back = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if api.get("a").await.is_ok() {
            back = true;
            break;
        }
    }
    assert!(back, "the server came back with its objects");
}

use super::*;
use clap::Parser as _;
use prometheus_client::metrics::gauge::Gauge;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};

/// One HTTP/1.1 GET over a fresh connection: (status, headers, body).
async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut raw))
        .await
        .expect("response within 5s")
        .expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split(' ')
        .nth(1)
        .expect("status")
        .parse()
        .expect("numeric status");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

struct Running {
    addr: SocketAddr,
    ready: watch::Sender<bool>,
    gauge: Gauge,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

/// A server whose readiness follows a watch channel, as the controller's
/// follows its caches-synced signal.
async fn start() -> Running {
    let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    assert_ne!(addr.port(), 0);
    let (ready, ready_rx) = watch::channel(false);
    let (stop, stop_rx) = oneshot::channel::<()>();
    let gauge = Gauge::default();
    let mut registry = Registry::default();
    registry.register("test_pool_addresses", "Addresses", gauge.clone());
    let check = move || {
        if *ready_rx.borrow() {
            Ok(())
        } else {
            Err("not ready: caches not synced".to_owned())
        }
    };
    let task = tokio::spawn(serve_on(listener, Arc::new(registry), check, async {
        let _ = stop_rx.await;
    }));
    Running {
        addr,
        ready,
        gauge,
        stop,
        task,
    }
}

#[tokio::test]
async fn metrics_are_served_as_openmetrics_text() {
    let server = start().await;
    server.gauge.set(10);
    let (status, head, body) = get(server.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        head.contains(&format!("content-type: {OPENMETRICS_CONTENT_TYPE}")),
        "{head}"
    );
    assert!(body.contains("test_pool_addresses 10"), "{body}");
    assert!(body.contains("# EOF"), "{body}");
}

#[tokio::test]
async fn healthz_answers_ok_whatever_the_readiness() {
    let server = start().await;
    let (status, _, body) = get(server.addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    server.ready.send_replace(true);
    assert_eq!(get(server.addr, "/healthz").await.0, 200);
}

#[tokio::test]
async fn readyz_answers_200_or_503_with_the_reason_as_the_check_says() {
    let server = start().await;
    let (status, _, body) = get(server.addr, "/readyz").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "not ready: caches not synced")
    );
    server.ready.send_replace(true);
    let (status, _, body) = get(server.addr, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready"));
    server.ready.send_replace(false);
    assert_eq!(get(server.addr, "/readyz").await.0, 503);
}

#[tokio::test]
async fn unknown_paths_are_not_found() {
    let server = start().await;
    assert_eq!(get(server.addr, "/nope").await.0, 404);
}

#[tokio::test]
async fn shutdown_ends_the_server_and_frees_the_port() {
    let server = start().await;
    assert_eq!(get(server.addr, "/healthz").await.0, 200);
    server.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("server ends within 5s")
        .expect("task not panicked")
        .expect("clean shutdown");
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test]
async fn serve_reports_an_address_in_use() {
    let (_held, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let registry = Arc::new(Registry::default());
    let err = serve(addr, registry, || Ok(()), std::future::pending())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Bind { .. }), "{err}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[derive(clap::Parser, Debug)]
struct Cli {
    #[command(flatten)]
    http: HttpArgs<7472>,
}

#[test]
fn the_http_address_defaults_to_every_interface_on_the_binarys_port() {
    let cli = Cli::try_parse_from(["t"]).unwrap();
    assert_eq!(cli.http.http_addr, "0.0.0.0:7472".parse().unwrap());
    let cli = Cli::try_parse_from(["t", "--http-addr", "127.0.0.1:9000"]).unwrap();
    assert_eq!(cli.http.http_addr, "127.0.0.1:9000".parse().unwrap());
    let err = Cli::try_parse_from(["t", "--http-addr", "localhost"]).unwrap_err();
    assert!(err.to_string().contains("--http-addr"), "{err}");
}

#[test]
fn metallb_series_are_on_unless_turned_off() {
    let on = |args: &[&str]| {
        let argv = std::iter::once("t").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap().http.metallb_metrics
    };
    assert!(on(&[]));
    assert!(on(&["--metallb-metrics"]));
    assert!(on(&["--metallb-metrics=true"]));
    assert!(!on(&["--metallb-metrics=false"]));
    assert!(!on(&["--metallb-metrics=off"]));
    // `=` is required, so a following argument is never taken as the value.
    assert!(Cli::try_parse_from(["t", "--metallb-metrics", "false"]).is_err());
}

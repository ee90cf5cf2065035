//! The controller's HTTP endpoints from a test: the bound address from
//! its log, a minimal GET, and `/metrics` samples.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::{eventually, Controller};

/// Flags for a controller whose log we parse: JSON lines, no ANSI colours.
pub const JSON_LOG: &[&str] = &["--log-format", "json"];

/// The address the controller's HTTP server bound (`--http-addr
/// 127.0.0.1:0`), read from its `http listening` log line.
pub async fn http_addr(ctl: &Controller) -> SocketAddr {
    let find = || {
        ctl.log().lines().find_map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            (v["message"] == "http listening").then(|| v["addr"].as_str()?.parse().ok())?
        })
    };
    let ok = eventually(20, || async { find().is_some() }).await;
    assert!(ok, "no `http listening` line\n{}", ctl.log());
    find().expect("address")
}

/// One HTTP/1.1 GET: `(status, body)`, or `None` if the server does not
/// answer.
pub async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let request = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).await.ok()?;
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.ok()?;
        let (head, body) = raw.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .ok()
        .flatten()
}

/// The value of one sample, `series` written exactly as exposed (name and
/// labels), e.g. `ferrolb_allocation_failures_total{reason="pool_exhausted"}`.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split(' ').next()?.parse().ok()
    })
}

pub async fn metrics(addr: SocketAddr) -> String {
    match get(addr, "/metrics").await {
        Some((200, body)) => body,
        other => panic!("/metrics answered {other:?}"),
    }
}

/// Waits until `/metrics` shows `series` at `want`; panics with the page.
pub async fn wait_sample(addr: SocketAddr, series: &str, want: f64) {
    let ok = eventually(20, || async {
        sample(&metrics(addr).await, series) == Some(want)
    })
    .await;
    assert!(ok, "{series} should be {want}\n{}", metrics(addr).await);
}

/// Waits until `/metrics` shows `series` at `min` or more.
pub async fn wait_sample_at_least(addr: SocketAddr, series: &str, min: f64) {
    let ok = eventually(20, || async {
        sample(&metrics(addr).await, series).is_some_and(|v| v >= min)
    })
    .await;
    assert!(ok, "{series} should be >= {min}\n{}", metrics(addr).await);
}

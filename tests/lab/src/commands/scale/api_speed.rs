//! How fast the API test server answers with every Service in it: a list
//! of all of them, a get, a merge patch. Raw HTTP/1.0 on loopback, so the
//! times are the server's (and the transfer), not a client's decoding.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cluster::Cluster;
use crate::stats::{ms, Summary};

/// One request; the time until the whole answer was read and its size.
async fn request(
    c: &Cluster,
    method: &str,
    path: &str,
    body: Option<(&str, &str)>,
) -> anyhow::Result<(Duration, usize)> {
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: api\r\nAccept: application/json\r\n");
    if let Some((content_type, body)) = body {
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(body.map_or("", |b| b.1));
    let t = Instant::now();
    let mut s = tokio::net::TcpStream::connect(c.server().addr()).await?;
    s.write_all(head.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let took = t.elapsed();
    if !out.starts_with(b"HTTP/1.0 200") && !out.starts_with(b"HTTP/1.1 200") {
        let first = String::from_utf8_lossy(&out[..out.len().min(200)]).into_owned();
        bail!("{method} {path}: {first}");
    }
    Ok((took, out.len()))
}

/// Lists every Service three times (the fastest counts), then gets and
/// merge-patches Service `name` 50 times each.
pub(super) async fn measure(c: &Cluster, name: &str) -> anyhow::Result<Value> {
    let list = "/api/v1/namespaces/default/services";
    let mut lists = Vec::new();
    let mut bytes = 0;
    for _ in 0..3 {
        let (t, n) = request(c, "GET", list, None).await.context("listing")?;
        lists.push(t);
        bytes = n;
    }
    let one = format!("{list}/{name}");
    let (mut gets, mut patches) = (Vec::new(), Vec::new());
    for i in 0..50 {
        gets.push(request(c, "GET", &one, None).await?.0);
        let patch = json!({"metadata": {"annotations": {"ferrolb-lab/api-speed": i.to_string()}}});
        let body = patch.to_string();
        let sent = request(
            c,
            "PATCH",
            &one,
            Some(("application/merge-patch+json", &body)),
        );
        patches.push(sent.await?.0);
    }
    let gets = Summary::of(&gets).context("no gets")?;
    let patches = Summary::of(&patches).context("no patches")?;
    Ok(json!({
        "list_services_ms": ms(lists.into_iter().min().unwrap_or_default()),
        "list_bytes": bytes,
        "get_p50_ms": ms(gets.p50),
        "merge_patch_p50_ms": ms(patches.p50),
        "merge_patch_p99_ms": ms(patches.p99),
    }))
}

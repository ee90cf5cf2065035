//! `kubectl get svc` with two more columns: who announces each IP (the
//! client's neighbour entry) and who answered a request to it.

use std::net::IpAddr;
use std::time::Duration;

use super::first_port;
use crate::client::ProbeError;
use crate::cluster::Cluster;
use crate::objects;

/// One request to `ip` on the Service's first port (TCP or UDP).
async fn request(
    c: &Cluster,
    svc: &serde_json::Value,
    ip: IpAddr,
    timeout: Duration,
) -> Result<String, ProbeError> {
    match first_port(svc) {
        (port, true) => c.probe_udp(ip, port, timeout).await,
        (port, false) => c.probe(ip, port, timeout).await,
    }
}

/// `kubectl get svc` plus who announces each IP and who answered.
pub(super) async fn print_table(c: &Cluster) -> anyhow::Result<()> {
    let mut rows = vec![[
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "ANNOUNCED BY",
        "ANSWER",
    ]
    .map(String::from)];
    for svc in c.services().await? {
        let ips = objects::ingress_ips(&svc);
        let (mut by, mut answers) = (Vec::new(), Vec::new());
        for ip in &ips {
            let a = match request(c, &svc, *ip, Duration::from_millis(200)).await {
                Ok(a) => a,
                Err(e) => format!("({e})"),
            };
            answers.push(a);
            by.push(c.announced_by(*ip).unwrap_or_else(|| "?".into()));
        }
        let show = |v: Vec<String>| {
            if v.is_empty() {
                "<pending>".to_owned()
            } else {
                v.join(",")
            }
        };
        rows.push([
            svc["metadata"]["name"].as_str().unwrap_or("").to_owned(),
            svc["spec"]["type"].as_str().unwrap_or("").to_owned(),
            svc["spec"]["clusterIP"].as_str().unwrap_or("").to_owned(),
            show(ips.iter().map(|i| i.to_string()).collect()),
            objects::ports_column(&svc),
            show(by),
            show(answers),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
    Ok(())
}

//! `kubectl get svc` with three more columns: who announces each IP (the
//! client's neighbour entry), the node its ServiceL2Status record names
//! (`kubectl get servicel2statuses`) and who answered a request to it.

use std::net::IpAddr;
use std::time::Duration;

use super::first_port;
use crate::client::ProbeError;
use crate::cluster::Cluster;
use crate::{l2status, objects};

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

/// `kubectl get svc` plus who announces each IP, the node the Service's
/// record names (`<none>` without one) and who answered.
pub(super) async fn print_table(c: &Cluster) -> anyhow::Result<()> {
    let mut rows = vec![[
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "ANNOUNCED BY",
        "RECORD",
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
        let name = svc["metadata"]["name"].as_str().unwrap_or("");
        let recorded = match l2status::recorded_node(c, name).await {
            Ok(Some(node)) => node,
            Ok(None) => "<none>".to_owned(),
            Err(e) => format!("({e})"),
        };
        let show = |v: Vec<String>| {
            if v.is_empty() {
                "<pending>".to_owned()
            } else {
                v.join(",")
            }
        };
        rows.push([
            name.to_owned(),
            svc["spec"]["type"].as_str().unwrap_or("").to_owned(),
            svc["spec"]["clusterIP"].as_str().unwrap_or("").to_owned(),
            show(ips.iter().map(|i| i.to_string()).collect()),
            objects::ports_column(&svc),
            show(by),
            recorded,
            show(answers),
        ]);
    }
    let widths: Vec<usize> = (0..8)
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

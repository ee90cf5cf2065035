//! Liveness traffic (issue 14): what each node sends while nothing
//! changes, read from its namespace's `eth0` counters (`ip -s -j link`),
//! not from the speaker's metrics, so heartbeats, gossip, gratuitous
//! repeats and anything else the speaker sends all count. The TCP
//! segments the node sent meanwhile (its speaker's API watches, from
//! `ss -ti`) are reported beside them, so the rest is the speaker's
//! own traffic on the LAN.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use netlab::Host;
use serde_json::{json, Value};

use crate::cluster::Cluster;
use crate::objects;

/// One node's counters over the window.
struct NodeTraffic {
    name: String,
    packets: u64,
    bytes: u64,
    tcp_segments: Option<u64>,
}

/// What every node sent over the window.
pub(super) struct Traffic {
    services: usize,
    ips: usize,
    window: Duration,
    nodes: Vec<NodeTraffic>,
}

/// `eth0`'s transmitted packets and bytes, read inside `host`'s namespace.
fn tx_counters(host: &Host) -> anyhow::Result<(u64, u64)> {
    let out = host.exec("ip", &["-s", "-j", "link", "show", "dev", "eth0"])?;
    parse_tx(&out).with_context(|| format!("parsing `ip -s -j link show dev eth0`: {out}"))
}

/// `(tx packets, tx bytes)` from `ip -s -j link show` (pure).
fn parse_tx(json_text: &str) -> Option<(u64, u64)> {
    let v: Value = serde_json::from_str(json_text).ok()?;
    let tx = &v.get(0)?["stats64"]["tx"];
    Some((tx["packets"].as_u64()?, tx["bytes"].as_u64()?))
}

/// TCP segments sent so far per established connection in `host`'s
/// namespace (`ss -tinH`), keyed by the connection's addresses.
fn tcp_segments(host: &Host) -> Option<BTreeMap<String, u64>> {
    parse_ss(&host.exec("ss", &["-tinH"]).ok()?)
}

/// `segs_out` per connection from `ss -tinH` text (pure): a connection's
/// line, then its indented details.
fn parse_ss(text: &str) -> Option<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    let mut conn: Option<String> = None;
    for line in text.lines() {
        if line.starts_with(char::is_whitespace) {
            let segs = line
                .split_whitespace()
                .find_map(|t| t.strip_prefix("segs_out:"))
                .and_then(|v| v.parse().ok());
            if let (Some(c), Some(segs)) = (conn.take(), segs) {
                out.insert(c, segs);
            }
        } else {
            let f: Vec<&str> = line.split_whitespace().collect();
            conn = (f.len() >= 5).then(|| format!("{} {}", f[3], f[4]));
        }
    }
    Some(out)
}

/// Segments sent between two [`tcp_segments`] reads by connections open
/// at both.
fn segments_between(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> u64 {
    after
        .iter()
        .filter_map(|(k, a)| a.checked_sub(*before.get(k)?))
        .sum()
}

/// Reads every node's counters, waits `window`, reads them again.
pub(super) async fn liveness_traffic(c: &Cluster, window: Duration) -> anyhow::Result<Traffic> {
    let services = c.services().await?;
    let ips = services.iter().map(|s| objects::ingress_ips(s).len()).sum();
    let hosts: Vec<(&str, &Host)> = c.nodes.iter().map(|n| (n.name.as_str(), &n.host)).collect();
    let mut before = Vec::new();
    for (_, h) in &hosts {
        before.push((tx_counters(h)?, tcp_segments(h)));
    }
    let t0 = Instant::now();
    tokio::time::sleep(window).await;
    let mut nodes = Vec::new();
    let elapsed = t0.elapsed();
    for ((name, h), ((p0, b0), tcp0)) in hosts.iter().zip(before) {
        let (p1, b1) = tx_counters(h)?;
        let tcp1 = tcp_segments(h);
        nodes.push(NodeTraffic {
            name: (*name).to_owned(),
            packets: p1.saturating_sub(p0),
            bytes: b1.saturating_sub(b0),
            tcp_segments: tcp0.zip(tcp1).map(|(a, b)| segments_between(&a, &b)),
        });
    }
    Ok(Traffic {
        services: services.len(),
        ips,
        window: elapsed,
        nodes,
    })
}

impl Traffic {
    fn rate(&self, count: u64) -> f64 {
        let s = self.window.as_secs_f64();
        if s > 0.0 {
            count as f64 / s
        } else {
            0.0
        }
    }

    fn mean(&self, f: impl Fn(&NodeTraffic) -> u64) -> f64 {
        let n = self.nodes.len().max(1) as f64;
        self.nodes.iter().map(|x| self.rate(f(x))).sum::<f64>() / n
    }

    fn max(&self, f: impl Fn(&NodeTraffic) -> u64) -> f64 {
        self.nodes
            .iter()
            .map(|x| self.rate(f(x)))
            .fold(0.0, f64::max)
    }

    pub(super) fn to_json(&self) -> Value {
        let per_node: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "node": n.name,
                    "packets_per_s": self.rate(n.packets),
                    "bytes_per_s": self.rate(n.bytes),
                    "tcp_segments_per_s": n.tcp_segments.map(|s| self.rate(s)),
                })
            })
            .collect();
        json!({
            "nodes": self.nodes.len(),
            "services": self.services,
            "ips": self.ips,
            "window_s": self.window.as_secs_f64(),
            "packets_per_s": self.mean(|n| n.packets),
            "bytes_per_s": self.mean(|n| n.bytes),
            "max_packets_per_s": self.max(|n| n.packets),
            "max_bytes_per_s": self.max(|n| n.bytes),
            "per_node": per_node,
        })
    }

    pub(super) fn print(&self) {
        println!(
            "\nliveness traffic: {} nodes, {} Services with {} IPs, idle, each node's eth0 tx over {:.0} s",
            self.nodes.len(),
            self.services,
            self.ips,
            self.window.as_secs_f64()
        );
        println!(
            "{:<10} {:>10} {:>10} {:>14}",
            "node", "packets/s", "bytes/s", "of which TCP/s"
        );
        for n in &self.nodes {
            println!(
                "{:<10} {:>10.1} {:>10.0} {:>14}",
                n.name,
                self.rate(n.packets),
                self.rate(n.bytes),
                n.tcp_segments
                    .map_or_else(|| "-".to_owned(), |s| format!("{:.1}", self.rate(s)))
            );
        }
        println!(
            "{:<10} {:>10.1} {:>10.0}",
            "mean",
            self.mean(|n| n.packets),
            self.mean(|n| n.bytes)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_counters_come_from_stats64() {
        let text = r#"[{"ifname":"eth0","stats64":{"rx":{"bytes":9,"packets":1},"tx":{"bytes":1234,"packets":17}}}]"#;
        assert_eq!(parse_tx(text), Some((17, 1234)));
        assert_eq!(parse_tx("[]"), None);
    }

    #[test]
    fn segments_are_counted_per_connection_open_at_both_reads() {
        let before = parse_ss(
            "ESTAB 0 0 192.0.2.11:40000 192.0.2.1:6443\n\t cubic rto:204 bytes_sent:10 segs_out:5 segs_in:4\n\
             ESTAB 0 0 192.0.2.11:40002 192.0.2.1:6443\n\t cubic segs_out:7 segs_in:1\n",
        )
        .unwrap();
        let after = parse_ss(
            "ESTAB 0 0 192.0.2.11:40000 192.0.2.1:6443\n\t cubic rto:204 bytes_sent:90 segs_out:9 segs_in:8\n\
             ESTAB 0 0 192.0.2.11:40004 192.0.2.1:6443\n\t cubic segs_out:3 segs_in:1\n",
        )
        .unwrap();
        assert_eq!(before["192.0.2.11:40000 192.0.2.1:6443"], 5);
        // Only the connection open at both reads: 9 - 5.
        assert_eq!(segments_between(&before, &after), 4);
    }
}

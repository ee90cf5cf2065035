//! What the lab observes: requests from the client namespace, whose MAC
//! the client holds for an IP, the speakers' `/metrics`, and waiting for
//! IPs, answers and gossip to converge.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::bail;

use super::Cluster;
use crate::client::{ProbeError, Prober};
use crate::objects;
use crate::topology::{self, SPEAKER_HTTP_PORT};

impl Cluster {
    fn prober(&self) -> Result<&Prober, ProbeError> {
        self.prober.as_ref().ok_or(ProbeError::Gone)
    }

    /// One request from the client to `ip:port`.
    pub async fn probe(
        &self,
        ip: IpAddr,
        port: u16,
        timeout: Duration,
    ) -> Result<String, ProbeError> {
        self.prober()?
            .probe(SocketAddr::new(ip, port), timeout)
            .await
    }

    /// One UDP datagram from the client to `ip:port`; the answer.
    pub async fn probe_udp(
        &self,
        ip: IpAddr,
        port: u16,
        timeout: Duration,
    ) -> Result<String, ProbeError> {
        self.prober()?
            .probe_udp(SocketAddr::new(ip, port), timeout)
            .await
    }

    /// Requests every 10 ms until one answers; returns the answer.
    pub async fn wait_answer(
        &self,
        ip: IpAddr,
        port: u16,
        limit: Duration,
    ) -> anyhow::Result<String> {
        self.wait_answer_on(ip, port, false, limit).await
    }

    /// [`Cluster::wait_answer`] over UDP (`udp`) or TCP.
    pub async fn wait_answer_on(
        &self,
        ip: IpAddr,
        port: u16,
        udp: bool,
        limit: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + limit;
        let mut last = ProbeError::Timeout;
        while Instant::now() < deadline {
            let start = Instant::now();
            let timeout = Duration::from_millis(50);
            let answer = if udp {
                self.probe_udp(ip, port, timeout).await
            } else {
                self.probe(ip, port, timeout).await
            };
            match answer {
                Ok(a) => return Ok(a),
                Err(e) => last = e,
            }
            tokio::time::sleep_until((start + Duration::from_millis(10)).into()).await;
        }
        let dump = self.dump_hosts(&format!("no-answer-{ip}-{port}.txt"));
        bail!("no answer from {ip}:{port} within {limit:?} (last: {last}); {dump}")
    }

    /// Writes every host's addresses, links, neighbours and routes to
    /// `name` in the lab's directory (kept when a test fails) and says
    /// where, for a failure message.
    fn dump_hosts(&self, name: &str) -> String {
        let mut text = self.client.dump();
        for node in &self.nodes {
            text.push_str(&node.host.dump());
        }
        let path = self.dir().join(name);
        match std::fs::write(&path, text) {
            Ok(()) => format!("the hosts' network state is in {}", path.display()),
            Err(e) => format!(
                "writing the hosts' network state to {}: {e}",
                path.display()
            ),
        }
    }

    /// The node whose MAC the client's neighbour entry for `ip` holds.
    pub fn announced_by(&self, ip: IpAddr) -> Option<String> {
        let entry = self.client.neighbour(ip).ok()??;
        let mac = entry.lladdr?;
        self.nodes
            .iter()
            .find(|n| n.mac == mac)
            .map(|n| n.name.clone())
    }

    /// Waits until Service `name` has at least `count` ingress IPs.
    pub async fn wait_ips(
        &self,
        name: &str,
        count: usize,
        limit: Duration,
    ) -> anyhow::Result<Vec<IpAddr>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(svc) = self.service(name).await {
                let ips = objects::ingress_ips(&svc);
                if ips.len() >= count {
                    return Ok(ips);
                }
            }
            if Instant::now() > deadline {
                bail!("Service {name} got no IP within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until every running speaker sees every running speaker.
    pub async fn wait_converged(&self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let running: Vec<&str> = self
                .nodes
                .iter()
                .filter(|n| n.speaker.is_some())
                .map(|n| n.name.as_str())
                .collect();
            let want = running.len() as f64;
            let ok = running
                .iter()
                .all(|n| self.speaker_metric(n, "ferrolb_speaker_members_alive") == Some(want));
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("speakers did not converge within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A metric summed over every running speaker (`None` when one of
    /// them does not answer or lacks it).
    pub fn speakers_sum(&self, metric: &str) -> Option<f64> {
        self.nodes
            .iter()
            .filter(|n| n.speaker.is_some())
            .map(|n| self.speaker_metric(&n.name, metric))
            .sum()
    }

    /// Waits until node `name`'s (re)started speaker answers `/readyz`,
    /// every running speaker sees every running speaker, the running
    /// speakers announce `pairs` (IP, interface) pairs between them (each
    /// IP once again, as before the restart), and `name` has decided:
    /// with the hash (`--ownership hash`, or a speaker without the flag)
    /// it announces `own` of them again (the election is a function of the
    /// members, so it takes its IPs back); with sticky ownership it is out
    /// of its listening and cold-start phases (it takes nothing back).
    pub async fn wait_speaker_settled(
        &self,
        name: &str,
        own: f64,
        pairs: f64,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let ready = self.speaker_ready(name);
            let running = self.nodes.iter().filter(|n| n.speaker.is_some()).count() as f64;
            let members = self.nodes.iter().filter(|n| n.speaker.is_some()).all(|n| {
                self.speaker_metric(&n.name, "ferrolb_speaker_members_alive") == Some(running)
            });
            let announced = self.speakers_sum("ferrolb_speaker_announced_ips");
            let mine = self.speaker_metric(name, "ferrolb_speaker_announced_ips");
            let phase = |p: &str| {
                let label = format!("phase=\"{p}\"");
                self.speaker_metric_with(name, "ferrolb_speaker_ownership_phase", &label)
                    == Some(1.0)
            };
            let decided = if phase("steady") {
                true
            } else {
                // Hash placement (or a speaker without sticky ownership).
                !phase("listening") && !phase("settling") && mine == Some(own)
            };
            if ready && members && announced == Some(pairs) && decided {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{name}'s speaker did not settle within {limit:?}: ready {ready}, \
                     gossip converged {members}, announced pairs {announced:?} of {pairs}, \
                     by {name} {mine:?} of {own}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Node `name`'s speaker `/metrics` text, or `None` when it does not
    /// answer.
    fn speaker_metrics_text(&self, name: &str) -> Option<String> {
        self.speaker_get(name, "/metrics")
    }

    /// Whether node `name`'s speaker answers `/readyz` with 200.
    pub fn speaker_ready(&self, name: &str) -> bool {
        self.speaker_get(name, "/readyz")
            .is_some_and(|r| r.starts_with("HTTP/1.0 200") || r.starts_with("HTTP/1.1 200"))
    }

    /// The response (status line, headers, body) to `GET path` from node
    /// `name`'s speaker (HTTP/1.0 from inside its namespace), or `None`
    /// when it does not answer.
    fn speaker_get(&self, name: &str, path: &str) -> Option<String> {
        let request = format!("GET {path} HTTP/1.0\r\nHost: speaker\r\n\r\n");
        let node = self.node(name).ok()?;
        let addr = SocketAddr::from((topology::node_v4(node.index), SPEAKER_HTTP_PORT));
        node.host
            .run_in(move || -> std::io::Result<String> {
                use std::io::{Read, Write};
                let mut s =
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))?;
                s.set_read_timeout(Some(Duration::from_millis(500)))?;
                s.write_all(request.as_bytes())?;
                let mut out = String::new();
                s.take(1 << 20).read_to_string(&mut out)?;
                Ok(out)
            })
            .ok()?
            .ok()
    }

    /// Reads a gauge from node `name`'s speaker `/metrics`.
    pub fn speaker_metric(&self, name: &str, metric: &str) -> Option<f64> {
        let body = self.speaker_metrics_text(name)?;
        body.lines()
            .find(|l| l.starts_with(metric) && l[metric.len()..].starts_with([' ', '{']))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// The value of the sample of `metric` whose labels contain `label`
    /// (e.g. `reason="malformed"`) in node `name`'s speaker `/metrics`.
    pub fn speaker_metric_with(&self, name: &str, metric: &str, label: &str) -> Option<f64> {
        let body = self.speaker_metrics_text(name)?;
        body.lines()
            .find(|l| {
                l.starts_with(metric) && l[metric.len()..].starts_with('{') && l.contains(label)
            })
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}

//! The `ferrolb-speaker` command line: every flag also reads an
//! environment variable, grouped by concern.

use crate::membership::config::parse_duration;
use crate::membership::MembershipArgs;
use clap::{Args, Parser, ValueEnum};
use std::net::SocketAddr;
use std::time::Duration;

/// ferrolb speaker: elects one node per LoadBalancer IP and answers ARP/NDP
/// for it from that node.
#[derive(Debug, Clone, Parser)]
#[command(name = "ferrolb-speaker", version)]
pub struct Cli {
    /// Kubernetes identity and scope.
    #[command(flatten)]
    pub kube: KubeArgs,
    /// HTTP endpoints.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// Announcing.
    #[command(flatten)]
    pub announce: AnnounceArgs,
    /// Gossip membership.
    #[command(flatten)]
    pub memberlist: MembershipArgs,
}

/// Which node this is and where the configuration lives.
#[derive(Debug, Clone, Args)]
pub struct KubeArgs {
    /// This node's name (from the downward API `spec.nodeName`).
    #[arg(long, env = "NODE_NAME")]
    pub node_name: String,
    /// Namespace of the IPAddressPools and L2Advertisements.
    #[arg(long, env = "FERROLB_NAMESPACE", default_value = "ferrolb-system")]
    pub namespace: String,
    /// Announce only Services whose `spec.loadBalancerClass` is this value
    /// (the controller's `--lb-class`). Without it, only Services with no
    /// class at all, so ferrolb never answers for another implementation's
    /// Services (MetalLB's during a move).
    #[arg(long = "lb-class", env = "FERROLB_LB_CLASS", value_name = "CLASS")]
    pub lb_class: Option<String>,
}

/// The metrics and health endpoints.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "FERROLB_HTTP_ADDR", default_value = "0.0.0.0:7473")]
    pub http_addr: SocketAddr,
}

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable.
    Text,
}

/// Logging flags.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// `json` or `text`.
    #[arg(long, env = "FERROLB_LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,ferrolb_speaker=debug`.
    #[arg(long, env = "FERROLB_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

/// How and where addresses are announced.
#[derive(Debug, Clone, Args)]
pub struct AnnounceArgs {
    /// Interfaces (regular expressions) never announced on unless an
    /// L2Advertisement names them; comma-separated. Replaces the defaults.
    #[arg(
        long,
        env = "FERROLB_EXCLUDE_INTERFACES",
        value_delimiter = ',',
        default_values_t = ferrolb_core::announce::interfaces::DEFAULT_EXCLUDES.iter().map(|s| s.to_string())
    )]
    pub exclude_interfaces: Vec<String>,
    /// Re-announce owned addresses this often after the takeover burst
    /// (e.g. `60s`), for switches whose MAC tables age out; `off` by default.
    #[arg(long, env = "FERROLB_REANNOUNCE_INTERVAL", default_value = "off", value_parser = parse_optional_duration)]
    // Spelled out so clap parses `off` itself instead of treating the
    // field as an optional flag.
    pub reannounce_interval: std::option::Option<Duration>,
    /// Announcements after the first one on takeover.
    #[arg(long, env = "FERROLB_GARP_REPEATS", default_value_t = 3)]
    pub garp_repeats: u32,
    /// Time between takeover announcements (just over Linux's 1 s
    /// neighbour locktime by default).
    #[arg(long, env = "FERROLB_GARP_SPACING", default_value = "1100ms", value_parser = parse_duration)]
    pub garp_spacing: Duration,
    /// Put interfaces in promiscuous mode, for NICs or drivers that do not
    /// deliver IPv6 multicast joined from a raw socket.
    #[arg(long, env = "FERROLB_PROMISCUOUS", default_value_t = false)]
    pub promiscuous: bool,
}

/// `off` or a duration.
fn parse_optional_duration(s: &str) -> Result<Option<Duration>, String> {
    match s.trim() {
        "off" | "0" | "" => Ok(None),
        other => parse_duration(other).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_name_is_the_only_required_flag() {
        let cli = Cli::try_parse_from(["ferrolb-speaker", "--node-name", "node-a"]).unwrap();
        assert_eq!(cli.kube.node_name, "node-a");
        assert_eq!(cli.http.http_addr.to_string(), "0.0.0.0:7473");
        assert_eq!(cli.announce.reannounce_interval, None);
        assert_eq!(cli.announce.garp_spacing, Duration::from_millis(1100));
        assert_eq!(
            cli.announce.exclude_interfaces.len(),
            ferrolb_core::announce::interfaces::DEFAULT_EXCLUDES.len()
        );
        assert_eq!(cli.memberlist.port, 7946);
        assert_eq!(cli.log.log_format, LogFormat::Json, "as the controller's");
    }

    #[test]
    fn lists_and_durations_parse() {
        let cli = Cli::try_parse_from([
            "ferrolb-speaker",
            "--node-name=n",
            "--exclude-interfaces=^veth,^eth9$",
            "--reannounce-interval=30s",
            "--log-format=text",
        ])
        .unwrap();
        assert_eq!(cli.announce.exclude_interfaces, ["^veth", "^eth9$"]);
        assert_eq!(
            cli.announce.reannounce_interval,
            Some(Duration::from_secs(30))
        );
        assert_eq!(cli.log.log_format, LogFormat::Text);
    }

    #[test]
    fn every_flag_has_an_environment_variable() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        for arg in cmd.get_arguments() {
            if matches!(arg.get_id().as_str(), "help" | "version") {
                continue;
            }
            assert!(arg.get_env().is_some(), "--{} has no env", arg.get_id());
        }
    }
}

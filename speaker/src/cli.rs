//! The `ferrolb-speaker` command line: every flag also reads an
//! environment variable, grouped by concern.

use crate::membership::MembershipArgs;
use clap::{Args, Parser};
use ferrolb_runtime::duration;
pub use ferrolb_runtime::{LogArgs, LogFormat};
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
    /// Who announces each IP.
    #[command(flatten)]
    pub ownership: OwnershipArgs,
}

/// `--ownership`: how the speakers choose the node of each IP.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OwnershipMode {
    /// An IP stays on the live node announcing it while that node stays
    /// eligible; new and orphaned IPs go to the node with the fewest
    /// (docs/speaker-ownership.md). Needs gossip: with the Node-Ready
    /// fallback the speakers use `hash`.
    #[default]
    Sticky,
    /// MetalLB's placement: the owner is a pure function of the eligible
    /// nodes (sha256 of node and IP); a node that returns takes its IPs
    /// back.
    Hash,
}

/// Sticky ownership's protocol (docs/speaker-ownership.md). Set them
/// alike on every speaker.
#[derive(Debug, Clone, Args)]
pub struct OwnershipArgs {
    /// How owners are chosen: `sticky` (IPs stay put) or `hash`
    /// (MetalLB's).
    #[arg(long, env = "FERROLB_OWNERSHIP", value_enum, default_value_t = OwnershipMode::Sticky)]
    pub ownership: OwnershipMode,
    /// How often each speaker repeats its claims to every peer (a digest
    /// when unchanged), repairing lost messages.
    #[arg(long, env = "FERROLB_OWNERSHIP_REFRESH", default_value = "1s", value_parser = duration::parse)]
    pub ownership_refresh: Duration,
    /// How long a started speaker waits at most to hear every live peer's
    /// claims before deciding.
    #[arg(long, env = "FERROLB_OWNERSHIP_LISTEN", default_value = "3s", value_parser = duration::parse)]
    pub ownership_listen: Duration,
    /// After every speaker restarted, how long at most IPs wait for the
    /// node their ServiceL2Status record names.
    #[arg(long, env = "FERROLB_OWNERSHIP_SETTLE", default_value = "10s", value_parser = duration::parse)]
    pub ownership_settle: Duration,
    /// How long an IP another live node gave up is left to the node it was
    /// given to before this one takes it.
    #[arg(long, env = "FERROLB_OWNERSHIP_YIELD_GRACE", default_value = "200ms", value_parser = duration::parse)]
    pub ownership_yield_grace: Duration,
}

impl OwnershipArgs {
    /// The protocol's configuration, or why the flags are unusable.
    pub fn config(&self) -> Result<ferrolb_core::ownership::Config, String> {
        let positive = [
            ("--ownership-refresh", self.ownership_refresh),
            ("--ownership-listen", self.ownership_listen),
            ("--ownership-yield-grace", self.ownership_yield_grace),
        ];
        for (flag, d) in positive {
            if d.is_zero() {
                return Err(format!("{flag} must be more than 0"));
            }
        }
        if self.ownership_settle < self.ownership_listen {
            return Err(format!(
                "--ownership-settle ({:?}) must be at least --ownership-listen ({:?}): a cold start begins when listening ends",
                self.ownership_settle, self.ownership_listen
            ));
        }
        Ok(ferrolb_core::ownership::Config {
            mode: match self.ownership {
                OwnershipMode::Sticky => ferrolb_core::ownership::Mode::Sticky,
                OwnershipMode::Hash => ferrolb_core::ownership::Mode::Hash,
            },
            refresh: self.ownership_refresh,
            listen: self.ownership_listen,
            settle: self.ownership_settle,
            yield_grace: self.ownership_yield_grace,
        })
    }
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

/// The metrics and health endpoints, on port 7473 by default (the
/// controller has 7472).
pub type HttpArgs = ferrolb_runtime::HttpArgs<7473>;

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
    #[arg(long, env = "FERROLB_GARP_SPACING", default_value = "1100ms", value_parser = duration::parse)]
    pub garp_spacing: Duration,
    /// Put interfaces in promiscuous mode, for NICs or drivers that do not
    /// deliver IPv6 multicast joined from a raw socket.
    #[arg(long, env = "FERROLB_PROMISCUOUS", default_value_t = false)]
    pub promiscuous: bool,
    /// Let nodes labelled
    /// `node.kubernetes.io/exclude-from-external-load-balancers` announce
    /// (MetalLB's `--ignore-exclude-lb`), e.g. in a cluster of
    /// control-plane nodes only. Set it on every speaker alike: the
    /// speakers must agree on the candidates.
    #[arg(long, env = "FERROLB_IGNORE_EXCLUDE_LB", default_value_t = false)]
    pub ignore_exclude_lb: bool,
    /// On SIGTERM, keep answering each IP until its new owner's gratuitous
    /// ARP / unsolicited advertisement is seen, at most this long (`0`:
    /// stop answering at once). The default covers a new owner's first
    /// three announcements (+0, +1.1 s, +2.2 s), so one or two lost frames
    /// do not cut the handover short. The pod's
    /// `terminationGracePeriodSeconds` must exceed it (docs/speaker.md).
    #[arg(long, env = "FERROLB_SHUTDOWN_HANDOVER_TIMEOUT", default_value = "3s", value_parser = duration::parse)]
    pub shutdown_handover_timeout: Duration,
    /// Probe every owned address about this often (+/-25 %) for a device
    /// that holds it silently (an RFC 5227 ARP probe from 0.0.0.0, an NDP
    /// duplicate address detection solicitation); `off` to never probe
    /// (docs/speaker.md, "Second announcers").
    #[arg(long, env = "FERROLB_CONFLICT_PROBE_INTERVAL", default_value = "60s", value_parser = parse_optional_duration)]
    pub conflict_probe_interval: std::option::Option<Duration>,
    /// At most this many probes a second per interface; beyond
    /// `rate x interval` owned addresses a round takes longer.
    #[arg(long, env = "FERROLB_CONFLICT_PROBE_RATE", default_value_t = crate::announcer::DEFAULT_PROBE_RATE, value_parser = clap::value_parser!(u32).range(1..))]
    pub conflict_probe_rate: u32,
    /// A second announcer of an owned IP is reported once (a warning, an
    /// `AddressConflict` Event) until its MAC has not announced the IP for
    /// this long.
    #[arg(long, env = "FERROLB_CONFLICT_FORGET_AFTER", default_value = "5m", value_parser = duration::parse)]
    pub conflict_forget_after: Duration,
}

/// `off` (or `0`, or nothing) or a [`duration::parse`].
fn parse_optional_duration(s: &str) -> Result<Option<Duration>, String> {
    match s.trim() {
        "off" | "0" | "" => Ok(None),
        other => duration::parse(other).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_is_sticky_by_default_and_bad_timings_are_named() {
        let parse = |extra: &[&str]| {
            let mut args = vec!["ferrolb-speaker", "--node-name", "node-a"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args).unwrap().ownership
        };
        let own = parse(&[]);
        assert_eq!(own.ownership, OwnershipMode::Sticky);
        let config = own.config().unwrap();
        assert_eq!(config, ferrolb_core::ownership::Config::default());
        assert_eq!(
            parse(&["--ownership", "hash"]).config().unwrap().mode,
            ferrolb_core::ownership::Mode::Hash
        );
        let err = parse(&["--ownership-refresh", "0s"]).config().unwrap_err();
        assert!(err.contains("--ownership-refresh"), "{err}");
        let err = parse(&["--ownership-settle", "1s"]).config().unwrap_err();
        assert!(err.contains("--ownership-settle"), "{err}");
        assert!(Cli::try_parse_from([
            "ferrolb-speaker",
            "--node-name",
            "a",
            "--ownership",
            "random"
        ])
        .is_err());
    }

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
        assert!(
            !cli.announce.ignore_exclude_lb,
            "the exclusion label is honoured by default, as in MetalLB"
        );
        assert_eq!(
            cli.announce.shutdown_handover_timeout,
            Duration::from_secs(3)
        );
        assert_eq!(
            cli.announce.conflict_probe_interval,
            Some(Duration::from_secs(60)),
            "probing is on by default"
        );
        assert_eq!(cli.announce.conflict_probe_rate, 20);
        assert_eq!(cli.announce.conflict_forget_after, Duration::from_secs(300));
    }

    #[test]
    fn probing_can_be_turned_off_and_its_rate_is_at_least_one() {
        let cli = Cli::try_parse_from([
            "ferrolb-speaker",
            "--node-name=n",
            "--conflict-probe-interval=off",
            "--conflict-probe-rate=5",
            "--conflict-forget-after=30s",
        ])
        .unwrap();
        assert_eq!(cli.announce.conflict_probe_interval, None);
        assert_eq!(cli.announce.conflict_probe_rate, 5);
        assert_eq!(cli.announce.conflict_forget_after, Duration::from_secs(30));
        assert!(Cli::try_parse_from([
            "ferrolb-speaker",
            "--node-name=n",
            "--conflict-probe-rate=0"
        ])
        .is_err());
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

    /// The spellings the lab, deploy/ and docs/ use, unchanged since the
    /// logging, HTTP and duration flags moved into ferrolb-runtime.
    #[test]
    fn every_flag_keeps_its_spelling() {
        let cli = Cli::try_parse_from([
            "ferrolb-speaker",
            "--node-name",
            "node-a",
            "--namespace",
            "ferrolb-system",
            "--lb-class",
            "ferrolb.io/l2",
            "--http-addr",
            "10.0.0.1:7473",
            "--log-format",
            "text",
            "--log-level",
            "info,ferrolb_speaker=debug",
            "--exclude-interfaces",
            "^veth",
            "--reannounce-interval",
            "1m30s",
            "--garp-repeats",
            "5",
            "--garp-spacing",
            "1.5s",
            "--promiscuous",
            "--ignore-exclude-lb",
            "--shutdown-handover-timeout",
            "1m",
            "--conflict-probe-interval",
            "30s",
            "--conflict-probe-rate",
            "10",
            "--conflict-forget-after",
            "10m",
            "--memberlist-bind-addr",
            "10.0.0.1",
            "--memberlist-port",
            "7947",
            "--memberlist-advertise-addr",
            "10.0.0.1",
            "--memberlist-secret-file",
            "/etc/ferrolb/memberlist/secretkey",
            "--memberlist-secret-poll",
            "2s",
            "--memberlist-secret-rotation-grace",
            "3m",
            "--memberlist-probe-period",
            "200ms",
            "--memberlist-probe-rtt",
            "100ms",
            "--memberlist-suspect-timeout",
            "500ms",
        ])
        .unwrap();
        assert_eq!(cli.http.http_addr.to_string(), "10.0.0.1:7473");
        assert_eq!(cli.log.log_format, LogFormat::Text);
        assert_eq!(cli.log.log_level, "info,ferrolb_speaker=debug");
        let a = &cli.announce;
        assert_eq!(a.reannounce_interval, Some(Duration::from_secs(90)));
        assert_eq!(a.garp_spacing, Duration::from_millis(1500));
        assert!(a.promiscuous);
        assert!(a.ignore_exclude_lb);
        assert_eq!(a.shutdown_handover_timeout, Duration::from_secs(60));
        assert_eq!(a.conflict_probe_interval, Some(Duration::from_secs(30)));
        assert_eq!(a.conflict_probe_rate, 10);
        assert_eq!(a.conflict_forget_after, Duration::from_secs(600));
        let m = &cli.memberlist;
        assert_eq!(m.secret_poll, Duration::from_secs(2));
        assert_eq!(m.secret_rotation_grace, Duration::from_secs(180));
        assert_eq!(m.probe_period, Duration::from_millis(200));
        assert_eq!(m.probe_rtt, Duration::from_millis(100));
        assert_eq!(m.suspect_timeout, Duration::from_millis(500));
        for off in ["off", "0", ""] {
            let cli = Cli::try_parse_from(["s", "--node-name=n", "--reannounce-interval", off]);
            assert_eq!(cli.unwrap().announce.reannounce_interval, None, "{off:?}");
        }
    }

    /// The environment variables deploy/ sets, read off the command
    /// definition rather than set, as tests share one process environment.
    #[test]
    fn every_flag_keeps_its_environment_variable() {
        use clap::CommandFactory;
        let expected = [
            ("node-name", "NODE_NAME"),
            ("namespace", "FERROLB_NAMESPACE"),
            ("lb-class", "FERROLB_LB_CLASS"),
            ("http-addr", "FERROLB_HTTP_ADDR"),
            ("metallb-metrics", "FERROLB_METALLB_METRICS"),
            ("log-format", "FERROLB_LOG_FORMAT"),
            ("log-level", "FERROLB_LOG_LEVEL"),
            ("exclude-interfaces", "FERROLB_EXCLUDE_INTERFACES"),
            ("reannounce-interval", "FERROLB_REANNOUNCE_INTERVAL"),
            ("garp-repeats", "FERROLB_GARP_REPEATS"),
            ("garp-spacing", "FERROLB_GARP_SPACING"),
            ("promiscuous", "FERROLB_PROMISCUOUS"),
            ("ignore-exclude-lb", "FERROLB_IGNORE_EXCLUDE_LB"),
            (
                "shutdown-handover-timeout",
                "FERROLB_SHUTDOWN_HANDOVER_TIMEOUT",
            ),
            ("conflict-probe-interval", "FERROLB_CONFLICT_PROBE_INTERVAL"),
            ("conflict-probe-rate", "FERROLB_CONFLICT_PROBE_RATE"),
            ("conflict-forget-after", "FERROLB_CONFLICT_FORGET_AFTER"),
            ("memberlist-bind-addr", "FERROLB_MEMBERLIST_BIND_ADDR"),
            ("memberlist-port", "FERROLB_MEMBERLIST_PORT"),
            (
                "memberlist-advertise-addr",
                "FERROLB_MEMBERLIST_ADVERTISE_ADDR",
            ),
            ("memberlist-secret-file", "FERROLB_MEMBERLIST_SECRET_FILE"),
            ("memberlist-secret-poll", "FERROLB_MEMBERLIST_SECRET_POLL"),
            (
                "memberlist-secret-rotation-grace",
                "FERROLB_MEMBERLIST_SECRET_ROTATION_GRACE",
            ),
            ("memberlist-probe-period", "FERROLB_MEMBERLIST_PROBE_PERIOD"),
            ("memberlist-probe-rtt", "FERROLB_MEMBERLIST_PROBE_RTT"),
            (
                "memberlist-suspect-timeout",
                "FERROLB_MEMBERLIST_SUSPECT_TIMEOUT",
            ),
            ("heartbeat-interval", "FERROLB_HEARTBEAT_INTERVAL"),
            ("heartbeat-multiplier", "FERROLB_HEARTBEAT_MULTIPLIER"),
            ("heartbeat-watchers", "FERROLB_HEARTBEAT_WATCHERS"),
            ("ownership", "FERROLB_OWNERSHIP"),
            ("ownership-refresh", "FERROLB_OWNERSHIP_REFRESH"),
            ("ownership-listen", "FERROLB_OWNERSHIP_LISTEN"),
            ("ownership-settle", "FERROLB_OWNERSHIP_SETTLE"),
            ("ownership-yield-grace", "FERROLB_OWNERSHIP_YIELD_GRACE"),
        ];
        let cmd = Cli::command();
        let actual: Vec<(String, String)> = cmd
            .get_arguments()
            .filter_map(|a| {
                let env = a.get_env()?.to_str()?.to_owned();
                Some((a.get_long()?.to_owned(), env))
            })
            .collect();
        let mut expected: Vec<(String, String)> = expected
            .iter()
            .map(|(f, e)| (f.to_string(), e.to_string()))
            .collect();
        let mut actual = actual;
        expected.sort();
        actual.sort();
        assert_eq!(actual, expected);
    }

    /// The DaemonSet gives a stopping speaker time for the leave (5 s at
    /// worst: the guard around leaving gossip), the handover bound and
    /// closing the sockets, so the kubelet never kills a handover short.
    #[test]
    fn the_daemonset_grace_period_outlasts_leave_and_the_handover_bound() {
        const DAEMONSET: &str = include_str!("../../deploy/base/speaker.yaml");
        let grace: u64 = DAEMONSET
            .lines()
            .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("terminationGracePeriodSeconds in deploy/base/speaker.yaml");
        assert!(
            !DAEMONSET.contains("FERROLB_SHUTDOWN_HANDOVER_TIMEOUT"),
            "a bound set in the DaemonSet needs this test to read it"
        );
        let cli = Cli::try_parse_from(["ferrolb-speaker", "--node-name", "n"]).unwrap();
        let need = cli.announce.shutdown_handover_timeout
            + Duration::from_secs(5)
            + Duration::from_millis(200);
        assert!(
            Duration::from_secs(grace) > need,
            "terminationGracePeriodSeconds {grace} does not cover {need:?}"
        );
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

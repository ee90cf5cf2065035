//! Command-line flags, each also settable from the environment.
//!
//! Flags are grouped per concern and flattened into [`Args`], so each shell
//! module takes only its own group (`lease::Leadership::start(client,
//! &args.lease)`). Every flag has an `env =` twin because the controller runs
//! in a Pod, where env (and the downward API for `POD_NAME` and
//! `POD_NAMESPACE`) is the natural way to configure it.

use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use ferrolb_runtime::duration;
pub use ferrolb_runtime::{LogArgs, LogFormat};

/// All flags of `ferrolb-controller`.
#[derive(clap::Parser, Debug)]
#[command(name = "ferrolb-controller", version, about)]
pub struct Args {
    /// Which Services this controller handles and how it queues their status.
    #[command(flatten)]
    pub controller: ControllerArgs,
    /// Leader election.
    #[command(flatten)]
    pub lease: LeaseArgs,
    /// The speakers' gossip Secret.
    #[command(flatten)]
    pub memberlist: MemberlistArgs,
    /// Metrics and health endpoints.
    #[command(flatten)]
    pub http: HttpArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// Which Services are ours, and the status writer's queue.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
#[command(next_help_heading = "Controller")]
pub struct ControllerArgs {
    /// Handle only Services whose `spec.loadBalancerClass` is this value.
    /// Without it, only Services with no class at all are handled, so
    /// ferrolb can run next to another load-balancer implementation.
    #[arg(long = "lb-class", env = "FERROLB_LB_CLASS", value_name = "CLASS")]
    pub lb_class: Option<String>,

    /// Capacity of the bounded queue feeding the single status writer.
    #[arg(
        long = "status-queue-capacity",
        env = "FERROLB_STATUS_QUEUE_CAPACITY",
        default_value_t = 1024,
        value_name = "N",
        value_parser = RangedU64ValueParser::<usize>::new().range(1..)
    )]
    pub status_queue: usize,

    /// Status writes (one per object: a Service, a pool, an advertisement)
    /// in flight at once. Writes for one object never overlap.
    #[arg(
        long = "status-writes-in-flight",
        env = "FERROLB_STATUS_WRITES_IN_FLIGHT",
        default_value_t = 32,
        value_name = "N",
        value_parser = RangedU64ValueParser::<usize>::new().range(1..=1024)
    )]
    pub writes_in_flight: usize,
}

/// Leader election on a `coordination.k8s.io/v1` Lease.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
#[command(next_help_heading = "Leader election")]
pub struct LeaseArgs {
    /// Name of the Lease that replicas contend for.
    #[arg(
        long = "lease-name",
        env = "FERROLB_LEASE_NAME",
        default_value = "ferrolb-controller",
        value_name = "NAME"
    )]
    pub lease_name: String,

    /// Namespace of the Lease; set from the Pod's own namespace via the
    /// downward API.
    #[arg(
        long = "lease-namespace",
        env = "POD_NAMESPACE",
        default_value = "ferrolb-system",
        value_name = "NAMESPACE"
    )]
    pub lease_namespace: String,

    /// This replica's identity in the Lease; set from the Pod name via the
    /// downward API. Defaults to the host name.
    #[arg(long = "identity", env = "POD_NAME", default_value_t = default_identity(), value_name = "ID")]
    pub identity: String,

    /// How long a Lease stays valid without renewal, e.g. `15s` or `1m`.
    /// The holder renews every third of it; a standby takes over after it.
    /// Whole seconds, at least 2 s, because the Lease stores seconds.
    #[arg(
        long = "lease-duration",
        env = "FERROLB_LEASE_DURATION",
        default_value = "15s",
        value_name = "DURATION",
        value_parser = parse_lease_duration
    )]
    pub lease_duration: Duration,
}

/// The speakers' memberlist (gossip) Secret, which the leader creates in
/// its namespace when it is missing.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
#[command(next_help_heading = "Memberlist secret")]
pub struct MemberlistArgs {
    /// Name of the Secret holding the speakers' gossip key (key
    /// `secretkey`), created with a random key in the controller's
    /// namespace when missing and never modified. Empty: never create it.
    #[arg(
        long = "memberlist-secret-name",
        env = "FERROLB_MEMBERLIST_SECRET_NAME",
        default_value = "ferrolb-memberlist",
        value_name = "NAME"
    )]
    pub secret_name: String,

    /// How often the leader checks that the Secret exists and is usable,
    /// e.g. `60s`; a deleted Secret is created again within this time.
    #[arg(
        long = "memberlist-secret-check-interval",
        env = "FERROLB_MEMBERLIST_SECRET_CHECK_INTERVAL",
        default_value = "60s",
        value_name = "DURATION",
        value_parser = duration::parse_positive
    )]
    pub check_interval: Duration,
}

/// The metrics and health HTTP server, on MetalLB's metrics port 7472 so
/// existing scrape configs keep working.
pub type HttpArgs = ferrolb_runtime::HttpArgs<7472>;

/// Parses `--lease-duration`: a positive [`duration::parse`] of whole
/// seconds, at least 2 s (the holder renews every third, in whole seconds).
///
/// ```
/// # use std::time::Duration;
/// use ferrolb_controller::cli::parse_lease_duration;
/// assert_eq!(parse_lease_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert!(parse_lease_duration("15").is_err());
/// assert!(parse_lease_duration("1500ms").is_err());
/// ```
pub fn parse_lease_duration(s: &str) -> Result<Duration, String> {
    let d = duration::parse_positive(s)?;
    if d.subsec_nanos() != 0 {
        return Err(format!(
            "`{s}`: the lease duration must be a whole number of seconds (a Lease stores seconds)"
        ));
    }
    if d < Duration::from_secs(2) {
        return Err(format!("`{s}`: the lease duration must be at least 2s"));
    }
    Ok(d)
}

/// The host name, used as the Lease identity when `POD_NAME` is not set.
///
/// Read from procfs (or `/etc/hostname`) rather than a libc call, because the
/// crate forbids `unsafe` and pulls no extra dependency for this.
pub fn default_identity() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| format!("ferrolb-controller-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::sync::Mutex;

    /// Env vars are process-wide: tests that read or set them take turns.
    static ENV: Mutex<()> = Mutex::new(());

    /// Every env var the flags read, as deploy/ and the docs name them.
    const EVERY_ENV_VAR: &[(&str, &str)] = &[
        ("FERROLB_LB_CLASS", "ferrolb.io/l2"),
        ("FERROLB_STATUS_QUEUE_CAPACITY", "8"),
        ("FERROLB_STATUS_WRITES_IN_FLIGHT", "4"),
        ("FERROLB_LEASE_NAME", "lb"),
        ("POD_NAMESPACE", "kube-system"),
        ("POD_NAME", "ferrolb-controller-7d9f-abcde"),
        ("FERROLB_LEASE_DURATION", "1m"),
        ("FERROLB_HTTP_ADDR", "127.0.0.1:9000"),
        ("FERROLB_METALLB_METRICS", "false"),
        ("FERROLB_LOG_FORMAT", "text"),
        ("FERROLB_LOG_LEVEL", "debug,kube=warn"),
        ("FERROLB_MEMBERLIST_SECRET_NAME", "gossip-key"),
        ("FERROLB_MEMBERLIST_SECRET_CHECK_INTERVAL", "5s"),
    ];

    /// Runs `f` with only `vars` set among the flags' env vars.
    fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
        let _guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
        for (v, _) in EVERY_ENV_VAR {
            std::env::remove_var(v);
        }
        for (k, v) in vars {
            std::env::set_var(k, v);
        }
        let out = f();
        for (k, _) in vars {
            std::env::remove_var(k);
        }
        out
    }

    #[test]
    fn the_list_above_is_every_env_var_the_flags_read() {
        use clap::CommandFactory as _;
        let mut declared: Vec<String> = Args::command()
            .get_arguments()
            .filter_map(|a| Some(a.get_env()?.to_str()?.to_owned()))
            .collect();
        let mut listed: Vec<String> = EVERY_ENV_VAR.iter().map(|(k, _)| k.to_string()).collect();
        declared.sort();
        listed.sort();
        assert_eq!(declared, listed);
    }

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("ferrolb-controller").chain(argv.iter().copied()))
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let args = with_env(&[], || parse(&[])).unwrap();
        assert_eq!(args.controller.lb_class, None);
        assert_eq!(args.controller.status_queue, 1024);
        assert_eq!(args.controller.writes_in_flight, 32);
        assert_eq!(args.lease.lease_name, "ferrolb-controller");
        assert_eq!(args.lease.lease_namespace, "ferrolb-system");
        assert_eq!(args.lease.identity, default_identity());
        assert!(!args.lease.identity.is_empty());
        assert_eq!(args.lease.lease_duration, Duration::from_secs(15));
        assert_eq!(args.http.http_addr, "0.0.0.0:7472".parse().unwrap());
        assert!(args.http.metallb_metrics);
        assert_eq!(args.log.log_format, LogFormat::Json);
        assert_eq!(args.log.log_level, "info");
        assert_eq!(args.memberlist.secret_name, "ferrolb-memberlist");
        assert_eq!(args.memberlist.check_interval, Duration::from_secs(60));
    }

    #[test]
    fn an_empty_memberlist_secret_name_disables_creation_from_flag_or_env() {
        let args = with_env(&[], || parse(&["--memberlist-secret-name", ""])).unwrap();
        assert_eq!(args.memberlist.secret_name, "");
        let args = with_env(&[("FERROLB_MEMBERLIST_SECRET_NAME", "")], || parse(&[])).unwrap();
        assert_eq!(args.memberlist.secret_name, "");
    }

    #[test]
    fn every_flag_can_be_set_from_the_environment() {
        let args = with_env(EVERY_ENV_VAR, || parse(&[])).unwrap();
        assert_eq!(args.controller.lb_class.as_deref(), Some("ferrolb.io/l2"));
        assert_eq!(args.controller.status_queue, 8);
        assert_eq!(args.controller.writes_in_flight, 4);
        assert_eq!(args.lease.lease_name, "lb");
        assert_eq!(args.lease.lease_namespace, "kube-system");
        assert_eq!(args.lease.identity, "ferrolb-controller-7d9f-abcde");
        assert_eq!(args.lease.lease_duration, Duration::from_secs(60));
        assert_eq!(args.http.http_addr, "127.0.0.1:9000".parse().unwrap());
        assert!(!args.http.metallb_metrics);
        assert_eq!(args.log.log_format, LogFormat::Text);
        assert_eq!(args.log.log_level, "debug,kube=warn");
        assert_eq!(args.memberlist.secret_name, "gossip-key");
        assert_eq!(args.memberlist.check_interval, Duration::from_secs(5));
    }

    /// The spellings the lab, deploy/ and docs/ use, unchanged since the
    /// logging, HTTP and duration flags moved into ferrolb-runtime: each
    /// flag gives what its env var gives in the test above.
    #[test]
    fn every_flag_keeps_its_spelling() {
        let from_flags = with_env(&[], || {
            parse(&[
                "--lb-class",
                "ferrolb.io/l2",
                "--status-queue-capacity=8",
                "--status-writes-in-flight=4",
                "--lease-name",
                "lb",
                "--lease-namespace",
                "kube-system",
                "--identity",
                "ferrolb-controller-7d9f-abcde",
                "--lease-duration",
                "PT1M",
                "--http-addr",
                "127.0.0.1:9000",
                "--metallb-metrics=false",
                "--log-format",
                "text",
                "--log-level",
                "debug,kube=warn",
                "--memberlist-secret-name",
                "gossip-key",
                "--memberlist-secret-check-interval",
                "5000ms",
            ])
        })
        .unwrap();
        let from_env = with_env(EVERY_ENV_VAR, || parse(&[])).unwrap();
        assert_eq!(from_flags.controller, from_env.controller);
        assert_eq!(from_flags.lease, from_env.lease);
        assert_eq!(from_flags.memberlist, from_env.memberlist);
        assert_eq!(from_flags.http, from_env.http);
        assert_eq!(from_flags.log, from_env.log);
    }

    #[test]
    fn flags_override_the_environment() {
        let args = with_env(&[("FERROLB_LEASE_NAME", "from-env")], || {
            parse(&["--lease-name", "from-flag", "--lease-duration", "30s"])
        })
        .unwrap();
        assert_eq!(args.lease.lease_name, "from-flag");
        assert_eq!(args.lease.lease_duration, Duration::from_secs(30));
    }

    #[test]
    fn bad_values_name_the_flag_and_say_what_is_expected() {
        let cases: &[(&[&str], &str)] = &[
            (&["--status-queue-capacity", "0"], "--status-queue-capacity"),
            (
                &["--status-writes-in-flight", "0"],
                "--status-writes-in-flight",
            ),
            (&["--status-writes-in-flight", "2000"], "1..=1024"),
            (&["--lease-duration", "15"], "like `15s`"),
            (&["--lease-duration", "1500ms"], "whole number of seconds"),
            (&["--lease-duration", "1s"], "at least 2s"),
            (&["--lease-duration=-5s"], "greater than zero"),
            (&["--http-addr", "localhost"], "--http-addr"),
            (&["--log-format", "xml"], "possible values: text, json"),
            (&["--log-level", "info,[bad"], "not a log filter"),
        ];
        for (argv, needle) in cases {
            let err = with_env(&[], || parse(argv)).unwrap_err().to_string();
            assert!(err.contains(needle), "{argv:?}: {err}");
        }
    }

    #[test]
    fn bad_values_from_the_environment_are_refused_too() {
        let err = with_env(&[("FERROLB_LEASE_DURATION", "soon")], || parse(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--lease-duration"), "{err}");
        assert!(err.contains("`soon`"), "{err}");
    }
}

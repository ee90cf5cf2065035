//! Membership configuration: flags, validation, and the foca tuning.
//!
//! # Why these timings
//! foca's LAN preset (memberlist's `DefaultLANConfig`) probes every 1 s and
//! waits 4 s or more before declaring a suspect down: detection takes
//! several seconds. ferrolb needs a failover under 1 s, so [`Timing::lan`]
//! scales everything down for a switched LAN where round trips are well
//! under a millisecond:
//!
//! | parameter            | default | foca LAN |
//! |----------------------|---------|----------|
//! | probe period         | 150 ms  | 1 s      |
//! | probe RTT            | 75 ms   | 500 ms   |
//! | suspect → down       | 250 ms  | ≥ 4 s    |
//! | indirect probes      | 3       | 3        |
//! | periodic gossip      | 100 ms  | 200 ms   |
//!
//! A dead member is first probed within about one period (with N members,
//! each probes one per period), the probe fails at the end of that period,
//! and it is declared down `suspect_timeout` later: roughly
//! 150 + 150 + 250 ms, then gossiped within a gossip period. Measured on
//! loopback with three members (debug build): 452-608 ms, median 506 ms;
//! the 200/100/300 ms profile measured 537-819 ms, too close to the 1 s
//! failover budget. See `docs/speaker-membership.md`.
//!
//! The price is false positives: a speaker that cannot answer a ping within
//! 75 ms, nor through three other members, and cannot refute the suspicion
//! within 250 ms (a node starved of CPU, a saturated link) is declared down
//! and its IPs move. It rejoins at once with a renewed identity, so the
//! cost is one extra failover, not an outage. On a noisy network raise
//! `--memberlist-probe-rtt` and `--memberlist-suspect-timeout` first.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use ferrolb_runtime::duration;

use super::auth::{Secret, OVERHEAD};
use super::heartbeat::HeartbeatConfig;
use super::{Error, Result};

/// The memberlist port MetalLB uses too.
pub const DEFAULT_PORT: u16 = 7946;

/// How long a rotated key is accepted before it is used for sealing, and
/// the old key accepted after that: longer than kubelet's skew in updating
/// a Secret volume on different nodes (a minute or more). See
/// [`super::keyring`].
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(180);

/// How often the secret file is read for changes.
pub const DEFAULT_SECRET_POLL: Duration = Duration::from_secs(5);

/// Largest UDP datagram we send or accept, envelope included: below a
/// 1500-byte Ethernet MTU with room for IP/UDP headers (RFC 8085).
pub const MAX_DATAGRAM: usize = 1400;

/// SWIM timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// How often each member probes one other member.
    pub probe_period: Duration,
    /// How long to wait for a direct ack before asking others to probe.
    pub probe_rtt: Duration,
    /// How long a suspect member counts as alive before it is declared down.
    pub suspect_timeout: Duration,
    /// How many members are asked to probe indirectly.
    pub indirect_probes: usize,
    /// How often updates are gossiped to a few random members besides the
    /// probes themselves.
    pub gossip_period: Duration,
    /// How often seeds that are not (yet) members are announced to again, so
    /// a speaker that started first still finds the others.
    pub seed_retry: Duration,
    /// How long [`Membership::leave`](super::Membership::leave) keeps
    /// re-sending the leave before closing the socket.
    pub leave_linger: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self::lan()
    }
}

impl Timing {
    /// The default: SWIM as membership and backstop behind the heartbeats
    /// (which find a dead speaker in ~100 ms), tolerant of a speaker whose
    /// runtime stalls for hundreds of milliseconds (a CPU quota): 1 s
    /// probe period, 500 ms probe RTT, 3 s suspicion (a dead speaker is
    /// dropped by SWIM alone in ~4-5 s). See
    /// `docs/speaker-membership.md`.
    pub fn lan() -> Self {
        Self {
            probe_period: Duration::from_secs(1),
            probe_rtt: Duration::from_millis(500),
            suspect_timeout: Duration::from_secs(3),
            ..Self::fast()
        }
    }

    /// Sub-second detection by SWIM alone (150 ms / 75 ms / 250 ms), for
    /// `--heartbeat-interval 0`: faster, and a speaker whose runtime
    /// stalls for ~0.3 s is declared down.
    pub fn fast() -> Self {
        Self {
            probe_period: Duration::from_millis(150),
            probe_rtt: Duration::from_millis(75),
            suspect_timeout: Duration::from_millis(250),
            indirect_probes: 3,
            gossip_period: Duration::from_millis(100),
            seed_retry: Duration::from_secs(1),
            leave_linger: Duration::from_millis(60),
        }
    }

    /// Checks the values and builds foca's configuration from them.
    pub fn to_foca(&self) -> Result<foca::Config> {
        let nonzero = [
            ("--memberlist-probe-period", self.probe_period),
            ("--memberlist-probe-rtt", self.probe_rtt),
            ("--memberlist-suspect-timeout", self.suspect_timeout),
            ("gossip period", self.gossip_period),
            ("seed retry", self.seed_retry),
        ];
        if let Some((name, _)) = nonzero.iter().find(|(_, d)| d.is_zero()) {
            return Err(invalid(format!("{name} must be greater than zero")));
        }
        if self.probe_rtt >= self.probe_period {
            return Err(invalid(format!(
                "--memberlist-probe-rtt ({:?}) must be shorter than --memberlist-probe-period ({:?})",
                self.probe_rtt, self.probe_period
            )));
        }
        let indirect = NonZeroUsize::new(self.indirect_probes)
            .ok_or_else(|| invalid("at least one indirect probe is needed".into()))?;

        // Start from the LAN preset for what we do not tune: dissemination
        // count for a cluster of a few dozen nodes, periodic announces that
        // heal partitions, telling down members they are down (so they
        // renew), and remembering down identities for 24 h (so replays
        // cannot resurrect them).
        let mut config = foca::Config::new_lan(NonZeroU32::new(32).expect("non-zero"));
        config.probe_period = self.probe_period;
        config.probe_rtt = self.probe_rtt;
        config.suspect_to_down_after = self.suspect_timeout;
        config.num_indirect_probes = indirect;
        config.max_packet_size =
            NonZeroUsize::new(MAX_DATAGRAM - OVERHEAD).expect("datagram larger than envelope");
        config.periodic_gossip = Some(foca::PeriodicParams {
            frequency: self.gossip_period,
            num_members: NonZeroUsize::new(3).expect("non-zero"),
        });
        Ok(config)
    }
}

fn invalid(reason: String) -> Error {
    Error::InvalidTiming { reason }
}

/// `--heartbeat-interval`'s default: 20 ms.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(20);
/// `--heartbeat-multiplier`'s default: 5 (100 ms detection).
pub const DEFAULT_HEARTBEAT_MULTIPLIER: u8 = 5;
/// `--heartbeat-watchers`'s default: 3.
pub const DEFAULT_HEARTBEAT_WATCHERS: usize = 3;

fn check_heartbeat(hb: &HeartbeatConfig) -> Result<()> {
    let min = hb.limits.min_interval;
    if hb.interval < min {
        return Err(invalid(format!(
            "--heartbeat-interval {:?} is below {min:?}; peers would take it as {min:?} and \
             declare this speaker down while it is alive (0 turns heartbeats off)",
            hb.interval
        )));
    }
    if hb.multiplier < 2 {
        return Err(invalid(
            "--heartbeat-multiplier must be at least 2: with 1, a single late heartbeat \
             declares a live speaker down"
                .into(),
        ));
    }
    if hb.watchers == 0 {
        return Err(invalid(
            "--heartbeat-watchers must be at least 1 (0 would watch nobody; \
             use --heartbeat-interval 0 to turn heartbeats off)"
                .into(),
        ));
    }
    let detect = hb.detect_time();
    if detect >= hb.limits.max_detect {
        return Err(invalid(format!(
            "--heartbeat-interval x --heartbeat-multiplier is {detect:?}, at least the \
             {:?} peers accept; SWIM alone detects faster than that",
            hb.limits.max_detect
        )));
    }
    Ok(())
}

/// Everything [`Membership::start`](super::Membership::start) needs.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// This node's name, as in `metadata.name`.
    pub node_name: String,
    /// Where to bind the UDP socket.
    pub bind: SocketAddr,
    /// The address peers reach us on, if it differs from `bind` (always,
    /// when binding `0.0.0.0`). A zero port means "the bound port".
    pub advertise: Option<SocketAddr>,
    /// The shared secret.
    pub secret: Secret,
    /// How long a new key is accepted before sealing with it, and the old
    /// one after ([`super::keyring`]).
    pub rotation_grace: Duration,
    /// SWIM timing.
    pub timing: Timing,
    /// Other speakers to announce to at start; more can be given later with
    /// [`Membership::set_seeds`](super::Membership::set_seeds).
    pub seeds: Vec<SocketAddr>,
    /// Fast liveness ([`super::heartbeat`]); `None`: SWIM alone.
    pub heartbeat: Option<HeartbeatConfig>,
}

impl MembershipConfig {
    /// A configuration with the default timing and no seeds.
    pub fn new(node_name: impl Into<String>, bind: SocketAddr, secret: Secret) -> Self {
        Self {
            node_name: node_name.into(),
            bind,
            advertise: None,
            secret,
            rotation_grace: DEFAULT_ROTATION_GRACE,
            timing: Timing::lan(),
            seeds: Vec::new(),
            heartbeat: Some(HeartbeatConfig::new(
                DEFAULT_HEARTBEAT_INTERVAL,
                DEFAULT_HEARTBEAT_MULTIPLIER,
                DEFAULT_HEARTBEAT_WATCHERS,
            )),
        }
    }

    /// Checks what can be checked before binding.
    pub fn validate(&self) -> Result<foca::Config> {
        if self.node_name.is_empty() {
            return Err(Error::EmptyNodeName);
        }
        let advertised_ip = self.advertise.map_or(self.bind.ip(), |a| a.ip());
        if advertised_ip.is_unspecified() {
            return Err(Error::AdvertiseUnspecified { bind: self.bind });
        }
        if let Some(hb) = &self.heartbeat {
            check_heartbeat(hb)?;
        }
        if self.rotation_grace.is_zero() {
            return Err(invalid(
                "--memberlist-secret-rotation-grace must be greater than zero; \
                 switching keys at once would partition the speakers"
                    .into(),
            ));
        }
        self.timing.to_foca()
    }

    /// The address to put in our identity once bound to `local`.
    pub fn advertised(&self, local: SocketAddr) -> SocketAddr {
        match self.advertise {
            Some(a) if a.port() == 0 => SocketAddr::new(a.ip(), local.port()),
            Some(a) => a,
            None => local,
        }
    }
}

/// The membership flags, to `#[command(flatten)]` into the speaker's CLI.
#[derive(Debug, Clone, clap::Args)]
pub struct MembershipArgs {
    /// Address to bind the memberlist UDP socket to.
    #[arg(long = "memberlist-bind-addr", env = "FERROLB_MEMBERLIST_BIND_ADDR", default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub bind_addr: IpAddr,
    /// UDP port for memberlist gossip.
    #[arg(long = "memberlist-port", env = "FERROLB_MEMBERLIST_PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Address peers reach this speaker on (the node IP); required when the
    /// bind address is unspecified.
    #[arg(
        long = "memberlist-advertise-addr",
        env = "FERROLB_MEMBERLIST_ADVERTISE_ADDR"
    )]
    pub advertise_addr: Option<IpAddr>,
    /// File holding the shared gossip secret (at least 16 bytes), mounted
    /// from a Kubernetes Secret. Gossip starts when it holds a valid key,
    /// and follows changes to it without a restart.
    #[arg(
        long = "memberlist-secret-file",
        env = "FERROLB_MEMBERLIST_SECRET_FILE"
    )]
    pub secret_file: Option<PathBuf>,
    /// How often the secret file is read for changes, e.g. `5s`.
    #[arg(long = "memberlist-secret-poll", env = "FERROLB_MEMBERLIST_SECRET_POLL", default_value = "5s", value_parser = duration::parse_positive)]
    pub secret_poll: Duration,
    /// How long a changed key is accepted before it is used for sealing,
    /// and the old key accepted after that, e.g. `3m`. Must exceed the
    /// time kubelet takes to update the Secret on every node.
    #[arg(long = "memberlist-secret-rotation-grace", env = "FERROLB_MEMBERLIST_SECRET_ROTATION_GRACE", default_value = "3m", value_parser = duration::parse_positive)]
    pub secret_rotation_grace: Duration,
    /// How often each speaker probes another, e.g. `1s` (`150ms` with
    /// heartbeats off).
    #[arg(long = "memberlist-probe-period", env = "FERROLB_MEMBERLIST_PROBE_PERIOD", default_value = "1s", value_parser = duration::parse)]
    pub probe_period: Duration,
    /// How long to wait for a direct probe answer, e.g. `75ms`.
    #[arg(long = "memberlist-probe-rtt", env = "FERROLB_MEMBERLIST_PROBE_RTT", default_value = "500ms", value_parser = duration::parse)]
    pub probe_rtt: Duration,
    /// How long a suspected speaker keeps counting as alive, e.g. `3s`.
    #[arg(long = "memberlist-suspect-timeout", env = "FERROLB_MEMBERLIST_SUSPECT_TIMEOUT", default_value = "3s", value_parser = duration::parse)]
    pub suspect_timeout: Duration,
    /// How often this speaker sends a heartbeat to each of its watchers,
    /// e.g. `20ms`; `0` turns fast liveness off (SWIM alone, ~0.5 s).
    #[arg(long = "heartbeat-interval", env = "FERROLB_HEARTBEAT_INTERVAL", default_value = "20ms", value_parser = duration::parse)]
    pub heartbeat_interval: Duration,
    /// Missed heartbeats before a watcher declares this speaker down:
    /// detection takes interval x multiplier.
    #[arg(long = "heartbeat-multiplier", env = "FERROLB_HEARTBEAT_MULTIPLIER", default_value_t = DEFAULT_HEARTBEAT_MULTIPLIER)]
    pub heartbeat_multiplier: u8,
    /// How many speakers watch each speaker's heartbeats (two must agree
    /// before a speaker counts as down).
    #[arg(long = "heartbeat-watchers", env = "FERROLB_HEARTBEAT_WATCHERS", default_value_t = DEFAULT_HEARTBEAT_WATCHERS)]
    pub heartbeat_watchers: usize,
}

impl MembershipArgs {
    /// Reads the secret and validates everything: the error is what the
    /// daemon logs before falling back to Node conditions.
    pub fn to_config(&self, node_name: &str, seeds: Vec<SocketAddr>) -> Result<MembershipConfig> {
        let path = self.secret_file.as_deref().ok_or(Error::NoSecretFile)?;
        let secret = Secret::from_file(path)?;
        self.with_secret(node_name, seeds, secret)
    }

    /// The configuration with a secret already read (by the file watcher).
    pub fn with_secret(
        &self,
        node_name: &str,
        seeds: Vec<SocketAddr>,
        secret: Secret,
    ) -> Result<MembershipConfig> {
        let config = MembershipConfig {
            node_name: node_name.to_owned(),
            bind: SocketAddr::new(self.bind_addr, self.port),
            advertise: self.advertise_addr.map(|ip| SocketAddr::new(ip, self.port)),
            secret,
            rotation_grace: self.secret_rotation_grace,
            timing: Timing {
                probe_period: self.probe_period,
                probe_rtt: self.probe_rtt,
                suspect_timeout: self.suspect_timeout,
                ..Timing::lan()
            },
            seeds,
            heartbeat: (!self.heartbeat_interval.is_zero()).then(|| {
                HeartbeatConfig::new(
                    self.heartbeat_interval,
                    self.heartbeat_multiplier,
                    self.heartbeat_watchers,
                )
            }),
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        membership: MembershipArgs,
    }

    fn secret() -> Secret {
        Secret::from_bytes(b"0123456789abcdef", "test").unwrap()
    }

    #[test]
    fn the_default_timing_is_a_tolerant_backstop_well_inside_the_heartbeats_accusations() {
        let c = Timing::lan().to_foca().unwrap();
        assert_eq!(c.probe_period, Duration::from_secs(1));
        assert_eq!(c.probe_rtt, Duration::from_millis(500));
        assert_eq!(c.suspect_to_down_after, Duration::from_secs(3));
        // SWIM must have dropped a dead speaker before its watchers stop
        // accusing it, or its IPs would come back to it for a while.
        let accuse_for =
            super::super::HeartbeatConfig::new(Duration::from_millis(20), 5, 3).accuse_for;
        assert!(c.probe_period * 2 + c.suspect_to_down_after < accuse_for / 2);
    }

    #[test]
    fn the_fast_timing_aims_at_sub_second_detection() {
        let c = Timing::fast().to_foca().unwrap();
        assert_eq!(c.probe_period, Duration::from_millis(150));
        assert_eq!(c.probe_rtt, Duration::from_millis(75));
        assert_eq!(c.suspect_to_down_after, Duration::from_millis(250));
        assert_eq!(c.num_indirect_probes.get(), 3);
        assert!(c.probe_period * 2 + c.suspect_to_down_after < Duration::from_secs(1));
        assert!(c.notify_down_members);
        assert_eq!(c.max_packet_size.get() + OVERHEAD, MAX_DATAGRAM);
    }

    #[test]
    fn a_probe_rtt_not_below_the_period_is_refused() {
        let t = Timing {
            probe_rtt: Duration::from_millis(150),
            ..Timing::fast()
        };
        let err = t.to_foca().unwrap_err().to_string();
        assert!(err.contains("--memberlist-probe-rtt"), "{err}");
    }

    #[test]
    fn zero_durations_and_zero_indirect_probes_are_refused() {
        let t = Timing {
            suspect_timeout: Duration::ZERO,
            ..Timing::lan()
        };
        assert!(t
            .to_foca()
            .unwrap_err()
            .to_string()
            .contains("suspect-timeout"));
        let t = Timing {
            indirect_probes: 0,
            ..Timing::lan()
        };
        assert!(t.to_foca().is_err());
    }

    #[test]
    fn binding_everywhere_needs_an_advertise_address() {
        let mut c = MembershipConfig::new("node-a", "0.0.0.0:7946".parse().unwrap(), secret());
        assert!(matches!(
            c.validate(),
            Err(Error::AdvertiseUnspecified { .. })
        ));
        c.advertise = Some("192.0.2.1:7946".parse().unwrap());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn an_empty_node_name_is_refused() {
        let c = MembershipConfig::new("", "127.0.0.1:0".parse().unwrap(), secret());
        assert!(matches!(c.validate(), Err(Error::EmptyNodeName)));
    }

    #[test]
    fn the_advertised_port_follows_the_bound_one_when_left_zero() {
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let mut c = MembershipConfig::new("n", "127.0.0.1:0".parse().unwrap(), secret());
        assert_eq!(c.advertised(local), local);
        c.advertise = Some("192.0.2.1:0".parse().unwrap());
        assert_eq!(c.advertised(local), "192.0.2.1:40000".parse().unwrap());
        c.advertise = Some("192.0.2.1:7946".parse().unwrap());
        assert_eq!(c.advertised(local), "192.0.2.1:7946".parse().unwrap());
    }

    #[test]
    fn flags_default_to_port_7946_on_all_addresses() {
        let cli = Cli::try_parse_from(["speaker"]).unwrap();
        assert_eq!(cli.membership.port, 7946);
        assert!(cli.membership.bind_addr.is_unspecified());
        // The flags' defaults are `Timing::lan()`.
        let lan = Timing::lan();
        assert_eq!(cli.membership.probe_period, lan.probe_period);
        assert_eq!(cli.membership.probe_rtt, lan.probe_rtt);
        assert_eq!(cli.membership.suspect_timeout, lan.suspect_timeout);
        assert_eq!(
            cli.membership.heartbeat_interval,
            DEFAULT_HEARTBEAT_INTERVAL
        );
        assert_eq!(cli.membership.secret_poll, DEFAULT_SECRET_POLL);
        assert_eq!(cli.membership.secret_rotation_grace, DEFAULT_ROTATION_GRACE);
    }

    #[test]
    fn a_zero_rotation_grace_is_refused() {
        let mut c = MembershipConfig::new("n", "127.0.0.1:0".parse().unwrap(), secret());
        c.rotation_grace = Duration::ZERO;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("--memberlist-secret-rotation-grace"), "{err}");
        assert!(Cli::try_parse_from(["s", "--memberlist-secret-rotation-grace", "0s"]).is_err());
    }

    #[test]
    fn without_a_secret_file_gossip_does_not_start() {
        let cli =
            Cli::try_parse_from(["speaker", "--memberlist-advertise-addr", "192.0.2.1"]).unwrap();
        let err = cli.membership.to_config("node-a", vec![]).unwrap_err();
        assert!(matches!(err, Error::NoSecretFile));
    }

    #[test]
    fn flags_with_a_good_secret_file_make_a_valid_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "0123456789abcdef0123\n").unwrap();
        let cli = Cli::try_parse_from([
            "speaker",
            "--memberlist-advertise-addr",
            "192.0.2.1",
            "--memberlist-secret-file",
            path.to_str().unwrap(),
            "--memberlist-suspect-timeout",
            "500ms",
        ])
        .unwrap();
        let config = cli.membership.to_config("node-a", vec![]).unwrap();
        assert_eq!(config.advertise, Some("192.0.2.1:7946".parse().unwrap()));
        assert_eq!(config.timing.suspect_timeout, Duration::from_millis(500));
    }
}

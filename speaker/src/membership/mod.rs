//! Which speakers are alive: the `live` input of the [election](ferrolb_core::election).
//!
//! Speakers find out about each other by SWIM gossip ([foca]) over UDP,
//! port 7946 by default. Every datagram is sealed with HMAC-SHA256 under a
//! shared secret ([`auth`]), so a host on the LAN without the secret can
//! neither join nor declare a speaker dead. With the defaults in
//! [`Timing::lan`] a dead speaker is dropped by the others in well under a
//! second, and a speaker that stops gracefully ([`Membership::leave`]) is
//! dropped as soon as its leave message arrives.
//!
//! While gossip cannot run (no secret yet, a short secret, the port is
//! taken), the daemon says why and falls back to [`LivenessSource::NodeConditions`]:
//! a node counts as alive iff its Node `Ready` condition is `True`
//! ([`live_from_node_conditions`]). That is slower (the node lifecycle
//! controller takes tens of seconds) but safe. There is deliberately no mode in
//! which every node counts as alive: that would make every speaker announce
//! every IP.
//!
//! The secret file is polled ([`secret_file`]): gossip starts when a valid
//! key appears, and a changed key is rolled out through a [`KeyRing`] that
//! accepts old and new keys for a grace period, so speakers that see the
//! change at different times never stop understanding each other.
//!
//! The pure parts ([`auth`], [`keyring`], [`identity`], [`config`],
//! [`roster`], [`timers`], [`fallback`], and [`secret_file::classify`]) hold
//! the decisions; [`run`] is the thin I/O shell that owns the socket and the
//! [`foca::Foca`] instance.

pub mod auth;
pub mod bytes;
pub mod claims;
pub mod config;
pub mod fallback;
pub mod heartbeat;
pub mod identity;
pub mod keyring;
pub mod roster;
pub mod run;
pub mod secret_file;
pub mod timers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use auth::{Secret, MIN_SECRET_LEN};
pub use config::{MembershipArgs, MembershipConfig, Timing, DEFAULT_PORT};
pub use fallback::{live_from_node_conditions, LivenessSource};
pub use heartbeat::{HeartbeatConfig, HeartbeatStats};
pub use identity::SpeakerId;
pub use keyring::KeyRing;
pub use roster::Roster;
pub use run::{LivePeers, Membership, Peer, Stats};
pub use secret_file::{SecretProblem, SecretState};

/// Why gossip membership cannot start or stopped working. The daemon logs it
/// and falls back to [`LivenessSource::NodeConditions`] until it can.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `--memberlist-secret-file` was given.
    #[error("no memberlist secret file is configured (--memberlist-secret-file); gossip would be unauthenticated")]
    NoSecretFile,
    /// The secret file could not be read.
    #[error("cannot read the memberlist secret file {path}: {source}")]
    SecretRead {
        /// The file that was read.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The secret is shorter than [`MIN_SECRET_LEN`] bytes (after trimming a
    /// trailing newline).
    #[error(
        "the memberlist secret from {origin} is {len} bytes long; at least {min} are required"
    )]
    SecretTooShort {
        /// Where the secret came from (a file name).
        origin: String,
        /// Its length in bytes.
        len: usize,
        /// The minimum length.
        min: usize,
    },
    /// A timing parameter is out of range.
    #[error("invalid memberlist timing: {reason}")]
    InvalidTiming {
        /// What is wrong, naming the flag.
        reason: String,
    },
    /// The node name is empty.
    #[error("the node name is empty; it identifies this speaker in gossip")]
    EmptyNodeName,
    /// The address peers should use to reach us is unspecified (`0.0.0.0`)
    /// and none was given.
    #[error("bind address {bind} is unspecified and no advertise address was given; peers could not reach this speaker")]
    AdvertiseUnspecified {
        /// The bind address.
        bind: SocketAddr,
    },
    /// The UDP socket could not be bound.
    #[error("cannot bind the memberlist UDP socket on {addr}: {source}")]
    Bind {
        /// The address we tried.
        addr: SocketAddr,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The heartbeat thread could not be started.
    #[error("cannot start the heartbeat thread: {0}")]
    Thread(std::io::Error),
    /// The membership task has already stopped.
    #[error("the membership task has stopped")]
    Stopped,
    /// Leaving did not finish in time.
    #[error("leaving the cluster did not finish within {0:?}")]
    LeaveTimeout(Duration),
}

impl Error {
    /// A short CamelCase name for metric labels and Event reasons.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoSecretFile => "NoSecretFile",
            Self::SecretRead { .. } => "SecretUnreadable",
            Self::SecretTooShort { .. } => "SecretTooShort",
            Self::InvalidTiming { .. } => "InvalidTiming",
            Self::EmptyNodeName => "EmptyNodeName",
            Self::AdvertiseUnspecified { .. } => "AdvertiseUnspecified",
            Self::Bind { .. } => "BindFailed",
            Self::Thread(_) => "ThreadFailed",
            Self::Stopped => "Stopped",
            Self::LeaveTimeout(_) => "LeaveTimeout",
        }
    }
}

/// Result with the membership [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

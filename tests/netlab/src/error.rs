//! The one error type of netlab.

use std::{io, path::PathBuf};

/// Everything that can go wrong while building or driving a lab.
///
/// Command failures carry the program, its arguments and its stderr so a test
/// failure in CI says what was run, not only that something failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command ran and exited unsuccessfully.
    #[error("`{program} {}` failed ({status}): {stderr}", args.join(" "))]
    Command {
        /// Program that was run, e.g. `ip`.
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// Exit status as printed by std (`exit status: 2`, `signal: 9`).
        status: String,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// A command could not be started at all (not installed, not executable).
    #[error("cannot run `{program} {}`: {source}", args.join(" "))]
    Spawn {
        /// Program that was run.
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// Why it could not start.
        source: io::Error,
    },
    /// The first namespace of a lab could not be created: usually not root,
    /// or root without `CAP_SYS_ADMIN` (an unprivileged container).
    #[error("cannot create network namespaces (needs root with CAP_SYS_ADMIN): {0}")]
    NamespacesUnavailable(#[source] Box<Error>),
    /// A thread could not enter a namespace.
    #[error("cannot enter network namespace {ns}: {source}")]
    Setns {
        /// Namespace name.
        ns: String,
        /// Errno from setns(2).
        source: nix::Error,
    },
    /// A file under /proc or /run/netns could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A name (prefix, host, segment, interface) that would not make a valid
    /// namespace or interface name, or that is already taken.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An address that is not `IP/prefix`.
    #[error("invalid address {addr:?}: {source}")]
    InvalidAddr {
        /// The rejected text.
        addr: String,
        /// The parse error.
        source: ipnet::AddrParseError,
    },
    /// The kernel did not reach an expected state in time.
    #[error("timed out after {waited:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: std::time::Duration,
    },
    /// `ip -j` printed something we could not understand.
    #[error("cannot parse the output of `{command}`: {reason}")]
    Parse {
        /// The command whose output it was.
        command: String,
        /// What did not parse.
        reason: String,
    },
}

/// Result with netlab's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

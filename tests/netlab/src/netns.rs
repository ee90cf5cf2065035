//! Namespace lifecycle: names, creation, deletion and the sweep of leftovers.
//!
//! Every namespace a lab creates is called `<prefix>-<pid>-<n>-<role>`, where
//! `pid` is the test process that owns it. A process that is SIGKILLed (or
//! aborts) runs no destructor; the pid in the name is what lets the next run
//! recognise its namespaces as orphans.

use std::path::Path;

use nix::{
    sys::signal::{kill, Signal},
    unistd::Pid,
};

use crate::{cmd::ip, ns::NETNS_DIR, Error, Result};

/// Names of all network namespaces, as `ip netns list` shows them.
pub fn list_namespaces() -> Result<Vec<String>> {
    // Without /run/netns, `ip netns list` prints nothing; no need to run it.
    if !Path::new(NETNS_DIR).exists() {
        return Ok(Vec::new());
    }
    let out = ip(&["netns", "list"])?;
    // Lines look like `flb-1-0-sw (id: 3)` or just `flb-1-0-sw`.
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// The pid encoded in a namespace name `<prefix>-<pid>-<n>-<role>`, or `None`
/// when the name does not follow that scheme (so it is never ours to delete).
pub fn owner_pid(prefix: &str, name: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let mut parts = rest.splitn(3, '-');
    let pid = parts.next()?;
    let n = parts.next()?;
    let role = parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) || role.is_empty() {
        return None;
    }
    pid.parse().ok()
}

fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Deletes namespaces named `<prefix>-<pid>-...` whose pid no longer exists,
/// after killing any process still inside them. Returns the names removed.
///
/// Best effort per namespace: another process sweeping at the same moment may
/// win the race, which is fine. A reused pid keeps an orphan alive until that
/// process exits too; the namespaces are only names then, without traffic.
pub fn sweep_stale(prefix: &str) -> Result<Vec<String>> {
    let me = std::process::id();
    let mut removed = Vec::new();
    for name in list_namespaces()? {
        let Some(pid) = owner_pid(prefix, &name) else {
            continue;
        };
        if pid == me || pid_alive(pid) {
            continue;
        }
        if delete(&name).is_ok() {
            removed.push(name);
        }
    }
    Ok(removed)
}

/// Creates namespace `name`.
pub(crate) fn add(name: &str) -> Result<()> {
    ip(&["netns", "add", name]).map(drop)
}

/// Kills every process inside `name`, then deletes it. Deleting the
/// namespace also destroys its veth ends (and thus their peers).
pub(crate) fn delete(name: &str) -> Result<()> {
    kill_processes(name);
    ip(&["netns", "delete", name]).map(drop)
}

/// SIGKILLs the processes `ip netns pids` reports in `name`. A process left
/// running would keep the namespace (and its addresses) alive after the
/// name is gone.
fn kill_processes(name: &str) {
    let Ok(out) = ip(&["netns", "pids", name]) else {
        return;
    };
    let me = std::process::id();
    for pid in out.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
        // Never ourselves: `ip netns pids` looks at the main thread only,
        // but be explicit about it.
        if pid == me {
            continue;
        }
        if let Ok(raw) = i32::try_from(pid) {
            let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
        }
    }
}

/// Checks a host name: it becomes part of a namespace name and of the
/// switch-side veth name `v-<name>`, which must fit IFNAMSIZ (15 bytes).
pub(crate) fn validate_host_name(name: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.len() > MAX_HOST_NAME {
        return Err(invalid("must be 1 to 12 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid("only a-z, 0-9 and '-' are allowed"));
    }
    if name.starts_with('-') {
        return Err(invalid("must not start with '-'"));
    }
    if name == SWITCH_ROLE {
        return Err(invalid("\"sw\" is the switch namespace"));
    }
    Ok(())
}

/// Longest host name: `v-` + 12 = 14 bytes, under IFNAMSIZ - 1.
pub(crate) const MAX_HOST_NAME: usize = 12;

/// Role suffix of the switch namespace.
pub(crate) const SWITCH_ROLE: &str = "sw";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_is_read_from_names_of_our_scheme() {
        assert_eq!(owner_pid("flb", "flb-1234-0-sw"), Some(1234));
        assert_eq!(owner_pid("flb", "flb-1234-17-node-a"), Some(1234));
    }

    #[test]
    fn names_of_other_schemes_have_no_owner() {
        for name in [
            "flb",
            "flb-1234",
            "flb-1234-0",
            "flb-1234-0-",
            "flb-x-0-sw",
            "flbx-1-0-sw",
            "other-1-0-sw",
            "flb-1-a-sw",
        ] {
            assert_eq!(owner_pid("flb", name), None, "{name}");
        }
    }

    #[test]
    fn host_names_that_fit_an_interface_name_are_accepted() {
        for name in ["a", "node-1", "client", "abcdefghijkl"] {
            validate_host_name(name).unwrap();
            assert!(format!("v-{name}").len() <= 15);
        }
    }

    #[test]
    fn host_names_that_are_long_odd_or_reserved_are_rejected() {
        for name in ["", "abcdefghijklm", "Node", "node_1", "a.b", "-a", "sw"] {
            assert!(validate_host_name(name).is_err(), "{name:?} accepted");
        }
    }
}

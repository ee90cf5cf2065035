//! What a test needs beyond cargo (root, a tool such as kubectl or runc, the
//! built image), checked when it runs.
//!
//! Such tests carry `#[ignore = "needs root"]` (or `needs kubectl`, ...), so
//! the test runner reports them as ignored wherever nobody asked for them.
//! `scripts/test` asks for them (`cargo nextest run --run-ignored all`) when
//! it runs as root and always under `CI=true`. Once asked, a test whose need
//! is not met fails with the reason: no test passes by skipping.

use std::fmt;

/// Why a process with effective uid `euid` cannot run a root-only test, or
/// `None` when it can. Pure, so the rule is tested without being root.
pub fn root_problem(euid: u32) -> Option<String> {
    (euid != 0).then(|| format!("needs root (uid {euid}) to create network namespaces"))
}

/// Fails the test unless this process runs as root.
///
/// ```no_run
/// #[test]
/// #[ignore = "needs root"]
/// fn arp_reply_is_counted() {
///     netlab::require_root("arp_reply_is_counted");
///     // ...
/// }
/// ```
pub fn require_root(test: &str) {
    if let Some(problem) = root_problem(nix::unistd::geteuid().as_raw()) {
        unavailable(test, problem);
    }
}

/// Fails the test unless `program args...` runs and exits 0 (for example
/// `kubectl version --client`, `runc --version`).
pub fn require_tool(test: &str, program: &str, args: &[&str]) {
    match std::process::Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => unavailable(
            test,
            format!(
                "`{program} {}` exited with {}: {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ),
        Err(e) => unavailable(
            test,
            format!("needs `{program}` on PATH ({e}; apt-get install {program})"),
        ),
    }
}

/// Fails the test because something it needs is missing; the message names
/// the test, the reason and how such tests are run.
pub fn unavailable(test: &str, reason: impl fmt::Display) -> ! {
    panic!("{}", unavailable_message(test, &reason.to_string()))
}

fn unavailable_message(test: &str, reason: &str) -> String {
    format!(
        "{test} cannot run here: {reason}. It is #[ignore]d so that it only runs when asked \
         (`cargo nextest run --run-ignored all`, which scripts/test does as root and in CI)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_may_run_root_only_tests() {
        assert_eq!(root_problem(0), None);
    }

    #[test]
    fn any_other_user_gets_a_reason_naming_the_uid() {
        let reason = root_problem(1000).expect("uid 1000 is not root");
        assert!(reason.contains("needs root"), "{reason}");
        assert!(reason.contains("uid 1000"), "{reason}");
    }

    #[test]
    fn the_failure_names_the_test_the_reason_and_how_to_run_it() {
        let message = unavailable_message("arp_in_namespaces", "needs root (uid 1000)");
        assert!(message.starts_with("arp_in_namespaces cannot run here: needs root (uid 1000)"));
        assert!(message.contains("--run-ignored all"), "{message}");
    }

    #[test]
    #[should_panic(expected = "needs `ferrolb-no-such-tool` on PATH")]
    fn a_missing_tool_fails_the_test() {
        require_tool("t", "ferrolb-no-such-tool", &["--version"]);
    }

    #[test]
    #[should_panic(expected = "`false ` exited with")]
    fn a_tool_that_fails_its_probe_fails_the_test() {
        require_tool("t", "false", &[]);
    }
}

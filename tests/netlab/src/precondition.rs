//! The skip-or-fail rule for tests that need root.
//!
//! Outside CI a test that cannot run says so and returns; under `CI=true` the
//! same situation is a failure, so a CI run never passes by skipping.

use std::fmt;

/// What a root-only test should do, given who runs it and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Precondition {
    /// Root: go ahead.
    Run,
    /// Not root and not CI: print the reason and return.
    Skip(String),
    /// Not root under CI: fail with the reason.
    Fail(String),
}

/// Decides from the effective uid and whether `CI=true`. Pure, so the rule is
/// tested without being root or touching the environment.
pub fn decide(euid: u32, ci: bool) -> Precondition {
    if euid == 0 {
        return Precondition::Run;
    }
    let reason = format!("needs root (uid {euid}) to create network namespaces");
    if ci {
        Precondition::Fail(format!("{reason}, and CI=true forbids skipping"))
    } else {
        Precondition::Skip(reason)
    }
}

/// Whether the `CI` variable value means "running in CI" (`true` or `1`).
pub fn is_ci(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A test that was skipped, and why. Returned so the caller can `return`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a skipped test must return"]
pub struct Skip {
    /// The test's name.
    pub test: String,
    /// Why it cannot run here.
    pub reason: String,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SKIPPED {}: {}", self.test, self.reason)
    }
}

/// Applies [`decide`] to this process: `None` means run; `Some(skip)` means
/// the skip was printed and the test should return. Panics under `CI=true`.
///
/// ```no_run
/// if netlab::require_root("arp_reply_is_counted").is_some() {
///     return;
/// }
/// ```
pub fn require_root(test: &str) -> Option<Skip> {
    let ci = is_ci(std::env::var("CI").ok().as_deref());
    match decide(nix::unistd::geteuid().as_raw(), ci) {
        Precondition::Run => None,
        Precondition::Skip(reason) => Some(skip(test, reason)),
        Precondition::Fail(reason) => panic!("{test}: {reason}"),
    }
}

/// Reports an environment problem found after the root check (e.g. root
/// without `CAP_SYS_ADMIN`): prints and returns a skip, or panics under CI.
pub fn skip_or_fail(test: &str, reason: impl fmt::Display) -> Skip {
    if is_ci(std::env::var("CI").ok().as_deref()) {
        panic!("{test}: {reason} (CI=true forbids skipping)");
    }
    skip(test, reason.to_string())
}

fn skip(test: &str, reason: String) -> Skip {
    let skip = Skip {
        test: test.to_owned(),
        reason,
    };
    eprintln!("{skip}");
    skip
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_runs_in_and_out_of_ci() {
        assert_eq!(decide(0, false), Precondition::Run);
        assert_eq!(decide(0, true), Precondition::Run);
    }

    #[test]
    fn non_root_outside_ci_skips_and_names_the_uid() {
        match decide(1000, false) {
            Precondition::Skip(reason) => assert!(reason.contains("uid 1000"), "{reason}"),
            other => panic!("expected a skip, got {other:?}"),
        }
    }

    #[test]
    fn non_root_under_ci_fails_instead_of_skipping() {
        match decide(1000, true) {
            Precondition::Fail(reason) => {
                assert!(reason.contains("needs root"), "{reason}");
                assert!(reason.contains("CI=true"), "{reason}");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn only_true_or_one_means_ci() {
        assert!(is_ci(Some("true")));
        assert!(is_ci(Some("TRUE")));
        assert!(is_ci(Some("1")));
        assert!(!is_ci(Some("false")));
        assert!(!is_ci(Some("")));
        assert!(!is_ci(None));
    }

    #[test]
    fn a_skip_prints_as_skipped_test_and_reason() {
        let s = Skip {
            test: "t".into(),
            reason: "r".into(),
        };
        assert_eq!(s.to_string(), "SKIPPED t: r");
    }
}

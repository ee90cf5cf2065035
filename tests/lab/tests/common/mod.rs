//! What every end-to-end test file shares: starting a lab, or skipping.

use ferrolb_lab::cluster::{Bins, Cluster, Options};

/// Keeps labs one at a time under `cargo test` (threads in one process);
/// under nextest the `lab` test group in `.config/nextest.toml` does it.
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts a lab whose namespaces carry `prefix`, or returns `None` after
/// printing why the test is skipped (not root outside CI; under `CI=true`
/// `netlab::require_root` fails the test instead).
pub async fn lab(
    test: &str,
    prefix: &str,
) -> Option<(tokio::sync::MutexGuard<'static, ()>, Cluster)> {
    let opts = Options {
        prefix: prefix.into(),
        ..Options::default()
    };
    lab_with(test, opts).await
}

/// [`lab`] with options of the test's choosing.
pub async fn lab_with(
    test: &str,
    opts: Options,
) -> Option<(tokio::sync::MutexGuard<'static, ()>, Cluster)> {
    if netlab::require_root(test).is_some() {
        return None;
    }
    let guard = LOCK.lock().await;
    let bins = Bins::locate().expect("speaker and controller binaries");
    let cluster = Cluster::start(opts, bins).await.expect("lab starts");
    Some((guard, cluster))
}

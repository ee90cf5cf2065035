//! The secret file, as the speaker sees it over time.
//!
//! The Secret is mounted by an `optional: true` volume: the file does not
//! exist until the Secret does (the controller creates it), and kubelet
//! replaces it by swapping a `..data` symlink, so the file is polled and
//! its *content* compared; inode and mtime say nothing.
//!
//! [`classify`] is pure: what a read returned -> [`SecretState`].
//! [`watch_file`] polls and publishes the state whenever it changes.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn, Instrument};

use super::auth::{trim_secret, Secret, MIN_SECRET_LEN};

/// How to fix a broken secret, appended to every problem.
const FIX: &str = "fix the Secret mounted there (by default ferrolb-memberlist, key secretkey): \
                   delete it and the controller creates a new random one";

/// Why the secret file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretProblem {
    /// It exists but cannot be read (permissions, a directory, I/O).
    #[error("cannot read the memberlist secret file {path}: {error}; {FIX}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: String,
    },
    /// It holds nothing but newlines.
    #[error("the memberlist secret file {path} is empty; {FIX}")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// It holds fewer than [`MIN_SECRET_LEN`] bytes.
    #[error(
        "the memberlist secret file {path} holds {len} bytes; at least {MIN_SECRET_LEN} are required; {FIX}"
    )]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Its length after trimming trailing newlines.
        len: usize,
    },
}

impl SecretProblem {
    /// A short snake_case name for metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unreadable { .. } => "unreadable",
            Self::Empty { .. } => "empty",
            Self::TooShort { .. } => "too_short",
        }
    }
}

/// The secret file's state.
#[derive(Debug, Clone)]
pub enum SecretState {
    /// No `--memberlist-secret-file`: gossip never starts.
    NotConfigured,
    /// The file does not exist (yet): the optional volume is empty until
    /// the Secret exists. Not an error: the controller creates the Secret.
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file exists and is unusable: loud, and `/readyz` fails.
    Invalid(SecretProblem),
    /// A usable key.
    Valid(Secret),
}

impl SecretState {
    /// The names used as the `state` metric label, in a fixed order.
    pub const STATES: [&'static str; 6] = [
        "ok",
        "not_configured",
        "missing",
        "unreadable",
        "empty",
        "too_short",
    ];

    /// This state's name among [`SecretState::STATES`].
    pub fn name(&self) -> &'static str {
        match self {
            Self::NotConfigured => "not_configured",
            Self::Missing { .. } => "missing",
            Self::Invalid(p) => p.reason(),
            Self::Valid(_) => "ok",
        }
    }

    /// The key, if valid.
    pub fn secret(&self) -> Option<&Secret> {
        match self {
            Self::Valid(s) => Some(s),
            _ => None,
        }
    }

    /// The problem, if the file is broken.
    pub fn problem(&self) -> Option<&SecretProblem> {
        match self {
            Self::Invalid(p) => Some(p),
            _ => None,
        }
    }
}

/// Equal when a poll found nothing new: same state, same key.
impl PartialEq for SecretState {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::NotConfigured, Self::NotConfigured) => true,
            (Self::Missing { path: a }, Self::Missing { path: b }) => a == b,
            (Self::Invalid(a), Self::Invalid(b)) => a == b,
            (Self::Valid(a), Self::Valid(b)) => a.same_key(b),
            _ => false,
        }
    }
}

impl fmt::Display for SecretState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotConfigured => f.write_str("no --memberlist-secret-file is configured"),
            Self::Missing { path } => write!(
                f,
                "the memberlist secret file {} does not exist (yet)",
                path.display()
            ),
            Self::Invalid(p) => p.fmt(f),
            Self::Valid(s) => write!(f, "a valid key (id {})", s.key_id()),
        }
    }
}

/// What reading `path` returned, as a state.
pub fn classify(path: &Path, read: io::Result<Vec<u8>>) -> SecretState {
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return SecretState::Missing {
                path: path.to_owned(),
            }
        }
        Err(e) => {
            return SecretState::Invalid(SecretProblem::Unreadable {
                path: path.to_owned(),
                error: e.to_string(),
            })
        }
    };
    let key = trim_secret(&bytes);
    if key.is_empty() {
        return SecretState::Invalid(SecretProblem::Empty {
            path: path.to_owned(),
        });
    }
    match Secret::from_bytes(key, &path.display().to_string()) {
        Ok(secret) => SecretState::Valid(secret),
        Err(_) => SecretState::Invalid(SecretProblem::TooShort {
            path: path.to_owned(),
            len: key.len(),
        }),
    }
}

/// Reads the file once (following kubelet's symlinks afresh).
pub async fn read_state(path: Option<&Path>) -> SecretState {
    match path {
        None => SecretState::NotConfigured,
        Some(p) => classify(p, tokio::fs::read(p).await),
    }
}

/// Reads the file now, then every `poll`; publishes the state whenever it
/// changes and logs each change (an error for a broken file, naming it
/// and the fix). The task ends when every receiver is gone.
pub async fn watch_file(
    path: Option<PathBuf>,
    poll: Duration,
) -> (watch::Receiver<SecretState>, JoinHandle<()>) {
    let first = read_state(path.as_deref()).await;
    log_state(&first);
    let (tx, rx) = watch::channel(first);
    let span = tracing::info_span!("secret_file", path = ?path);
    let task = tokio::spawn(
        async move {
            let Some(path) = path else {
                // Nothing to watch; keep the sender so the state stays.
                return tx.closed().await;
            };
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    () = tx.closed() => return,
                    _ = tick.tick() => {}
                }
                let next = read_state(Some(&path)).await;
                if *tx.borrow() != next {
                    log_state(&next);
                    tx.send_replace(next);
                }
            }
        }
        .instrument(span),
    );
    (rx, task)
}

fn log_state(state: &SecretState) {
    match state {
        SecretState::Valid(s) => {
            info!(key_id = %s.key_id(), "memberlist secret file holds a valid key")
        }
        SecretState::Invalid(p) => error!(reason = p.reason(), "{p}"),
        SecretState::Missing { path } => warn!(
            path = %path.display(),
            "the memberlist secret file does not exist (yet); gossip waits for it \
             (the controller creates the Secret ferrolb-memberlist)"
        ),
        SecretState::NotConfigured => {
            warn!("no --memberlist-secret-file is configured; gossip stays off")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn p() -> PathBuf {
        PathBuf::from("/etc/ferrolb/memberlist/secretkey")
    }

    #[test]
    fn a_file_that_does_not_exist_yet_is_missing_not_broken() {
        let s = classify(&p(), Err(io::ErrorKind::NotFound.into()));
        assert_eq!(s, SecretState::Missing { path: p() });
        assert_eq!(s.name(), "missing");
        assert!(s.problem().is_none());
    }

    #[test]
    fn an_unreadable_file_is_a_problem_naming_the_file_and_the_fix() {
        let s = classify(&p(), Err(io::ErrorKind::PermissionDenied.into()));
        let problem = s.problem().expect("a problem");
        assert_eq!(problem.reason(), "unreadable");
        let text = problem.to_string();
        assert!(text.contains("/etc/ferrolb/memberlist/secretkey"), "{text}");
        assert!(text.contains("delete it"), "{text}");
    }

    #[test]
    fn an_empty_or_newline_only_file_is_empty() {
        for bytes in [&b""[..], b"\n", b"\r\n\n"] {
            let s = classify(&p(), Ok(bytes.to_vec()));
            assert_eq!(s.name(), "empty", "{bytes:?}");
        }
    }

    #[test]
    fn fifteen_bytes_are_too_short_and_sixteen_are_enough_after_trimming_newlines() {
        let s = classify(&p(), Ok(b"fifteen bytes..\n".to_vec()));
        assert_eq!(
            s.problem(),
            Some(&SecretProblem::TooShort { path: p(), len: 15 })
        );
        assert!(s.problem().unwrap().to_string().contains("at least 16"));
        let s = classify(&p(), Ok(b"sixteen bytes...\n".to_vec()));
        assert_eq!(s.name(), "ok");
    }

    #[test]
    fn states_are_equal_only_with_the_same_key() {
        let a = classify(&p(), Ok(b"0123456789abcdef".to_vec()));
        assert_eq!(a, classify(&p(), Ok(b"0123456789abcdef\n".to_vec())));
        assert_ne!(a, classify(&p(), Ok(b"0123456789abcdeX".to_vec())));
    }

    #[tokio::test]
    async fn a_directory_where_the_file_should_be_is_unreadable() {
        let dir = tempfile::tempdir().unwrap();
        let s = read_state(Some(dir.path())).await;
        assert_eq!(s.name(), "unreadable", "{s}");
    }

    /// The layout kubelet writes for a secret volume: the key is a symlink
    /// through `..data`, itself a symlink to a timestamped directory that
    /// is swapped atomically on update.
    fn kubelet_write(dir: &Path, generation: u32, content: &[u8]) {
        let data = dir.join(format!("..2026_12_01_00_00_0{generation}.000"));
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("secretkey"), content).unwrap();
        let tmp = dir.join("..data_tmp");
        symlink(data.file_name().unwrap(), &tmp).unwrap();
        std::fs::rename(&tmp, dir.join("..data")).unwrap();
        if !dir.join("secretkey").exists() {
            symlink("..data/secretkey", dir.join("secretkey")).unwrap();
        }
    }

    #[tokio::test]
    async fn the_watcher_follows_a_file_that_appears_and_kubelets_symlink_swap() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secretkey");
        let poll = Duration::from_millis(20);
        let (mut rx, _task) = watch_file(Some(path.clone()), poll).await;
        assert_eq!(rx.borrow_and_update().name(), "missing");

        kubelet_write(dir.path(), 1, b"first-key-0123456789\n");
        let wait = |rx: &mut watch::Receiver<SecretState>, want: &'static [u8]| {
            let want = classify(&path, Ok(want.to_vec()));
            let mut rx = rx.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|s| *s == want))
                    .await
                    .is_ok()
            }
        };
        assert!(wait(&mut rx, b"first-key-0123456789").await);

        // Same inode path, new content behind the swapped `..data`.
        kubelet_write(dir.path(), 2, b"second-key-0123456789");
        assert!(wait(&mut rx, b"second-key-0123456789").await);

        kubelet_write(dir.path(), 3, b"short");
        assert!(wait(&mut rx, b"short").await);
        assert_eq!(rx.borrow().name(), "too_short");
    }

    #[tokio::test]
    async fn without_a_configured_file_the_state_is_not_configured() {
        let (rx, _task) = watch_file(None, Duration::from_millis(10)).await;
        assert_eq!(*rx.borrow(), SecretState::NotConfigured);
    }
}

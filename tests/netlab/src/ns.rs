//! Entering a network namespace from a Rust thread.
//!
//! setns(2) with `CLONE_NEWNET` moves only the calling thread, so each call
//! gets a fresh thread that is thrown away afterwards: the test's own thread
//! never changes namespace, and nothing leaks into other tests in the same
//! process.

use std::{
    fs::File,
    panic::resume_unwind,
    path::Path,
    sync::mpsc,
    thread::{self, JoinHandle},
};

use nix::sched::{setns, CloneFlags};

use crate::{Error, Result};

/// Where `ip netns add` bind-mounts namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

fn enter(ns: &str) -> Result<()> {
    let path = Path::new(NETNS_DIR).join(ns);
    let file = File::open(&path).map_err(|source| Error::Io { path, source })?;
    setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| Error::Setns {
        ns: ns.to_owned(),
        source,
    })
}

/// Runs `f` on a new thread inside namespace `ns` and returns its result.
/// A panic in `f` is resumed on the caller's thread.
pub(crate) fn run_in<F, T>(ns: &str, f: F) -> Result<T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    thread::scope(|scope| {
        let handle = scope.spawn(move || enter(ns).map(|()| f()));
        match handle.join() {
            Ok(result) => result,
            Err(panic) => resume_unwind(panic),
        }
    })
}

/// A thread running inside a network namespace, see [`crate::Host::spawn_in`].
#[derive(Debug)]
pub struct NsThread<T> {
    // `None` only when setns failed, which spawn_in already reported.
    handle: JoinHandle<Option<T>>,
}

impl<T> NsThread<T> {
    /// Waits for the thread and returns what its closure returned.
    /// A panic in the closure is resumed on the caller's thread.
    pub fn join(self) -> T {
        match self.handle.join() {
            Ok(Some(value)) => value,
            Ok(None) => unreachable!("spawn_in returns an error when setns fails"),
            Err(panic) => resume_unwind(panic),
        }
    }

    /// Whether the closure has returned (or panicked).
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

/// Starts `f` on a new thread inside `ns`; returns once the thread has
/// entered the namespace, so a setns failure is an error here, not a panic
/// later.
pub(crate) fn spawn_in<F, T>(ns: &str, f: F) -> Result<NsThread<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (entered_tx, entered_rx) = mpsc::sync_channel(1);
    let owned = ns.to_owned();
    let handle = thread::Builder::new()
        .name(format!("netns {ns}"))
        .spawn(move || match enter(&owned) {
            Ok(()) => {
                let _ = entered_tx.send(Ok(()));
                Some(f())
            }
            Err(e) => {
                let _ = entered_tx.send(Err(e));
                None
            }
        })
        .map_err(|source| Error::Io {
            path: Path::new(NETNS_DIR).join(ns),
            source,
        })?;
    match entered_rx.recv() {
        Ok(Ok(())) => Ok(NsThread { handle }),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(e)
        }
        // The thread died before reporting: only possible if it panicked.
        Err(_) => match handle.join() {
            Err(panic) => resume_unwind(panic),
            Ok(_) => unreachable!("the thread reports before returning"),
        },
    }
}

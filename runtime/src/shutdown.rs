//! SIGTERM and SIGINT as one shutdown future.
//!
//! Kubernetes stops a Pod with SIGTERM; a person at a terminal with Ctrl-C
//! (SIGINT). Both mean the same: finish in-flight work, hand over, exit.

use std::future::Future;

use tracing::{info, warn};

/// The signal that asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM, from the kubelet or `kill`.
    Terminate,
    /// SIGINT, from Ctrl-C.
    Interrupt,
}

impl Signal {
    /// The conventional name, e.g. `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Terminate => "SIGTERM",
            Self::Interrupt => "SIGINT",
        }
    }
}

/// Listens for SIGTERM and SIGINT from now on and resolves, once, with the
/// first one received, after logging it.
///
/// The handlers are installed by this call, not when the future is first
/// polled, so a signal that arrives in between is not lost. Call it inside
/// a tokio runtime. A handler that cannot be installed is logged and that
/// signal is then not waited for.
///
/// ```no_run
/// # async fn demo() {
/// let stop = ferrolb_runtime::shutdown::signalled();
/// // ... start the work ...
/// let signal = stop.await;
/// println!("stopping on {}", signal.name());
/// # }
/// ```
pub fn signalled() -> impl Future<Output = Signal> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind: SignalKind, which: Signal| {
            signal(kind)
                .inspect_err(|e| {
                    warn!(signal = which.name(), error = %e, "cannot listen for this signal");
                })
                .ok()
        };
        let term = listen(SignalKind::terminate(), Signal::Terminate);
        let int = listen(SignalKind::interrupt(), Signal::Interrupt);
        async move {
            let received = tokio::select! {
                () = next(term) => Signal::Terminate,
                () = next(int) => Signal::Interrupt,
            };
            info!(signal = received.name(), "shutting down");
            received
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
        info!(signal = Signal::Interrupt.name(), "shutting down");
        Signal::Interrupt
    }
}

/// The next delivery of `signal`; never, if it could not be listened for.
#[cfg(unix)]
async fn next(signal: Option<tokio::signal::unix::Signal>) {
    if let Some(mut s) = signal {
        if s.recv().await.is_some() {
            return;
        }
    }
    std::future::pending().await
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use nix::sys::signal::{raise, Signal as Nix};
    use std::time::Duration;

    async fn stopped_by(nix: Nix) -> Signal {
        let stop = signalled();
        // The handler is in place: raising does not kill the test process.
        raise(nix).expect("raise");
        tokio::time::timeout(Duration::from_secs(5), stop)
            .await
            .expect("resolved within 5s")
    }

    /// One test, not three: a raised signal reaches every listener in the
    /// process, and `cargo test` runs tests as threads of one process.
    #[tokio::test]
    async fn sigterm_or_sigint_resolve_the_shutdown_future_and_nothing_else_does() {
        let stop = signalled();
        assert!(tokio::time::timeout(Duration::from_millis(50), stop)
            .await
            .is_err());
        assert_eq!(stopped_by(Nix::SIGTERM).await, Signal::Terminate);
        assert_eq!(stopped_by(Nix::SIGINT).await, Signal::Interrupt);
    }

    #[test]
    fn signals_have_their_conventional_names() {
        assert_eq!(Signal::Terminate.name(), "SIGTERM");
        assert_eq!(Signal::Interrupt.name(), "SIGINT");
    }
}

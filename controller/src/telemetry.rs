//! Logging setup: one global `tracing` subscriber, text or JSON.

use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--log-level` is not a valid `RUST_LOG`-style filter.
    #[error("invalid --log-level filter `{filter}`: {source}")]
    BadFilter {
        /// The filter as given.
        filter: String,
        /// The parser's complaint.
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber is already installed (init called twice).
    #[error("a global tracing subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Installs the global subscriber described by `args`.
///
/// Call it once, first thing in `main`. A second call (or a call after
/// another subscriber was installed) returns [`Error::AlreadyInstalled`]
/// instead of panicking, so tests may call it freely.
///
/// ```no_run
/// # fn main() -> anyhow::Result<()> {
/// use ferrolb_controller::cli::{LogArgs, LogFormat};
/// ferrolb_controller::telemetry::init(&LogArgs {
///     log_format: LogFormat::Json,
///     log_level: "info,kube=warn".into(),
/// })?;
/// # Ok(()) }
/// ```
pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::builder()
        .parse(&args.log_level)
        .map_err(|source| Error::BadFilter {
            filter: args.log_level.clone(),
            source,
        })?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let installed = match args.log_format {
        LogFormat::Text => builder.try_init(),
        // Fields at the top level and the span stack included, so collectors
        // can index `service`, `ip`, `pool` without digging.
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    installed.map_err(|e| Error::AlreadyInstalled(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(format: LogFormat, level: &str) -> LogArgs {
        LogArgs {
            log_format: format,
            log_level: level.into(),
        }
    }

    #[test]
    fn a_bad_filter_is_refused_with_the_filter_in_the_message() {
        let err = init(&args(LogFormat::Text, "info,[oops")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("--log-level"), "{msg}");
        assert!(msg.contains("info,[oops"), "{msg}");
        assert!(matches!(
            err.downcast_ref::<Error>(),
            Some(Error::BadFilter { .. })
        ));
    }

    #[test]
    fn a_second_init_returns_an_error_instead_of_panicking() {
        // The first call may already fail if another test installed a
        // subscriber; either way the second must fail cleanly.
        let _ = init(&args(LogFormat::Json, "debug"));
        let err = init(&args(LogFormat::Text, "info")).unwrap_err();
        assert!(
            matches!(
                err.downcast_ref::<Error>(),
                Some(Error::AlreadyInstalled(_))
            ),
            "{err}"
        );
    }
}

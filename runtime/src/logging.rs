//! Logging: the `--log-format` / `--log-level` flags and the one global
//! `tracing` subscriber, JSON or text.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

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

/// Log output format. JSON by default: what the log pipeline of a cluster
/// wants; `text` is for people at a terminal.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines, coloured only on a terminal.
    Text,
    /// One JSON object per line, for log collectors.
    #[default]
    Json,
}

/// The logging flags, to `#[command(flatten)]` into a binary's CLI.
#[derive(clap::Args, Debug, Clone, PartialEq, Eq)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log line format.
    #[arg(
        long = "log-format",
        env = "FERROLB_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Json,
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,

    /// Log filter in `RUST_LOG` syntax, e.g. `info` or
    /// `info,ferrolb_controller::lease=debug`.
    #[arg(
        long = "log-level",
        env = "FERROLB_LOG_LEVEL",
        default_value = "info",
        value_name = "FILTER",
        value_parser = parse_log_filter
    )]
    pub log_level: String,
}

/// Checks a `RUST_LOG`-style filter, so a typo fails at startup with the
/// flag's name rather than silently logging nothing.
fn parse_log_filter(s: &str) -> Result<String, String> {
    EnvFilter::builder()
        .parse(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("`{s}` is not a log filter like `info` or `info,kube=warn`: {e}"))
}

/// Whether log lines carry ANSI colour codes: only text written to a
/// terminal, never a file, a pipe or a log collector.
pub fn colour(format: LogFormat, is_terminal: bool) -> bool {
    format == LogFormat::Text && is_terminal
}

/// Installs the global subscriber described by `args`, writing to standard
/// output as the binaries always have.
///
/// Call it once, first thing in `main`. A second call (or a call after
/// another subscriber was installed) returns [`Error::AlreadyInstalled`]
/// instead of panicking, so tests may call it freely.
///
/// ```no_run
/// use ferrolb_runtime::{LogArgs, LogFormat};
/// ferrolb_runtime::logging::init(&LogArgs {
///     log_format: LogFormat::Json,
///     log_level: "info,kube=warn".into(),
/// })?;
/// # Ok::<(), ferrolb_runtime::logging::Error>(())
/// ```
pub fn init(args: &LogArgs) -> Result<(), Error> {
    let filter = EnvFilter::builder()
        .parse(&args.log_level)
        .map_err(|source| Error::BadFilter {
            filter: args.log_level.clone(),
            source,
        })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .with_ansi(colour(args.log_format, std::io::stdout().is_terminal()));
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
    installed.map_err(|e| Error::AlreadyInstalled(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn args(format: LogFormat, level: &str) -> LogArgs {
        LogArgs {
            log_format: format,
            log_level: level.into(),
        }
    }

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        log: LogArgs,
    }

    #[test]
    fn text_is_coloured_only_on_a_terminal_and_json_never() {
        assert!(colour(LogFormat::Text, true));
        assert!(!colour(LogFormat::Text, false));
        assert!(!colour(LogFormat::Json, true));
        assert!(!colour(LogFormat::Json, false));
    }

    #[test]
    fn flags_default_to_json_at_info_and_refuse_a_bad_filter() {
        let cli = Cli::try_parse_from(["t"]).unwrap();
        assert_eq!(cli.log, args(LogFormat::Json, "info"));
        let cli = Cli::try_parse_from(["t", "--log-format=text", "--log-level", "debug"]).unwrap();
        assert_eq!(cli.log, args(LogFormat::Text, "debug"));
        let err = Cli::try_parse_from(["t", "--log-level", "info,[bad"]).unwrap_err();
        assert!(err.to_string().contains("not a log filter"), "{err}");
        let err = Cli::try_parse_from(["t", "--log-format", "xml"]).unwrap_err();
        assert!(
            err.to_string().contains("possible values: text, json"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_filter_is_refused_with_the_filter_in_the_message() {
        let err = init(&args(LogFormat::Text, "info,[oops")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("--log-level"), "{msg}");
        assert!(msg.contains("info,[oops"), "{msg}");
        assert!(matches!(err, Error::BadFilter { .. }));
    }

    #[test]
    fn a_second_init_returns_an_error_instead_of_panicking() {
        // The first call may already fail if another test installed a
        // subscriber; either way the second must fail cleanly.
        let _ = init(&args(LogFormat::Json, "debug"));
        let err = init(&args(LogFormat::Text, "info")).unwrap_err();
        assert!(matches!(err, Error::AlreadyInstalled(_)), "{err}");
    }
}

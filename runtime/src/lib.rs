//! ferrolb's runtime shell: what every ferrolb binary needs around its own
//! logic, written once so a fix lands once (kubert's idea).
//!
//! - [`logging`]: the `--log-format` / `--log-level` flags ([`LogArgs`]) and
//!   the global `tracing` subscriber, JSON or text (coloured only on a
//!   terminal).
//! - [`http`]: the `--http-addr` and `--metallb-metrics` flags
//!   ([`HttpArgs`]) and the `/metrics`, `/healthz`, `/readyz` server; each
//!   binary brings its own prometheus registry (with MetalLB's series
//!   unless `--metallb-metrics=false`) and its own readiness check.
//! - [`shutdown`]: SIGTERM and SIGINT as one future.
//! - [`duration`]: the one grammar of every duration flag (humantime's).
//!
//! A binary flattens the flag groups into its own clap `Parser`:
//!
//! ```
//! use clap::Parser as _;
//! #[derive(clap::Parser, Debug)]
//! struct Args {
//!     #[command(flatten)]
//!     http: ferrolb_runtime::HttpArgs<7472>,
//!     #[command(flatten)]
//!     log: ferrolb_runtime::LogArgs,
//! }
//! let args = Args::try_parse_from(["ferrolb-x", "--log-format", "text"]).unwrap();
//! assert_eq!(args.http.http_addr.port(), 7472);
//! assert_eq!(args.log.log_format, ferrolb_runtime::LogFormat::Text);
//! ```

#![forbid(unsafe_code)]

pub mod duration;
pub mod http;
pub mod logging;
pub mod shutdown;

pub use http::HttpArgs;
pub use logging::{LogArgs, LogFormat};

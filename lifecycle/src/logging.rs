//! Logging set-up shared by both binaries.
//!
//! Logs go to stderr, so that stdout carries only what the program prints
//! as its result (`main application`). `LOG_FORMAT=json` switches to one JSON
//! object per line, the shape log collectors in a cluster expect.
//!
//! `RUST_LOG` filters by target and level (`info`, `warn,sidecar=debug`,
//! `hyper=trace`), parsed as a [`Targets`] filter rather than an `EnvFilter`:
//! `EnvFilter`'s span and field matching pulls in a regex engine, about a
//! tenth of each binary, which a sidecar's logs never need.

use std::env::{self, VarError};
use std::io::IsTerminal;

use tracing_subscriber::filter::{LevelFilter, ParseError, Targets};
use tracing_subscriber::prelude::*;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The logging flags both binaries take.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Log line format on stderr. Filter with RUST_LOG (default: info).
    #[arg(long, global = true, env = "LOG_FORMAT", value_name = "FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `RUST_LOG` holds something that is not a filter.
    #[error("RUST_LOG is not a valid filter: {0}")]
    Filter(#[from] ParseError),
    /// `RUST_LOG` is not Unicode.
    #[error("RUST_LOG is not valid Unicode")]
    NotUnicode,
    /// A global subscriber was installed already.
    #[error("logging was already set up")]
    AlreadySet,
}

/// Installs the global subscriber. Call it once, before anything logs.
pub fn init(args: &LogArgs) -> Result<(), LoggingError> {
    let filter = filter_from_env()?;
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes are noise in `kubectl logs`; use them only on a terminal.
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match args.log_format {
        LogFormat::Text => registry.with(lines).try_init(),
        LogFormat::Json => registry.with(lines.json()).try_init(),
    };
    installed.map_err(|_| LoggingError::AlreadySet)
}

/// `RUST_LOG`, or `info` when it is unset or empty.
fn filter_from_env() -> Result<Targets, LoggingError> {
    filter_from(env::var("RUST_LOG"))
}

/// The filter for a value of `RUST_LOG`, read apart from the environment so
/// that it is tested without changing the test process's own.
fn filter_from(rust_log: Result<String, VarError>) -> Result<Targets, LoggingError> {
    match rust_log {
        Ok(text) if !text.trim().is_empty() => Ok(text.parse()?),
        Ok(_) | Err(VarError::NotPresent) => Ok(Targets::new().with_default(LevelFilter::INFO)),
        Err(VarError::NotUnicode(_)) => Err(LoggingError::NotUnicode),
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use tracing::Level;

    use super::*;

    fn enabled(filter: &Targets, target: &str) -> Vec<Level> {
        [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ]
        .into_iter()
        .filter(|level| filter.would_enable(target, level))
        .collect()
    }

    #[test]
    fn unset_empty_or_blank_means_info() {
        let info = [Level::ERROR, Level::WARN, Level::INFO];
        for rust_log in [
            Err(VarError::NotPresent),
            Ok(String::new()),
            Ok(" \t".to_owned()),
        ] {
            let filter = filter_from(rust_log.clone()).unwrap();
            assert_eq!(enabled(&filter, "app"), info, "{rust_log:?}");
        }
    }

    #[test]
    fn a_value_filters_by_target_and_level() {
        let filter = filter_from(Ok("warn,sidecar=debug".to_owned())).unwrap();
        assert_eq!(enabled(&filter, "app"), [Level::ERROR, Level::WARN]);
        assert_eq!(
            enabled(&filter, "sidecar::server"),
            [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG]
        );
    }

    #[test]
    fn a_bad_value_is_an_error_naming_rust_log() {
        let err = filter_from(Ok("app=loud".to_owned())).unwrap_err();
        assert!(matches!(err, LoggingError::Filter(_)), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("RUST_LOG is not a valid filter")
        );

        let err = filter_from(Err(VarError::NotUnicode(OsString::from("x")))).unwrap_err();
        assert_eq!(err.to_string(), "RUST_LOG is not valid Unicode");
    }
}

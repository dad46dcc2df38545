//! Logging set-up shared by both binaries.
//!
//! Logs go to stderr, so that stdout carries only what the program prints
//! as its result (`main application`). `RUST_LOG` filters, as everywhere in
//! the tracing ecosystem; `LOG_FORMAT=json` switches to one JSON object per
//! line, the shape log collectors in a cluster expect.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FromEnvError, LevelFilter};

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
    #[arg(long, global = true, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `RUST_LOG` holds something that is not a filter.
    #[error("RUST_LOG is not a valid filter: {0}")]
    Filter(#[from] FromEnvError),
    /// A global subscriber was installed already.
    #[error("logging was already set up")]
    AlreadySet,
}

/// Installs the global subscriber. Call it once, before anything logs.
pub fn init(args: &LogArgs) -> Result<(), LoggingError> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()?;
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes are noise in `kubectl logs`; use them only on a terminal.
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match args.log_format {
        LogFormat::Text => subscriber.try_init(),
        LogFormat::Json => subscriber.json().try_init(),
    };
    installed.map_err(|_| LoggingError::AlreadySet)
}

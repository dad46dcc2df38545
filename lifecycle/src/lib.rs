//! What the two containers of the Job share.
//!
//! A native sidecar and the main container have the same contract with the
//! kubelet: start, do their work, and stop cleanly when told to with SIGTERM.
//! This crate holds the pieces of that contract that both binaries need, so
//! that each is written once:
//!
//! - [`ShutdownSignals`]: SIGTERM and SIGINT as a future. The handlers are
//!   installed when the value is created, at start-up, because a container's
//!   entrypoint runs as PID 1, and PID 1 ignores every signal it has no
//!   handler for.
//! - [`logging`]: `tracing` on stderr, filtered by `RUST_LOG`, as text or JSON
//!   lines (`LOG_FORMAT`), so stdout stays the program's own output.
//! - [`parse_duration`]: `500ms`, `2s`, `1m` for flags and environment
//!   variables, with a clear message when the value is not a duration.
//! - [`HttpUrl`] and [`wait_until_ok`]: an HTTP GET retried until it answers
//!   200. The app uses it to wait for the sidecar; the sidecar uses it to wait
//!   for itself in a `postStart` hook, as its image has no shell or curl.

mod duration;
pub mod logging;
mod probe;
mod signals;

pub use duration::parse_duration;
pub use probe::{AttemptError, HttpUrl, UrlError, WaitError, wait_until_ok};
pub use signals::{ShutdownSignals, Signal};

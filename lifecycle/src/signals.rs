//! SIGTERM and SIGINT as a future, with the handlers installed up front.
//!
//! signal-hook does the delivery; this module adds what a container's
//! entrypoint needs on top: eager installation (PID 1 has no default
//! actions), the 128 + signal exit codes, and "a second signal means now".

use std::io;

use futures_util::StreamExt;
use signal_hook::consts::signal::{SIGINT, SIGTERM};

/// A signal that asks the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: what the kubelet and `docker stop` send.
    Terminate,
    /// SIGINT: Ctrl-C in a terminal.
    Interrupt,
}

impl Signal {
    /// The exit code of a process killed by this signal: 128 + its number.
    ///
    /// A program that stops early on a signal exits with this code on
    /// purpose, so that work cut short never looks like success.
    pub fn exit_code(self) -> u8 {
        let number = match self {
            Signal::Terminate => SIGTERM,
            Signal::Interrupt => SIGINT,
        };
        // SIGTERM is 15 and SIGINT is 2, so the sum always fits.
        128 + number as u8
    }

    /// The signal's conventional name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Terminate => "SIGTERM",
            Signal::Interrupt => "SIGINT",
        }
    }
}

/// SIGTERM and SIGINT, delivered as a future instead of killing the process.
///
/// Create it first thing in `main`. As PID 1 in a container the process has
/// no default signal actions: until a handler is installed, SIGTERM is
/// ignored, and the kubelet waits out the whole grace period and then sends
/// SIGKILL. Installing eagerly, rather than inside the future that waits,
/// also means a signal that arrives during start-up is kept, not lost.
pub struct ShutdownSignals {
    signals: signal_hook_tokio::Signals,
}

impl ShutdownSignals {
    /// Installs the handlers. Needs a Tokio runtime with I/O enabled.
    pub fn install() -> io::Result<Self> {
        let signals = signal_hook_tokio::Signals::new([SIGTERM, SIGINT])?;
        Ok(Self { signals })
    }

    /// Waits for the next SIGTERM or SIGINT.
    pub async fn recv(&mut self) -> Signal {
        match self.signals.next().await {
            Some(SIGINT) => Signal::Interrupt,
            // Only SIGTERM and SIGINT are registered, so anything else is SIGTERM.
            Some(_) => Signal::Terminate,
            // The stream ends only when its handle is closed, which nothing
            // here does: no further signal can come, so wait forever.
            None => std::future::pending().await,
        }
    }

    /// Hands the handlers to a task that ends the process at once on the next
    /// signal, with that signal's exit code.
    ///
    /// Call it once a graceful shutdown has begun. A second SIGTERM or Ctrl-C
    /// then means "stop now", the convention Kubernetes' own servers follow.
    pub fn exit_on_next(mut self) {
        tokio::spawn(async move {
            let signal = self.recv().await;
            tracing::warn!(
                signal = signal.name(),
                "second signal during shutdown, exiting at once"
            );
            std::process::exit(signal.exit_code().into());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        assert_eq!(Signal::Terminate.exit_code(), 143);
        assert_eq!(Signal::Interrupt.exit_code(), 130);
    }
}

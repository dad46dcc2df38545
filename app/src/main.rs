//! The Job's main container.
//!
//! Its lifecycle, top to bottom:
//! 1. Parse the flags; a bad one is a usage error (exit 2).
//! 2. Install the SIGTERM and SIGINT handlers, before anything else runs,
//!    logging included: in a container this process is PID 1, which ignores
//!    a signal it has no handler for, so a SIGTERM that came any earlier
//!    would be lost.
//! 3. Set up logging; a bad `RUST_LOG` is a usage error (exit 2).
//! 4. Optionally wait until the sidecar answers, and print its reply.
//! 5. Work (sleep).
//! 6. Call the sidecar again, as a real app calls its sidecar more than once
//!    (to report, to flush): retried as at step 4, which also covers a sidecar
//!    that the kubelet restarted meanwhile (restartPolicy: Always).
//! 7. Print `main application` (or append it to `--output`), exit 0.
//!
//! A signal from 2 on ends the process at once with 143 (SIGTERM) or 130
//! (SIGINT). In a Job that matters: exit 0 would tell Kubernetes the work was
//! done.
//!
//! Try it: `cargo run -p app -- --sleep 5s`, then Ctrl-C or `kill <pid>`.

mod config;
mod output;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use lifecycle::ShutdownSignals;
use tracing::{info, warn};

use crate::config::Config;
use crate::output::Output;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let config = Config::parse();
    let mut signals = match ShutdownSignals::install().context("cannot install signal handlers") {
        Ok(signals) => signals,
        Err(err) => return failed(err),
    };
    if let Err(err) = lifecycle::logging::init(&config.log) {
        eprintln!("app: {err}");
        return ExitCode::from(2);
    }
    tokio::select! {
        finished = work(&config) => match finished {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => failed(err),
        },
        signal = signals.recv() => {
            warn!(signal = signal.name(), "stopped before the work finished");
            ExitCode::from(signal.exit_code())
        }
    }
}

/// Reports `err` and chooses the exit code of a failure.
fn failed(err: anyhow::Error) -> ExitCode {
    // A plain line, not a log event: it must show whatever RUST_LOG and
    // LOG_FORMAT say, and it is the last thing the process says.
    eprintln!("app: error: {err:#}");
    ExitCode::FAILURE
}

async fn work(config: &Config) -> anyhow::Result<()> {
    let mut output = Output::open(config.output.as_deref())?;
    if let Some(url) = &config.sidecar_url {
        info!(%url, "waiting for the sidecar");
        let reply = lifecycle::wait_until_ok(url, config.sidecar_wait)
            .await
            .context("the sidecar is not up")?;
        let reply = String::from_utf8_lossy(&reply);
        output.line(&format!("sidecar replied: {}", reply.trim_end()))?;
    }
    info!(sleep = ?config.sleep, "working");
    tokio::time::sleep(config.sleep).await;
    if let Some(url) = &config.sidecar_url {
        lifecycle::wait_until_ok(url, config.sidecar_wait)
            .await
            .context("the sidecar did not answer after the work")?;
        info!(%url, "the sidecar answered again after the work");
    }
    output.line("main application")?;
    info!("done");
    Ok(())
}

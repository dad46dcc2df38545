//! The Job's native sidecar.
//!
//! Its lifecycle, top to bottom:
//! 1. Parse the flags; a bad one is a usage error (exit 2).
//! 2. Install the SIGTERM and SIGINT handlers, then set up logging: in a
//!    container this process is PID 1 and would ignore a signal that came
//!    before its handler.
//! 3. Bind; an address in use or not ours is a start-up error (exit 1).
//! 4. Serve until the first signal. The kubelet sends SIGTERM once the Job's
//!    main container has exited.
//! 5. Drain within `--shutdown-timeout`, log what was served, exit 0: for a
//!    sidecar, being told to stop is the normal end. A second signal during
//!    the drain exits at once, with 143 (SIGTERM) or 130 (SIGINT).
//!
//! Try it: `cargo run -p sidecar -- --listen 127.0.0.1:8080`, then
//! `curl 127.0.0.1:8080/` and Ctrl-C.

mod accept_backoff;
mod activity;
mod config;
mod connection;
mod connection_cap;
mod routes;
mod server;

use std::process::ExitCode;

use anyhow::Context;
use lifecycle::ShutdownSignals;
use tracing::{info, warn};

use crate::config::{Cli, Command, ServeArgs, WaitReadyArgs};

/// What this run does, once the handlers it needs are installed.
enum Task {
    Serve(ServeArgs, ShutdownSignals),
    WaitReady(WaitReadyArgs),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse_or_exit();
    // Serving runs as PID 1, which ignores a signal without a handler, so
    // its handlers come before anything else, logging included. `wait-ready`
    // runs beside the server (a hook, a probe) and keeps the default actions,
    // so that whoever started it can stop it.
    let task = match cli.command {
        None => match ShutdownSignals::install() {
            Ok(signals) => Task::Serve(cli.serve, signals),
            Err(err) => {
                return failure(&anyhow::Error::new(err).context("cannot install signal handlers"));
            }
        },
        Some(Command::WaitReady(args)) => Task::WaitReady(args),
    };
    if let Err(err) = lifecycle::logging::init(&cli.log) {
        eprintln!("sidecar: {err}");
        return ExitCode::from(2);
    }
    let outcome = match task {
        Task::Serve(args, signals) => serve(args, signals).await,
        Task::WaitReady(args) => wait_ready(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => failure(&err),
    }
}

/// A plain line, not a log event: it must show whatever RUST_LOG and
/// LOG_FORMAT say, and it is the last thing the process says.
fn failure(err: &anyhow::Error) -> ExitCode {
    eprintln!("sidecar: error: {err:#}");
    ExitCode::FAILURE
}

async fn serve(args: ServeArgs, mut signals: ShutdownSignals) -> anyhow::Result<()> {
    let listener =
        server::listen(args.listen).with_context(|| format!("cannot listen on {}", args.listen))?;
    info!(address = %listener.local_addr()?, "listening");

    let shutdown = async move {
        let signal = signals.recv().await;
        info!(signal = signal.name(), "shutting down");
        signals.exit_on_next();
    };
    let report = server::run(listener, args.settings(), shutdown).await;

    if report.drained {
        info!(requests_served = report.requests_served, drain = ?report.drain, "stopped");
    } else {
        warn!(
            requests_served = report.requests_served,
            drain = ?report.drain,
            "stopped at the shutdown deadline; closed the connections still open"
        );
    }
    Ok(())
}

async fn wait_ready(args: WaitReadyArgs) -> anyhow::Result<()> {
    lifecycle::wait_until_ok(&args.url, args.timeout).await?;
    info!(url = %args.url, "ready");
    Ok(())
}

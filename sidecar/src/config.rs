//! The sidecar's flags. Each can also be set from the environment, the way a
//! Pod spec sets it.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue};
use clap::{Args, CommandFactory, Parser, Subcommand};
use lifecycle::logging::LogArgs;
use lifecycle::{HttpUrl, parse_duration};

use crate::server::Settings;

/// The Job's native sidecar: an HTTP server that answers `Sidecar application`,
/// and on SIGTERM stops accepting, finishes what is in flight and exits 0.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: ServeArgs,

    #[command(flatten)]
    pub log: LogArgs,
}

impl Cli {
    /// Parses the command line and the environment; on bad input, prints one
    /// clear line and exits 2. A value that came from an environment variable
    /// is reported under the variable's name: that is what the user set.
    pub fn parse_or_exit() -> Self {
        let args: Vec<OsString> = std::env::args_os().collect();
        Self::try_parse_from(&args).unwrap_or_else(|err| name_the_variable(err, &args).exit())
    }
}

/// `err` with `'--flag <V>'` replaced by the environment variable it was read
/// from, when the flag is not on the command line and its variable is set.
fn name_the_variable(err: clap::Error, args: &[OsString]) -> clap::Error {
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return err;
    };
    let flag = arg.split_whitespace().next().unwrap_or(arg);
    let command = Cli::command();
    let env = command
        .get_arguments()
        .find(|spec| {
            spec.get_long()
                .is_some_and(|long| flag == format!("--{long}"))
        })
        .and_then(|spec| spec.get_env())
        .filter(|env| std::env::var_os(env).is_some());
    let on_command_line = args.iter().filter_map(|a| a.to_str()).any(|a| {
        a == flag
            || a.strip_prefix(flag)
                .is_some_and(|rest| rest.starts_with('='))
    });
    match env {
        Some(env) if !on_command_line => {
            let message = err.to_string().replacen(
                &format!("'{arg}'"),
                &format!("{} (the environment's {flag})", env.to_string_lossy()),
                1,
            );
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            clap::Error::raw(err.kind(), message).with_cmd(&command)
        }
        _ => err,
    }
}

/// What to do instead of serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Wait until a sidecar answers 200, then exit 0 (exit 1 at the timeout).
    /// For a `postStart` exec hook: the image has no shell or curl.
    WaitReady(WaitReadyArgs),
}

/// Flags of the server (the default command).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// IP address and port to listen on.
    #[arg(
        long,
        env = "SIDECAR_LISTEN",
        value_name = "ADDR",
        default_value = "0.0.0.0:8080",
        value_parser = parse_listen
    )]
    pub listen: SocketAddr,

    /// How long to let in-flight requests finish after SIGTERM. Keep it well
    /// under the Pod's terminationGracePeriodSeconds (30s by default).
    #[arg(long, env = "SIDECAR_SHUTDOWN_TIMEOUT", value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// How long a connection may go without a request (at most 1h). The
    /// clock starts at the accept and again after each answer, and stands
    /// still while a request is being answered, so this is also how long a
    /// connection may stay idle, and never cuts an answer.
    #[arg(long, env = "SIDECAR_HEADER_READ_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_header_read_timeout)]
    pub header_read_timeout: Duration,

    /// How many connections may be open at once (1 to 100000). At the cap, a
    /// new connection takes the place of an open one, silent ones first; a
    /// request already sent is still answered (docs/availability.md).
    #[arg(long, env = "SIDECAR_MAX_CONNECTIONS", value_name = "N", default_value = "256", value_parser = clap::value_parser!(u32).range(1..=MAX_MAX_CONNECTIONS))]
    pub max_connections: u32,
}

/// The largest `--max-connections` accepted: far past what any sidecar
/// needs, and a typo such as an extra zero is caught rather than trusted.
const MAX_MAX_CONNECTIONS: i64 = 100_000;

/// The longest `--header-read-timeout` accepted. Each connection adds the
/// timeout to its clock (see connection.rs), and a sum past what an `Instant`
/// holds would panic in the connection's task. No client needs an hour.
const MAX_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(60 * 60);

fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.parse().map_err(|_| {
        "an IP address and a port are needed, such as 0.0.0.0:8080 or [::]:8080; \
         names such as localhost are not resolved"
            .to_string()
    })
}

fn parse_header_read_timeout(text: &str) -> Result<Duration, String> {
    let timeout = parse_duration(text)?;
    if timeout.is_zero() {
        // Each connection's deadline (connection.rs) would then be its
        // accept: every request whose head is not already complete when the
        // connection is first polled would be cut off, a sidecar that fails
        // at random rather than one without a timeout.
        return Err("more than 0s is needed, or requests still arriving are cut off".into());
    }
    if timeout > MAX_HEADER_READ_TIMEOUT {
        return Err("at most 1h: no client needs longer to send its headers".into());
    }
    Ok(timeout)
}

impl ServeArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            shutdown_timeout: self.shutdown_timeout,
            header_read_timeout: self.header_read_timeout,
            max_connections: self.max_connections as usize,
        }
    }
}

/// Flags of `wait-ready`.
#[derive(Debug, Args)]
pub struct WaitReadyArgs {
    /// The URL to GET. An IP address, not a name.
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080/readyz"
    )]
    pub url: HttpUrl,

    /// How long to keep trying.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("sidecar").chain(args.iter().copied()))
    }

    /// The defaults as declared, read through clap rather than by parsing,
    /// so that a SIDECAR_* variable in the test's environment cannot interfere.
    fn default_of(command: &clap::Command, flag: &str) -> String {
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(flag))
            .expect(flag);
        arg.get_default_values()[0].to_string_lossy().into_owned()
    }

    #[test]
    fn defaults_match_the_documentation() {
        let command = Cli::command();
        assert_eq!(default_of(&command, "listen"), "0.0.0.0:8080");
        assert_eq!(default_of(&command, "shutdown-timeout"), "5s");
        assert_eq!(default_of(&command, "header-read-timeout"), "10s");
        assert_eq!(default_of(&command, "max-connections"), "256");
        assert!(
            parse(&[]).unwrap().command.is_none(),
            "serving is the default"
        );
    }

    #[test]
    fn the_header_read_timeout_may_be_up_to_an_hour() {
        for (text, expected) in [("1ms", 1), ("1h", 3_600_000)] {
            let cli = parse(&["--header-read-timeout", text]).unwrap();
            assert_eq!(cli.serve.header_read_timeout.as_millis(), expected);
        }
    }

    #[test]
    fn the_connection_cap_may_be_from_1_to_100000() {
        for n in [1, 100_000] {
            let cli = parse(&["--max-connections", &n.to_string()]).unwrap();
            assert_eq!(cli.serve.max_connections, n);
        }
    }

    #[test]
    fn wait_ready_has_its_own_defaults() {
        let cli = parse(&["wait-ready"]).unwrap();
        let Some(Command::WaitReady(args)) = cli.command else {
            panic!("expected wait-ready, got {:?}", cli.command);
        };
        assert_eq!(args.url.to_string(), "http://127.0.0.1:8080/readyz");
        assert_eq!(args.timeout, Duration::from_secs(30));
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_flag() {
        for (args, needle) in [
            (&["--listen", "8080"][..], "--listen"),
            (&["--listen", "localhost:8080"][..], "an IP address"),
            (&["--shutdown-timeout", "5"][..], "--shutdown-timeout"),
            (
                &["wait-ready", "--url", "http://sidecar/"][..],
                "IP address",
            ),
            (
                &["--listen", "127.0.0.1:1", "wait-ready"][..],
                "cannot be used with",
            ),
            (&["--frobnicate"][..], "--frobnicate"),
            (&["--header-read-timeout", "0s"][..], "more than 0s"),
            (&["--header-read-timeout", "61m"][..], "at most 1h"),
            (&["--max-connections", "0"][..], "--max-connections"),
            (&["--max-connections", "100001"][..], "1..=100000"),
            (&["--max-connections=-1"][..], "--max-connections"),
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert!(err.to_string().contains(needle), "{args:?}: {err}");
        }
    }
}

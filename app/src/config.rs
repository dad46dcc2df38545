//! The app's flags. Each can also be set from the environment, the way a
//! Pod spec sets it.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use lifecycle::logging::LogArgs;
use lifecycle::{HttpUrl, parse_duration};

/// The Job's main container: does its work (a sleep), prints
/// `main application` and exits 0. Stopped early by SIGTERM or SIGINT, it exits
/// 143 or 130, so that unfinished work never looks like success.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Config {
    /// How long the work takes.
    #[arg(long, env = "APP_SLEEP", value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub sleep: Duration,

    /// Before working, GET this URL until it answers 200 and print the reply:
    /// proof that the sidecar was up first; after working, GET it again the
    /// same way. An IP address, not a name (e.g. http://127.0.0.1:8080/).
    /// Unset: no calls.
    #[arg(long, env = "APP_SIDECAR_URL", value_name = "URL")]
    pub sidecar_url: Option<HttpUrl>,

    /// How long each call keeps trying the sidecar before giving up with exit
    /// code 1.
    #[arg(long, env = "APP_SIDECAR_WAIT", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub sidecar_wait: Duration,

    /// Append the app's lines (the sidecar's reply, `main application`) to
    /// this file instead of printing them: for a log shipper that reads files
    /// from a volume both containers mount. Unset: standard output.
    #[arg(long, env = "APP_OUTPUT", value_name = "PATH")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub log: LogArgs,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("app").chain(args.iter().copied()))
    }

    /// The defaults as declared, read through clap rather than by parsing,
    /// so that an APP_* variable in the test's environment cannot interfere.
    fn default_of(flag: &str) -> Option<String> {
        let command = Config::command();
        let arg = command
            .get_arguments()
            .find(|arg| arg.get_long() == Some(flag))?;
        arg.get_default_values()
            .first()
            .map(|value| value.to_string_lossy().into_owned())
    }

    #[test]
    fn defaults_match_the_documentation() {
        assert_eq!(default_of("sleep").as_deref(), Some("30s"));
        assert_eq!(default_of("sidecar-url"), None);
        assert_eq!(default_of("sidecar-wait").as_deref(), Some("10s"));
        assert_eq!(default_of("output"), None);
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    }

    #[test]
    fn takes_durations_and_a_url() {
        let config = parse(&[
            "--sleep",
            "500ms",
            "--sidecar-url",
            "http://127.0.0.1:8080/",
            "--sidecar-wait",
            "2s",
        ])
        .unwrap();
        assert_eq!(config.sleep, Duration::from_millis(500));
        assert_eq!(
            config.sidecar_url.unwrap().to_string(),
            "http://127.0.0.1:8080/"
        );
        assert_eq!(config.sidecar_wait, Duration::from_secs(2));
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_flag() {
        for (args, needle) in [
            (&["--sleep", "soon"][..], "--sleep"),
            (
                &["--sidecar-url", "http://localhost:8080/"][..],
                "IP address",
            ),
            (&["--sidecar-wait", "10"][..], "--sidecar-wait"),
            (&["--frobnicate"][..], "--frobnicate"),
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            assert!(err.to_string().contains(needle), "{args:?}: {err}");
        }
    }
}

//! The app's contract with the kubelet, tested on the built binary: what it
//! prints, and which exit code tells the Job what happened.

// Helpers too may unwrap: in a test, a panic is a failure with a line number.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::Command;
use std::time::Duration;

use testkit::{Process, ReservedPort};

const STARTUP: Duration = Duration::from_secs(10);
/// The issue promises 100 ms; a loaded CI machine gets some slack here.
const PROMPT_EXIT: Duration = Duration::from_millis(500);

fn app(args: &[&str]) -> Command {
    let mut command = testkit::cargo_bin(env!("CARGO_BIN_EXE_app"));
    command.args(args).env("RUST_LOG", "info");
    command
}

/// The app, waiting up to 10 s for a sidecar at `url`, with the wait's
/// attempts logged; its work is over at once.
fn waiting_app(url: &str) -> Process {
    let mut command = app(&[
        "--sleep",
        "1ms",
        "--sidecar-url",
        url,
        "--sidecar-wait",
        "10s",
    ]);
    command.env("RUST_LOG", "info,lifecycle=debug");
    Process::spawn(command)
}

/// A stand-in sidecar that answers the app's two calls (before and after its
/// work) with `body`, on a port that is bound before the app starts.
fn two_shot_server(body: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || answer_twice(&listener, body));
    addr
}

/// Answers the app's call before its work and the one after it.
fn answer_twice(listener: &TcpListener, body: &str) {
    answer_once(listener, body);
    answer_once(listener, body);
}

/// Accepts one connection on `listener`, reads the request head and answers
/// 200 with `body`.
fn answer_once(listener: &TcpListener, body: &str) {
    let (mut stream, _) = listener.accept().unwrap();
    let mut head = [0u8; 1024];
    let _ = stream.read(&mut head).unwrap();
    let reply = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).unwrap();
}

/// The one line of stderr that reports an error: a failure says what went
/// wrong once, and last.
fn the_one_error(app: &Process) -> String {
    let errors: Vec<_> = app
        .stderr()
        .into_iter()
        .filter(|line| line.contains("error"))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors[0].clone()
}

#[test]
fn prints_exactly_main_application_and_exits_0() {
    let mut app = Process::spawn(app(&["--sleep", "50ms"]));
    assert_eq!(app.wait_exit(STARTUP).code(), 0);
    assert_eq!(app.stdout(), "main application\n");
    assert!(
        app.stderr()
            .iter()
            .all(|line| !line.contains("main application")),
        "logs belong on stderr only"
    );
}

#[test]
fn the_sleep_comes_from_the_environment_too() {
    let mut command = app(&[]);
    command.env("APP_SLEEP", "1ms");
    let mut app = Process::spawn(command);
    assert_eq!(app.wait_exit(STARTUP).code(), 0);
    assert_eq!(app.stdout(), "main application\n");
}

/// A path of this test's own in Cargo's scratch directory for tests, gone
/// before the test starts.
fn scratch_file(name: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn with_output_the_lines_are_appended_to_the_file_not_printed() {
    let sidecar = two_shot_server("Sidecar application\n");
    let url = format!("http://{sidecar}/");
    let path = scratch_file("app-output-appends.log");
    std::fs::write(&path, "an earlier line\n").unwrap();
    let mut command = app(&["--sleep", "1ms", "--sidecar-url", &url]);
    command.env("APP_OUTPUT", &path);
    let mut app = Process::spawn(command);
    assert_eq!(app.wait_exit(STARTUP).code(), 0);
    assert_eq!(app.stdout(), "");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "an earlier line\nsidecar replied: Sidecar application\nmain application\n"
    );
}

#[test]
fn an_output_that_cannot_be_opened_is_one_clear_error_and_exit_1_before_the_work() {
    let path = scratch_file("no-such-directory/app.log");
    let path = path.to_str().unwrap();
    let mut app = Process::spawn(app(&["--sleep", "1h", "--output", path]));
    assert_eq!(app.wait_exit(STARTUP).code(), 1);
    let error = the_one_error(&app);
    assert!(
        error.starts_with(&format!("app: error: cannot open {path}: ")),
        "{error}"
    );
    assert_eq!(app.stdout(), "");
}

#[test]
fn prints_the_sidecars_reply_before_working() {
    let sidecar = two_shot_server("Sidecar application\n");
    let url = format!("http://{sidecar}/");
    let mut app = Process::spawn(app(&["--sleep", "1ms", "--sidecar-url", &url]));
    assert_eq!(app.wait_exit(STARTUP).code(), 0);
    assert_eq!(
        app.stdout(),
        "sidecar replied: Sidecar application\nmain application\n"
    );
}

#[test]
fn keeps_trying_until_the_sidecar_is_up() {
    // Held for the whole test: refused until the "sidecar" below listens on
    // it, and no other process can take it in between.
    let port = ReservedPort::new();
    let mut app = waiting_app(&format!("http://{}/", port.addr()));
    app.wait_for_log("not ready yet", STARTUP);
    // Only now, after a refused attempt, does the "sidecar" come up, on the
    // port the app keeps trying.
    answer_twice(&TcpListener::bind(port.addr()).unwrap(), "up\n");
    assert_eq!(app.wait_exit(STARTUP).code(), 0);
    assert_eq!(app.stdout(), "sidecar replied: up\nmain application\n");
}

#[test]
fn a_sidecar_that_accepts_and_stalls_is_retried_until_it_answers() {
    // Its first connection is accepted and never answered; the next one is.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (_stalled, _) = listener.accept().unwrap();
        answer_twice(&listener, "up after a stall\n");
    });
    let mut app = waiting_app(&format!("http://{addr}/"));
    assert_eq!(app.wait_exit(STARTUP).code(), 0);
    app.wait_for_log("no answer within 1s", PROMPT_EXIT);
    assert_eq!(
        app.stdout(),
        "sidecar replied: up after a stall\nmain application\n"
    );
}

#[test]
fn a_sidecar_that_never_answers_is_one_clear_error_and_exit_1() {
    let port = ReservedPort::new();
    let url = format!("http://{}/", port.addr());
    let mut app = Process::spawn(app(&[
        "--sleep",
        "1ms",
        "--sidecar-url",
        &url,
        "--sidecar-wait",
        "300ms",
    ]));
    assert_eq!(app.wait_exit(STARTUP).code(), 1);
    assert_eq!(app.stdout(), "", "the work must not have run");
    let error = the_one_error(&app);
    assert!(
        error.starts_with(&format!(
            "app: error: the sidecar is not up: {url} did not answer 200 within 300ms: cannot connect"
        )),
        "{error}"
    );
}

#[test]
fn calls_the_sidecar_again_after_the_work() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || answer_twice(&listener, "up\n"));
    let mut app = Process::spawn(app(&["--sleep", "200ms", "--sidecar-url", &url]));
    assert_eq!(app.wait_exit(STARTUP).code(), 0);
    app.wait_for_log("the sidecar answered again after the work", PROMPT_EXIT);
    assert_eq!(app.stdout(), "sidecar replied: up\nmain application\n");
}

#[test]
fn a_sidecar_gone_after_the_work_is_exit_1_without_main_application() {
    // Answers the first call, then is gone: the port is released and refuses.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let first_call = std::thread::spawn(move || answer_once(&listener, "up\n"));
    let mut app = Process::spawn(app(&[
        "--sleep",
        "200ms",
        "--sidecar-url",
        &url,
        "--sidecar-wait",
        "300ms",
    ]));
    first_call.join().unwrap();
    assert_eq!(app.wait_exit(STARTUP).code(), 1);
    assert_eq!(
        app.stdout(),
        "sidecar replied: up\n",
        "the work must not count as done"
    );
    let error = the_one_error(&app);
    assert!(
        error.starts_with(&format!(
            "app: error: the sidecar did not answer after the work: {url} did not answer 200 within 300ms"
        )),
        "{error}"
    );
}

#[test]
fn sigterm_during_the_work_exits_143_at_once() {
    let mut app = Process::spawn(app(&["--sleep", "30s"]));
    app.wait_for_log("working", STARTUP);
    let sent = app.signal("TERM");
    let exit = app.wait_exit(PROMPT_EXIT);
    assert_eq!(
        exit.code(),
        143,
        "unfinished work must not look like success"
    );
    assert!(exit.at - sent < PROMPT_EXIT);
    assert_eq!(app.stdout(), "");
    app.wait_for_log(
        "stopped before the work finished signal=\"SIGTERM\"",
        PROMPT_EXIT,
    );
}

#[test]
fn sigint_exits_130() {
    let mut app = Process::spawn(app(&["--sleep", "30s"]));
    app.wait_for_log("working", STARTUP);
    app.signal("INT");
    assert_eq!(app.wait_exit(PROMPT_EXIT).code(), 130);
}

#[test]
fn sigterm_while_waiting_for_the_sidecar_exits_143() {
    let port = ReservedPort::new();
    let url = format!("http://{}/", port.addr());
    let mut app = Process::spawn(app(&["--sidecar-url", &url, "--sidecar-wait", "30s"]));
    app.wait_for_log("waiting for the sidecar", STARTUP);
    app.signal("TERM");
    assert_eq!(app.wait_exit(PROMPT_EXIT).code(), 143);
}

#[test]
fn bad_input_is_a_usage_error_not_a_panic() {
    for (args, expected) in [
        (
            &["--sleep", "soon"][..],
            "invalid value 'soon' for '--sleep <DURATION>'",
        ),
        (
            &["--sleep", "30"][..],
            "invalid value '30' for '--sleep <DURATION>'",
        ),
        (
            &["--sidecar-url", "http://localhost:8080/"][..],
            "must be an IP address",
        ),
        (&["--wat"][..], "unexpected argument '--wat'"),
    ] {
        Process::spawn(app(args)).assert_usage_error(expected);
    }
}

#[test]
fn a_bad_log_setting_is_a_usage_error() {
    let mut command = app(&["--sleep", "1ms"]);
    command.env("RUST_LOG", "app=loud");
    let mut app = Process::spawn(command);
    assert_eq!(app.wait_exit(STARTUP).code(), 2);
    assert!(
        app.stderr()[0].starts_with("app: RUST_LOG is not a valid filter"),
        "{:#?}",
        app.stderr()
    );
}

#[test]
fn log_format_json_writes_json_lines() {
    let mut command = app(&["--sleep", "1ms"]);
    command.env("LOG_FORMAT", "json");
    let mut app = Process::spawn(command);
    assert_eq!(app.wait_exit(STARTUP).code(), 0);
    let stderr = app.stderr();
    assert!(!stderr.is_empty());
    for line in &stderr {
        assert!(
            line.starts_with('{') && line.ends_with('}') && line.contains("\"level\":\"INFO\""),
            "{line}"
        );
    }
}

#[test]
fn as_pid_1_sigterm_still_exits_143() {
    let Some(command) = testkit::pid1(&app(&["--sleep", "30s"])) else {
        return;
    };
    let mut unshare = Process::spawn(command);
    unshare.wait_for_log("working", STARTUP);
    let init = unshare.first_child_pid(STARTUP);
    let sent = Process::signal_pid(init, "TERM");
    let exit = unshare.wait_exit(PROMPT_EXIT);
    assert_eq!(exit.code(), 143);
    assert!(exit.at - sent < PROMPT_EXIT);
}

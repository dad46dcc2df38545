//! The sidecar's contract with the kubelet, tested on the built binary:
//! what it answers, and how it stops.

// Helpers too may unwrap: in a test, a panic is a failure with a line number.
#![allow(clippy::unwrap_used)]

use std::io::{BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

mod support;

use support::{PROMPT_EXIT, STARTUP, listening_address, start, start_request};
use testkit::{HttpResponse, Process, ReservedPort, get, request};

#[test]
fn answers_every_endpoint_as_documented() {
    let (mut sidecar, addr) = start(&[]);

    let root = get(addr, "/");
    assert_eq!(root.status, 200);
    assert_eq!(root.text(), "Sidecar application\n");
    assert_eq!(
        root.header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    let head = request(
        addr,
        b"HEAD / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("20"));
    assert!(
        head.body.is_empty(),
        "HEAD must not send a body: {:?}",
        head.text()
    );

    assert_eq!(get(addr, "/healthz").status, 200);
    let ready = get(addr, "/readyz");
    assert_eq!((ready.status, ready.text().as_str()), (200, "ready\n"));
    assert_eq!(get(addr, "/nope").status, 404);

    let post = request(
        addr,
        b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));

    sidecar.signal("TERM");
    assert_eq!(sidecar.wait_exit(PROMPT_EXIT).code(), 0);
    sidecar.wait_for_log("requests_served=6", PROMPT_EXIT);
}

#[test]
fn sigterm_when_idle_exits_0_promptly() {
    let (mut sidecar, _) = start(&[]);
    let sent = sidecar.signal("TERM");
    let exit = sidecar.wait_exit(PROMPT_EXIT);
    assert_eq!(exit.code(), 0);
    assert!(exit.at - sent < PROMPT_EXIT);
    sidecar.wait_for_log("stopped requests_served=0", PROMPT_EXIT);
}

#[test]
fn sigint_is_a_clean_stop_too() {
    let (mut sidecar, _) = start(&[]);
    sidecar.signal("INT");
    assert_eq!(sidecar.wait_exit(PROMPT_EXIT).code(), 0);
    sidecar.wait_for_log("signal=\"SIGINT\"", PROMPT_EXIT);
}

#[test]
fn a_request_in_flight_at_sigterm_gets_its_full_answer() {
    // A long deadline, so that only a completed drain can end it quickly.
    let (mut sidecar, addr) = start(&["--shutdown-timeout", "30s"]);
    let mut stream = start_request(addr);

    sidecar.signal("TERM");
    sidecar.wait_for_log("stopped accepting", PROMPT_EXIT);
    assert!(
        TcpStream::connect(addr).is_err(),
        "a new connection was accepted during the drain"
    );

    // Finish the request only now, well into the drain.
    stream.write_all(b"\r\n").unwrap();
    let response = HttpResponse::read_from(&mut BufReader::new(stream)).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "Sidecar application\n");
    assert_eq!(
        response.header("connection"),
        Some("close"),
        "the drain must close the connection after the answer"
    );

    assert_eq!(sidecar.wait_exit(PROMPT_EXIT).code(), 0);
    sidecar.wait_for_log("stopped requests_served=1", PROMPT_EXIT);
}

#[test]
fn an_idle_keep_alive_connection_does_not_delay_shutdown() {
    let (mut sidecar, addr) = start(&["--shutdown-timeout", "30s"]);
    let mut stream = BufReader::new(TcpStream::connect(addr).unwrap());
    stream
        .get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let response = HttpResponse::read_from(&mut stream).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("connection"),
        None,
        "the connection should stay open for reuse"
    );

    let sent = sidecar.signal("TERM");
    let exit = sidecar.wait_exit(PROMPT_EXIT);
    assert_eq!(exit.code(), 0);
    assert!(exit.at - sent < PROMPT_EXIT);
    sidecar.wait_for_log("stopped requests_served=1", PROMPT_EXIT);
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off_at_the_deadline() {
    // The header-read timeout is longer than the deadline, so only the
    // deadline can end the drain.
    let (mut sidecar, addr) = start(&["--shutdown-timeout", "1s", "--header-read-timeout", "1m"]);
    let _stuck = start_request(addr);

    let sent = sidecar.signal("TERM");
    let exit = sidecar.wait_exit(Duration::from_secs(5));
    assert_eq!(
        exit.code(),
        0,
        "reaching the deadline is still a clean stop"
    );
    let took = exit.at - sent;
    assert!(
        took >= Duration::from_secs(1),
        "exited before the deadline ({took:?}): the request was dropped"
    );
    assert!(
        took < Duration::from_secs(3),
        "took {took:?}, the deadline is 1s"
    );
    sidecar.wait_for_log("stopped at the shutdown deadline", PROMPT_EXIT);
}

#[test]
fn a_second_signal_during_the_drain_exits_at_once() {
    let (mut sidecar, addr) = start(&["--shutdown-timeout", "30s"]);
    let _stuck = start_request(addr);

    sidecar.signal("TERM");
    sidecar.wait_for_log("stopped accepting", PROMPT_EXIT);
    let sent = sidecar.signal("TERM");
    let exit = sidecar.wait_exit(PROMPT_EXIT);
    assert_eq!(exit.code(), 143, "a forced stop is not a clean one");
    assert!(exit.at - sent < PROMPT_EXIT);
    sidecar.wait_for_log("second signal", PROMPT_EXIT);
}

#[test]
fn a_port_in_use_is_one_clear_error_and_exit_1() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // The error is a plain line, so it shows even with logging off or in JSON.
    for (name, value) in [
        ("RUST_LOG", "info"),
        ("RUST_LOG", "off"),
        ("LOG_FORMAT", "json"),
    ] {
        let mut command = testkit::cargo_bin(env!("CARGO_BIN_EXE_sidecar"));
        command.args(["--listen", &addr]).env(name, value);
        let mut sidecar = Process::spawn(command);
        assert_eq!(sidecar.wait_exit(STARTUP).code(), 1);
        // The words between come from the C library (glibc: "Address
        // already in use", musl: "Address in use"); the code is the kernel's.
        let stderr = sidecar.stderr();
        assert!(
            stderr.len() == 1
                && stderr[0].starts_with(&format!("sidecar: error: cannot listen on {addr}: "))
                && stderr[0].ends_with(" (os error 98)"),
            "{name}={value}: {stderr:#?}"
        );
    }
}

#[test]
fn bad_flags_are_usage_errors() {
    for (args, expected) in [
        (
            &["--no-such-flag"][..],
            "unexpected argument '--no-such-flag'",
        ),
        (
            &["--shutdown-timeout", "soon"][..],
            "invalid value 'soon' for '--shutdown-timeout <DURATION>'",
        ),
        (
            &["--listen", "nowhere"][..],
            "invalid value 'nowhere' for '--listen <ADDR>'",
        ),
        (
            &["--listen", "localhost:8080"][..],
            "invalid value 'localhost:8080' for '--listen <ADDR>': an IP address and a port are needed",
        ),
    ] {
        let mut command = testkit::cargo_bin(env!("CARGO_BIN_EXE_sidecar"));
        command.args(args);
        Process::spawn(command).assert_usage_error(&format!("error: {expected}"));
    }
}

#[test]
fn wait_ready_exits_0_once_the_sidecar_answers_and_1_when_it_never_does() {
    let (mut sidecar, addr) = start(&[]);
    let url = format!("http://{addr}/readyz");
    let mut waiter = Process::spawn({
        let mut command = testkit::cargo_bin(env!("CARGO_BIN_EXE_sidecar"));
        command.args(["wait-ready", "--url", &url, "--timeout", "5s"]);
        command
    });
    assert_eq!(waiter.wait_exit(STARTUP).code(), 0);

    sidecar.signal("TERM");
    assert_eq!(sidecar.wait_exit(PROMPT_EXIT).code(), 0);

    let mut waiter = Process::spawn({
        let mut command = testkit::cargo_bin(env!("CARGO_BIN_EXE_sidecar"));
        command.args(["wait-ready", "--url", &url, "--timeout", "300ms"]);
        command
    });
    assert_eq!(waiter.wait_exit(STARTUP).code(), 1);
    let stderr = waiter.stderr();
    assert_eq!(stderr.len(), 1, "{stderr:#?}");
    assert!(
        stderr[0].contains(&format!(
            "{url} did not answer 200 within 300ms: cannot connect"
        )),
        "{stderr:#?}"
    );
}

/// `sidecar wait-ready` on `url` for up to 10 s, with its attempts logged.
fn waiting_for(url: &str) -> Process {
    let mut command = testkit::cargo_bin(env!("CARGO_BIN_EXE_sidecar"));
    command
        .args(["wait-ready", "--url", url, "--timeout", "10s"])
        .env("RUST_LOG", "info,lifecycle=debug");
    Process::spawn(command)
}

/// A sidecar on `addr`, a port the test chose; returns once it listens.
fn listening_on(addr: SocketAddr) -> Process {
    let mut command = testkit::cargo_bin(env!("CARGO_BIN_EXE_sidecar"));
    command
        .args(["--listen", &addr.to_string()])
        .env("RUST_LOG", "info");
    let sidecar = Process::spawn(command);
    assert_eq!(listening_address(&sidecar), addr);
    sidecar
}

/// The next connection to `listener`, polled for until `within`: a waiter
/// that never connects fails the test instead of hanging it.
fn accept_within(listener: &TcpListener, within: Duration) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + within;
    loop {
        match listener.accept() {
            Ok((stream, _)) => return stream,
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no connection within {within:?}");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(err) => panic!("accept: {err}"),
        }
    }
}

#[test]
fn wait_ready_keeps_trying_until_a_sidecar_started_during_the_wait_answers() {
    // As in a Pod, where the postStart hook may start before the server
    // listens: the wait begins first, on a port that refuses connections
    // until the sidecar binds it.
    let port = ReservedPort::new();
    let url = format!("http://{}/readyz", port.addr());
    let mut waiter = waiting_for(&url);
    waiter.wait_for_log("not ready yet", STARTUP);

    let mut sidecar = listening_on(port.addr());
    assert_eq!(waiter.wait_exit(STARTUP).code(), 0);
    waiter.wait_for_log(&format!("ready url={url}"), PROMPT_EXIT);

    sidecar.signal("TERM");
    assert_eq!(sidecar.wait_exit(PROMPT_EXIT).code(), 0);
    sidecar.wait_for_log("stopped requests_served=1", PROMPT_EXIT);
}

#[test]
fn wait_ready_gives_up_an_attempt_that_stalls_and_retries_until_a_sidecar_answers() {
    // A peer that accepts and never answers (a sidecar that hangs, say),
    // replaced by one that answers, on the same port, within the wait.
    let stalling = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = stalling.local_addr().unwrap();
    let url = format!("http://{addr}/readyz");
    let mut waiter = waiting_for(&url);
    let _stalled = accept_within(&stalling, STARTUP);
    drop(stalling);
    let mut sidecar = listening_on(addr);

    assert_eq!(waiter.wait_exit(STARTUP).code(), 0);
    waiter.wait_for_log("no answer within 1s", PROMPT_EXIT);
    waiter.wait_for_log(&format!("ready url={url}"), PROMPT_EXIT);
    sidecar.signal("TERM");
    assert_eq!(sidecar.wait_exit(PROMPT_EXIT).code(), 0);
    sidecar.wait_for_log("stopped requests_served=1", PROMPT_EXIT);
}

#[test]
fn as_pid_1_sigterm_still_drains_and_exits_0() {
    let mut sidecar = testkit::cargo_bin(env!("CARGO_BIN_EXE_sidecar"));
    let Some(command) = testkit::pid1(sidecar.args(["--listen", "127.0.0.1:0"])) else {
        return;
    };
    let mut unshare = Process::spawn(command);
    let addr = listening_address(&unshare);
    assert_eq!(get(addr, "/").status, 200);

    // Signal the namespace's PID 1 itself: `unshare` does not forward signals.
    let init = unshare.first_child_pid(STARTUP);
    let sent = Process::signal_pid(init, "TERM");
    let exit = unshare.wait_exit(PROMPT_EXIT);
    assert_eq!(exit.code(), 0);
    assert!(exit.at - sent < PROMPT_EXIT);
    unshare.wait_for_log("stopped requests_served=1", PROMPT_EXIT);
}

#[test]
fn as_pid_1_a_process_without_handlers_ignores_sigterm() {
    // The control for the test above: it shows that the namespace really
    // drops unhandled signals, so the sidecar's exit there is its own doing.
    let Some(command) = testkit::pid1(Command::new("sleep").arg("30")) else {
        return;
    };
    let mut unshare = Process::spawn(command);
    let init = unshare.first_child_pid(STARTUP);
    Process::signal_pid(init, "TERM");
    assert!(
        unshare.still_running_after(Duration::from_millis(300)),
        "PID 1 without a handler died of SIGTERM"
    );
}

#[test]
fn requests_are_logged_at_debug_and_log_format_json_writes_json_lines() {
    let mut command = testkit::cargo_bin(env!("CARGO_BIN_EXE_sidecar"));
    command
        .args(["--listen", "127.0.0.1:0"])
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info,sidecar=debug");
    let mut sidecar = Process::spawn(command);
    let listening = sidecar.wait_for_log("\"message\":\"listening\"", STARTUP);
    let addr = listening
        .split("\"address\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("an address field")
        .parse()
        .unwrap();
    assert_eq!(get(addr, "/nope").status, 404);
    let request = sidecar.wait_for_log("\"message\":\"request\"", PROMPT_EXIT);
    for field in [
        "\"method\":\"GET\"",
        "\"path\":\"/nope\"",
        "\"status\":404",
        "\"level\":\"DEBUG\"",
    ] {
        assert!(request.contains(field), "{field} in {request}");
    }
    sidecar.signal("TERM");
    assert_eq!(sidecar.wait_exit(PROMPT_EXIT).code(), 0);
    for line in sidecar.stderr() {
        assert!(
            line.starts_with('{') && line.ends_with('}'),
            "not a JSON line: {line}"
        );
    }
}

#[test]
fn requests_are_not_logged_at_info() {
    let (mut sidecar, addr) = start(&[]);
    assert_eq!(get(addr, "/").status, 200);
    sidecar.signal("TERM");
    assert_eq!(sidecar.wait_exit(PROMPT_EXIT).code(), 0);
    let stderr = sidecar.stderr();
    assert!(
        stderr.iter().all(|line| !line.contains(" request ")),
        "{stderr:#?}"
    );
    assert!(
        stderr.iter().any(|line| line.contains("requests_served=1")),
        "{stderr:#?}"
    );
}

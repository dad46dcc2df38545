//! What the sidecar's test files need: starting it on a free port,
//! connections to it, its memory, and enough open files for a flood.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use testkit::{Process, wait_until_server_has_read};

/// Generous bounds: these are promises about behaviour, not benchmarks.
pub const STARTUP: Duration = Duration::from_secs(10);
pub const PROMPT_EXIT: Duration = Duration::from_secs(1);
/// How long a test waits for the server to answer or to close a connection.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A sidecar on a free loopback port, and that port.
pub fn start(extra_args: &[&str]) -> (Process, SocketAddr) {
    spawn(
        testkit::cargo_bin(env!("CARGO_BIN_EXE_sidecar")),
        extra_args,
    )
}

/// A sidecar limited to `limit` open files, through the shell's `ulimit`, as
/// the workspace forbids the unsafe code a `setrlimit` would need.
#[allow(dead_code, reason = "only hostile.rs runs out of descriptors")]
pub fn start_with_open_files_limit(limit: u32, extra_args: &[&str]) -> (Process, SocketAddr) {
    let mut shell = Command::new("sh");
    // `exec` keeps the PID, so signals and /proc reach the sidecar.
    shell.args(["-c", &format!("ulimit -n {limit} && exec \"$0\" \"$@\"")]);
    let sidecar = testkit::cargo_bin(env!("CARGO_BIN_EXE_sidecar"));
    spawn(testkit::wrap(shell, &sidecar), extra_args)
}

fn spawn(mut command: Command, extra_args: &[&str]) -> (Process, SocketAddr) {
    command
        .args(["--listen", "127.0.0.1:0"])
        .args(extra_args)
        .env("RUST_LOG", "info");
    let sidecar = Process::spawn(command);
    let addr = listening_address(&sidecar);
    (sidecar, addr)
}

/// The address the sidecar logged at start-up: the kernel picked the port.
pub fn listening_address(sidecar: &Process) -> SocketAddr {
    let line = sidecar.wait_for_log("listening", STARTUP);
    let addr = line.rsplit("address=").next().expect("an address field");
    addr.parse()
        .unwrap_or_else(|err| panic!("{addr:?} in {line:?}: {err}"))
}

/// A connection with timeouts, so that a hung server fails the test.
#[allow(dead_code, reason = "lifecycle.rs opens no bare connection")]
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("set a read timeout");
    stream
        .set_write_timeout(Some(READ_TIMEOUT))
        .expect("set a write timeout");
    stream
}

/// Opens a connection and sends a request head but its last empty line,
/// then waits until the server has read those bytes: from then on the
/// request is in flight as far as the server can tell.
#[allow(dead_code, reason = "flood.rs sends no single request")]
pub fn start_request(addr: SocketAddr) -> TcpStream {
    let mut stream = connect(addr);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n")
        .expect("send");
    wait_until_server_has_read(addr, &stream, STARTUP);
    stream
}

/// A figure of `pid` from /proc, in KiB: `VmRSS` (resident now) or `VmHWM`
/// (the peak of the resident size).
#[allow(dead_code, reason = "lifecycle.rs does not measure memory")]
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} line"));
    line.trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("a number of kB")
}

/// The soft limit on open files of this test process, raised to `needed`
/// if it is lower, with util-linux's `prlimit` (no unsafe code needed).
#[allow(
    dead_code,
    reason = "only the flood tests open thousands of connections"
)]
pub fn ensure_open_files(needed: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read limits");
    let soft: u64 = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .expect("a soft limit on open files");
    if soft < needed {
        let status = Command::new("prlimit")
            .args([
                "--pid",
                &std::process::id().to_string(),
                &format!("--nofile={needed}:"),
            ])
            .status()
            .expect("run prlimit");
        assert!(
            status.success(),
            "cannot raise this test's open-file limit from {soft} to {needed}"
        );
    }
}

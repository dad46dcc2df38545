//! What both test files of the sidecar need: starting it on a free port,
//! and connections to it.

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
#[allow(dead_code, reason = "only hostile.rs opens bare connections")]
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
pub fn start_request(addr: SocketAddr) -> TcpStream {
    let mut stream = connect(addr);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n")
        .expect("send");
    wait_until_server_has_read(addr, &stream, STARTUP);
    stream
}

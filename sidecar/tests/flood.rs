//! The sidecar under connection floods, tested on the built binary, with its
//! default connection cap: thousands of clients that connect and send
//! nothing, then thousands that each hold 8 KB of a request head they never
//! finish. The sidecar accepts no more than the cap, its memory stays under
//! [`MEMORY_BOUND_KIB`], clients too slow to send a request are cut off, it
//! answers again once the flood is gone, and SIGTERM in the middle of a
//! flood still ends in exit 0 within the shutdown deadline.
//!
//! The flood's clients run on a runtime in a thread of their own, so that
//! thousands of connects are under way at once, as from many clients, while
//! the test itself watches /proc. Clients beyond the cap and the kernel's
//! listen backlog are kept waiting by the kernel: their connects stay
//! pending. All traffic goes to 127.0.0.1, every flood is bounded in clients
//! and in time, and every wait has a deadline.

// Helpers too may unwrap: in a test, a panic is a failure with a line number.
#![allow(clippy::unwrap_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

mod support;

use support::{PROMPT_EXIT, connect, ensure_open_files, memory_kib, start};
use testkit::{HttpResponse, Process, get};

/// `--max-connections`'s default, which these tests do not pass.
const CAP: usize = 256;
/// Clients per flood: many times the cap and the kernel's backlog.
const CLIENTS: usize = 3000;
/// Open files this test process needs: two floods may run at once, as the
/// tests of one file run in parallel.
const OPEN_FILES: u64 = 2 * CLIENTS as u64 + 1024;
/// The most the sidecar may hold resident at any moment of a flood: the
/// issue's "well under 16 MB" as a hard limit. The cap's arithmetic (README:
/// Limits) puts the release binary under 10 MiB; this debug build with
/// glibc's allocator needs a little more.
const MEMORY_BOUND_KIB: u64 = 16 * 1024;
/// How long the floods' waits may take, on a machine shared with others.
const FLOOD_WAIT: Duration = Duration::from_secs(30);
const CAP_REACHED: &str = "at the connection cap";
const CAP_LEFT: &str = "below the connection cap again";

/// Clients that connect all at once, each send `first` once connected, and
/// then hold their connection until the server closes it or the flood stops.
struct Flood {
    stop: Option<oneshot::Sender<()>>,
    clients: Option<JoinHandle<()>>,
}

impl Flood {
    fn start(addr: SocketAddr, clients: usize, first: Vec<u8>) -> Flood {
        let first: Arc<[u8]> = first.into();
        let (stop, stopped) = oneshot::channel::<()>();
        let clients = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..clients {
                    let first = Arc::clone(&first);
                    tasks.spawn(async move {
                        let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
                            return;
                        };
                        if stream.write_all(&first).await.is_ok() {
                            // Until the server closes it: an answer never comes.
                            let _ = stream.read(&mut [0; 1]).await;
                        }
                    });
                }
                // Bounded whatever the test does; then dropping the tasks
                // closes every connection and abandons every pending connect.
                let _ = tokio::time::timeout(2 * FLOOD_WAIT, stopped).await;
            });
        });
        Flood {
            stop: Some(stop),
            clients: Some(clients),
        }
    }

    /// Closes every client's connection.
    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(clients) = self.clients.take() {
            clients.join().unwrap();
        }
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A request head of about 8 KB, short of the empty line that would end it.
fn unfinished_8kb_head() -> Vec<u8> {
    let mut head = b"GET / HTTP/1.1\r\nHost: test\r\nX-Pad: ".to_vec();
    head.resize(8 * 1024, b'a');
    head
}

/// The connections `pid` has open: its sockets, less the `baseline` it had
/// before any client came (the listener, the runtime's own).
fn open_connections(pid: u32, baseline: usize) -> usize {
    sockets(pid).saturating_sub(baseline)
}

fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// Established connections to `server`, as the server side's sockets in
/// /proc/net/tcp: those accepted, and those waiting in the listen backlog.
/// With `read_to_the_end`, only those with nothing left to read (accepted
/// ones that hyper has read, unlike those in the backlog with their bytes
/// still queued).
fn established(server: SocketAddr, read_to_the_end: bool) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port = format!(":{:04X}", server.port());
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Local address, state 01 (established), the receive queue.
            fields[1].ends_with(&port)
                && fields[3] == "01"
                && (!read_to_the_end || fields[4].ends_with(":00000000"))
        })
        .count()
}

/// Polls `condition` until it holds, failing the test after `within`.
fn wait_until(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the sidecar holds exactly the cap of connections and says
/// so; checks on every look that it never holds more.
fn wait_for_the_cap(sidecar: &Process, addr: SocketAddr, baseline: usize) {
    let pid = sidecar.pid();
    wait_until("the cap reached", FLOOD_WAIT, || {
        let open = open_connections(pid, baseline);
        assert!(
            open <= CAP,
            "{open} connections open, over the cap of {CAP}"
        );
        open == CAP
    });
    sidecar.wait_for_log(CAP_REACHED, FLOOD_WAIT);
    // The others are not accepted and dropped: the kernel holds them.
    wait_until("clients waiting in the backlog", FLOOD_WAIT, || {
        established(addr, false) > CAP
    });
}

/// Waits until the sidecar has read the heads sent on the connections it
/// holds (the cap of them), so that they are requests under way.
fn wait_for_the_heads_read(addr: SocketAddr) {
    wait_until("the heads read", FLOOD_WAIT, || {
        established(addr, true) >= CAP
    });
}

/// Log lines that contain `needle`, so far.
fn count_logs(sidecar: &Process, needle: &str) -> usize {
    sidecar
        .stderr()
        .iter()
        .filter(|line| line.contains(needle))
        .count()
}

fn assert_under_the_bound(pid: u32, when: &str) {
    let (now, peak) = (memory_kib(pid, "VmRSS"), memory_kib(pid, "VmHWM"));
    eprintln!("{when}: RSS {now} KiB, peak {peak} KiB");
    assert!(
        peak < MEMORY_BOUND_KIB,
        "{when}: peak RSS {peak} KiB, over {MEMORY_BOUND_KIB} KiB"
    );
}

/// True, after saying so, when the binary runs under an emulator
/// (`make test-arm64`): qemu-user's own memory (about 25 MiB) counts in the
/// sidecar's RSS, and thousands of emulated connections outlast the floods'
/// waits. The cap is the same code on every architecture; these floods run
/// natively in `make test`.
fn skipped_under_an_emulator(test: &str) -> bool {
    let Some(runner) = testkit::runner() else {
        return false;
    };
    eprintln!(
        "SKIPPED {test}: the sidecar runs under {runner}, whose own memory and speed this flood would measure"
    );
    true
}

#[test]
fn floods_of_idle_clients_and_unfinished_heads_stay_under_the_bound_and_the_sidecar_recovers() {
    if skipped_under_an_emulator(
        "floods_of_idle_clients_and_unfinished_heads_stay_under_the_bound_and_the_sidecar_recovers",
    ) {
        return;
    }
    ensure_open_files(OPEN_FILES);
    // The header-read timeout is longer than the test: only the cap bounds
    // what the flood holds. The sidecar's own open-file limit is left as
    // it is: with the cap it never needs more.
    let (mut sidecar, addr) = start(&["--header-read-timeout", "1m"]);
    let pid = sidecar.pid();
    let baseline = sockets(pid);
    eprintln!("at start: RSS {} KiB", memory_kib(pid, "VmRSS"));

    // Clients that connect and send nothing.
    let mut idle = Flood::start(addr, CLIENTS, Vec::new());
    wait_for_the_cap(&sidecar, addr, baseline);
    assert_under_the_bound(pid, &format!("{CLIENTS} idle clients"));
    assert_eq!(count_logs(&sidecar, CAP_REACHED), 1);
    idle.stop();
    wait_until("the idle flood gone", FLOOD_WAIT, || {
        open_connections(pid, baseline) == 0
    });
    // The next connection finds the places free, which ends the episode.
    assert_eq!(get(addr, "/").status, 200);
    sidecar.wait_for_log(CAP_LEFT, FLOOD_WAIT);

    // Clients that each hold 8 KB of a head, read by the sidecar.
    let mut holding = Flood::start(addr, CLIENTS, unfinished_8kb_head());
    wait_for_the_cap(&sidecar, addr, baseline);
    wait_for_the_heads_read(addr);
    assert_under_the_bound(pid, &format!("{CLIENTS} clients holding 8 KB heads"));
    holding.stop();

    // Once the flood is gone, the sidecar answers at once.
    wait_until("the flood of heads gone", FLOOD_WAIT, || {
        open_connections(pid, baseline) == 0
    });
    let response = get(addr, "/");
    assert_eq!(response.status, 200);
    // A line per episode, not per client: one for each flood, and perhaps one
    // more while the sidecar works through a backlog of closed connections.
    let episodes = count_logs(&sidecar, CAP_REACHED);
    assert!((2..=4).contains(&episodes), "{:#?}", sidecar.stderr());
    sidecar.wait_for_logs(CAP_LEFT, episodes, FLOOD_WAIT);

    assert_under_the_bound(pid, "after both floods");

    let sent = sidecar.signal("TERM");
    let exit = sidecar.wait_exit(PROMPT_EXIT);
    assert_eq!(exit.code(), 0);
    assert!(exit.at - sent < PROMPT_EXIT);
}

#[test]
fn sigterm_during_a_flood_exits_0_within_the_shutdown_deadline() {
    if skipped_under_an_emulator("sigterm_during_a_flood_exits_0_within_the_shutdown_deadline") {
        return;
    }
    ensure_open_files(OPEN_FILES);
    let deadline = Duration::from_secs(2);
    let (mut sidecar, addr) = start(&["--header-read-timeout", "1m", "--shutdown-timeout", "2s"]);
    let baseline = sockets(sidecar.pid());
    let _flood = Flood::start(addr, CLIENTS, unfinished_8kb_head());
    wait_for_the_cap(&sidecar, addr, baseline);
    wait_for_the_heads_read(addr);

    // The heads are unfinished requests, which the drain waits for until the
    // deadline; the clients in the backlog are reset with the listener.
    let sent = sidecar.signal("TERM");
    let exit = sidecar.wait_exit(deadline + PROMPT_EXIT);
    assert_eq!(exit.code(), 0);
    let took = exit.at - sent;
    assert!(
        took >= deadline,
        "exited after {took:?}, before the deadline"
    );
    sidecar.wait_for_log("stopped at the shutdown deadline", PROMPT_EXIT);
}

#[test]
fn a_client_waiting_behind_a_cap_full_of_slow_clients_is_served_once_they_time_out() {
    let timeout = Duration::from_secs(1);
    let (mut sidecar, addr) = start(&["--max-connections", "8", "--header-read-timeout", "1s"]);
    let baseline = sockets(sidecar.pid());

    // Eight clients that start a request and never finish it: the cap is full.
    let slow_started = Instant::now();
    let mut slow: Vec<_> = (0..8)
        .map(|_| {
            let mut stream = connect(addr);
            stream.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
            stream
        })
        .collect();
    wait_until("the cap full of slow clients", FLOOD_WAIT, || {
        open_connections(sidecar.pid(), baseline) == 8
    });
    sidecar.wait_for_log(CAP_REACHED, FLOOD_WAIT);

    // A legitimate client waits in the backlog, then is served.
    let mut client = std::io::BufReader::new(connect(addr));
    client
        .get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .unwrap();
    let response = HttpResponse::read_from(&mut client).unwrap();
    let answered = slow_started.elapsed();
    assert_eq!(response.status, 200);
    assert!(
        answered >= timeout,
        "answered after {answered:?}: before the slow clients timed out"
    );
    assert!(answered < 3 * timeout, "answered only after {answered:?}");

    // The slow clients were cut off without an answer.
    for stream in &mut slow {
        let mut buf = [0; 64];
        match stream.read(&mut buf) {
            Ok(0) => {}
            Err(err) if err.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("a slow client got {other:?}"),
        }
    }
    // The episode ends on the first accept that finds more than a quarter of
    // the places free. The waiting client may have been accepted when only
    // one was, so the request after it is the one that can end the episode.
    assert_eq!(get(addr, "/").status, 200);
    sidecar.wait_for_log(CAP_LEFT, PROMPT_EXIT);
    assert_eq!(count_logs(&sidecar, CAP_REACHED), 1);
    let sent = sidecar.signal("TERM");
    assert_eq!(sidecar.wait_exit(PROMPT_EXIT).code(), 0);
    assert!(sent.elapsed() < PROMPT_EXIT);
}

//! The sidecar under connection floods, tested on the built binary, with its
//! default connection cap: thousands of clients that connect and send
//! nothing, thousands that each hold 8 KB of a request head they never
//! finish, and slowloris clients that send a byte of a head every 2 s. The
//! sidecar holds no more than [`HELD_AT_MOST`] connections (the cap, those
//! still ending and the one just accepted), its memory stays under
//! [`MEMORY_BOUND_KIB`], a new client is served within a second whatever
//! the flood, a client sending a request a second sees no failure, clients
//! too slow to send a request are cut off, and SIGTERM in the middle of a
//! flood still ends in exit 0 within the shutdown deadline.
//!
//! The flood's clients run on a runtime in a thread of their own, so that
//! thousands of connects are under way at once, as from many clients, while
//! the test itself watches /proc. Clients beyond the kernel's listen backlog
//! are kept waiting by the kernel: their connects stay pending. The floods
//! run one at a time (see [`one_flood_at_a_time`]), so that each test's
//! timing is its own flood's. All traffic goes to 127.0.0.1, every flood is
//! bounded in clients and in time, and every wait has a deadline.

// Helpers too may unwrap: in a test, a panic is a failure with a line number.
#![allow(clippy::unwrap_used)]

use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

mod support;

use support::{PROMPT_EXIT, connect, ensure_open_files, memory_kib, start};
use testkit::{HttpResponse, Process, get, wait_until_server_has_read};

/// `--max-connections`'s default, which these tests do not pass.
const CAP: usize = 256;
/// Connections asked to close for room that may still be ending
/// (`MAX_LEAVING` in connection_cap.rs).
const LEAVING: usize = 16;
/// The most sockets the sidecar may hold beside its listener: the cap, the
/// connections still ending, and the one just accepted, which has no
/// buffers yet.
const HELD_AT_MOST: usize = CAP + LEAVING + 1;
/// Clients per flood: many times the cap and the kernel's backlog.
const CLIENTS: usize = 3000;
/// Open files this test process needs: the largest flood, 5,000 clients,
/// and room for the rest.
const OPEN_FILES: u64 = 5000 + 1024;
/// The most the sidecar may hold resident at any moment of a flood: the
/// issue's "well under 16 MB" as a hard limit. The cap's arithmetic
/// (docs/limits.md) puts the release binary under 10 MiB; this debug build with
/// glibc's allocator needs a little more.
const MEMORY_BOUND_KIB: u64 = 16 * 1024;
/// How long the floods' waits may take, on a machine shared with others.
const FLOOD_WAIT: Duration = Duration::from_secs(30);
/// The promise under any flood: a new client is served within this.
const SERVED_WITHIN: Duration = Duration::from_secs(1);
const CAP_REACHED: &str = "at the connection cap";
const CAP_LEFT: &str = "below the connection cap again";

/// Takes the floods' turn: one flood at a time, as the tests of one file run
/// in parallel, and two floods at once would each time the other's load.
fn one_flood_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    // A test that failed holding the turn has said why; the next may go on.
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What each client of a flood does once connected.
#[derive(Clone)]
enum Behaviour {
    /// Sends nothing.
    Silent,
    /// Sends these bytes once, then nothing.
    Send(Arc<[u8]>),
    /// Starts a request head, then sends one more byte of it every `pace`,
    /// never finishing it.
    Slowloris { pace: Duration },
    /// Sends `GET /` again as soon as each answer has come, on one kept-alive
    /// connection, and reconnects at once when the server closes it: an
    /// app's pool larger than the cap, or its reconnects after a restart.
    Busy,
}

impl Behaviour {
    async fn run(&self, stream: &mut tokio::net::TcpStream) {
        match self {
            Behaviour::Busy => return busy(stream).await,
            Behaviour::Silent => {}
            Behaviour::Send(bytes) => {
                if stream.write_all(bytes).await.is_err() {
                    return;
                }
            }
            Behaviour::Slowloris { pace } => {
                if stream
                    .write_all(b"GET / HTTP/1.1\r\nX-Slow: ")
                    .await
                    .is_err()
                {
                    return;
                }
                loop {
                    let mut byte = [0; 1];
                    tokio::select! {
                        // Pacing the client, not waiting for the server.
                        () = tokio::time::sleep(*pace) => {
                            if stream.write_all(b"a").await.is_err() {
                                return;
                            }
                        }
                        _ = stream.read(&mut byte) => return,
                    }
                }
            }
        }
        // Until the server closes it: an answer never comes.
        let _ = stream.read(&mut [0; 1]).await;
    }
}

/// A busy client's requests on one connection, until the server closes it or
/// says it will (`Connection: close`).
async fn busy(stream: &mut tokio::net::TcpStream) {
    let mut answer = Vec::new();
    loop {
        if stream
            .write_all(b"GET / HTTP/1.1\r\nHost: busy\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        answer.clear();
        // Every answer to `GET /` ends with the greeting.
        while !answer.ends_with(b"Sidecar application\n") {
            let mut chunk = [0; 512];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
        if answer
            .to_ascii_lowercase()
            .windows(17)
            .any(|w| w == b"connection: close")
        {
            return;
        }
    }
}

/// Clients that connect all at once, each behave as told once connected, and
/// then hold their connection until the server closes it or the flood stops;
/// busy clients then connect again.
struct Flood {
    stop: Option<oneshot::Sender<()>>,
    clients: Option<JoinHandle<()>>,
    size: usize,
    /// Clients whose connect has ended, in a connection or in an error.
    connects_done: Arc<AtomicUsize>,
    /// Clients whose connection the server has closed.
    closed: Arc<AtomicUsize>,
}

impl Flood {
    fn start(addr: SocketAddr, clients: usize, behaviour: Behaviour) -> Flood {
        let (stop, stopped) = oneshot::channel::<()>();
        let size = clients;
        let closed = Arc::new(AtomicUsize::new(0));
        let closed_by_server = Arc::clone(&closed);
        let connects_done = Arc::new(AtomicUsize::new(0));
        let done = Arc::clone(&connects_done);
        let clients = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..clients {
                    let behaviour = behaviour.clone();
                    let closed = Arc::clone(&closed_by_server);
                    let done = Arc::clone(&done);
                    tasks.spawn(async move {
                        let mut first = true;
                        loop {
                            let connected = tokio::net::TcpStream::connect(addr).await;
                            if std::mem::take(&mut first) {
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            let Ok(mut stream) = connected else {
                                return;
                            };
                            behaviour.run(&mut stream).await;
                            closed.fetch_add(1, Ordering::Relaxed);
                            if !matches!(behaviour, Behaviour::Busy) {
                                return;
                            }
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
            size,
            connects_done,
            closed,
        }
    }

    /// Whether every client's connect has ended: the flood has arrived.
    fn arrived(&self) -> bool {
        self.connects_done.load(Ordering::Relaxed) == self.size
    }

    /// How many of its clients the server has closed so far.
    fn closed(&self) -> usize {
        self.closed.load(Ordering::Relaxed)
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
fn unfinished_8kb_head() -> Behaviour {
    let mut head = b"GET / HTTP/1.1\r\nHost: test\r\nX-Pad: ".to_vec();
    head.resize(8 * 1024, b'a');
    Behaviour::Send(head.into())
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

/// Waits until the sidecar holds the cap of connections and says so; checks
/// on every look that it never holds more than [`HELD_AT_MOST`]. Then waits until it has
/// closed some of `flood`'s clients to make room for others: the flood is
/// larger than the cap, and the cap takes new connections.
fn wait_for_the_cap(sidecar: &Process, flood: &Flood, baseline: usize) {
    let pid = sidecar.pid();
    wait_until("the cap reached", FLOOD_WAIT, || {
        let open = open_connections(pid, baseline);
        assert!(
            open <= HELD_AT_MOST,
            "{open} connections open, over the cap of {CAP} and the one accepted"
        );
        open >= CAP
    });
    sidecar.wait_for_log(CAP_REACHED, FLOOD_WAIT);
    wait_until("flood clients closed for room", FLOOD_WAIT, || {
        flood.closed() > 0
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

/// Readies this test for a flood of thousands of clients: takes the floods'
/// turn (see [`one_flood_at_a_time`]), held until the guard is dropped, and
/// enough open files. None, after saying so, when the binary runs under an
/// emulator (`make test-arm64`): qemu-user's own memory (about 25 MiB) counts
/// in the sidecar's RSS, and thousands of emulated connections outlast the
/// floods' waits. The cap is the same code on every architecture; these
/// floods run natively in `make test`.
fn ready_for_a_large_flood(test: &str) -> Option<MutexGuard<'static, ()>> {
    if let Some(runner) = testkit::runner() {
        eprintln!(
            "SKIPPED {test}: the sidecar runs under {runner}, whose own memory and speed this flood would measure"
        );
        return None;
    }
    let turn = one_flood_at_a_time();
    ensure_open_files(OPEN_FILES);
    Some(turn)
}

#[test]
fn floods_of_idle_clients_and_unfinished_heads_stay_under_the_bound_and_the_sidecar_recovers() {
    let Some(_turn) = ready_for_a_large_flood(
        "floods_of_idle_clients_and_unfinished_heads_stay_under_the_bound_and_the_sidecar_recovers",
    ) else {
        return;
    };
    // The header-read timeout is longer than the test: only the cap bounds
    // what the flood holds. The sidecar's own open-file limit is left as
    // it is: with the cap it never needs more.
    let (mut sidecar, addr) = start(&["--header-read-timeout", "1m"]);
    let pid = sidecar.pid();
    let baseline = sockets(pid);
    eprintln!("at start: RSS {} KiB", memory_kib(pid, "VmRSS"));

    // Clients that connect and send nothing.
    let mut idle = Flood::start(addr, CLIENTS, Behaviour::Silent);
    wait_for_the_cap(&sidecar, &idle, baseline);
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
    wait_for_the_cap(&sidecar, &holding, baseline);
    wait_for_the_heads_read(addr);
    assert_under_the_bound(pid, &format!("{CLIENTS} clients holding 8 KB heads"));
    holding.stop();

    // Once the flood is gone, the sidecar answers at once.
    wait_until("the flood of heads gone", FLOOD_WAIT, || {
        open_connections(pid, baseline) == 0
    });
    let response = get(addr, "/");
    assert_eq!(response.status, 200);
    // A line per episode, not per client (thousands were closed for room): one
    // for each flood, and a few more while the sidecar works through a backlog
    // of connections whose clients had gone when the flood stopped, which end
    // at once and free places in bursts.
    let episodes = count_logs(&sidecar, CAP_REACHED);
    assert!((2..=8).contains(&episodes), "{:#?}", sidecar.stderr());
    sidecar.wait_for_logs(CAP_LEFT, episodes, FLOOD_WAIT);

    assert_under_the_bound(pid, "after both floods");

    let sent = sidecar.signal("TERM");
    let exit = sidecar.wait_exit(PROMPT_EXIT);
    assert_eq!(exit.code(), 0);
    assert!(exit.at - sent < PROMPT_EXIT);
}

#[test]
fn sigterm_during_a_flood_exits_0_within_the_shutdown_deadline() {
    let Some(_turn) =
        ready_for_a_large_flood("sigterm_during_a_flood_exits_0_within_the_shutdown_deadline")
    else {
        return;
    };
    let deadline = Duration::from_secs(2);
    let (mut sidecar, addr) = start(&["--header-read-timeout", "1m", "--shutdown-timeout", "2s"]);
    let baseline = sockets(sidecar.pid());
    let flood = Flood::start(addr, CLIENTS, unfinished_8kb_head());
    wait_for_the_cap(&sidecar, &flood, baseline);
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
fn a_client_arriving_at_a_cap_full_of_slow_clients_is_served_at_once_in_the_oldest_ones_place() {
    // The header-read timeout is longer than the test: only the cap's rule
    // can make room.
    let (mut sidecar, addr) = start(&["--max-connections", "8", "--header-read-timeout", "1m"]);
    let baseline = sockets(sidecar.pid());

    // Eight clients that start a request and never finish it: the cap is
    // full. Each is read by the sidecar before the next connects, so they
    // are the oldest in the order they came.
    let mut slow: Vec<_> = (0..8)
        .map(|_| {
            let mut stream = connect(addr);
            stream.write_all(b"GET / HTTP/1.1\r\nX-Slow: ").unwrap();
            wait_until_server_has_read(addr, &stream, FLOOD_WAIT);
            stream
        })
        .collect();
    wait_until("the cap full of slow clients", FLOOD_WAIT, || {
        open_connections(sidecar.pid(), baseline) == 8
    });

    // A new client is served at once: the oldest slow client makes room.
    let asked = Instant::now();
    let response = get(addr, "/");
    assert_eq!(response.status, 200);
    assert!(
        asked.elapsed() < SERVED_WITHIN,
        "answered after {:?}",
        asked.elapsed()
    );
    sidecar.wait_for_log(CAP_REACHED, PROMPT_EXIT);
    let (first, others) = slow.split_first_mut().unwrap();
    let mut buf = [0; 64];
    match first.read(&mut buf) {
        Ok(0) => {}
        Err(err) if err.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("the oldest slow client got {other:?}"),
    }
    // The others are still open: nothing to read, and no end of file.
    for stream in others.iter_mut() {
        stream.set_nonblocking(true).unwrap();
        let err = stream.read(&mut buf).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::WouldBlock,
            "a younger slow client was closed"
        );
    }

    // The episode ends on the first accept that finds more than a quarter of
    // the places free, and says how many connections made room.
    slow.clear();
    wait_until("the slow clients gone", FLOOD_WAIT, || {
        open_connections(sidecar.pid(), baseline) == 0
    });
    assert_eq!(get(addr, "/").status, 200);
    let line = sidecar.wait_for_log(CAP_LEFT, PROMPT_EXIT);
    assert!(line.contains("closed_for_room=1"), "{line}");
    assert_eq!(count_logs(&sidecar, CAP_REACHED), 1);
    let sent = sidecar.signal("TERM");
    assert_eq!(sidecar.wait_exit(PROMPT_EXIT).code(), 0);
    assert!(sent.elapsed() < PROMPT_EXIT);
}

/// A client like the app: one request a second on one kept-alive
/// connection, until stopped; every answer must be a whole 200.
struct SteadyClient {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Result<usize, String>>>,
}

impl SteadyClient {
    fn start(addr: SocketAddr) -> SteadyClient {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let answered_so_far = Arc::new(AtomicUsize::new(0));
        let answers = Arc::clone(&answered_so_far);
        let thread = std::thread::spawn(move || {
            let mut stream = BufReader::new(connect(addr));
            let mut answered = 0;
            while !stopped.load(Ordering::Relaxed) {
                let asked = Instant::now();
                stream
                    .get_mut()
                    .write_all(b"GET /healthz HTTP/1.1\r\nHost: app\r\n\r\n")
                    .map_err(|err| format!("request {}: {err}", answered + 1))?;
                let response = HttpResponse::read_from(&mut stream)
                    .map_err(|err| format!("request {}: {err}", answered + 1))?;
                if response.status != 200 || asked.elapsed() > SERVED_WITHIN {
                    return Err(format!(
                        "request {}: {} after {:?}",
                        answered + 1,
                        response.status,
                        asked.elapsed()
                    ));
                }
                answered += 1;
                answers.store(answered, Ordering::Relaxed);
                // Pacing the client, as an app's own work would.
                std::thread::sleep(Duration::from_secs(1));
            }
            Ok(answered)
        });
        SteadyClient {
            stop,
            answered: answered_so_far,
            thread: Some(thread),
        }
    }

    /// Waits until it has had `more` answers from now on.
    fn wait_for_answers(&self, more: usize) {
        let target = self.answered.load(Ordering::Relaxed) + more;
        let pace = Duration::from_secs(1) + SERVED_WITHIN;
        wait_until(
            "the steady client's answers",
            pace * (more as u32 + 1),
            || {
                self.answered.load(Ordering::Relaxed) >= target
                    || self
                        .thread
                        .as_ref()
                        .is_none_or(|thread| thread.is_finished())
            },
        );
    }

    /// Stops it; returns how many requests it made, all answered 200.
    fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.take().unwrap();
        match thread.join().unwrap() {
            Ok(answered) => answered,
            Err(failure) => panic!("the steady client saw a failure: {failure}"),
        }
    }
}

/// Asks a few new clients, one after the other, for `GET /`: each must be
/// answered 200 within [`SERVED_WITHIN`]. Returns the slowest time.
fn new_clients_are_served(addr: SocketAddr, during: &str) -> Duration {
    (0..5)
        .map(|_| {
            let asked = Instant::now();
            let response = get(addr, "/");
            let took = asked.elapsed();
            assert_eq!(response.status, 200, "{during}");
            assert!(took < SERVED_WITHIN, "{during}: served after {took:?}");
            took
        })
        .max()
        .unwrap()
}

#[test]
fn under_each_flood_a_new_client_is_served_within_a_second_and_a_steady_one_sees_no_failure() {
    let Some(_turn) = ready_for_a_large_flood(
        "under_each_flood_a_new_client_is_served_within_a_second_and_a_steady_one_sees_no_failure",
    ) else {
        return;
    };
    // The defaults: 256 connections, a header-read timeout of 10 s, a
    // shutdown deadline of 5 s.
    let (mut sidecar, addr) = start(&[]);
    let pid = sidecar.pid();
    let baseline = sockets(pid);
    let steady = SteadyClient::start(addr);
    let slowloris = Behaviour::Slowloris {
        pace: Duration::from_secs(2),
    };

    let phases = [
        ("1,000 idle connections", vec![(1000, Behaviour::Silent)]),
        ("400 slowloris clients", vec![(400, slowloris)]),
        (
            "5,000 connections, 3,000 of them holding 8 KB heads",
            vec![(2000, Behaviour::Silent), (3000, unfinished_8kb_head())],
        ),
    ];
    let last = phases.len() - 1;
    // The last flood is still on when SIGTERM comes.
    let mut still_on = Vec::new();
    for (phase, (during, floods)) in phases.into_iter().enumerate() {
        let floods: Vec<Flood> = floods
            .into_iter()
            .map(|(clients, behaviour)| Flood::start(addr, clients, behaviour))
            .collect();
        wait_for_the_cap(&sidecar, floods.last().unwrap(), baseline);
        // The new clients come once the flood has arrived, as in the issue's
        // measurements: its connections are all open or closed for room, and
        // the kernel holds none waiting.
        wait_until("the flood arrived", FLOOD_WAIT, || {
            floods.iter().all(Flood::arrived) && established(addr, false) <= HELD_AT_MOST
        });
        let slowest = new_clients_are_served(addr, during);
        eprintln!("{during}: new clients served within {slowest:?}");
        // Two of the steady client's requests during this flood (a failed one
        // ends it, which finish() reports).
        steady.wait_for_answers(2);
        assert_under_the_bound(pid, during);
        if phase == last {
            still_on = floods;
        } else {
            drop(floods);
            // The steady client's connection stays.
            wait_until("the flood gone", FLOOD_WAIT, || {
                open_connections(pid, baseline) <= 1
            });
        }
    }

    // The steady client has had its answers through all three, and SIGTERM
    // during the last flood still ends in exit 0 within the deadline.
    let answered = steady.finish();
    eprintln!("the steady client: {answered} requests, all answered 200 within {SERVED_WITHIN:?}");
    let sent = sidecar.signal("TERM");
    let exit = sidecar.wait_exit(Duration::from_secs(5) + PROMPT_EXIT);
    assert_eq!(exit.code(), 0);
    eprintln!(
        "SIGTERM during the flood: exit 0 after {:?}",
        exit.at - sent
    );
    drop(still_on);
}

/// What one new client saw: the status of its answer, or why there was
/// none, and how long it took.
fn ask_as_a_new_client(addr: SocketAddr) -> (Result<u16, String>, Duration) {
    let asked = Instant::now();
    let outcome = (|| {
        let mut stream = BufReader::new(connect(addr));
        stream
            .get_mut()
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: new\r\n\r\n")
            .map_err(|err| format!("sending: {err}"))?;
        HttpResponse::read_from(&mut stream)
            .map(|response| response.status)
            .map_err(|err| format!("no answer: {err}"))
    })();
    (outcome, asked.elapsed())
}

/// Issue 24's case: more busy keep-alive clients than the cap, each
/// reconnecting at once when closed, and new clients arriving one every
/// 50 ms. Each new client gets an answer; the figures it prints are the
/// debug build's (docs/availability.md has the release build's).
#[test]
fn beside_busy_clients_that_reconnect_at_once_every_new_client_is_answered() {
    let Some(_turn) = ready_for_a_large_flood(
        "beside_busy_clients_that_reconnect_at_once_every_new_client_is_answered",
    ) else {
        return;
    };
    for busy_clients in [300, 1000] {
        let (mut sidecar, addr) = start(&[]);
        let pid = sidecar.pid();
        let baseline = sockets(pid);
        let busy = Flood::start(addr, busy_clients, Behaviour::Busy);
        sidecar.wait_for_log(CAP_REACHED, FLOOD_WAIT);

        let new_clients: Vec<_> = (0..200)
            .map(|_| {
                let client = std::thread::spawn(move || ask_as_a_new_client(addr));
                std::thread::sleep(Duration::from_millis(50));
                let open = open_connections(pid, baseline);
                assert!(open <= HELD_AT_MOST, "{open} connections open");
                client
            })
            .collect();
        let seen: Vec<_> = new_clients
            .into_iter()
            .map(|client| client.join().unwrap())
            .collect();
        let served = seen.iter().filter(|(status, _)| status == &Ok(200)).count();
        let worst = seen.iter().map(|(_, took)| *took).max().unwrap();
        let during = format!("{busy_clients} busy clients");
        eprintln!(
            "{during}: {served} of {} new clients served 200, the slowest answered in {worst:?}, {} busy reconnects",
            seen.len(),
            busy.closed()
        );
        for (status, took) in &seen {
            assert!(
                status.is_ok(),
                "{during}: a new client got {status:?} after {took:?}"
            );
            assert!(*took < SERVED_WITHIN, "{during}: answered after {took:?}");
        }
        assert_under_the_bound(pid, &during);

        let sent = sidecar.signal("TERM");
        let exit = sidecar.wait_exit(Duration::from_secs(5) + PROMPT_EXIT);
        assert_eq!(exit.code(), 0, "{during}");
        eprintln!("{during}: SIGTERM, exit 0 after {:?}", exit.at - sent);
        drop(busy);
    }
}

//! The HTTP server and its graceful shutdown.
//!
//! [`run`] takes the shutdown trigger as a future: the binary passes the
//! first SIGTERM, a test passes whatever it controls. While serving, it gives
//! each connection it accepts a place under the connection cap, asking an
//! open one to close when the cap is full (see [`ConnectionCap`]), and each
//! connection is closed once its client has gone the header-read timeout
//! without a request: on a new connection, and on a kept-alive one idle
//! between requests, but never while a request is under way (see
//! [`connection`]).
//!
//! A panic in one connection's task ends that connection alone: tokio catches
//! it (a spawned task's panic becomes its `JoinError`, `is_panic()`), the
//! unwinding drops the connection's socket and its place under the cap, and
//! the accept loop and the other connections go on. That needs the release
//! profile to unwind, which it does (see `Cargo.toml`).
//!
//! Once the trigger fires, the server stops in this order:
//!
//! 1. Stop accepting: the listener is closed, so new connections are refused
//!    and those still waiting in the kernel's backlog are reset (and a
//!    kubelet probe sees the sidecar as not ready).
//! 2. Turn readiness off: from now on `/readyz` answers 503. Only a request
//!    already under way can see it: the first request of a connection, if
//!    part of its head has arrived by the time the drain reaches it.
//! 3. Drain: connections with nothing under way are closed at once, without
//!    an answer: a new one that has sent nothing yet, and a kept-alive one
//!    between requests, even with part of its next head read. A request
//!    under way is answered, then its connection is closed. The header-read
//!    timeout still applies.
//! 4. Stop waiting at the deadline, even if a client holds a connection open,
//!    so the sidecar always exits well within the Pod's grace period.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpSocket};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::accept_backoff::AcceptBackoff;
use crate::connection::{self, Ending};
use crate::connection_cap::ConnectionCap;
use crate::routes;

/// The largest request head accepted. A sidecar's clients are probes and
/// local callers with a few short headers; hyper's default (about 400 KiB)
/// would let each connection hold far more memory than it ever needs. A
/// larger head is answered 431.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// The kernel's queue of connections not yet accepted. A burst of connects
/// (a flood, or every client reconnecting after a restart) arrives faster
/// than one accept loop takes it; a full queue drops SYNs, and a client whose
/// SYN is dropped sends it again only 1 s later, then 2 s after that, and so
/// on (the initial retransmission timeout of RFC 6298, doubling). tokio's
/// `TcpListener::bind` asks for 128, std's value (it calls mio 1.2's
/// `TcpListener::bind`, which says so). Linux caps the value at
/// `net.core.somaxconn` (4096 by default since Linux 5.4, 128 before:
/// listen(2)). What it costs is kernel memory, and only while connections
/// wait: each is a socket of a few KiB plus what its client has sent, up to
/// its receive buffer.
const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` with [`LISTEN_BACKLOG`]. Like tokio's and std's
/// `bind`, it sets `SO_REUSEADDR`, so a restarted sidecar can bind while
/// connections of the last one linger in TIME_WAIT.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How the server behaves; see the flags of the same names.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long the drain may take before open connections are abandoned.
    pub shutdown_timeout: Duration,
    /// How long a connection may go without a complete request head, so that
    /// a slow, stuck or idle client cannot hold a connection (and its memory)
    /// for ever.
    pub header_read_timeout: Duration,
    /// How many connections may be open at once; see [`ConnectionCap`].
    pub max_connections: usize,
}

/// What the server did, for the last log line.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// Requests answered, from start to exit.
    pub requests_served: u64,
    /// How long the drain took.
    pub drain: Duration,
    /// False when the deadline was reached with connections still open.
    pub drained: bool,
}

/// State the request handler shares with the accept loop.
#[derive(Debug)]
struct Shared {
    ready: AtomicBool,
    requests_served: AtomicU64,
}

/// Serves HTTP/1.1 on `listener` until `shutdown` completes, then drains.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> Report {
    let shared = Arc::new(Shared {
        ready: AtomicBool::new(true),
        requests_served: AtomicU64::new(0),
    });
    let mut http = http1::Builder::new();
    // The connections' deadlines are their own (see connection.rs). `None`
    // says so: without a timer hyper drops its default of 30 s anyway, with a
    // warning only under its `tracing` feature, which is off here.
    http.header_read_timeout(None)
        .max_buf_size(MAX_REQUEST_HEAD);
    let graceful = GracefulShutdown::new();
    let mut backoff = AcceptBackoff::default();
    let mut cap = ConnectionCap::new(settings.max_connections);

    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(err) => {
                let reaction = backoff.on_error(Instant::now());
                if let Some(unlogged) = reaction.log {
                    warn!(%err, suppressed = unlogged, pause = ?reaction.pause, "accept failed; backing off");
                }
                tokio::select! {
                    () = tokio::time::sleep(reaction.pause) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        backoff.on_success();
        // Accepted first, then placed: at the cap, the new connection takes
        // the place of one the cap asks to close.
        let place = tokio::select! {
            place = cap.room() => place,
            () = &mut shutdown => break,
        };
        let shared = Arc::clone(&shared);
        let activity = Arc::clone(place.activity());
        // The body is never read: no route takes one. Dropping the request
        // makes hyper discard the rest of a body and close the connection after
        // the answer, so a large upload is never held in memory.
        let service = service_fn(move |request: Request<Incoming>| {
            let under_way = activity.request();
            let shared = Arc::clone(&shared);
            async move {
                #[cfg(feature = "fault-injection")]
                if request.uri().path() == "/slow" {
                    tokio::time::sleep(routes::SLOW_ANSWER).await;
                }
                let response = handle(&shared, &request, under_way.connection_closing());
                Ok::<_, Infallible>(response)
            }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        let timeout = settings.header_read_timeout;
        tokio::spawn(async move {
            // The whole place, not only the activity the code below reads:
            // its permit is what holds the connection's place under the cap.
            let place = place;
            // Client-side failures (resets, timeouts, malformed requests) end
            // one connection and say nothing about the server's health.
            match connection::serve(connection, place.activity(), timeout).await {
                Ending::Served(Ok(())) => {}
                Ending::Served(Err(err)) => debug!(%err, "connection ended with an error"),
                Ending::TimedOut => {
                    debug!("closed a connection without a request within the header-read timeout")
                }
                Ending::MadeRoom => {
                    debug!("closed a connection without a request to make room for a new one")
                }
            }
        });
    }

    drop(listener);
    shared.ready.store(false, Ordering::Relaxed);
    info!(
        open_connections = graceful.count(),
        "stopped accepting; draining"
    );
    let started = Instant::now();
    let drained = tokio::select! {
        () = graceful.shutdown() => true,
        () = tokio::time::sleep(settings.shutdown_timeout) => false,
    };
    Report {
        requests_served: shared.requests_served.load(Ordering::Relaxed),
        drain: started.elapsed(),
        drained,
    }
}

/// What an answer says when its connection ends after it. A static, as in
/// routes.rs: `from_static` checks every byte, once.
static CLOSE: HeaderValue = HeaderValue::from_static("close");

/// Answers one request and counts it. A connection asked to close says so
/// in its answer, and hyper ends it after the answer.
fn handle(shared: &Shared, request: &Request<Incoming>, closing: bool) -> Response<Full<Bytes>> {
    let mut response = routes::respond(
        request.method(),
        request.uri().path(),
        shared.ready.load(Ordering::Relaxed),
    );
    if closing {
        response.headers_mut().insert(CONNECTION, CLOSE.clone());
    }
    shared.requests_served.fetch_add(1, Ordering::Relaxed);
    debug!(method = %request.method(), path = request.uri().path(), status = response.status().as_u16(), "request");
    response
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    use super::*;

    /// Far longer than the test: only a drain that finishes can end it.
    const PATIENT: Settings = Settings {
        shutdown_timeout: Duration::from_secs(60),
        header_read_timeout: Duration::from_secs(60),
        max_connections: 16,
    };

    /// How long a read may wait: a server that never answers (say, a mutant
    /// that never accepts) fails the test instead of hanging it.
    const READ_DEADLINE: Duration = Duration::from_secs(10);

    /// Reads until `stream` holds a whole answer ending in `suffix`.
    async fn read_until(stream: &mut TcpStream, suffix: &[u8]) -> Vec<u8> {
        let mut reply = Vec::new();
        let reading = async {
            while !reply.ends_with(suffix) {
                let mut chunk = [0; 512];
                let n = stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&reply));
                reply.extend_from_slice(&chunk[..n]);
            }
        };
        if tokio::time::timeout(READ_DEADLINE, reading).await.is_err() {
            panic!(
                "no whole answer within {READ_DEADLINE:?}: {:?}",
                String::from_utf8_lossy(&reply)
            );
        }
        reply
    }

    #[tokio::test]
    async fn serves_until_the_trigger_then_closes_idle_connections_and_reports() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // The test holds the trigger: a oneshot instead of a signal.
        let (trigger, triggered) = oneshot::channel::<()>();
        let server = tokio::spawn(run(listener, PATIENT, async {
            let _ = triggered.await;
        }));

        // One answer on a keep-alive connection, which then stays open, idle.
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let reply = read_until(&mut client, routes::GREETING.as_bytes()).await;
        assert!(reply.starts_with(b"HTTP/1.1 200 OK\r\n"));

        trigger.send(()).unwrap();
        let report = tokio::time::timeout(READ_DEADLINE, server)
            .await
            .expect("the drain never ended")
            .unwrap();
        assert!(report.drained, "an idle connection must not hold the drain");
        assert_eq!(report.requests_served, 1);
        let closed = tokio::time::timeout(READ_DEADLINE, client.read(&mut [0; 16])).await;
        assert_eq!(
            closed.expect("the connection stayed open").unwrap(),
            0,
            "the drain closes idle connections"
        );
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the listener is closed"
        );
    }
}

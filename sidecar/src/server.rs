//! The HTTP server and its graceful shutdown.
//!
//! [`run`] takes the shutdown trigger as a future: the binary passes the
//! first SIGTERM, a test passes whatever it controls. While serving, it takes
//! a place under the connection cap before each accept (see
//! [`ConnectionCap`]), and hyper closes any connection whose client takes
//! longer than the header-read timeout to send a request head. The timer
//! starts whenever hyper waits for a head: on a new connection, and on a
//! kept-alive one as soon as the previous answer is sent, so the same
//! timeout also closes connections left idle.
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
//!    under way is answered, then its connection is closed.
//! 4. Stop waiting at the deadline, even if a client holds a connection open,
//!    so the sidecar always exits well within the Pod's grace period.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::accept_backoff::AcceptBackoff;
use crate::connection_cap::ConnectionCap;
use crate::routes;

/// The largest request head accepted. A sidecar's clients are probes and
/// local callers with a few short headers; hyper's default (about 400 KiB)
/// would let each connection hold far more memory than it ever needs. A
/// larger head is answered 431.
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// How the server behaves; see the flags of the same names.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// How long the drain may take before open connections are abandoned.
    pub shutdown_timeout: Duration,
    /// How long a client may take to send a request's head, so that a slow or
    /// stuck client cannot hold a connection (and its memory) for ever.
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
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(MAX_REQUEST_HEAD);
    let graceful = GracefulShutdown::new();
    let mut backoff = AcceptBackoff::default();
    let mut cap = ConnectionCap::new(settings.max_connections);

    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Room first, then accept: at the cap, connections wait in the kernel.
        let next = async { (cap.room().await, listener.accept().await) };
        let (place, accepted) = tokio::select! {
            next = next => next,
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
        let shared = Arc::clone(&shared);
        // The body is never read: no route takes one. Dropping the request
        // makes hyper discard the rest of a body and close the connection after
        // the answer, so a large upload is never held in memory.
        let service = service_fn(move |request| {
            std::future::ready(Ok::<_, Infallible>(handle(&shared, &request)))
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // The connection's place under the cap, freed when it ends.
            let _place = place;
            // Client-side failures (resets, timeouts, malformed requests) end
            // one connection and say nothing about the server's health.
            if let Err(err) = connection.await {
                debug!(%err, "connection ended with an error");
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

/// Answers one request and counts it.
fn handle(shared: &Shared, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let response = routes::respond(
        request.method(),
        request.uri().path(),
        shared.ready.load(Ordering::Relaxed),
    );
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

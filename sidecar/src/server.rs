//! The HTTP server and its graceful shutdown.
//!
//! [`run`] takes the shutdown trigger as a future: the binary passes the
//! first SIGTERM, a test passes whatever it controls. Once the trigger fires,
//! the server stops in this order:
//!
//! 1. Stop accepting: the listener is closed, so new connections are refused
//!    (and a kubelet probe sees the sidecar as not ready).
//! 2. Turn readiness off: `/readyz` answers 503 on connections still open.
//! 3. Drain: idle keep-alive connections are closed at once; a request in
//!    flight is answered, then its connection is closed.
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
                if let Some(suppressed) = reaction.log_with_suppressed {
                    warn!(%err, suppressed, pause = ?reaction.pause, "accept failed; backing off");
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

//! Bench-only baseline: the barest hyper server, to show what the sidecar's
//! features cost.
//!
//! It is what the sidecar would be without them: the same hyper, hyper-util
//! and current-thread Tokio runtime, built with the same toolchain and release
//! profile, but no flags parser, no logging, no routes, no header-read timeout
//! or head-size cap, no signal handling and no graceful drain. SIGTERM keeps
//! its default action, so the kernel ends the process at once: the lower bound
//! for "SIGTERM to exit".
//!
//! `scripts/bench.py` builds and runs it. To try it by hand:
//! `cargo run --release -p sidecar --example bare_hello -- --listen 127.0.0.1:0`,
//! then `curl` the address it prints and `kill` it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::ExitCode;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The sidecar's answer to `GET /`, byte for byte, so that both servers
/// write responses of the same size and the comparison is of code, not of
/// bytes on the wire.
const BODY: &[u8] = b"Sidecar application\n";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let listen = match (args.next().as_deref(), args.next(), args.next()) {
        (None, _, _) => "127.0.0.1:8080".to_owned(),
        (Some("--listen"), Some(addr), None) => addr,
        _ => {
            eprintln!("usage: bare_hello [--listen ADDR:PORT]");
            return ExitCode::from(2);
        }
    };
    let Ok(listen) = listen.parse::<SocketAddr>() else {
        eprintln!("bare_hello: --listen wants ADDR:PORT, got {listen:?}");
        return ExitCode::from(2);
    };
    let listener = match TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("bare_hello: cannot listen on {listen}: {err}");
            return ExitCode::FAILURE;
        }
    };
    let Ok(bound) = listener.local_addr() else {
        eprintln!("bare_hello: the listener has no local address");
        return ExitCode::FAILURE;
    };
    // The sidecar's log line ends the same way, so the bench finds the port
    // of either server with one pattern.
    eprintln!("listening address={bound}");

    loop {
        // A failed accept (EMFILE, a reset) is retried at once. The sidecar
        // backs off instead; the baseline never meets such errors in the bench.
        let Ok((stream, _peer)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(|_request: Request<hyper::body::Incoming>| {
                std::future::ready(Ok::<_, Infallible>(Response::new(Full::new(
                    Bytes::from_static(BODY),
                ))))
            });
            // A client that resets or sends garbage ends its own connection;
            // the baseline has nobody to tell.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

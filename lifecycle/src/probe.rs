//! A minimal HTTP client for one job: GET a URL until it answers 200.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The most of a reply body that is read. The sidecar's replies are a line.
const MAX_BODY: usize = 64 * 1024;
/// Retries start fast, since a sidecar is usually up within milliseconds,
/// and slow down so that a sidecar that is slow to start is not flooded.
const FIRST_BACKOFF: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// The longest one attempt may take, connect to body. A sidecar on the
/// Pod's loopback answers within milliseconds; one that has accepted and not
/// answered within a second is stuck or gone (restarting, say), and a new
/// attempt on a new connection is the way to find out that it is back.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// An `http://` URL whose host is an IP address, such as
/// `http://127.0.0.1:8080/readyz`.
///
/// Names are refused on purpose. Containers of one Pod share a network
/// namespace, so a sidecar is always at `127.0.0.1`; and a lookup runs on a
/// blocking thread that no deadline can cut short, which the runtime waits
/// for at exit, so a slow resolver could hold the app past SIGTERM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    uri: Uri,
    addr: SocketAddr,
}

/// Why a string is not an [`HttpUrl`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("not a URL: {0}")]
    Syntax(String),
    /// Not `http://`.
    #[error("only http:// URLs are supported")]
    Scheme,
    /// The host is a name, not an IP address.
    #[error(
        "the host must be an IP address such as 127.0.0.1, not a name (a sidecar shares the Pod's loopback)"
    )]
    HostName,
}

impl FromStr for HttpUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let uri: Uri = text
            .parse()
            .map_err(|err: hyper::http::uri::InvalidUri| UrlError::Syntax(err.to_string()))?;
        if uri.scheme_str() != Some("http") {
            return Err(UrlError::Scheme);
        }
        let host = uri.host().ok_or(UrlError::HostName)?;
        // An IPv6 literal keeps its brackets in the URI's host.
        let ip: IpAddr = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| UrlError::HostName)?;
        let addr = SocketAddr::new(ip, uri.port_u16().unwrap_or(80));
        Ok(Self { uri, addr })
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.uri.fmt(f)
    }
}

/// Why one GET did not answer 200.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// The TCP connection failed: usually refused, as nothing listens yet.
    #[error("cannot connect: {0}")]
    Connect(#[from] std::io::Error),
    /// The connection broke or the reply was not HTTP.
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
    /// The body could not be read, or was larger than expected.
    #[error("cannot read the reply: {0}")]
    Body(Box<dyn std::error::Error + Send + Sync>),
    /// The URL did not make a valid request (an unusual path).
    #[error("cannot build the request: {0}")]
    Request(#[from] hyper::http::Error),
    /// An answer, but not 200.
    #[error("answered {0}")]
    Status(StatusCode),
    /// No whole answer within the attempt's time: the peer accepted, and
    /// then said nothing, or too slowly.
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Stalled(Duration),
}

/// A wait that ran out of time.
#[derive(Debug, thiserror::Error)]
#[error("{url} did not answer 200 within {}: {}", humantime::format_duration(*.within), last_error_text(.last_error))]
pub struct WaitError {
    /// What was asked.
    pub url: HttpUrl,
    /// How long it was given.
    pub within: Duration,
    /// What the last attempt saw, if any attempt finished.
    pub last_error: Option<AttemptError>,
}

fn last_error_text(last_error: &Option<AttemptError>) -> String {
    match last_error {
        Some(err) => err.to_string(),
        None => "no attempt finished".to_owned(),
    }
}

/// One GET. Returns the body of a 200 answer.
async fn get(url: &HttpUrl) -> Result<Bytes, AttemptError> {
    let stream = TcpStream::connect(url.addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection object does the I/O; it ends once `sender` is dropped.
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%err, "probe connection ended with an error");
        }
    });

    let path = url.uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Request::get(path)
        .header(hyper::header::HOST, url.addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(AttemptError::Body)?
        .to_bytes();
    if status != StatusCode::OK {
        return Err(AttemptError::Status(status));
    }
    Ok(body)
}

/// One GET, given up after `limit`.
async fn attempt(url: &HttpUrl, limit: Duration) -> Result<Bytes, AttemptError> {
    match tokio::time::timeout(limit, get(url)).await {
        Ok(answer) => answer,
        Err(_) => Err(AttemptError::Stalled(limit)),
    }
}

/// GETs `url` until it answers 200, for at most `within`, backing off between
/// attempts. Each attempt is given at most 1 s, so that a peer that accepts
/// and never answers is tried again on a new connection rather than holding
/// the whole wait. Returns the body of the first 200 answer.
pub async fn wait_until_ok(url: &HttpUrl, within: Duration) -> Result<Bytes, WaitError> {
    wait_with_attempts_of(url, within, ATTEMPT_TIMEOUT).await
}

async fn wait_with_attempts_of(
    url: &HttpUrl,
    within: Duration,
    attempt_timeout: Duration,
) -> Result<Bytes, WaitError> {
    let mut last_error = None;
    let attempts = async {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match attempt(url, attempt_timeout).await {
                Ok(body) => return body,
                Err(err) => {
                    tracing::debug!(%url, %err, "not ready yet");
                    last_error = Some(err);
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = next_backoff(backoff);
        }
    };
    // The deadline covers the attempts too, so that the last attempt cannot
    // hold the wait past it.
    match tokio::time::timeout(within, attempts).await {
        Ok(body) => Ok(body),
        Err(_) => Err(WaitError {
            url: url.clone(),
            within,
            last_error,
        }),
    }
}

/// The pause after `backoff`: twice as long, up to [`MAX_BACKOFF`].
fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A server on a free loopback port that answers one connection each
    /// with the next of `replies` (status, body), then stops.
    fn serve(replies: Vec<(u16, Vec<u8>)>) -> HttpUrl {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/readyz", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for (status, body) in replies {
                let (mut stream, _) = listener.accept().unwrap();
                let mut head = [0; 1024];
                let _ = stream.read(&mut head).unwrap();
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                // The client may hang up early on a body over the limit.
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body);
            }
        });
        url.parse().unwrap()
    }

    /// A server on a free loopback port that accepts its first `stalls`
    /// connections and never answers them, and answers every later one 200
    /// `ready`, for as long as the test runs.
    fn stall_then_answer(stalls: usize) -> HttpUrl {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/readyz", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            let mut stalled = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                if stalled.len() < stalls {
                    // Held open, never answered.
                    stalled.push(stream);
                    continue;
                }
                let _ = stream.read(&mut [0; 1024]);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nready\n",
                );
            }
        });
        url.parse().unwrap()
    }

    #[tokio::test]
    async fn an_attempt_that_stalls_is_given_up_and_the_next_one_is_answered() {
        let url = stall_then_answer(1);
        let started = std::time::Instant::now();
        let body = wait_with_attempts_of(&url, Duration::from_secs(30), Duration::from_millis(200))
            .await
            .expect("a later attempt is answered");
        assert_eq!(body, "ready\n");
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200),
            "took {took:?}: no stall?"
        );
        assert!(
            took < Duration::from_secs(10),
            "took {took:?}: the stall held the wait"
        );
    }

    #[tokio::test]
    async fn a_wait_that_ends_on_a_stalled_attempt_says_so() {
        let url = stall_then_answer(usize::MAX);
        let err =
            wait_with_attempts_of(&url, Duration::from_millis(300), Duration::from_millis(200))
                .await
                .expect_err("the only attempt that finished stalled");
        assert!(
            matches!(err.last_error, Some(AttemptError::Stalled(_))),
            "{err}"
        );
        assert!(err.to_string().ends_with("no answer within 200ms"), "{err}");
    }

    #[test]
    fn parses_ip_urls() {
        let url: HttpUrl = "http://127.0.0.1:8080/readyz".parse().unwrap();
        assert_eq!(url.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(url.to_string(), "http://127.0.0.1:8080/readyz");

        let url: HttpUrl = "http://[::1]/".parse().unwrap();
        assert_eq!(url.addr, "[::1]:80".parse().unwrap());
    }

    #[test]
    fn refuses_names_other_schemes_and_garbage() {
        assert_eq!(
            "http://localhost:8080/".parse::<HttpUrl>(),
            Err(UrlError::HostName)
        );
        assert_eq!(
            "https://127.0.0.1/".parse::<HttpUrl>(),
            Err(UrlError::Scheme)
        );
        assert_eq!("127.0.0.1:8080".parse::<HttpUrl>(), Err(UrlError::Scheme));
        assert!(matches!(
            "http://a b".parse::<HttpUrl>(),
            Err(UrlError::Syntax(_))
        ));
    }

    #[test]
    fn the_pause_between_attempts_doubles_up_to_the_cap() {
        let mut backoff = FIRST_BACKOFF;
        let mut pauses = vec![backoff.as_millis()];
        for _ in 0..6 {
            backoff = next_backoff(backoff);
            pauses.push(backoff.as_millis());
        }
        assert_eq!(pauses, [20, 40, 80, 160, 320, 500, 500]);
    }

    #[tokio::test]
    async fn a_wait_retries_until_200_and_returns_that_body() {
        let url = serve(vec![
            (503, b"shutting down\n".to_vec()),
            (404, b"not found\n".to_vec()),
            (200, b"ready\n".to_vec()),
        ]);
        let body = wait_until_ok(&url, Duration::from_secs(10)).await.unwrap();
        assert_eq!(body, "ready\n");
    }

    #[tokio::test]
    async fn an_answer_other_than_200_is_an_error_naming_the_status() {
        let url = serve(vec![(503, b"shutting down\n".to_vec())]);
        let err = get(&url).await.unwrap_err();
        assert_eq!(err.to_string(), "answered 503 Service Unavailable");
    }

    #[tokio::test]
    async fn a_body_is_read_up_to_64_kib_and_no_further() {
        let url = serve(vec![
            (200, vec![b'x'; 64 * 1024]),
            (200, vec![b'x'; 64 * 1024 + 1]),
        ]);
        assert_eq!(get(&url).await.unwrap().len(), 64 * 1024);
        let err = get(&url).await.unwrap_err();
        assert!(matches!(err, AttemptError::Body(_)), "{err}");
    }

    #[tokio::test]
    async fn a_wait_on_a_closed_port_ends_with_the_last_error() {
        let port = testkit::ReservedPort::new();
        let url: HttpUrl = format!("http://{}/", port.addr()).parse().unwrap();

        let err = wait_until_ok(&url, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(
            matches!(err.last_error, Some(AttemptError::Connect(_))),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("did not answer 200 within 200ms: cannot connect"),
            "{err}"
        );
    }
}

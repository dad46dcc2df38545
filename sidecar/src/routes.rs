//! What the sidecar answers, as a pure function of the request and of
//! whether shutdown has begun, so that it is tested without a socket.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Response, StatusCode};

/// The body of `GET /`: the sidecar's whole job in this example.
pub const GREETING: &str = "Sidecar application\n";

// Header values are statics because `from_static` checks every byte: here
// that runs once, at compile time, rather than on every request.

/// How long `GET /slow` takes, with the test-only `fault-injection` feature.
#[cfg(feature = "fault-injection")]
pub const SLOW_ANSWER: std::time::Duration = std::time::Duration::from_secs(3);

/// The methods every known path accepts, as sent in `Allow` with a 405.
static ALLOWED: HeaderValue = HeaderValue::from_static("GET, HEAD");
/// The type of every body the sidecar sends.
static TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// Routes one request. hyper leaves out the body of an answer to `HEAD`.
pub fn respond(method: &Method, path: &str, ready: bool) -> Response<Full<Bytes>> {
    let (status, body) = match path {
        "/" => (StatusCode::OK, GREETING),
        // Liveness: answering at all is the proof.
        "/healthz" => (StatusCode::OK, "ok\n"),
        // Readiness: false once shutdown has begun. New connections are
        // refused by then, so only a request already under way sees the 503
        // (see the drain in server.rs).
        "/readyz" if ready => (StatusCode::OK, "ready\n"),
        "/readyz" => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
        // Only with the test-only `fault-injection` feature (see Cargo.toml).
        #[cfg(feature = "fault-injection")]
        "/panic" => panic!("GET /panic: a fault injected for a test"),
        // Answered after SLOW_ANSWER (server.rs waits): a handler slower
        // than a test's header-read timeout.
        #[cfg(feature = "fault-injection")]
        "/slow" => (StatusCode::OK, "slow\n"),
        _ => return text(StatusCode::NOT_FOUND, "not found\n"),
    };
    if method != Method::GET && method != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response.headers_mut().insert(ALLOW, ALLOWED.clone());
        return response;
    }
    text(status, body)
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, TEXT_PLAIN.clone());
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body(response: Response<Full<Bytes>>) -> Bytes {
        let Ok(collected) = response.into_body().collect().await;
        collected.to_bytes()
    }

    #[tokio::test]
    async fn known_paths_answer_get_and_head() {
        for method in [Method::GET, Method::HEAD] {
            assert_eq!(respond(&method, "/", true).status(), StatusCode::OK);
            assert_eq!(respond(&method, "/healthz", true).status(), StatusCode::OK);
            assert_eq!(respond(&method, "/readyz", true).status(), StatusCode::OK);
        }
        let response = respond(&Method::GET, "/", true);
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(body(response).await, GREETING);
    }

    #[tokio::test]
    async fn readiness_turns_503_once_shutdown_begins_and_liveness_does_not() {
        let response = respond(&Method::GET, "/readyz", false);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(response).await, "shutting down\n");
        assert_eq!(
            respond(&Method::GET, "/healthz", false).status(),
            StatusCode::OK
        );
        assert_eq!(respond(&Method::GET, "/", false).status(), StatusCode::OK);
    }

    #[test]
    fn unknown_paths_are_404_whatever_the_method() {
        for method in [Method::GET, Method::POST, Method::DELETE] {
            assert_eq!(
                respond(&method, "/nope", true).status(),
                StatusCode::NOT_FOUND
            );
        }
        assert_eq!(
            respond(&Method::GET, "/healthz/", true).status(),
            StatusCode::NOT_FOUND
        );
    }

    #[test]
    fn other_methods_on_known_paths_are_405_with_allow() {
        for path in ["/", "/healthz", "/readyz"] {
            for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
                let response = respond(&method, path, true);
                assert_eq!(
                    response.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
                assert_eq!(response.headers()[ALLOW], "GET, HEAD");
            }
        }
    }
}

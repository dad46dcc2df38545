use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long any read in these helpers may block: a hung server fails the
/// test instead of hanging it.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A response, parsed just enough for assertions.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, as sent.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Reads one response from `stream`, using Content-Length to find its
    /// end, so that a keep-alive connection can be used again. Not for
    /// answers to HEAD, which announce a length and send no body.
    pub fn read_from(stream: &mut impl BufRead) -> std::io::Result<HttpResponse> {
        let mut response = Self::read_head(stream)?;
        let length: usize = match response.header("content-length") {
            None => 0,
            Some(n) => n.parse().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("Content-Length {n:?}"),
                )
            })?,
        };
        response.body.resize(length, 0);
        stream.read_exact(&mut response.body)?;
        Ok(response)
    }

    fn read_head(stream: &mut impl BufRead) -> std::io::Result<HttpResponse> {
        let mut status_line = String::new();
        stream.read_line(&mut status_line)?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("status line {status_line:?}"),
                )
            })?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            stream.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        Ok(HttpResponse {
            status,
            headers,
            body: Vec::new(),
        })
    }
}

/// Sends `raw` on a new connection and reads the whole reply, until the
/// server closes the connection.
pub fn request(addr: SocketAddr, raw: &[u8]) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("set timeout");
    stream.write_all(raw).expect("send");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).expect("read the reply");
    let Some(end) = reply.windows(4).position(|w| w == b"\r\n\r\n") else {
        panic!(
            "no complete response head in {:?}",
            String::from_utf8_lossy(&reply)
        );
    };
    let mut parsed = HttpResponse::read_head(&mut &reply[..end + 4])
        .unwrap_or_else(|err| panic!("bad response {:?}: {err}", String::from_utf8_lossy(&reply)));
    parsed.body = reply[end + 4..].to_vec();
    parsed
}

/// `GET path` on a new connection that asks to be closed after the reply.
pub fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// Waits until the server at `server` has read every byte sent to it on
/// `stream`, so that a test knows a partial request has reached the server
/// (and not just the kernel) before it signals the server, without sleeping.
/// Fails the test after `within`.
pub fn wait_until_server_has_read(server: SocketAddr, stream: &TcpStream, within: Duration) {
    let client = stream.local_addr().expect("a connected socket");
    let deadline = Instant::now() + within;
    while !server_has_read_everything(server, client) {
        assert!(
            Instant::now() < deadline,
            "the server did not read what {client} sent within {within:?}"
        );
        // A poll interval, not a wait for the server: a loop that never
        // pauses takes a core from the server it is waiting for, and under
        // an emulator or on a loaded machine that delays the very read it
        // waits to see.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether the server side of the connection from `client` to `server` has
/// no unread bytes left in the kernel, from /proc/net/tcp.
fn server_has_read_everything(server: SocketAddr, client: SocketAddr) -> bool {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let port_of = |field: &str| {
        field
            .rsplit(':')
            .next()
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())
    };
    // The client's port, as the table spells it, finds the few lines worth
    // parsing among thousands (TIME_WAIT entries of earlier tests), which
    // counts under an emulator.
    let remote_port = format!(":{:04X} ", client.port());
    table.lines().skip(1).any(|line| {
        if !line.contains(&remote_port) {
            return false;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, queues) = (fields[1], fields[2], fields[4]);
        port_of(local) == Some(server.port())
            && port_of(remote) == Some(client.port())
            && queues.rsplit(':').next() == Some("00000000")
    })
}

//! A loopback port that refuses connections until a server comes up on it.

use std::net::{Ipv4Addr, SocketAddr};

use socket2::{Domain, Socket, Type};

/// A loopback port held for one test: bound, so the kernel gives it to no
/// one else, but not listening, so every connection to it is refused, as to
/// a server that has not started yet.
///
/// A server started later binds the same port while this is held: Linux lets
/// sockets that all set `SO_REUSEADDR` share a port as long as at most one of
/// them listens. This socket sets it, and so do the listeners of std, of
/// tokio (which the sidecar uses), and of most servers. Nothing else can take
/// the port in between, unlike a port found by binding and closing a socket.
pub struct ReservedPort {
    // Held, never used: closing it would free the port.
    _socket: Socket,
    addr: SocketAddr,
}

impl ReservedPort {
    /// Reserves a free port on 127.0.0.1.
    pub fn new() -> ReservedPort {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a TCP socket");
        socket.set_reuse_address(true).expect("SO_REUSEADDR");
        socket
            .bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .expect("bind 127.0.0.1:0");
        let addr = socket
            .local_addr()
            .expect("the bound address")
            .as_socket()
            .expect("an IP address");
        ReservedPort {
            _socket: socket,
            addr,
        }
    }

    /// The reserved address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Default for ReservedPort {
    fn default() -> Self {
        Self::new()
    }
}

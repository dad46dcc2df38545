//! Test-only helpers for the process-level tests of `app` and `sidecar`.
//!
//! The contract these binaries have with the kubelet is about processes:
//! exit codes, signals, timing, what goes to stdout and what to stderr. So
//! their tests run the built binaries ([`Process`]), also as PID 1 of a new
//! PID namespace, as in a container ([`pid1`]), and wait for log lines and
//! exits with deadlines instead of sleeping. A [`ReservedPort`] refuses
//! connections until a server starts on it, without the race of a port that
//! was freed to be found.
//!
//! Tests start the binaries with [`cargo_bin`], never with a bare
//! `Command::new`: when cargo runs cross-compiled tests through an emulator
//! (`make test-arm64`: qemu-user), the binaries they start need it too.

mod http;
mod port;
mod process;
mod runner;

pub use http::{HttpResponse, get, request, wait_until_server_has_read};
pub use port::ReservedPort;
pub use process::{Exit, Process, pid1};
pub use runner::{cargo_bin, runner, wrap};

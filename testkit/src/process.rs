use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::runner;

/// How a process ended, and when.
#[derive(Debug, Clone, Copy)]
pub struct Exit {
    /// Its status.
    pub status: ExitStatus,
    /// When the waiting thread saw it end.
    pub at: Instant,
}

impl Exit {
    /// The exit code; panics if the process was killed by a signal instead,
    /// which for these binaries always means a missing handler.
    pub fn code(&self) -> i32 {
        match self.status.code() {
            Some(code) => code,
            None => panic!("killed by a signal instead of exiting: {:?}", self.status),
        }
    }
}

/// Lines a child wrote to stderr, shared with the thread that reads them.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

/// A running child process whose stdout and stderr are captured.
pub struct Process {
    pid: u32,
    stderr: Arc<Lines>,
    stderr_reader: Option<JoinHandle<()>>,
    stdout: Option<JoinHandle<String>>,
    exited: Receiver<Exit>,
    exit: Option<Exit>,
}

impl Process {
    /// Starts `command` with stdout and stderr captured and stdin closed.
    pub fn spawn(mut command: Command) -> Process {
        let mut child: Child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| {
                // ENOEXEC: a binary for another architecture, started
                // without the runner the tests themselves run through.
                let hint = if err.raw_os_error() == Some(8) {
                    format!(
                        " (start binaries under test with testkit::cargo_bin, which reads {})",
                        runner::runner_variable()
                    )
                } else {
                    String::new()
                };
                panic!("cannot start {command:?}: {err}{hint}")
            });
        let pid = child.id();

        let stderr = Arc::new(Lines::default());
        let mut stderr_pipe = BufReader::new(child.stderr.take().expect("stderr is piped"));
        let lines = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            let mut line = String::new();
            while stderr_pipe.read_line(&mut line).is_ok_and(|n| n > 0) {
                // Echo, so that a failing test shows what the binary logged.
                eprint!("    | {line}");
                lines
                    .lines
                    .lock()
                    .expect("not poisoned")
                    .push(line.trim_end().to_owned());
                lines.grew.notify_all();
                line.clear();
            }
        });

        let mut stdout_pipe = child.stdout.take().expect("stdout is piped");
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout_pipe.read_to_string(&mut text);
            text
        });

        let (sender, exited) = mpsc::channel();
        std::thread::spawn(move || {
            let status = child.wait().expect("wait for the child");
            let _ = sender.send(Exit {
                status,
                at: Instant::now(),
            });
        });

        Process {
            pid,
            stderr,
            stderr_reader: Some(stderr_reader),
            stdout: Some(stdout),
            exited,
            exit: None,
        }
    }

    /// The child's process ID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits until a stderr line contains `needle`, and returns that line.
    pub fn wait_for_log(&self, needle: &str, within: Duration) -> String {
        self.wait_for_logs(needle, 1, within).swap_remove(0)
    }

    /// Waits until `count` stderr lines contain `needle`, and returns all the
    /// lines that do.
    pub fn wait_for_logs(&self, needle: &str, count: usize, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut lines = self.stderr.lines.lock().expect("not poisoned");
        loop {
            let matching: Vec<String> = lines
                .iter()
                .filter(|line| line.contains(needle))
                .cloned()
                .collect();
            if matching.len() >= count {
                return matching;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{} of {count} log lines with {needle:?} within {within:?}; stderr: {lines:#?}",
                matching.len()
            );
            lines = self
                .stderr
                .grew
                .wait_timeout(lines, left)
                .expect("not poisoned")
                .0;
        }
    }

    /// Everything written to stderr so far, a line each.
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lines.lock().expect("not poisoned").clone()
    }

    /// Sends `signal` (a name such as `TERM`) to `pid`, and returns when.
    pub fn signal_pid(pid: u32, signal: &str) -> Instant {
        let sent = Instant::now();
        let status = Command::new("kill")
            .args(["-s", signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {signal} {pid} failed");
        sent
    }

    /// Sends `signal` (a name such as `TERM`) to the child, and returns when.
    pub fn signal(&self, signal: &str) -> Instant {
        Self::signal_pid(self.pid, signal)
    }

    /// Waits for the child to exit; fails the test after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Exit {
        if let Some(exit) = self.exit {
            return exit;
        }
        match self.exited.recv_timeout(within) {
            Ok(exit) => {
                self.exit = Some(exit);
                // The last lines may still be in the pipe: read them all, so
                // that assertions on stderr see everything.
                if let Some(reader) = self.stderr_reader.take() {
                    reader.join().expect("stderr reader");
                }
                exit
            }
            Err(RecvTimeoutError::Timeout) => panic!(
                "still running after {within:?}; stderr: {:#?}",
                self.stderr()
            ),
            Err(RecvTimeoutError::Disconnected) => unreachable!("the waiting thread always sends"),
        }
    }

    /// Whether the child is still running after `within`.
    pub fn still_running_after(&mut self, within: Duration) -> bool {
        match self.exited.recv_timeout(within) {
            Ok(exit) => {
                self.exit = Some(exit);
                false
            }
            Err(_) => true,
        }
    }

    /// Asserts that the child ended as clap ends on bad input: exit code 2,
    /// stderr opening with `error:` and naming `expected`, and no panic.
    pub fn assert_usage_error(&mut self, expected: &str) {
        let code = self.wait_exit(Duration::from_secs(10)).code();
        let stderr = self.stderr().join("\n");
        assert_eq!(code, 2, "{stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(expected),
            "expected {expected:?} in: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    /// All the child wrote to stdout. Call after [`Process::wait_exit`].
    pub fn stdout(&mut self) -> String {
        assert!(
            self.exit.is_some(),
            "stdout is complete only once the child has exited"
        );
        self.stdout
            .take()
            .map(|reader| reader.join().expect("stdout reader"))
            .unwrap_or_default()
    }

    /// The PID, in this namespace, of the child's own first child: the
    /// process that `unshare --fork` runs as PID 1 of the new namespace.
    pub fn first_child_pid(&self, within: Duration) -> u32 {
        let path = format!("/proc/{0}/task/{0}/children", self.pid);
        let deadline = Instant::now() + within;
        loop {
            let children = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(pid) = children.split_whitespace().next() {
                return pid.parse().expect("a PID");
            }
            assert!(
                Instant::now() < deadline,
                "{} has no child within {within:?}",
                self.pid
            );
            std::thread::yield_now();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Never leave a server behind when a test fails half-way.
        if self.exit.is_none() && self.exited.try_recv().is_err() {
            let _ = Command::new("kill")
                .args(["-s", "KILL", &self.pid.to_string()])
                .status();
        }
    }
}

/// Wraps `command` so that its program runs as PID 1 of a new PID
/// namespace, where the kernel ignores any signal it has no handler for,
/// exactly as for a container's entrypoint. For a binary under test, pass
/// [`cargo_bin`](crate::cargo_bin)'s command: under a runner such as qemu-user,
/// the runner is then PID 1, and it forwards signals to the binary (it handles
/// every signal itself, and passes each on as the binary asked for).
///
/// Returns `None`, after saying why on stderr, where this machine does not
/// allow it (it needs root or user namespaces). The caller then skips, except
/// with `CI=true`, where this fails the test instead.
pub fn pid1(command: &Command) -> Option<Command> {
    let probe = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|status| status.success()) {
        let reason = "`unshare --pid --fork --mount-proc` is not permitted here, so the PID 1 test cannot run";
        // CI runs these tests with the privilege they need (.ci/run as root,
        // ci.yml through sudo), so there a skip would hide a regression.
        let ci = std::env::var("CI").as_deref() == Ok("true");
        assert!(!ci, "CI=true, but {reason}");
        eprintln!("SKIPPED: {reason}");
        return None;
    }
    let mut unshare = Command::new("unshare");
    unshare.args(["--pid", "--fork", "--mount-proc", "--kill-child"]);
    Some(runner::wrap(unshare, command))
}

"""Faults injected into the profile that ships: a panic, and a handler slower than the timeout.

The release profile unwinds (Cargo.toml says why), so a panic in a connection's task is caught
by tokio: the connection closes, its place under the cap is freed, and the server and its other
connections go on. The Rust tests run the debug profile, which always unwinds, so this is
tested here on the release profile, built as the images build it (static musl), with the
test-only `fault-injection` feature: its `GET /panic` panics in its connection's task, and its
`GET /slow` answers after 3 s (`SLOW_ANSWER` in sidecar/src/routes.rs), a handler slower than
the header-read timeout these tests set. It builds into a target directory of its own, so that
the binary `make build` and the bench use is never one with the feature.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from images_support import server_ends, wait_for

REPO = Path(__file__).resolve().parent.parent
CAP = 256  # --max-connections' default
DEADLINE = 10  # seconds: any one wait here, on a machine shared with others
SLOW_ANSWER = 3  # seconds: how long GET /slow takes (sidecar/src/routes.rs)


@pytest.fixture(scope="module")
def release_sidecar_with_faults() -> Path:
    triple = subprocess.run([str(REPO / "scripts" / "static-target.sh")], check=True, text=True,
                            stdout=subprocess.PIPE, timeout=600).stdout.strip()
    target_dir = REPO / "target" / "fault-injection"
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "sidecar", "--features",
                    "fault-injection", "--target", triple, "--target-dir", str(target_dir)],
                   cwd=REPO, check=True, timeout=1800)
    return target_dir / triple / "release" / "sidecar"


def get(conn: socket.socket, path: str) -> bytes:
    """Sends GET `path` on a kept-alive connection; returns what came back before the end of
    the response's head and its body (the sidecar's bodies are a line), or b"" if it closed."""
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    reply = b""
    try:
        while not re.search(rb"\r\n\r\n[^\n]*\n", reply):
            chunk = conn.recv(4096)
            if not chunk:
                break
            reply += chunk
    except ConnectionResetError:
        pass
    return reply


def server_has_read(port: int, client: socket.socket) -> bool:
    """Whether the server's end of `client`'s connection has nothing left to read."""
    ours = client.getsockname()[1]
    return any(peer == ours and read for peer, _, read in server_ends(port))


@contextlib.contextmanager
def running(binary: Path, log: Path, *args: str) -> Iterator[tuple[subprocess.Popen, int]]:
    """The sidecar on a free loopback port, and that port; killed after a failure."""
    with log.open("w") as stderr:
        sidecar = subprocess.Popen(
            [str(binary), "--listen", "127.0.0.1:0", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            env=dict(os.environ, RUST_LOG="info", LOG_FORMAT="text"))
    try:
        port = int(wait_for("the listening line", lambda: re.search(
            r"listening address=\S+:(\d+)", log.read_text()), DEADLINE)[1])
        yield sidecar, port
    finally:
        if sidecar.poll() is None:  # after a failure: only this process, by its id
            sidecar.kill()
            sidecar.wait(timeout=DEADLINE)


def test_a_panic_in_a_connection_ends_that_connection_alone(
        release_sidecar_with_faults: Path, tmp_path: Path) -> None:
    log = tmp_path / "sidecar.log"
    with running(release_sidecar_with_faults, log) as (sidecar, port):
        kept = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        assert get(kept, "/").startswith(b"HTTP/1.1 200 ")

        # More panics than the cap has places: each place is freed as its task unwinds.
        for n in range(CAP + 44):
            with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as doomed:
                assert get(doomed, "/panic") == b"", f"panic {n + 1} got an answer"
        assert sidecar.poll() is None, f"the sidecar ended:\n{log.read_text()[-2000:]}"

        # The connection open throughout is still served, and so is a new one.
        assert get(kept, "/").startswith(b"HTTP/1.1 200 ")
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as fresh:
            assert get(fresh, "/healthz").startswith(b"HTTP/1.1 200 ")
        kept.close()
        text = log.read_text()
        assert text.count("GET /panic: a fault injected for a test") == CAP + 44, text[-2000:]

        sidecar.send_signal(15)
        assert sidecar.wait(timeout=DEADLINE) == 0
        assert "stopped requests_served=3" in log.read_text(), log.read_text()[-2000:]


def test_an_answer_slower_than_the_header_read_timeout_is_answered_then_the_clock_restarts(
        release_sidecar_with_faults: Path, tmp_path: Path) -> None:
    with running(release_sidecar_with_faults, tmp_path / "sidecar.log",
                 "--header-read-timeout", "1s") as (sidecar, port):
        conn = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        asked = time.monotonic()
        reply = get(conn, "/slow")
        took = time.monotonic() - asked
        assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"slow\n"), reply
        assert took >= SLOW_ANSWER, f"answered after {took:.2f} s"
        # Kept alive after the answer, and idle from then on: the timeout closes it.
        answered = time.monotonic()
        assert conn.recv(1) == b"", "the idle connection was not closed"
        idle = time.monotonic() - answered
        assert 0.5 <= idle < DEADLINE, f"closed {idle:.2f} s after the answer"
        sidecar.send_signal(15)
        assert sidecar.wait(timeout=DEADLINE) == 0


def test_a_request_under_way_is_answered_when_the_cap_needs_its_place(
        release_sidecar_with_faults: Path, tmp_path: Path) -> None:
    log = tmp_path / "sidecar.log"
    with running(release_sidecar_with_faults, log, "--max-connections", "1") as (sidecar, port):
        slow = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        slow.sendall(b"GET /slow HTTP/1.1\r\nHost: test\r\n\r\n")
        wait_for("the slow request read", lambda: server_has_read(port, slow), DEADLINE)
        # The only place is the slow request's: a new client takes it at once, and the slow
        # request is still answered, saying that its connection closes.
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as fresh:
            asked = time.monotonic()
            assert get(fresh, "/healthz").startswith(b"HTTP/1.1 200 ")
            assert time.monotonic() - asked < SLOW_ANSWER
        reply = b""
        while chunk := slow.recv(4096):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"slow\n"), reply
        assert b"\r\nconnection: close\r\n" in reply.lower(), reply
        sidecar.send_signal(15)
        assert sidecar.wait(timeout=DEADLINE) == 0

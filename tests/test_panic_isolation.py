"""A panic in one connection ends that connection alone, on the profile that ships.

The release profile unwinds (Cargo.toml says why), so a panic in a connection's task is caught
by tokio: the connection closes, its place under the cap is freed, and the server and its other
connections go on. The Rust tests run the debug profile, which always unwinds, so this is
tested here on the release profile, built as the images build it (static musl), with the
test-only `fault-injection` feature, whose `GET /panic` panics in its connection's task. It
builds into a target directory of its own, so that the binary `make build` and the bench use is
never one with the feature.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CAP = 256  # --max-connections' default
DEADLINE = 10  # seconds: any one wait here, on a machine shared with others


@pytest.fixture(scope="module")
def release_sidecar_with_a_panic_route() -> Path:
    triple = subprocess.run([str(REPO / "scripts" / "static-target.sh")], check=True, text=True,
                            stdout=subprocess.PIPE, timeout=600).stdout.strip()
    target_dir = REPO / "target" / "fault-injection"
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "sidecar", "--features",
                    "fault-injection", "--target", triple, "--target-dir", str(target_dir)],
                   cwd=REPO, check=True, timeout=1800)
    return target_dir / triple / "release" / "sidecar"


def wait_for(what: str, condition):
    deadline = time.monotonic() + DEADLINE
    while not (found := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {DEADLINE} s"
        time.sleep(0.01)
    return found


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


def test_a_panic_in_a_connection_ends_that_connection_alone(
        release_sidecar_with_a_panic_route: Path, tmp_path: Path) -> None:
    log = tmp_path / "sidecar.log"
    with log.open("w") as stderr:
        sidecar = subprocess.Popen(
            [str(release_sidecar_with_a_panic_route), "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            env=dict(os.environ, RUST_LOG="info", LOG_FORMAT="text"))
    try:
        port = int(wait_for("the listening line", lambda: re.search(
            r"listening address=\S+:(\d+)", log.read_text()))[1])
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
    finally:
        if sidecar.poll() is None:  # after a failure: only this process, by its id
            sidecar.kill()
            sidecar.wait(timeout=DEADLINE)

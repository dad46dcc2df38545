"""The session's leak check (conftest.py, leaks.py) counts what the tests started, and only that.

Shown with the real sidecar binary: one the tests started and left behind, even one that has
left pytest's process tree, is counted; one started outside the tests (no marker in its
environment, not pytest's descendant: someone else's on a shared machine) is not. Both are
stopped before the test ends, by their process IDs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from leaks import MARKER, ours

REPO = Path(__file__).resolve().parent.parent
SESSION = os.environ[MARKER]  # conftest.py set it


@pytest.fixture(scope="module")
def sidecar_binary() -> Path:
    subprocess.run(["cargo", "build", "--locked", "-p", "sidecar", "--bin", "sidecar"], cwd=REPO,
                   check=True, timeout=1800)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "sidecar"


def detached(binary: Path, env: dict[str, str]) -> int:
    """Starts `binary` in the background of a shell that then exits, so that it is no longer
    pytest's descendant, as a daemon, or a process of someone else's, would be. Returns its
    PID."""
    shell = subprocess.run(["sh", "-c", '"$0" --listen 127.0.0.1:0 >/dev/null 2>&1 & echo $!',
                            str(binary)], env=env, check=True, capture_output=True, text=True,
                           timeout=30)
    pid = int(shell.stdout)
    # The shell's output ends once its background child has redirected its own, which is before
    # that child execs the binary: until then it is still a shell, by name.
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}/comm").read_text().strip() != binary.name:
        assert time.monotonic() < deadline, f"{pid} never became {binary.name}"
        time.sleep(0.01)
    return pid


def stop(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        # Reaped by init, or a zombie: either is gone for the check.
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except OSError:
            return
        time.sleep(0.01)


def test_a_leaked_sidecar_is_caught_and_someone_elses_is_not(sidecar_binary: Path) -> None:
    child = subprocess.Popen([str(sidecar_binary), "--listen", "127.0.0.1:0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    leaked_daemon = detached(sidecar_binary, dict(os.environ))
    others = detached(sidecar_binary, {k: v for k, v in os.environ.items() if k != MARKER})
    try:
        found = ours(SESSION, os.getpid())
        assert found.get(child.pid) == "sidecar", found
        assert found.get(leaked_daemon) == "sidecar", found
        assert others not in found, found
        assert Path(f"/proc/{others}").exists(), "someone else's sidecar is running"
        # The marker's value, not the program's name, decides: to another session, the
        # detached one is not its own.
        assert leaked_daemon not in ours("another-session", os.getpid())
    finally:
        child.kill()
        child.wait(timeout=10)
        stop(leaked_daemon)
        stop(others)
    assert not {child.pid, leaked_daemon} & set(ours(SESSION, os.getpid()))

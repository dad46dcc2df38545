"""What holds across every test file: nothing the tests started outlives the run.

A test that leaks a server, a container's conmon or a podman service leaves it running on the
developer's machine or in CI; this turns the leak into an error at the end of the session. It
looks only at programs the tests start, and only at processes that were not there before.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

# The tests' programs, by the name the kernel gives them (/proc/PID/comm: 15 characters at most).
OURS = ("sidecar", "app", "bare_hello", "wait-ready", "conmon", "podman", "wrk",
        "docker-registry", "registry", "qemu-aarch64-st", "kind", "ctr", "kubectl")


def running() -> dict[int, str]:
    """Live processes (zombies left out: they are only waiting to be reaped) and their names."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue  # it ended while being read
        if state != "Z":
            found[int(entry.name)] = name
    return found


@pytest.fixture(scope="session", autouse=True)
def nothing_outlives_the_run():
    # Set up first, torn down last: after every other fixture has stopped what it started.
    before = set(running())
    yield
    deadline = time.monotonic() + 15
    while True:
        left = {pid: name for pid, name in running().items() if pid not in before and name in OURS}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"still running after the tests: {left}"

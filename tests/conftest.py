"""What holds across every test file: nothing the tests started outlives the run.

A test that leaks a server, a container's conmon or a podman service leaves it running on the
developer's machine or in CI; this turns the leak into an error at the end of the session. It
tells the tests' processes from everyone else's by a marker in their environment: the variable
`NATIVE_SIDECAR_TEST_SESSION`, set here to a value of this session's own before any test runs,
and inherited by every program a test starts and by the programs those start (see leaks.py).
A script started from a test or from make inside pytest, such as one that runs a kubelet, etcd
or containerd, passes it on as long as it keeps its environment. Processes of other users, of
other sessions, or started by hand are never counted, whatever their names.
"""

from __future__ import annotations

import os
import time

import pytest

from leaks import MARKER, ours

SESSION = f"{os.getpid()}-{time.time_ns()}"
# At import, before any test: the tests' own children inherit it from here.
os.environ[MARKER] = SESSION


@pytest.fixture(scope="session", autouse=True)
def nothing_outlives_the_run():
    # Set up first, torn down last: after every other fixture has stopped what it started.
    yield
    deadline = time.monotonic() + 15
    while (left := ours(SESSION, os.getpid())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, f"still running after the tests: {left}"

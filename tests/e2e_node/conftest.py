"""A node of upstream Kubernetes's own parts for the tests beside this file (`make e2e-node`).

`e2e/node.sh up` builds what is missing and starts etcd, kube-apiserver, the controller
manager, the scheduler, containerd and the kubelet under one temporary directory; `down`
stops them by PID and undoes what they changed outside it, also when a test fails. What the
tests measure is printed at the end of the run, under "e2e-node".
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from datetime import date

import pytest

from e2e_support import NODE, REPORT, RESULTS, Node

# The node's parts, by name, with their versions: E2E_RESULTS's record of what ran.
COMPONENTS: dict[str, str] = {}


@pytest.fixture(scope="session")
def node():
    # A short path: unix socket paths under it must stay within 108 bytes.
    directory = tempfile.mkdtemp(prefix="e2e-node.")
    try:
        started = time.monotonic()
        up = subprocess.run([NODE, "up", directory], capture_output=True, text=True, timeout=3000)
        if up.returncode != 0:
            logs = subprocess.run([NODE, "logs", directory], capture_output=True, text=True).stdout
            pytest.fail(f"e2e/node.sh up failed (exit {up.returncode}):\n{up.stderr}\n{logs}", pytrace=False)
        settings = dict(line.split("=", 1) for line in up.stdout.splitlines() if "=" in line)
        running = Node(settings)
        version = running.get("nodes")["items"][0]["status"]["nodeInfo"]
        COMPONENTS.update(kubelet=version["kubeletVersion"], containerd=version["containerRuntimeVersion"],
                          **{name: first_version(running, name) for name in ("runc", "etcd")})
        REPORT.append(f"e2e/node.sh up took {time.monotonic() - started:.0f}s (a build included, if one was needed): "
                      f"kubelet {version['kubeletVersion']}, "
                      f"{version['containerRuntimeVersion']}, {version['osImage']}, kernel {version['kernelVersion']}")
        yield running
    finally:
        down = subprocess.run([NODE, "down", directory], capture_output=True, text=True, timeout=300)
        assert down.returncode == 0, f"e2e/node.sh down failed:\n{down.stderr}"


def first_version(node: Node, program: str) -> str:
    """What `PROGRAM --version` says of its own version, in its first line."""
    out = subprocess.run([f"{node.settings['E2E_NODE_BIN']}/{program}", "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0].split()[-1]


def pytest_sessionfinish(session):
    """With E2E_RESULTS=FILE, what test_releases.py saw and the node's parts, as JSON (e2e/matrix.sh)."""
    if os.environ.get("E2E_RESULTS") and COMPONENTS:
        record = {"release": os.environ.get("K8S", "1.37"), "gates": os.environ.get("FEATURE_GATES", ""),
                  "date": date.today().isoformat(), "components": COMPONENTS, "results": RESULTS, "report": REPORT}
        with open(os.environ["E2E_RESULTS"], "w") as out:
            json.dump(record, out, indent=2)


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("e2e-node")
        for line in REPORT:
            terminalreporter.write_line(line)

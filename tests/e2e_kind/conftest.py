"""A kind cluster made from cluster.yaml, for the tests beside this file (`make e2e-kind`).

This machine reaches no image registry, so kind v0.33.0 and its node image are built here from
pinned parts (e2e/kind/node-image.sh; docs/e2e-kind.md says how that image differs from
kindest/node). The cluster is cluster.yaml as a user has it, with the node image given by kind's
own `--image` and three additions: two workers (the Job's Pod then runs on a node other than the
control plane, so `make kind-load` must reach it), no kindnetd and no kube-proxy (the node image
has neither: a CNI bridge in it stands in), and, on a cgroup v1 host such as CI's, the kubelet
setting that lets a 1.35+ kubelet start there. Everything runs in a kubeconfig of its own and a
cluster of its own name, deleted at the end.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from kind_support import CLUSTER, REPORT, ROOT, Cluster, cluster_config

NODE_IMAGE = ROOT / "e2e" / "kind" / "node-image.sh"


def built(*args: str) -> str:
    result = subprocess.run([NODE_IMAGE, *args], capture_output=True, text=True, timeout=3000, check=False)
    if result.returncode != 0:
        pytest.fail(f"e2e/kind/node-image.sh {' '.join(args)} failed (exit {result.returncode}):\n{result.stderr}",
                    pytrace=False)
    return result.stdout.strip()


@pytest.fixture(scope="session")
def cluster():
    release = os.environ.get("K8S", "1.37")
    started = time.monotonic()
    tools, image = built("tools"), built("image", release)
    # The release's own kubectl; for 1.28, 1.29's, the oldest make demo takes (scripts/kind-demo.sh)
    # and within kubectl's one-minor skew.
    bin_dir = subprocess.run([ROOT / "e2e" / "build.sh", {"1.28": "1.29"}.get(release, release)],
                             capture_output=True, text=True, check=True).stdout.strip()
    REPORT.append(f"node image {image}, built or found in {time.monotonic() - started:.0f}s")
    with tempfile.TemporaryDirectory(prefix="e2e-kind.") as scratch:
        config = Path(scratch) / "cluster.yaml"
        source = ROOT / {"1.37": "cluster.yaml"}.get(release, f"cluster-{release}.yaml")
        config.write_text(yaml.safe_dump(cluster_config(source, release)))
        # kind and crictl of the node image's own build, and its release's kubectl; podman, the
        # engine kind runs the nodes on here (through DOCKER_HOST, docker would answer too).
        env = {**os.environ, "PATH": f"{tools}:{bin_dir}:{os.environ['PATH']}", "KUBECONFIG": f"{scratch}/kubeconfig",
               "KIND_CLUSTER": CLUSTER, "K8S": release, "CONTAINER_TOOL": "podman",
               "KIND_EXPERIMENTAL_PROVIDER": "podman"}
        running = Cluster(env)
        had_network = running.run("podman", "network", "exists", "kind").returncode == 0
        running.run("kind", "delete", "cluster", "--name", CLUSTER)
        try:
            started = time.monotonic()
            up = running.run("kind", "create", "cluster", "--name", CLUSTER, "--config", str(config),
                             "--image", image, "--wait", "180s")
            assert up.returncode == 0, f"kind create cluster failed:\n{up.stderr}"
            REPORT.append(f"kind create cluster ({', '.join(running.nodes())}) took {time.monotonic() - started:.0f}s")
            yield running
        finally:
            down = running.run("kind", "delete", "cluster", "--name", CLUSTER)
            if not had_network:
                running.run("podman", "network", "rm", "kind")
            assert down.returncode == 0, f"kind delete cluster failed:\n{down.stderr}"


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("e2e-kind")
        for line in REPORT:
            terminalreporter.write_line(line)

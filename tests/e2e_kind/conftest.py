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
from kind_support import CLUSTER, KIND_DEMO, REPORT, ROOT, Cluster, cluster_config, kubectl_release

NODE_IMAGE = ROOT / "e2e" / "kind" / "node-image.sh"


def built(script: Path, *args: str) -> str:
    """What a build script prints (a directory, an image), or the test session's end with its error."""
    result = subprocess.run([script, *args], capture_output=True, text=True, timeout=3000, check=False)
    if result.returncode != 0:
        pytest.fail(f"{script.relative_to(ROOT)} {' '.join(args)} failed (exit {result.returncode}):\n{result.stderr}",
                    pytrace=False)
    return result.stdout.strip()


@pytest.fixture(scope="session")
def cluster():
    release = os.environ.get("K8S", "1.37")
    started = time.monotonic()
    tools, image = built(NODE_IMAGE, "tools"), built(NODE_IMAGE, "image", release)
    REPORT.append(f"node image {image}, built or found in {time.monotonic() - started:.0f}s")
    kubectl_dir = built(ROOT / "e2e" / "build.sh", kubectl_release(release))
    with tempfile.TemporaryDirectory(prefix="e2e-kind.") as scratch:
        config = Path(scratch) / "cluster.yaml"
        source = Path(built(KIND_DEMO, "config"))
        config.write_text(yaml.safe_dump(cluster_config(source, release)))
        # kind and crictl of the node image's own build, and a kubectl of e2e/build.sh's; podman, the
        # engine kind runs the nodes on here (through DOCKER_HOST, docker would answer too).
        env = {**os.environ, "PATH": f"{tools}:{kubectl_dir}:{os.environ['PATH']}", "KUBECONFIG": f"{scratch}/kubeconfig",
               "KIND_CLUSTER": CLUSTER, "K8S": release, "CONTAINER_TOOL": "podman",
               "KIND_EXPERIMENTAL_PROVIDER": "podman"}
        running = Cluster(env)
        # A cluster left by a killed run goes first; then the kind network is ours to remove if
        # it did not exist.
        running.run("kind", "delete", "cluster", "--name", CLUSTER)
        had_network = running.run("podman", "network", "exists", "kind").returncode == 0
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

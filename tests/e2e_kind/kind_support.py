"""What the kind tests share: the cluster's name, its configuration, and a way to run the users'
commands against it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "e2e-kind"
REPORT: list[str] = []


def cluster_config(source: Path, release: str) -> dict:
    """cluster.yaml with what this machine needs added, and the article's two workers."""
    config = yaml.safe_load(source.read_text())
    config["nodes"] += [{"role": "worker"}, {"role": "worker"}]
    config["networking"] = {"disableDefaultCNI": True, "kubeProxyMode": "none"}
    # failCgroupV1 came with 1.31, and is true by default from 1.35.
    if int(release.split(".")[1]) >= 31 and not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        config["kubeadmConfigPatches"] = ["kind: KubeletConfiguration\nfailCgroupV1: false\n"]
    return config


class Cluster:
    def __init__(self, env: dict[str, str]):
        self.env = env

    def run(self, *command: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def make(self, *target: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return self.run("make", *target, timeout=timeout)

    def kubectl(self, *args: str) -> str:
        result = self.run("kubectl", "--context", f"kind-{CLUSTER}", *args, timeout=120)
        assert result.returncode == 0, f"kubectl {' '.join(args)}:\n{result.stderr}"
        return result.stdout

    def nodes(self) -> list[str]:
        return self.run("kind", "get", "nodes", "--name", CLUSTER).stdout.split()

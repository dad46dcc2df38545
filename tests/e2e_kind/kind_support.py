"""What the kind tests share: the cluster's name, its configuration, and a way to run the users'
commands against it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
KIND_DEMO = ROOT / "scripts" / "kind-demo.sh"
CLUSTER = "e2e-kind"
CONTEXT = f"kind-{CLUSTER}"
NODES = 3
REPORT: list[str] = []


def cluster_config(source: Path, release: str) -> dict:
    """A cluster file with what this machine needs added, and the article's two workers."""
    config = yaml.safe_load(source.read_text())
    # Added, never overwritten: a setting of the users' file would be lost without a word.
    assert not {"networking", "kubeadmConfigPatches"} & config.keys(), f"{source.name} now sets them: merge"
    config["nodes"] += [{"role": "worker"} for _ in range(NODES - len(config["nodes"]))]
    config["networking"] = {"disableDefaultCNI": True, "kubeProxyMode": "none"}
    # failCgroupV1 came with 1.31, and is true by default from 1.35.
    if int(release.split(".")[1]) >= 31 and not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        config["kubeadmConfigPatches"] = ["kind: KubeletConfiguration\nfailCgroupV1: false\n"]
    return config


def kubectl_release(release: str) -> str:
    """The release whose kubectl runs the demo: the cluster's own, or the oldest make demo takes
    (`need kubectl` in scripts/kind-demo.sh) where that is newer, within kubectl's one-minor skew."""
    oldest = int(re.search(r"^\s+need kubectl v1\.(\d+)\.0 ", KIND_DEMO.read_text(), re.M)[1])
    return f"1.{max(int(release.split('.')[1]), oldest)}"


class Cluster:
    def __init__(self, env: dict[str, str]):
        self.env = env

    def run(self, *command: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, env={**self.env, **env}, cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def make(self, *target: str, **env: str) -> subprocess.CompletedProcess:
        return self.run("make", *target, timeout=900, **env)

    def kubectl(self, *args: str) -> str:
        result = self.run("kubectl", "--context", CONTEXT, *args, timeout=120)
        assert result.returncode == 0, f"kubectl {' '.join(args)}:\n{result.stderr}"
        return result.stdout

    def nodes(self) -> list[str]:
        result = self.run("kind", "get", "nodes", "--name", CLUSTER)
        assert result.returncode == 0 and len(result.stdout.split()) == NODES, result.stdout + result.stderr
        return result.stdout.split()

"""What the e2e-node tests share: the running node and the report."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "e2e" / "node.sh"
# Lines printed at the end of the run, under "e2e-node": what the tests measured.
REPORT: list[str] = []


@dataclass
class Node:
    """The running node: its kubeconfig, context and binaries, as `e2e/node.sh up` printed them."""

    settings: dict[str, str]

    @property
    def env(self) -> dict[str, str]:
        """The environment of make demo's scripts, pointed at this node, with its kubectl first."""
        return {**os.environ, **self.settings, "PATH": f"{self.settings['E2E_NODE_BIN']}:{os.environ['PATH']}"}

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(["kubectl", "--context", self.settings["KUBE_CONTEXT"], *args],
                              env=self.env, capture_output=True, text=True, timeout=120)
        assert not check or done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr.strip()}"
        return done

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def ctr(self, *args: str) -> str:
        return subprocess.run(
            [f"{self.settings['E2E_NODE_BIN']}/ctr", "--address", self.settings["CONTAINERD_ADDRESS"],
             "--namespace", "k8s.io", *args], capture_output=True, text=True, check=True, timeout=60).stdout

    def log(self, component: str) -> str:
        return (Path(self.settings["E2E_NODE_DIR"]) / "logs" / f"{component}.log").read_text()

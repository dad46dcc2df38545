"""`e2e/kind/node-image.sh` where it must not build: a release whose kubelet is built with a
stand-in module (1.38's iptables-wrappers), which kind's kubelet configuration would call."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_release_built_with_a_stand_in_is_refused_before_anything_is_built(tmp_path):
    # An empty cache: were the refusal gone, e2e/build.sh would start filling it.
    cache = tmp_path / "cache"
    result = subprocess.run(["bash", str(ROOT / "e2e/kind/node-image.sh"), "image", "1.38"],
                            env={"PATH": "/usr/bin:/bin", "E2E_CACHE": str(cache)},
                            capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "node-image: Kubernetes 1.38 is built with a stand-in module, which kind's kubelet would call\n"
    assert not cache.exists()

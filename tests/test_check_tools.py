"""`make check` checks what it needs before anything runs: on a machine that lacks tools it
stops in its first seconds, naming all of them in one message."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# What the script and make themselves run on; everything else is left out of PATH.
BASICS = ["bash", "env", "sed", "sort", "head", "cut", "uname", "id", "dirname", "make"]
NEEDED = ["git", "Rust", "Python", "kubectl", "qemu-aarch64-static"]
OPTIONAL = ["podman", "curl", "the docker CLI", "wrk", "docker-registry", "skopeo"]


@pytest.fixture
def bare_path(tmp_path: Path) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in BASICS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def run(args: list[str], path: str, ci: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=30,
                          env={"PATH": path, "HOME": "/nonexistent", "CI": ci})


def named(stderr: str, heading: str) -> list[str]:
    """The `  - ` lines under a heading of the script's message."""
    lines = stderr.split(heading, 1)[1].splitlines()[1:] if heading in stderr else []
    items = []
    for line in lines:
        if not line.startswith("  - "):
            break
        items.append(line[4:])
    return items


def test_make_check_names_everything_missing_before_it_runs_anything(bare_path):
    proc = run([shutil.which("make"), "--no-print-directory", "check"], bare_path)
    assert proc.returncode != 0
    missing = named(proc.stderr, "check-tools: make check needs:")
    for tool in NEEDED:
        assert any(tool in item for item in missing), (tool, proc.stderr)
    # Nothing else ran: no cargo, no virtualenv.
    assert proc.stdout.strip() == "scripts/check-tools.sh", proc.stdout
    skipped = named(proc.stderr, "these tests will be skipped")
    for tool in OPTIONAL:
        assert any(tool in item for item in skipped), (tool, proc.stderr)


def test_with_ci_true_the_optional_tools_are_required(bare_path):
    proc = run(["bash", "scripts/check-tools.sh"], bare_path, ci="true")
    assert proc.returncode == 3
    missing = named(proc.stderr, "check-tools: make check needs:")
    for tool in NEEDED + OPTIONAL:
        assert any(tool in item for item in missing), (tool, proc.stderr)
    assert "skipped" not in proc.stderr

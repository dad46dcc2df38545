"""`make check` checks what it needs before anything runs: on a machine that lacks tools it
stops in its first seconds, naming all of them in one message."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# What the script and make themselves run on; everything else is left out of PATH.
BASICS = ["bash", "env", "sed", "sort", "head", "cut", "uname", "id", "dirname", "make", "rm", "mkdir"]
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


def test_make_check_names_everything_missing_before_it_runs_anything(bare_path, tmp_path):
    # A report directory of its own: the default, target/check, is that of the `make check` this
    # test may be running under, whose summary must not be overwritten.
    proc = run([shutil.which("make"), "--no-print-directory", "check", f"CHECK_REPORT={tmp_path / 'check'}"],
               bare_path)
    assert proc.returncode != 0
    missing = named(proc.stderr, "check-tools: make check needs:")
    for tool in NEEDED:
        assert any(tool in item for item in missing), (tool, proc.stderr)
    # Nothing else ran: no cargo, no virtualenv; the summary, last, says where it stopped (without
    # python3, in its short form).
    first, *rest = proc.stdout.strip().splitlines()
    assert first == "scripts/check-tools.sh", proc.stdout
    assert rest == ["make check, without python3 for the rest of its summary: check-tools failed"], proc.stdout
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


def test_the_summary_counts_each_tier_and_names_each_failure_and_skip_reason(tmp_path):
    # Real reports: a pytest run with a pass, two skips for one reason and a failure, and a real
    # cargo test run; the summary must count them and say why the skips happened.
    report = tmp_path / "report"
    report.mkdir()
    (report / "steps").write_text("check-tools ok\nlint ok\ntest failed\n")
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import pytest\n"
        "def test_passes(): pass\n"
        "@pytest.mark.parametrize('n', [1, 2])\n"
        "def test_skips(n): pytest.skip('wrk is not installed (apt-get install wrk)')\n"
        "def test_fails(): assert False\n"
    )
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(sample),
                    f"--junitxml={report / 'pytest.xml'}"], cwd=tmp_path, capture_output=True,
                   timeout=60)
    cargo = subprocess.run(["cargo", "test", "--locked", "-p", "lifecycle", "--lib"], cwd=REPO,
                           capture_output=True, text=True, timeout=600)
    assert cargo.returncode == 0, cargo.stderr
    (report / "cargo-test.log").write_text(cargo.stderr + cargo.stdout)
    ran = int(re.search(r"^running (\d+) tests?$", cargo.stdout, re.M)[1])

    summary = subprocess.run([sys.executable, "scripts/check-summary.py", str(report)], cwd=REPO,
                             capture_output=True, text=True, timeout=30, check=True).stdout
    assert summary.strip().splitlines() == [
        "make check failed: check-tools ok, lint ok, test failed",
        f"cargo test: {ran} passed, 0 failed, 0 ignored",
        "pytest: 1 passed, 1 failed, 2 skipped",
        "  failed: test_sample.py::test_fails",
        "  skipped 2: wrk is not installed (apt-get install wrk)",
    ]

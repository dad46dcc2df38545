"""docs/versions.md's table of what each release did comes from the runs make e2e-matrix kept in
tests/fixtures/e2e-matrix/, through e2e/matrix-table.py, and from nothing else."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WRITER = ROOT / "e2e" / "matrix-table.py"
RUNS = ROOT / "tests" / "fixtures" / "e2e-matrix"
PAGE = ROOT / "docs" / "versions.md"


def write_table(runs: Path, page: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, WRITER, runs, page], capture_output=True, text=True, timeout=60)


def test_the_committed_table_is_what_the_kept_runs_say(tmp_path):
    page = tmp_path / "versions.md"
    shutil.copy(PAGE, page)
    assert write_table(RUNS, page).returncode == 0
    assert page.read_text() == PAGE.read_text(), "docs/versions.md's table differs from the runs kept: run e2e/matrix-table.py"


def test_every_kept_run_is_a_row():
    runs = sorted(RUNS.glob("*.json"))
    assert runs, "no run of make e2e-matrix is kept"
    for run in runs:
        record = json.loads(run.read_text())
        name = record["release"] + (f", {record['gates']}" if record["gates"] else "")
        assert f"| {name} | {record['date']} | {record['components']['kubelet']} |" in PAGE.read_text(), run.name


JUNIT = """<testsuites><testsuite>
<testcase classname="t" name="test_a"/>
<testcase classname="t" name="test_b"><failure message="x"/></testcase>
<testcase classname="t" name="test_c"><skipped message="y"/></testcase>
</testsuite></testsuites>"""


def test_a_run_becomes_a_row_with_its_failures_named(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    record = {"release": "1.28", "gates": "SidecarContainers=true", "date": "2026-12-05",
              "components": {"kubelet": "v1.28.15", "containerd": "containerd://1.7.36", "runc": "1.5.2", "etcd": "3.5.36"},
              "results": {"job.yaml": "Complete 6s | odd"}}
    (runs / "1.28-gated.json").write_text(json.dumps(record))
    (runs / "1.28-gated.xml").write_text(JUNIT)
    page = tmp_path / "page.md"
    page.write_text("before\n<!-- e2e-matrix: begin (written by e2e/matrix-table.py) -->\nold row\n<!-- e2e-matrix: end -->\nafter\n")
    assert write_table(runs, page).returncode == 0
    text = page.read_text()
    assert "old row" not in text and text.startswith("before\n") and text.endswith("after\n")
    assert "| 1.28, SidecarContainers=true | 2026-12-05 | v1.28.15 | 1.7.36 | 1.5.2 | 3.5.36 | 1 passed, 1 failed, 1 skipped: `test_b` |" in text
    assert "| Complete 6s \\| odd | not run |" in text


def test_a_page_without_the_markers_is_refused(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("no markers\n")
    done = write_table(RUNS, page)
    assert done.returncode == 1 and "has no" in done.stderr
    assert page.read_text() == "no markers\n"

"""Writes docs/versions.md's tables of what make e2e-matrix saw, between its markers, from the
runs recorded in a directory (e2e/matrix.sh: NAME.json from test_releases.py's E2E_RESULTS,
NAME.xml from pytest's JUnit report). No row is written by hand.

    python e2e/matrix-table.py tests/fixtures/e2e-matrix docs/versions.md
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

BEGIN = "<!-- e2e-matrix: begin (written by e2e/matrix-table.py) -->"
END = "<!-- e2e-matrix: end -->"
# test_releases.py's scenarios, in the order of the table's columns.
SCENARIOS = ["job.yaml", "job-legacy.yaml", "startupProbe", "SidecarContainers=true"]


def release_key(record: dict) -> tuple:
    return tuple(int(part) for part in record["release"].split(".")), record["gates"]


def tests(report: Path) -> str:
    """What pytest's JUnit report says: counts per outcome, and the failed tests by name."""
    if not report.exists():
        return "no report"
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failed = []
    for case in ElementTree.parse(report).iter("testcase"):
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        outcome = {"failure": "failed", "error": "failed"}.get(outcome, outcome)
        counts[outcome] += 1
        if outcome == "failed":
            failed.append(f"`{case.get('name')}`")
    said = ", ".join(f"{count} {outcome}" for outcome, count in counts.items() if count)
    return said + (f": {', '.join(failed)}" if failed else "")


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(directory: Path) -> str:
    records = sorted((json.loads(path.read_text()) | {"report": path.with_suffix(".xml")}
                      for path in directory.glob("*.json")), key=release_key)
    runs = ["| Release | Run on | kubelet | containerd | runc | etcd | Tests |", "|---|---|---|---|---|---|---|"]
    seen = ["| Release | " + " | ".join(SCENARIOS) + " |", "|---|" + "---|" * len(SCENARIOS)]
    for record in records:
        name = record["release"] + (f", {record['gates']}" if record["gates"] else "")
        parts = record["components"]
        runs.append(f"| {name} | {record['date']} | {parts['kubelet']} | {parts['containerd'].removeprefix('containerd://')} "
                    f"| {parts['runc']} | {parts['etcd']} | {cell(tests(record['report']))} |")
        seen.append(f"| {name} | " + " | ".join(cell(record["results"].get(s, "not run")) for s in SCENARIOS) + " |")
    return "\n".join(runs) + "\n\nWhat each run saw:\n\n" + "\n".join(seen)


def main(directory: str, page: str) -> None:
    path = Path(page)
    text = path.read_text()
    if BEGIN not in text or END not in text:
        sys.exit(f"matrix-table: {page} has no '{BEGIN}' ... '{END}' markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{BEGIN}\n{table(Path(directory))}\n{END}{tail}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])

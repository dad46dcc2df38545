#!/usr/bin/env python3
"""The last lines of `make check`: which steps passed, what each test tier ran, what it skipped
and why. Reads what the Makefile's check target left in REPORT_DIR:

  steps              one line per step: its name and `ok`, or `failed`
  cargo-test.log     cargo test's output (x86_64), for its `test result:` lines
  cargo-test-arm64.log
  pytest.xml         pytest's JUnit XML: failures, and skips with their reasons

    scripts/check-summary.py REPORT_DIR
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

RESULT = re.compile(r"^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", re.M)


def cargo(log: Path) -> str | None:
    """`N passed, N failed, N ignored` over every test binary and doc-test run in `log`."""
    if not log.exists():
        return None
    totals = [0, 0, 0]
    for match in RESULT.finditer(log.read_text(errors="replace")):
        totals = [total + int(count) for total, count in zip(totals, match.groups())]
    return "{} passed, {} failed, {} ignored".format(*totals)


def pytest(xml: Path) -> list[str]:
    """One line of counts, then the failures, then each skip reason with how many it skipped."""
    if not xml.exists():
        return []
    cases = ET.parse(xml).getroot().iter("testcase")
    failed, skipped, passed = [], Counter(), 0
    for case in cases:
        name = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(name)
        elif (skip := case.find("skipped")) is not None:
            skipped[skip.get("message", "").removeprefix("Skipped: ")] += 1
        else:
            passed += 1
    lines = [f"pytest: {passed} passed, {len(failed)} failed, {sum(skipped.values())} skipped"]
    lines += [f"  failed: {name}" for name in failed]
    lines += [f"  skipped {count}: {reason}" for reason, count in skipped.most_common()]
    return lines


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: scripts/check-summary.py REPORT_DIR", file=sys.stderr)
        return 2
    report = Path(sys.argv[1])
    steps = (report / "steps").read_text().split() if (report / "steps").exists() else []
    states = dict(zip(steps[::2], steps[1::2]))
    verdict = "failed" if "failed" in states.values() else "passed"
    print(f"\nmake check {verdict}: " + ", ".join(f"{step} {state}" for step, state in states.items()))
    # In the order the steps run.
    if (counts := cargo(report / "cargo-test.log")) is not None:
        print(f"cargo test: {counts}")
    for line in pytest(report / "pytest.xml"):
        print(line)
    if (counts := cargo(report / "cargo-test-arm64.log")) is not None:
        print(f"cargo test for arm64: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

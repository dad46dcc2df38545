"""`make bench`, run briefly so that it cannot rot.

One round of one second: enough to prove that the bench builds, finds both servers, drives
them with wrk and writes every figure with a plausible value. The targets themselves are not
asserted here: on a shared machine one short round is noise, and the full run is the one that
counts. Without wrk the test skips and says so; with CI=true it fails instead (the CI job
installs the Debian package `wrk`).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "scripts" / "bench.py"

FIGURES = {
    "requests_per_second", "requests_per_cpu_second", "latency_p50_ms", "latency_p99_ms",
    "idle_rss_mb", "peak_rss_mb", "startup_ms", "sigterm_idle_ms", "sigterm_load_ms", "sidecar_binary_mib", "app_binary_mib",
    "local_overhead_ms",
}
# Figures that both servers have, so that the ratio exists.
COMPARED = FIGURES - {"app_binary_mib", "local_overhead_ms"}
# Plausible, not good: (low, high) in each figure's unit. Wide on purpose; a value outside is a
# broken measurement (a unit slip, a counter that never moved), not a slow machine.
SANE = {
    "requests_per_second": (100, 10_000_000),
    "requests_per_cpu_second": (100, 100_000_000),
    "latency_p50_ms": (0.001, 2_000),
    "latency_p99_ms": (0.001, 2_000),
    "idle_rss_mb": (0.1, 100),
    "peak_rss_mb": (0.1, 1_000),
    "startup_ms": (0.05, 10_000),
    "sigterm_idle_ms": (0.001, 5_000),
    "sigterm_load_ms": (0.001, 5_000),
    "sidecar_binary_mib": (0.1, 100),
    "app_binary_mib": (0.1, 100),
    "local_overhead_ms": (0.01, 10_000),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    if shutil.which("wrk") is None:
        # The same rule as the image tests: CI=true means every tool must be there.
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but wrk is not installed: .ci/run installs it (apt: wrk)",
                        pytrace=False)
        pytest.skip("wrk is not installed (apt-get install wrk); the bench needs it")
    out = tmp_path_factory.mktemp("bench") / "results.json"
    # A flag rustc refuses: the build fails unless the bench builds with the target's defaults,
    # as the Dockerfile does, whatever the caller's shell exports.
    env = dict(os.environ, RUSTFLAGS="-C not-a-codegen-option")
    # Generous: the first run compiles the release binaries.
    done = subprocess.run(
        [sys.executable, str(BENCH), "--rounds", "1", "--duration", "1", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=1800, env=env,
    )
    assert done.returncode == 0, f"bench failed:\n{done.stdout}\n{done.stderr[-4000:]}"
    return json.loads(out.read_text()), done.stdout


def test_the_table_is_printed_with_every_figure(results: tuple[dict, str]) -> None:
    data, stdout = results
    header = stdout.splitlines()[0].split()
    assert header[:5] == ["figure", "sidecar", "baseline", "ratio", "target"], stdout
    for figure in data["figures"]:
        assert figure["label"] in stdout
    assert data["table"] in stdout


def test_every_figure_has_a_plausible_value(results: tuple[dict, str]) -> None:
    data, _ = results
    figures = {f["key"]: f for f in data["figures"]}
    assert set(figures) == FIGURES
    for key, figure in figures.items():
        low, high = SANE[key]
        value = figure["sidecar"]
        assert isinstance(value, float) and math.isfinite(value), (key, value)
        assert low <= value <= high, f"{key}: sidecar {value} {figure['unit']}"
        if key in COMPARED:
            base = figure["baseline"]
            assert isinstance(base, float) and low <= base <= high, f"{key}: baseline {base}"
            assert figure["ratio"] == pytest.approx(value / base)


def test_latencies_are_ordered(results: tuple[dict, str]) -> None:
    figures = {f["key"]: f for f in results[0]["figures"]}
    for server in ("sidecar", "baseline"):
        assert figures["latency_p50_ms"][server] <= figures["latency_p99_ms"][server]


def test_peak_rss_is_not_below_idle(results: tuple[dict, str]) -> None:
    figures = {f["key"]: f for f in results[0]["figures"]}
    for server in ("sidecar", "baseline"):
        # Different processes, so allow the page or two that separate two idle starts.
        assert figures["peak_rss_mb"][server] >= figures["idle_rss_mb"][server] * 0.9


def test_each_target_has_a_verdict(results: tuple[dict, str]) -> None:
    data, _ = results
    targeted = [f for f in data["figures"] if f["target"]]
    assert {f["key"] for f in targeted} == {
        "requests_per_second", "requests_per_cpu_second", "latency_p99_ms", "idle_rss_mb",
        "peak_rss_mb", "sigterm_idle_ms", "sidecar_binary_mib", "app_binary_mib", "local_overhead_ms",
    }
    for figure in targeted:
        assert figure["pass"] in (True, False), figure
    assert data["all_targets_met"] == all(f["pass"] for f in targeted)


def has_interpreter(path: Path) -> bool:
    """Whether an ELF64 file has a PT_INTERP program header: a dynamic loader to run it."""
    elf = path.read_bytes()
    assert elf[:5] == b"\x7fELF\x02", f"{path}: not a 64-bit ELF file"
    order = "little" if elf[5] == 1 else "big"
    phoff = int.from_bytes(elf[0x20:0x28], order)
    size, count = int.from_bytes(elf[0x36:0x38], order), int.from_bytes(elf[0x38:0x3A], order)
    PT_INTERP = 3
    return any(int.from_bytes(elf[phoff + i * size:][:4], order) == PT_INTERP for i in range(count))


def test_the_binaries_measured_are_static_musl_builds(results: tuple[dict, str]) -> None:
    binaries = results[0]["binaries"]
    assert set(binaries) == {"sidecar", "app", "baseline"}
    for name, binary in binaries.items():
        assert binary["static"] is True, name
        assert not has_interpreter(Path(binary["path"])), name
        assert Path(binary["path"]).stat().st_size == binary["bytes"], name
        # The target the Dockerfile builds for, which scripts/static-target.sh added if need be.
        assert f"/{os.uname().machine}-unknown-linux-musl/release/" in binary["path"], name


def test_the_bench_builds_like_the_dockerfile() -> None:
    """The sizes in the table are the sizes shipped only if both build for the same target."""
    script = (REPO / "scripts" / "static-target.sh").read_text()
    triple = re.search(r'^triple="(.+)"$', script, re.M)[1]
    assert triple == "$(uname -m)-unknown-linux-musl"
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    # The Dockerfile maps TARGETARCH to the same triple that uname -m gives on that machine.
    host = f"{os.uname().machine}-unknown-linux-musl"
    assert re.search(rf"rustup target add .*\b{host}\b", dockerfile)
    assert f"triple={host} ;;" in dockerfile
    assert 'cargo auditable build --release --locked --target "$triple"' in dockerfile
    # The target's defaults are the whole recipe: the only flags on the side rewrite paths in
    # panic messages (--remap-path-prefix), not the code.
    (rustflags,) = re.findall(r'RUSTFLAGS="([^"]*)"', dockerfile)
    assert all(flag.startswith("--remap-path-prefix=") for flag in rustflags.split())

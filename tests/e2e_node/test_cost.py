"""What the native sidecar costs the Job, and what its probe costs the sidecar, measured on the
node: the same Job with and without its sidecar, and the sidecar's CPU with and without its probe.
The figures go to the report under "e2e-node" (docs/benchmark.md shows a run's); the tests hold
what must be true whatever the machine's speed."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from e2e_support import (REPORT, app_env, await_end, cgroup_dirs, condition, containerd_lines, events_of, log_lines,
                         main_pid, now, start, statuses, variant, when)

RUNS = 3
WITHOUT_SIDECAR = [
    {"op": "remove", "path": "/spec/template/spec/initContainers"},
]
NO_SIDECAR_URL = {"spec": {"template": {"spec": {"containers": [
    {"name": "app", "env": [{"name": "APP_SIDECAR_URL", "$patch": "delete"}]}]}}}}


def timed(node, tmp_path: Path, name: str, *patches) -> dict[str, float]:
    """One run, in seconds: apply → Job Complete seen (polled every 0.1 s), the Pod scheduled →
    the app's first line, and the app's last line → Job Complete seen."""
    run = start(node, variant(node, tmp_path, name, app_env(APP_SLEEP="3s"), *patches))
    job = await_end(node, run.name, 120)
    ended = now()
    assert condition(job, "Complete"), job["status"]
    app_log = log_lines(node, run.pod_name, "app")
    scheduled = next(when(e) for e in events_of(node, run.pod_name) if e["reason"] == "Scheduled")
    return {"total": (ended - run.began).total_seconds(),
            "scheduled to app": (app_log[0][0] - scheduled).total_seconds(),
            "app to complete": (ended - app_log[-1][0]).total_seconds(),
            "sidecars": len(run.pod["spec"].get("initContainers", []))}


@pytest.fixture(scope="module")
def cost(node, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cost")
    runs = {"with": [], "without": []}
    for i in range(RUNS):  # interleaved, so that the machine's load falls on both alike
        runs["with"].append(timed(node, tmp, f"cost-with-{i}"))
        runs["without"].append(timed(node, tmp, f"cost-without-{i}", WITHOUT_SIDECAR, NO_SIDECAR_URL))
    median = {k: {m: statistics.median(r[m] for r in v) for m in v[0]} for k, v in runs.items()}
    REPORT.append("what the sidecar costs (median of %d, APP_SLEEP=3s): " % RUNS + "; ".join(
        f"{m}: {median['with'][m]:.2f}s with, {median['without'][m]:.2f}s without "
        f"(+{median['with'][m] - median['without'][m]:.2f}s, x{median['with'][m] / median['without'][m]:.2f})"
        for m in ("total", "scheduled to app", "app to complete")))
    return runs


def test_the_job_completes_without_its_sidecar_too(cost):
    # The comparison is fair only if the other Job really ran without one.
    assert {r["sidecars"] for r in cost["without"]} == {0}
    assert {r["sidecars"] for r in cost["with"]} == {1}


def test_the_sidecar_holds_the_app_back_only_until_it_answers(cost):
    # A generous promise, not a speed test: the sidecar's start and postStart hook take seconds
    # at most, on a loaded machine too.
    extra = statistics.median(r["scheduled to app"] for r in cost["with"]) - \
        statistics.median(r["scheduled to app"] for r in cost["without"])
    assert extra < 10


# --- the probe ------------------------------------------------------------------------------

def cpu_while_the_app_works(node, tmp_path: Path, name: str, *patches) -> dict:
    """The sidecar's CPU time (cgroup cpuacct) and throttled periods from the app's `working`
    line until the app's process is gone, sampled every 0.2 s, and the probes run meanwhile."""
    run = start(node, variant(node, tmp_path, name, app_env(APP_SLEEP="25s"), *patches))
    sidecar = cgroup_dirs(Path("/proc") / str(main_pid(node, run.pod, "sidecar")))
    app = Path("/proc") / str(main_pid(node, run.pod, "app"))

    def sample():
        if "cpuacct" in sidecar:  # cgroup v1
            usage = int((sidecar["cpuacct"] / "cpuacct.usage").read_text())
            stat = dict(line.split() for line in (sidecar["cpu"] / "cpu.stat").read_text().splitlines())
        else:
            stat = dict(line.split() for line in (sidecar[""] / "cpu.stat").read_text().splitlines())
            usage = int(stat["usage_usec"]) * 1000
        return usage, int(stat["nr_periods"]), int(stat["nr_throttled"])

    began, first_sample, last = now(), sample(), None
    while app.exists():
        last = sample()
        time.sleep(0.2)  # the sampling interval of a measurement, not a wait for an event
    ended = now()
    job = await_end(node, run.name, 120)
    sidecar_id = next(s for s in statuses(run.current()) if s["name"] == "sidecar")["containerID"].split("://")[1]
    probes = [at for at, line in containerd_lines(node)
              if f'ExecSync for \\"{sidecar_id}\\" with command [/sidecar wait-ready' in line
              and "--timeout 1s" in line and began <= at <= ended]
    events = events_of(node, run.pod_name)
    return {"cpu_ms": (last[0] - first_sample[0]) / 1e6, "seconds": (ended - began).total_seconds(),
            "periods": last[1] - first_sample[1], "throttled": last[2] - first_sample[2], "probes": len(probes),
            "unhealthy": [e["message"] for e in events if e["reason"] == "Unhealthy"], "job": job}


@pytest.fixture(scope="module")
def probe_cost(node, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe-cost")
    seen = {"job.yaml": cpu_while_the_app_works(node, tmp, "probe-cost"),
            "no probe": cpu_while_the_app_works(node, tmp, "no-probe-cost", [
                {"op": "remove", "path": "/spec/template/spec/initContainers/0/livenessProbe"}])}
    REPORT.append("the sidecar's CPU while the app works: " + "; ".join(
        f"{k}: {v['cpu_ms']:.0f} ms in {v['seconds']:.0f}s, {v['probes']} probe runs"
        + (f" ({v['cpu_ms'] / v['probes']:.0f} ms each)" if v["probes"] else "")
        + f", throttled in {v['throttled']} of {v['periods']} CFS periods" for k, v in seen.items()))
    return seen


def test_a_probe_run_costs_less_cpu_than_its_wait_can_buy_at_the_limit(probe_cost):
    # At 100m, the 1 s that `wait-ready --timeout 1s` waits buys 100 ms of CPU: a probe that
    # cost more could fail on a healthy sidecar, throttled.
    seen = probe_cost["job.yaml"]
    assert seen["probes"] >= 2, seen
    assert seen["cpu_ms"] / seen["probes"] < 100, seen


def test_the_probe_never_failed_on_a_healthy_sidecar(probe_cost):
    assert probe_cost["job.yaml"]["unhealthy"] == []
    assert condition(probe_cost["job.yaml"]["job"], "Complete")


def test_without_a_probe_an_idle_sidecar_costs_next_to_nothing(probe_cost):
    # What the probe costs is what the sidecar spends while idle with it: the app's two calls
    # are all the work it has otherwise.
    assert probe_cost["no probe"]["probes"] == 0
    assert probe_cost["no probe"]["cpu_ms"] < probe_cost["job.yaml"]["cpu_ms"]

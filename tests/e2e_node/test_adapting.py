"""docs/adapting.md's startupProbe gate on the real node: examples/startup-probe.yaml, applied to
job.yaml, runs through `make demo`'s run and verdict to a Complete Job, and the kubelet's probe
got its 200 from the sidecar before the app started. The sidecar logs each request at debug level,
so the run sets RUST_LOG=debug and reads when the probe was answered."""

from __future__ import annotations

import json

import pytest
import yaml

from e2e_support import (REPORT, ROOT, Run, condition, container_env, log_lines, run_job, since,
                         variant)


@pytest.fixture(scope="module")
def startup_probe(node, tmp_path_factory) -> Run:
    tmp_path = tmp_path_factory.mktemp("startup-probe")
    patch = yaml.safe_load((ROOT / "examples" / "startup-probe.yaml").read_text())
    manifest = variant(node, tmp_path, "adapt-startup-probe", patch, container_env("sidecar", RUST_LOG="debug"))
    return run_job(node, tmp_path, "native", manifest)


def test_the_startup_probe_example_completes_with_both_exit_codes_0(startup_probe):
    assert startup_probe.exit_code == 0, startup_probe.stdout + startup_probe.stderr
    assert startup_probe.stdout.splitlines()[-1].startswith("PASS: job Complete"), startup_probe.stdout
    for name in ("sidecar", "app"):
        assert startup_probe.status(name)["state"]["terminated"]["exitCode"] == 0, name


def test_the_startup_probe_is_answered_200_before_the_app_starts(startup_probe, node):
    pod = startup_probe.of_kind("Pod")["metadata"]["name"]
    answered = []
    for at, text in log_lines(node, pod, "sidecar"):
        fields = json.loads(text).get("fields", {})
        if fields.get("message") == "request" and fields.get("path") == "/readyz" and fields.get("status") == 200:
            answered.append(at)
    assert answered, "the sidecar never answered the probe"
    app_first = log_lines(node, pod, "app")[0][0]
    assert answered[0] < app_first
    complete = condition(startup_probe.of_kind("Job"), "Complete")["lastTransitionTime"]
    created = startup_probe.of_kind("Pod")["metadata"]["creationTimestamp"]
    REPORT.append(f"examples/startup-probe.yaml: the probe's first 200 {(app_first - answered[0]).total_seconds():.3f}s "
                  f"before the app's first line; Complete {since(created, complete):.0f}s after the Pod was made")

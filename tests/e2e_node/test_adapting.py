"""docs/adapting.md's gates on the real node, each example in examples/ applied to job.yaml and run
through `make demo`'s run and verdict: the startupProbe, whose 200 the sidecar logs at debug level
(the run sets RUST_LOG=debug) before the app's first line; and the hook whose `wait-ready` comes
from an image volume."""

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


@pytest.fixture(scope="module")
def wait_ready_volume(node, tmp_path_factory) -> Run:
    tmp_path = tmp_path_factory.mktemp("wait-ready-volume")
    patch = yaml.safe_load((ROOT / "examples" / "wait-ready-volume.yaml").read_text())
    return run_job(node, tmp_path, "native", variant(node, tmp_path, "adapt-wait-ready-volume", patch))


def test_the_hook_runs_wait_ready_from_an_image_volume_and_the_job_completes(wait_ready_volume):
    # The hook's binary exists only in the image volume: without the mount the hook fails, the
    # kubelet kills the sidecar, and the app never starts.
    run = wait_ready_volume
    assert run.exit_code == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1].startswith("PASS: job Complete"), run.stdout
    for name in ("sidecar", "app"):
        assert run.status(name)["state"]["terminated"]["exitCode"] == 0, name
    assert run.status("sidecar")["restartCount"] == 0
    assert not [event for event in run.events if event["reason"] == "FailedPostStartHook"]
    complete = condition(run.of_kind("Job"), "Complete")["lastTransitionTime"]
    REPORT.append(f"examples/wait-ready-volume.yaml: Complete {since(run.of_kind('Pod')['metadata']['creationTimestamp'], complete):.0f}s "
                  f"after the Pod was made, the hook's wait-ready taken from the image volume")

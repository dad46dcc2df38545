"""job.yaml and job-legacy.yaml on upstream Kubernetes's own parts: the real kubelet, Job
controller, containerd and runc (e2e/node.sh). Each run goes through the same deploy, wait,
timeline and verdict as `make demo` on kind (`scripts/kind-demo.sh run`); what is asserted
comes from the API server, the kubelet's events, containerd's log, `kubectl logs --timestamps`
and the kernel (/proc, the cgroup files)."""

from __future__ import annotations

import pytest
from kubernetes.utils import parse_quantity

from e2e_support import (JOB_YAML, LEGACY_YAML, REPORT, Run, condition, containerd_lines, first, log_lines, run_job,
                         since, variant, when)


# --- job.yaml --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def native(node, tmp_path_factory) -> Run:
    run = run_job(node, tmp_path_factory.mktemp("native"), "native", JOB_YAML, inspect={"sidecar", "app"},
                  record="native")
    job, pod = run.of_kind("Job"), run.of_kind("Pod")
    scheduled = condition(pod, "PodScheduled")["lastTransitionTime"]
    app = run.status("app")["state"]["terminated"]
    complete = condition(job, "Complete")["lastTransitionTime"]
    REPORT.append(f"job.yaml: `kubectl get job -w` ended with: {run.watched[-1] if run.watched else '(nothing)'}")
    REPORT.append(f"job.yaml: Pod scheduled to app started {since(scheduled, app['startedAt']):.0f}s, "
                  f"app exited to Job Complete {since(app['finishedAt'], complete):.0f}s (the API's 1s resolution)")
    return run


def test_the_demo_passes_on_the_real_kubelet(native):
    assert native.exit_code == 0, native.stdout + native.stderr
    assert native.stdout.splitlines()[-1].startswith("PASS: job Complete"), native.stdout


def test_the_job_completes_and_both_containers_exit_0(native):
    job, pod = native.of_kind("Job"), native.of_kind("Pod")
    assert condition(job, "Complete")["status"] == "True"
    assert job["status"]["succeeded"] == 1
    assert pod["status"]["phase"] == "Succeeded"
    app, sidecar = native.status("app")["state"]["terminated"], native.status("sidecar")["state"]["terminated"]
    assert (app["exitCode"], app["reason"]) == (0, "Completed")
    # The kubelet stopped the sidecar with SIGTERM, and it ended on its own with 0, not 143.
    assert (sidecar["exitCode"], sidecar["reason"]) == (0, "Completed")
    assert native.status("sidecar")["restartCount"] == 0


def test_kubectl_get_job_w_shows_the_completion(native):
    last = native.watched[-1].split()
    assert last[:3] == ["native-sidecar-job", "Complete", "1/1"], native.watched


def test_the_sidecar_is_ready_before_the_app_starts_and_stopped_after_it_exits(native, node):
    """Sub-second order, from containerd's log of the kubelet's CRI calls and from the
    containers' own log lines (the API's timestamps have one-second resolution)."""
    pod = native.of_kind("Pod")["metadata"]["name"]
    sidecar_id = native.status("sidecar")["containerID"].split("://")[1]
    containerd = containerd_lines(node)
    hook = next(i for i, (_, line) in enumerate(containerd)
                if f'ExecSync for \\"{sidecar_id}\\" with command [/sidecar wait-ready' in line and "--timeout 30s" in line)
    hook_returned = next(at for at, line in containerd[hook:] if f'ExecSync for \\"{sidecar_id}\\" returns with exit code 0' in line)
    app_created = first(containerd, "for container name:\\\"app\\\"", sandbox=pod)
    sidecar_stopped = first(containerd, f'StopContainer for \\"{sidecar_id}\\" with timeout')
    app_log, sidecar_log = log_lines(node, pod, "app"), log_lines(node, pod, "sidecar")
    sigterm = next(at for at, text in sidecar_log if "shutting down" in text and "SIGTERM" in text)
    # The postStart hook returned before the kubelet created the app, which then logged.
    assert hook_returned < app_created < app_log[0][0]
    # The app's last line, then the kubelet's stop of the sidecar, then the sidecar's SIGTERM.
    assert app_log[-1][0] < sidecar_stopped < sigterm
    REPORT.append(f"job.yaml: the postStart hook returned {(app_created - hook_returned).total_seconds() * 1000:.0f} ms "
                  f"before the kubelet created the app; the sidecar logged SIGTERM "
                  f"{(sigterm - app_log[-1][0]).total_seconds() * 1000:.0f} ms after the app's last line")


def test_the_probes_ran_and_passed(native):
    assert native.ready, "the Pod never became Ready"
    reasons = {event["reason"] for event in native.events}
    assert {"Scheduled", "Pulled", "Created", "Started", "Killing"} <= reasons, reasons
    # Until the kubelet stops the sidecar, nothing failed. From then on a probe may find the
    # listener closed (job.yaml says so) or the container gone: that is the shutdown, and only
    # a probe's Unhealthy may come of it, never a failed hook, a back-off or a failed start.
    stopped = min(when(event) for event in native.events if event["reason"] == "Killing")
    bad = {"Unhealthy", "FailedPostStartHook", "BackOff", "Failed"}
    found = [(when(e), e["reason"], e["message"]) for e in native.events if e["reason"] in bad]
    assert [f for f in found if f[0] < stopped or f[1] != "Unhealthy"] == [], (stopped, found)
    REPORT.append(f"job.yaml: probe events from the kubelet's stop of the sidecar on: "
                  f"{[message for _, _, message in found] or 'none'}")


@pytest.mark.parametrize("container", ["sidecar", "app"])
def test_the_hardening_took_effect(native, container):
    spec = native.of_kind("Pod")["spec"]
    declared = next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == container)
    seen = native.processes[container]
    assert seen["memory"] == int(parse_quantity(declared["resources"]["limits"]["memory"]))
    assert seen["cpus"] == float(parse_quantity(declared["resources"]["limits"]["cpu"]))
    user = str(spec["securityContext"]["runAsUser"])
    assert seen["uid"] == [user, user]
    assert "ro" in seen["root_options"]


# --- job-legacy.yaml -------------------------------------------------------------------------

def test_the_legacy_job_runs_into_its_deadline_after_the_app_exited_0(node, tmp_path):
    legacy = run_job(node, tmp_path, "legacy", LEGACY_YAML, record="legacy")
    assert legacy.exit_code == 0, legacy.stdout + legacy.stderr
    assert legacy.stdout.splitlines()[-1].startswith("PASS: app exited 0, yet the job Failed"), legacy.stdout
    job = legacy.of_kind("Job")
    failed = condition(job, "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "DeadlineExceeded")
    app = legacy.status("app")["state"]["terminated"]
    assert app["exitCode"] == 0
    REPORT.append(f"job-legacy.yaml: the app exited 0 at {app['finishedAt']}, the Job failed with "
                  f"DeadlineExceeded at {failed['lastTransitionTime']}, {legacy.seconds:.0f}s after the run began")


# --- broken copies of job.yaml ---------------------------------------------------------------

SIDECAR = "/spec/template/spec/initContainers/0"


@pytest.mark.parametrize("broken, patch, expected", [
    ("a postStart that cannot succeed", [
        {"op": "replace", "path": f"{SIDECAR}/lifecycle/postStart/exec/command/3", "value": "http://127.0.0.1:9/readyz"},
        {"op": "replace", "path": "/spec/activeDeadlineSeconds", "value": 60},
    ], "FailedPostStartHook"),
    ("a sidecar memory limit too small to start", [
        {"op": "replace", "path": f"{SIDECAR}/resources", "value": {"limits": {"memory": "1Mi", "cpu": "100m"}}},
        {"op": "replace", "path": "/spec/activeDeadlineSeconds", "value": 60},
    ], "BackOff"),
], ids=["poststart", "memory"])
def test_a_broken_copy_ends_in_a_bounded_time_with_a_clear_verdict(node, tmp_path, broken, patch, expected):
    run = run_job(node, tmp_path, "native", variant(node, tmp_path, "broken", patch))
    assert run.exit_code == 1, run.stdout + run.stderr
    assert "FAIL: job did not complete" in run.stdout
    failed = condition(run.of_kind("Job"), "Failed")
    assert (failed["status"], failed["reason"]) == ("True", "DeadlineExceeded")
    # The Job's deadline deleted the Pod; its events tell what the kubelet did, and that it never
    # got as far as the app: the kubelet holds it back until the sidecar has started.
    assert [item["kind"] for item in run.objects] == ["Job"]
    app = {event["reason"] for event in run.events if event["involvedObject"].get("fieldPath") == "spec.containers{app}"}
    assert not app & {"Created", "Started"}, app
    reasons = [f"{event['reason']} x{event.get('count', 1)}: {event['message'][:160]}" for event in run.events
               if event["type"] == "Warning"]
    assert any(expected in line for line in reasons), reasons
    assert run.seconds < 60 + 60  # the deadline, and as long again for the Job's status and the script
    REPORT.append(f"broken copy, {broken}: FAIL after {run.seconds:.0f}s; the kubelet's warnings: " + "; ".join(reasons))

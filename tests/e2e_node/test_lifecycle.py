"""Every path of job.yaml's lifecycle on the real kubelet, not only the happy one: the app fails,
the Pod or the Job is deleted mid-run, the sidecar crashes or wedges, the kubelet restarts, two
sidecars, a disruption. Each situation is a copy of job.yaml changed by `kubectl patch --local`
(e2e_support.variant), run once by a fixture; each test then states one behaviour, read from
the API server, the kubelet's events, containerd's trace of the kubelet's CRI calls and the
containers' own log lines, in the manner of upstream's test/e2e_node/container_lifecycle_test.go.
Every wait has a deadline; each figure goes to the report under "e2e-node"."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from e2e_support import (ORDERED_SHUTDOWN, REPORT, SIDECARS, Started, all_of, app_env, await_end, condition, container_id, containerd_lines,
                         created_in, events_of, exited, first, line_with, log_lines, ms, now, parse_log, pods_of,
                         record_stem, run_job, sandbox_of, signal_container, start, status_of, stopped, variant)
from images_support import kubectl_objects, wait_for

pytestmark = pytest.mark.skipif(not SIDECARS, reason="native sidecars are off: 1.28 without the SidecarContainers gate")

# The app's work, shortened where its length does not matter: long enough for the test to act
# while it runs.
WORK = "20s"
TERMINATION_GRACE = 15  # job.yaml's terminationGracePeriodSeconds


def reasons(events: list[dict]) -> dict[str, int]:
    found: dict[str, int] = {}
    for event in events:
        found[event["reason"]] = found.get(event["reason"], 0) + event.get("count", 1)
    return found


# --- the app fails --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app_fails(node, tmp_path_factory):
    """The app exits 1: its sidecar URL points at a port nothing listens on."""
    tmp = tmp_path_factory.mktemp("app-fails")
    manifest = variant(node, tmp, "app-fails", app_env(APP_SIDECAR_URL="http://127.0.0.1:9/", APP_SIDECAR_WAIT="2s",
                                                        APP_SLEEP="1s"))
    run = run_job(node, tmp, "native", manifest, record="app-fails")
    pod = run.of_kind("Pod")
    app = status_of(pod, "app")["state"]["terminated"]
    failed = condition(run.of_kind("Job"), "Failed")
    trace = containerd_lines(node)
    REPORT.append(f"app fails: the app exited {app['exitCode']} at {app['finishedAt']}; the Job Failed "
                  f"({failed and failed['reason']}) at {failed and failed['lastTransitionTime']}; the kubelet stopped the "
                  f"sidecar {ms(stopped(trace, container_id(pod, 'sidecar')) - exited(trace, container_id(pod, 'app'))[0])} "
                  f"after the app's exit; the whole run took {run.seconds:.0f}s")
    return run


def test_a_failed_app_fails_the_job_at_once_by_its_pod_failure_policy(app_fails):
    assert status_of(app_fails.of_kind("Pod"), "app")["state"]["terminated"]["exitCode"] == 1
    failed = condition(app_fails.of_kind("Job"), "Failed")
    assert failed and failed["reason"] == "PodFailurePolicy", app_fails.of_kind("Job")["status"]
    # Nothing waited for the Job's deadline (120s).
    assert app_fails.seconds < 60


def test_the_demo_says_fail_when_the_app_failed(app_fails):
    assert app_fails.exit_code == 1
    assert "FAIL: app did not exit 0" in app_fails.stdout


def test_after_a_failed_app_the_sidecar_is_stopped_and_exits_0(app_fails, node):
    pod = app_fails.of_kind("Pod")
    sidecar = status_of(pod, "sidecar")["state"]["terminated"]
    assert (sidecar["exitCode"], sidecar["reason"]) == (0, "Completed")
    trace = containerd_lines(node)
    app_exit, _ = exited(trace, container_id(pod, "app"))
    assert app_exit < stopped(trace, container_id(pod, "sidecar"))


# --- the Pod or the Job is deleted mid-run -----------------------------------------------------

@dataclass
class Deletion:
    started: Started
    deleted_at: datetime
    app_log: list
    sidecar_log: list
    last_seen: dict
    job: dict | None
    trace: list = field(default_factory=list)


@pytest.fixture(scope="module", params=["pod", "job"])
def deletion(request, node, tmp_path_factory):
    """The app at its work; then `kubectl delete pod`, or the Job deleted with foreground
    propagation. The Pod and its logs go with it, so both containers' logs are followed and the
    Pod watched until then."""
    what = request.param
    tmp = tmp_path_factory.mktemp(f"delete-{what}")
    run = start(node, variant(node, tmp, f"deleted-{what}", app_env(APP_SLEEP="60s")))
    followers = {c: node.follow("logs", "-f", "--timestamps", run.pod_name, "-c", c) for c in ("app", "sidecar")}
    watch = node.follow("get", "pod", run.pod_name, "-w", "-o", "json")
    try:
        deleted_at = now()
        if what == "pod":
            node.kubectl("delete", "pod", run.pod_name, "--wait=false")
        else:
            node.kubectl("delete", "job", run.name, "--cascade=foreground", "--wait=false")
        wait_for(f"pod/{run.pod_name} to be gone",
                 lambda: node.kubectl("get", "pod", run.pod_name, check=False).returncode != 0,
                 2 * TERMINATION_GRACE + 30, interval=0.2)
        # Each stream ends by itself once its container has exited.
        logs = {c: parse_log(f.wait(timeout=30)) for c, f in followers.items()}
    finally:
        versions = kubectl_objects(watch.stop())
        for followed in followers.values():
            followed.stop()
    job = node.get("job", run.name) if node.kubectl("get", "job", run.name, check=False).returncode == 0 else None
    seen = Deletion(run, deleted_at, logs["app"], logs["sidecar"], versions[-1], job, containerd_lines(node))
    app_id, sidecar_id = container_id(run.pod, "app"), container_id(run.pod, "sidecar")
    app_stop, sidecar_stop = stopped(seen.trace, app_id), stopped(seen.trace, sidecar_id)
    (app_exit, app_code), (sidecar_exit, sidecar_code) = exited(seen.trace, app_id), exited(seen.trace, sidecar_id)
    REPORT.append(f"{what} deleted mid-run: StopContainer(app) {ms(app_stop - deleted_at)} after the delete, the app "
                  f"exited {app_code} {ms(app_exit - app_stop)} later; StopContainer(sidecar) {ms(sidecar_stop - app_exit)} "
                  f"after the app's exit, the sidecar exited {sidecar_code} {ms(sidecar_exit - sidecar_stop)} later; "
                  f"the Job: {job and [c['type'] + '/' + c.get('reason', '') for c in job['status'].get('conditions', [])]}")
    if what == "pod" and os.environ.get("E2E_RECORD") and job:
        record_fixture("deleted-pod", [job, seen.last_seen])
    return seen


@pytest.mark.skipif(not ORDERED_SHUTDOWN, reason="1.28 stops every container at once")
def test_on_deletion_the_app_gets_sigterm_first(deletion):
    trace = deletion.trace
    assert stopped(trace, container_id(deletion.started.pod, "app")) < stopped(trace, container_id(deletion.started.pod, "sidecar"))


def test_on_deletion_the_sidecar_is_stopped_only_once_the_app_has_exited_from_1_29_on(deletion):
    app_exit, _ = exited(deletion.trace, container_id(deletion.started.pod, "app"))
    sidecar_stop = stopped(deletion.trace, container_id(deletion.started.pod, "sidecar"))
    sigterm = line_with(deletion.sidecar_log, "shutting down")
    if ORDERED_SHUTDOWN:
        # The sidecar's own line for SIGTERM comes after the app's last line, too.
        assert app_exit < sidecar_stop and deletion.app_log[-1][0] < sigterm
    else:
        # 1.28's alpha stops both together, without waiting for the app's exit.
        app_stop = stopped(deletion.trace, container_id(deletion.started.pod, "app"))
        assert abs((sidecar_stop - app_stop).total_seconds()) < 0.2


def test_on_deletion_the_app_exits_promptly_with_143(deletion):
    app_id = container_id(deletion.started.pod, "app")
    app_exit, code = exited(deletion.trace, app_id)
    assert code == 143
    assert (app_exit - stopped(deletion.trace, app_id)).total_seconds() < 2
    assert "stopped before the work finished" in deletion.app_log[-1][1]


def test_on_deletion_the_sidecar_drains_and_exits_0_within_the_grace_period(deletion):
    sidecar_exit, code = exited(deletion.trace, container_id(deletion.started.pod, "sidecar"))
    assert code == 0
    assert "stopped" in deletion.sidecar_log[-1][1]
    assert (sidecar_exit - deletion.deleted_at).total_seconds() < TERMINATION_GRACE


# --- the sidecar crashes, or wedges ----------------------------------------------------------

@dataclass
class Restart:
    started: Started
    acted_at: datetime
    job: dict
    pod: dict
    events: list
    trace: list


def restarted_sidecar(node, tmp_path_factory, name: str, sig: signal.Signals, *patches) -> Restart:
    """The app at its work; then `sig` to the sidecar's process; the Job's end."""
    tmp = tmp_path_factory.mktemp(name)
    run = start(node, variant(node, tmp, name, *patches))
    acted_at = signal_container(node, run.pod, "sidecar", sig)
    job = await_end(node, run.name, 240)
    return Restart(run, acted_at, job, run.current(), events_of(node, run.pod_name), containerd_lines(node))


@pytest.fixture(scope="module")
def crashed(node, tmp_path_factory):
    seen = restarted_sidecar(node, tmp_path_factory, "sidecar-crash", signal.SIGKILL, app_env(APP_SLEEP=WORK))
    new_id = container_id(seen.pod, "sidecar")
    hook = [at for at, line in seen.trace if f'ExecSync for \\"{new_id}\\" returns with exit code 0' in line]
    started = first(seen.trace, f'StartContainer for \\"{new_id}\\" returns successfully')
    REPORT.append(f"sidecar crash (SIGKILL): lastState after the Job {status_of(seen.pod, 'sidecar')['lastState'] or '{}'}; "
                  f"the kubelet started a new sidecar {ms(started - seen.acted_at)} after the kill; "
                  f"its postStart hook ran again and returned {ms(hook[0] - started) if hook else '(never)'} after its "
                  f"start; the Job: {[c['type'] for c in seen.job['status']['conditions'] if c['status'] == 'True']}")
    return seen


def test_a_crashed_sidecar_is_restarted_once(crashed):
    assert status_of(crashed.pod, "sidecar")["restartCount"] == 1
    # Killed (137), as containerd saw it: the Pod's lastState keeps it on 1.37, not on 1.35.4.
    _, code = exited(crashed.trace, container_id(crashed.started.pod, "sidecar"))
    assert code == 137


def test_the_app_keeps_running_through_a_sidecar_crash(crashed):
    app = status_of(crashed.pod, "app")
    assert app["restartCount"] == 0
    assert container_id(crashed.pod, "app") == container_id(crashed.started.pod, "app")


def test_the_restarted_sidecar_answers_the_apps_next_call_and_the_job_completes(crashed, node):
    assert condition(crashed.job, "Complete")
    app_log = log_lines(node, crashed.started.pod_name, "app")
    assert line_with(app_log, "the sidecar answered again after the work") > crashed.acted_at


def test_the_restarted_sidecar_runs_its_poststart_hook_again(crashed):
    new_id = container_id(crashed.pod, "sidecar")
    assert all_of(crashed.trace, f'ExecSync for \\"{new_id}\\" with command [/sidecar wait-ready')


@pytest.fixture(scope="module")
def wedged(node, tmp_path_factory):
    """SIGSTOP: the process is there, and answers nothing. The app works long enough for the
    liveness probe's three failures and the grace period, then calls the sidecar again."""
    seen = restarted_sidecar(node, tmp_path_factory, "sidecar-wedged", signal.SIGSTOP, app_env(APP_SLEEP="50s"),
                             {"spec": {"activeDeadlineSeconds": 150}})
    old_id, new_id = container_id(seen.started.pod, "sidecar"), container_id(seen.pod, "sidecar")
    killed = stopped(seen.trace, old_id)
    started = first(seen.trace, f'StartContainer for \\"{new_id}\\" returns successfully')
    unhealthy = [e for e in seen.events if e["reason"] == "Unhealthy" and "Liveness" in e["message"]]
    REPORT.append(f"sidecar wedged (SIGSTOP): liveness failures {sum(e.get('count', 1) for e in unhealthy)}; the kubelet "
                  f"stopped it {ms(killed - seen.acted_at)} after the wedge and started a new one "
                  f"{ms(started - seen.acted_at)} after it (job.yaml's probe promises at most 3 x 10s, plus "
                  f"{TERMINATION_GRACE}s of grace for a process that ignores SIGTERM); the kubelet's events: "
                  + "; ".join(sorted({f"{e['reason']}: {e['message'][:120]}" for e in seen.events
                                      if e["reason"] in ("Unhealthy", "Killing")})))
    return seen


def test_a_wedged_sidecar_is_restarted_by_its_liveness_probe(wedged):
    assert status_of(wedged.pod, "sidecar")["restartCount"] == 1
    assert any(e["reason"] == "Killing" and "liveness" in e["message"] for e in wedged.events), reasons(wedged.events)


def test_the_restart_of_a_wedged_sidecar_comes_within_what_the_probe_promises(wedged):
    new_id = container_id(wedged.pod, "sidecar")
    started = first(wedged.trace, f'StartContainer for \\"{new_id}\\" returns successfully')
    # failureThreshold x periodSeconds, the probe's own timeout, the grace period, and slack.
    assert (started - wedged.acted_at).total_seconds() < 3 * 10 + 2 + TERMINATION_GRACE + 15


def test_the_app_and_the_job_outlive_a_wedged_sidecar(wedged):
    assert status_of(wedged.pod, "app")["restartCount"] == 0
    assert condition(wedged.job, "Complete")


# --- the kubelet restarts mid-Job -----------------------------------------------------------

@pytest.fixture(scope="module")
def kubelet_restart(node, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kubelet-restart")
    run = start(node, variant(node, tmp, "kubelet-restart", app_env(APP_SLEEP=WORK)))
    stopped_at = now()
    node.node_sh("stop-kubelet")
    node.node_sh("start-kubelet")
    back_at = now()
    job = await_end(node, run.name, 120)
    seen = Restart(run, stopped_at, job, run.current(), events_of(node, run.pod_name), containerd_lines(node))
    REPORT.append(f"kubelet restarted mid-Job: down and healthy again in {ms(back_at - stopped_at)}; containers "
                  f"restarted: {[s['name'] for s in (status_of(seen.pod, c) for c in ('sidecar', 'app')) if s['restartCount']]}; "
                  f"the Job: {[c['type'] for c in job['status']['conditions'] if c['status'] == 'True']}")
    return seen


def test_a_kubelet_restart_restarts_no_container(kubelet_restart):
    for container in ("sidecar", "app"):
        assert status_of(kubelet_restart.pod, container)["restartCount"] == 0
        assert container_id(kubelet_restart.pod, container) == container_id(kubelet_restart.started.pod, container)
    # Nor does it create one, nor a second sandbox: one CreateContainer for each in this Pod's.
    sandbox = sandbox_of(kubelet_restart.trace, kubelet_restart.pod["metadata"]["name"])
    assert sorted(created_in(kubelet_restart.trace, sandbox)) == ["app", "sidecar"]


def test_after_a_kubelet_restart_the_sidecar_is_still_stopped_after_the_app(kubelet_restart, node):
    pod = kubelet_restart.pod
    app_exit, _ = exited(kubelet_restart.trace, container_id(pod, "app"))
    assert app_exit < stopped(kubelet_restart.trace, container_id(pod, "sidecar"))
    assert status_of(pod, "sidecar")["state"]["terminated"]["exitCode"] == 0
    assert condition(kubelet_restart.job, "Complete")


# --- two sidecars ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_sidecars(node, tmp_path_factory):
    """A second sidecar, listed after the first, on port 8081: the same container with its
    address and every URL that names it changed."""
    tmp = tmp_path_factory.mktemp("two-sidecars")
    first_sidecar = json.loads(variant(node, tmp, "two-sidecars").read_text())["spec"]["template"]["spec"]["initContainers"][0]
    second = json.loads(json.dumps(first_sidecar).replace("127.0.0.1:8080", "127.0.0.1:8081"))
    second["name"] = "sidecar-2"
    manifest = variant(node, tmp, "two-sidecars", app_env(APP_SLEEP="2s"),
                       [{"op": "add", "path": "/spec/template/spec/initContainers/-", "value": second}])
    run = start(node, manifest)
    job = await_end(node, run.name, 120)
    pod = run.current()
    trace = containerd_lines(node)
    ids = {c: container_id(pod, c) for c in ("sidecar", "sidecar-2", "app")}
    seen = {
        "created": {c: first(trace, f'returns container id \\"{i}\\"') for c, i in ids.items()},
        "hook returned": {c: first(trace, f'ExecSync for \\"{ids[c]}\\" returns with exit code 0') for c in ("sidecar", "sidecar-2")},
        "stopped": {c: stopped(trace, ids[c]) for c in ("sidecar", "sidecar-2")},
        "exited": {c: exited(trace, i)[0] for c, i in ids.items()},
    }
    order = sorted((at, f"{c} {what}") for what, by in seen.items() for c, at in by.items())
    REPORT.append("two sidecars: " + ", ".join(f"{label} +{ms(at - order[0][0])}" for at, label in order))
    return job, pod, seen


def test_two_sidecars_start_in_the_order_listed_each_after_the_previous_ones_hook(two_sidecars):
    _, _, seen = two_sidecars
    assert seen["created"]["sidecar"] < seen["hook returned"]["sidecar"] < seen["created"]["sidecar-2"]
    assert seen["created"]["sidecar-2"] < seen["hook returned"]["sidecar-2"] < seen["created"]["app"]


def test_two_sidecars_are_stopped_after_the_app_in_reverse_order_from_1_29_on(two_sidecars):
    _, _, seen = two_sidecars
    assert seen["exited"]["app"] < min(seen["stopped"]["sidecar-2"], seen["stopped"]["sidecar"])
    if ORDERED_SHUTDOWN:
        assert seen["stopped"]["sidecar-2"] < seen["stopped"]["sidecar"]


def test_two_sidecars_both_exit_0_and_the_job_completes(two_sidecars):
    job, pod, _ = two_sidecars
    assert condition(job, "Complete")
    for name in ("sidecar", "sidecar-2"):
        assert status_of(pod, name)["state"]["terminated"]["exitCode"] == 0


# --- disruption is not failure ---------------------------------------------------------------

@pytest.fixture(scope="module")
def evicted(node, tmp_path_factory):
    """The Pod evicted through the Eviction API while the app works, as a drain evicts it."""
    tmp = tmp_path_factory.mktemp("evicted")
    run = start(node, variant(node, tmp, "evicted", app_env(APP_SLEEP=WORK)))
    watch = node.follow("get", "pod", run.pod_name, "-w", "-o", "json")
    try:
        eviction = {"apiVersion": "policy/v1", "kind": "Eviction",
                    "metadata": {"name": run.pod_name, "namespace": "default"}}
        evicted_at = now()
        node.kubectl("create", "--raw", f"/api/v1/namespaces/default/pods/{run.pod_name}/eviction", "-f", "-",
                     stdin=json.dumps(eviction))
        job = await_end(node, run.name, 150)
    finally:
        versions = kubectl_objects(watch.stop())
    pods = pods_of(node, run.name)
    REPORT.append(f"evicted mid-run: {len(pods) + 1} Pods in all, the Job "
                  f"{[c['type'] for c in job['status']['conditions'] if c['status'] == 'True']} "
                  f"{(datetime.fromisoformat(job['status']['completionTime']) - evicted_at).total_seconds():.0f}s after "
                  f"the eviction; status.failed={job['status'].get('failed', 0)}")
    return job, versions, pods


def test_an_evicted_pod_is_marked_as_a_disruption(evicted):
    _, versions, _ = evicted
    targets = [condition(version, "DisruptionTarget") for version in versions]
    assert any(t and t["reason"] == "EvictionByEvictionAPI" for t in targets), [v["status"].get("conditions") for v in versions]


def test_after_an_eviction_the_job_makes_a_new_pod_and_completes_without_counting_it(evicted):
    job, _, pods = evicted
    assert condition(job, "Complete")
    assert job["status"].get("failed", 0) == 0
    assert len(pods) == 1 and pods[0]["status"]["phase"] == "Succeeded"


# --- helpers ---------------------------------------------------------------------------------

def record_fixture(name: str, objects: list[dict]) -> None:
    """With E2E_RECORD=DIR, keeps a scenario's Job and Pod as DIR/NAME-MINOR.json."""
    Path(f"{record_stem(name)}.json").write_text("".join(json.dumps(item, indent=4) + "\n" for item in objects))

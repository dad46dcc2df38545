"""What job.yaml and job-legacy.yaml do on each Kubernetes release, observed: `make e2e-matrix`
runs this file on every release of e2e/releases (1.28 twice, with and without the
SidecarContainers gate), `make e2e-node` on 1.37 and 1.35. Each scenario is a shortened copy of
a manifest, run once by a fixture; the release decides what each test expects, so a release
that behaves otherwise than docs/versions.md says fails here. Each fixture also states what it
saw in RESULTS, from which e2e/matrix.sh writes docs/versions.md's table."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from dataclasses import dataclass

import pytest
import yaml

from e2e_support import (JOB_YAML, LEGACY_YAML, NUMBER, RESULTS, ROOT, SIDECARS, app_env, condition, line_with, ms,
                         parse_log, pods_of, signal_container, since, status_of, variant)
from images_support import wait_for

# Long enough for a run that completes; short for one that never will.
DEADLINE = 45


@dataclass
class Ended:
    """A Job that has ended, its Pod as it was then, and its containers' log lines."""

    job: dict
    pod: dict | None
    logs: dict[str, list]

    @property
    def outcome(self) -> str:
        done = condition(self.job, "Complete") or condition(self.job, "Failed")
        return f"{done['type']}{'/' + done['reason'] if done['type'] == 'Failed' else ''}" \
               f" {since(self.job['status']['startTime'], done['lastTransitionTime']):.0f}s"


def run_to_end(node, manifest, containers=("sidecar", "app"), meanwhile=lambda: None) -> Ended:
    """Applies `manifest`, runs `meanwhile`, and follows its Pod until the Job ends. A deadline
    deletes the Pod, so the Pod and its logs are read while it is still there."""
    name = manifest.stem
    node.kubectl("apply", "-f", str(manifest))
    meanwhile()
    seen: dict = {"pod": None, "logs": {}}

    def ended():
        for pod in pods_of(node, name):
            seen["pod"] = pod
            for container in containers:
                logs = node.kubectl("logs", "--timestamps", pod["metadata"]["name"], "-c", container, check=False)
                # Once the container is removed, the kubelet answers "unable to retrieve container
                # logs ..." in place of its lines: the last lines read stay.
                if logs.returncode == 0 and logs.stdout and not logs.stdout.startswith("unable to retrieve"):
                    seen["logs"][container] = parse_log(logs.stdout)
        job = node.get("job", name)
        return job if condition(job, "Complete") or condition(job, "Failed") else None

    job = wait_for(f"job/{name} to end", ended, DEADLINE + 60, interval=0.5)
    return Ended(job, seen["pod"], seen["logs"])


def shortened(node, tmp_path, source, name: str, *patches):
    """A copy of `source` named `name`: a short app and the deadline DEADLINE."""
    return variant(node, tmp_path, name, app_env(APP_SLEEP="2s"), {"spec": {"activeDeadlineSeconds": DEADLINE}},
                   *patches, source=source)


# --- job.yaml ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def native(node, tmp_path_factory) -> Ended:
    seen = run_to_end(node, shortened(node, tmp_path_factory.mktemp("native"), JOB_YAML, "release-native"))
    if condition(seen.job, "Complete"):
        sidecar, app = seen.logs["sidecar"], seen.logs["app"]
        RESULTS["job.yaml"] = (f"{seen.outcome}; sidecar listening {ms(app[0][0] - sidecar[0][0])} before the app's "
                               f"first line, its SIGTERM {ms(line_with(sidecar, 'shutting down') - app[-1][0])} after the "
                               f"app's last")
    else:
        RESULTS["job.yaml"] = seen.outcome
    return seen


@pytest.mark.skipif(not SIDECARS, reason="native sidecars are off: 1.28 without the SidecarContainers gate")
def test_job_yaml_completes_and_both_containers_exit_0(native):
    assert condition(native.job, "Complete"), native.job["status"]
    for container in ("sidecar", "app"):
        assert status_of(native.pod, container)["state"]["terminated"]["exitCode"] == 0, container


@pytest.mark.skipif(not SIDECARS, reason="native sidecars are off: 1.28 without the SidecarContainers gate")
def test_the_sidecar_listens_before_the_app_starts_and_gets_sigterm_after_the_app_exits(native):
    sidecar, app = native.logs["sidecar"], native.logs["app"]
    assert line_with(sidecar, "listening") < app[0][0]
    assert app[-1][0] < line_with(sidecar, "shutting down")


# --- job.yaml without the gate (1.28) -----------------------------------------------------------

# What the API server says of init container 0's hook and probe once it has dropped the field it
# does not know without the gate, restartPolicy.
FORBIDDEN = [f"spec.template.spec.initContainers[0].{field}: Forbidden: may not be set for init containers without "
             f"restartPolicy=Always" for field in ("lifecycle", "livenessProbe")]


@pytest.fixture(scope="module")
def refused(node, tmp_path_factory) -> str:
    manifest = shortened(node, tmp_path_factory.mktemp("refused"), JOB_YAML, "release-refused")
    applied = node.kubectl("apply", "-f", str(manifest), check=False)
    said = [line for line in FORBIDDEN if line in applied.stderr]
    RESULTS["job.yaml"] = (f"refused: {'; '.join(said)}" if applied.returncode else "accepted")
    return applied


@pytest.fixture(scope="module")
def plain_init(node, tmp_path_factory, refused) -> Ended:
    """job.yaml's sidecar without the hook and the probe the API server refused: what is left is
    an ordinary init container, which never exits."""
    manifest = shortened(node, tmp_path_factory.mktemp("plain"), JOB_YAML, "release-plain-init",
                         {"spec": {"template": {"spec": {"initContainers": [
                             {"name": "sidecar", "lifecycle": None, "livenessProbe": None}]}}}})
    seen = run_to_end(node, manifest)
    RESULTS["job.yaml"] += (f"; without its hook and probe: restartPolicy "
                            f"{seen.pod['spec']['initContainers'][0].get('restartPolicy', 'dropped')}, {seen.outcome}, "
                            f"the app {'never started' if 'app' not in seen.logs else 'ran'}")
    return seen


@pytest.mark.skipif(SIDECARS, reason="native sidecars are on")
def test_without_the_gate_the_api_server_refuses_job_yaml_for_the_sidecars_hook_and_probe(refused):
    assert refused.returncode != 0
    for line in FORBIDDEN:
        assert line in refused.stderr, refused.stderr


@pytest.mark.skipif(SIDECARS, reason="native sidecars are on")
def test_without_the_gate_the_sidecar_is_an_init_container_that_holds_the_app_back_until_the_deadline(plain_init):
    assert "restartPolicy" not in plain_init.pod["spec"]["initContainers"][0]
    failed = condition(plain_init.job, "Failed")
    assert failed and failed["reason"] == "DeadlineExceeded", plain_init.job["status"]
    assert ran_to_the_deadline(plain_init)
    assert status_of(plain_init.pod, "app")["state"]["waiting"]["reason"] == "PodInitializing"
    assert "app" not in plain_init.logs


# --- job-legacy.yaml ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def legacy(node, tmp_path_factory) -> Ended:
    seen = run_to_end(node, shortened(node, tmp_path_factory.mktemp("legacy"), LEGACY_YAML, "release-legacy"))
    app = status_of(seen.pod, "app")["state"].get("terminated", {})
    RESULTS["job-legacy.yaml"] = (f"{seen.outcome}; the app exited {app.get('exitCode')} "
                                  f"{since(seen.job['status']['startTime'], app['finishedAt']):.0f}s after the "
                                  f"Job's start, the sidecar ran {'until the deadline' if ran_to_the_deadline(seen) else 'less'}")
    return seen


def ran_to_the_deadline(seen: Ended, container: str = "sidecar") -> bool:
    """Whether the container still ran when the Job's deadline came: the last Pod seen may
    already show it stopped by the deadline's deletion."""
    state = status_of(seen.pod, container)["state"]
    return "running" in state or since(seen.job["status"]["startTime"], state["terminated"]["finishedAt"]) >= DEADLINE - 1


def test_job_legacy_yaml_runs_into_its_deadline_after_the_app_exited_0(legacy):
    failed = condition(legacy.job, "Failed")
    assert failed and failed["reason"] == "DeadlineExceeded", legacy.job["status"]
    assert status_of(legacy.pod, "app")["state"]["terminated"]["exitCode"] == 0
    assert ran_to_the_deadline(legacy)


# --- the gate, named ---------------------------------------------------------------------------

# Each control-plane component with the gate and nothing else it needs: up to 1.36 it gets past
# the gate and stops at the first missing setting; from 1.37 on the gate itself stops it. (Not
# the kubelet: one that got past the gate would start, as root, on this host.)
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


@pytest.fixture(scope="module")
def gate_named(node) -> dict[str, subprocess.CompletedProcess]:
    done = {component: subprocess.run([f"{node.settings['E2E_NODE_BIN']}/{component}",
                                       "--feature-gates", "SidecarContainers=true", "--secure-port", "0"],
                                      capture_output=True, text=True, timeout=60)
            for component in COMPONENTS}
    said = {component: gate_line(run.stderr) for component, run in done.items()}
    RESULTS["SidecarContainers=true"] = "; ".join(sorted(set(said.values())))
    return done


# component-base's warning for a gate that is not alpha: a sentence up to 1.35, a structured log
# line from 1.36 on.
GATE_WARNING = (r"Setting (GA|beta|alpha|deprecated) feature gate SidecarContainers=true[^\n\"]*",
                r"Warning: setting (GA|beta|alpha|deprecated) feature gate\.[^\"]*\" featureGate=\"SidecarContainers\" value=true")


def gate_line(stderr: str) -> str:
    """What a component said of the gate: its error, or its warning, or nothing."""
    for pattern in (r"unrecognized feature gate: SidecarContainers", *GATE_WARNING):
        found = re.search(pattern, stderr)
        if found:
            return found.group(0).strip()
    return "accepted without a word"


@pytest.mark.parametrize("component", COMPONENTS)
def test_naming_the_gate_stops_the_component_from_1_37_on(gate_named, component):
    run = gate_named[component]
    assert run.returncode != 0  # without etcd or a kubeconfig, it stops either way
    refused = "unrecognized feature gate: SidecarContainers" in run.stderr
    assert refused == (NUMBER >= 37), run.stderr[-2000:]
    if 33 <= NUMBER <= 36:
        # GA and locked on: accepted, with component-base's warning.
        warning = re.search("|".join(GATE_WARNING), run.stderr)
        assert warning and re.search("etting GA feature gate", warning.group(0)), run.stderr[-2000:]


# --- kubernetes#132826: a sidecar's startupProbe that loses its worker ---------------------------

# The sidecar stopped twice before its startupProbe's first try: the second stop falls into the
# restart back-off, where the kubelet's probe worker sees it terminated and, in a restartPolicy
# Never Pod, quits for good; the kubelet's per-sync AddPod would make a new one, but stops at the
# first container that still has a worker, the app's. Read from worker.go and prober_manager.go of
# each release; fixed in 1.33.6, 1.34.2 and 1.35.0 (kubernetes#133072 and its backports).
STOPPED_SIDECAR = {"spec": {"activeDeadlineSeconds": 100, "template": {"spec": {
    "initContainers": [{"name": "sidecar", "startupProbe": {"initialDelaySeconds": 15}}]}}}}
APP_PROBE = {"spec": {"template": {"spec": {"containers": [{
    "name": "app", "startupProbe": {"exec": {"command": ["/app", "--version"]}, "periodSeconds": 1, "failureThreshold": 3}}]}}}}


def has_the_fix(kubelet: str) -> bool:
    minor, patch = (int(part) for part in re.match(r"v1\.(\d+)\.(\d+)", kubelet).groups())
    return minor >= 35 or (minor == 34 and patch >= 2) or (minor == 33 and patch >= 6)


def stop_sidecar_twice(node, name: str):
    def stop():
        for restarts in (0, 1):
            try:
                pod = wait_for(f"job/{name}'s sidecar running after {restarts} restarts", lambda: next(
                    (pod for pod in pods_of(node, name) if (status := status_of(pod, "sidecar"))["restartCount"] == restarts
                     and "running" in status["state"]), None), 60, interval=0.2)
            except AssertionError as timed_out:
                seen = [pod["status"] for pod in pods_of(node, name)]
                raise AssertionError(f"{timed_out}; the Pods' status: {json.dumps(seen)}") from None
            signal_container(node, pod, "sidecar", signal.SIGTERM)
    return stop


def stopped_twice(node, tmp_path_factory, name: str, *patches) -> Ended:
    example = yaml.safe_load((ROOT / "examples" / "startup-probe.yaml").read_text())
    manifest = variant(node, tmp_path_factory.mktemp(name), name, example, app_env(APP_SLEEP="5s"), STOPPED_SIDECAR,
                       *patches)
    return run_to_end(node, manifest, meanwhile=stop_sidecar_twice(node, name))


def kubelet_of(node) -> str:
    return node.get("nodes")["items"][0]["status"]["nodeInfo"]["kubeletVersion"]


@pytest.fixture(scope="module")
def probe_stranded(node, tmp_path_factory) -> Ended:
    """examples/startup-probe.yaml, with a probe on the app too, as the bug needs."""
    seen = stopped_twice(node, tmp_path_factory, "release-startup-probe", APP_PROBE)
    app = seen.pod and status_of(seen.pod, "app")
    RESULTS["startupProbe"] = (f"with a probe on the app: {seen.outcome}" +
                               ("" if condition(seen.job, "Complete") else
                                f", the app {'never started' if app and 'waiting' in app['state'] else 'started'}"))
    return seen


@pytest.fixture(scope="module")
def probe_example(node, tmp_path_factory) -> Ended:
    """examples/startup-probe.yaml as published: no probe on the app."""
    seen = stopped_twice(node, tmp_path_factory, "release-startup-probe-example")
    RESULTS["startupProbe"] = RESULTS.get("startupProbe", "") + f"; as examples/ has it: {seen.outcome}"
    return seen


@pytest.mark.skipif(not SIDECARS, reason="native sidecars are off: 1.28 without the SidecarContainers gate")
def test_a_sidecar_startup_probe_that_lost_its_worker_strands_the_app_until_the_fix(probe_stranded, node):
    if has_the_fix(kubelet_of(node)):
        assert condition(probe_stranded.job, "Complete"), probe_stranded.job["status"]
    else:
        failed = condition(probe_stranded.job, "Failed")
        assert failed and failed["reason"] == "DeadlineExceeded", probe_stranded.job["status"]
        # Stopped twice, started a third time, and still never marked started.
        assert status_of(probe_stranded.pod, "sidecar")["restartCount"] == 2
        assert status_of(probe_stranded.pod, "app")["state"]["waiting"]["reason"] == "PodInitializing"


@pytest.mark.skipif(not SIDECARS, reason="native sidecars are off: 1.28 without the SidecarContainers gate")
def test_the_startup_probe_example_completes_after_the_same_stops_on_every_release(probe_example):
    # Without a probe on the app, the kubelet's next sync makes the sidecar's worker anew.
    assert condition(probe_example.job, "Complete"), probe_example.job["status"]

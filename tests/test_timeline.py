"""The kind demo's timeline and verdict (`scripts/kind-demo.sh timeline`) on recorded Job and
Pod status, through the real kubectl with no cluster: exact output and exit codes."""

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from images_support import kubectl_objects

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SCRIPT = ROOT / "scripts" / "kind-demo.sh"

# From make e2e-node on Kubernetes v1.37.2 (tests/fixtures/README.md).
NATIVE_1_37 = """\
2026-12-02T06:47:24Z job/native-sidecar-job started
2026-12-02T06:47:24Z pod/native-sidecar-job-bk6br started
2026-12-02T06:47:25Z sidecar started  native sidecar: init container, restartPolicy Always
2026-12-02T06:47:26Z app started      regular container
2026-12-02T06:47:56Z app exited       exit code 0 (Completed)
2026-12-02T06:47:56Z sidecar exited   exit code 0 (Completed)
2026-12-02T06:47:59Z job Complete     CompletionsReached
PASS: job Complete; app and sidecar both exited 0, the sidecar started before the app and exited after it
"""

# make e2e-kind K8S=1.28's run of make demo: kind, a node of v1.28.15's parts, the gate on.
NATIVE_1_28 = """\
2026-12-06T03:53:19Z job/native-sidecar-job started
2026-12-06T03:53:19Z pod/native-sidecar-job-4njff started
2026-12-06T03:53:20Z sidecar started  native sidecar: init container, restartPolicy Always
2026-12-06T03:53:21Z app started      regular container
2026-12-06T03:53:51Z app exited       exit code 0 (Completed)
2026-12-06T03:53:52Z sidecar exited   exit code 0 (Completed)
2026-12-06T03:53:56Z job Complete
PASS: job Complete; app and sidecar both exited 0, the sidecar started before the app and exited after it
"""

# make e2e-node's run of job.yaml with an app that exits 1, with its containers' logs.
APP_FAILS_1_37 = """\
2026-12-05T04:16:24Z job/app-fails started
2026-12-05T04:16:24Z pod/app-fails-69p9r started
2026-12-05T04:16:24Z sidecar started  native sidecar: init container, restartPolicy Always
2026-12-05T04:16:25Z app started      regular container
2026-12-05T04:16:27Z app exited       exit code 1 (Error)
2026-12-05T04:16:28Z sidecar exited   exit code 0 (Completed)
2026-12-05T04:16:30Z job Failed       PodFailurePolicy
order, from the containers' own log lines:
2026-12-05T04:16:24.707055689Z sidecar first line
2026-12-05T04:16:25.305281684Z app first line
2026-12-05T04:16:27.306863824Z app last line
2026-12-05T04:16:28.344822882Z sidecar last line
FAIL: job did not complete
FAIL: app did not exit 0
"""

LEGACY_1_37 = """\
2026-12-02T06:48:00Z job/legacy-sidecar-job started
2026-12-02T06:48:00Z pod/legacy-sidecar-job-v62kv started
2026-12-02T06:48:01Z app started      regular container
2026-12-02T06:48:01Z sidecar started  regular container, still running
2026-12-02T06:48:31Z app exited       exit code 0 (Completed)
2026-12-02T06:49:01Z job Failed       DeadlineExceeded
PASS: app exited 0, yet the job Failed with DeadlineExceeded: the sidecar, a regular container, kept its Pod running
"""


@pytest.fixture(scope="module")
def offline_kubeconfig(tmp_path_factory):
    """A kubeconfig whose server cannot answer: the timeline must never need a cluster."""
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        "clusters: [{name: none, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: none, user: {token: none}}]\n"
        "contexts: [{name: none, context: {cluster: none, user: none}}]\n"
        "current-context: none\n"
    )
    return path


@pytest.fixture
def run(offline_kubeconfig, tmp_path):
    if not shutil.which("kubectl"):
        pytest.fail("kubectl is required: the timeline is kubectl's output (`kubectl patch --local`)")

    def run(mode, objects_or_path, logs=None):
        path = objects_or_path
        if not isinstance(path, Path):
            path = tmp_path / "run.json"
            path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": objects_or_path}))
        return subprocess.run(["bash", str(SCRIPT), "timeline", mode, str(path), *([str(logs)] if logs else [])],
                              capture_output=True,
                              text=True, timeout=60, check=False,
                              env={**os.environ, "KUBECONFIG": str(offline_kubeconfig)})

    return run


def read(fixture):
    """The Job and the Pod in a fixture."""
    return kubectl_objects((FIXTURES / fixture).read_text())


def parts(objects):
    job = next(o for o in objects if o["kind"] == "Job")
    pod = next(o for o in objects if o["kind"] == "Pod")
    return job, pod


def state(pod, name):
    statuses = pod["status"].get("initContainerStatuses", []) + pod["status"]["containerStatuses"]
    return next(s for s in statuses if s["name"] == name)["state"]


def verdict(result):
    return [line for line in result.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]


@pytest.fixture
def native():
    return copy.deepcopy(read("native-1.37.json"))


# --- the recorded runs pass, with exactly this output ------------------------------------


@pytest.mark.parametrize(("mode", "fixture", "expected"), [
    ("native", "native-1.37.json", NATIVE_1_37),
    ("native", "kind-native-1.28.json", NATIVE_1_28),
    ("legacy", "legacy-1.37.json", LEGACY_1_37),
])
def test_recorded_run(run, mode, fixture, expected):
    result = run(mode, FIXTURES / fixture)
    assert (result.returncode, result.stdout, result.stderr) == (0, expected, "")


def test_a_list_and_a_stream_read_the_same(run):
    # make demo writes the Job and then the Pod, demo-legacy the Pod and then the Job, one
    # after the other; a List reads the same.
    assert run("legacy", read("legacy-1.37.json")).stdout == LEGACY_1_37


def test_events_of_the_same_second_keep_the_kubelets_order(run, native):
    # The API server's times have one-second resolution: a sidecar and the app it gates often
    # start in the same second, and the app often exits in the second the sidecar is stopped.
    _, pod = parts(native)
    state(pod, "app")["terminated"]["startedAt"] = state(pod, "sidecar")["terminated"]["startedAt"]
    state(pod, "sidecar")["terminated"]["finishedAt"] = state(pod, "app")["terminated"]["finishedAt"]
    result = run("native", native)
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[2:6] == [
        "2026-12-02T06:47:25Z sidecar started  native sidecar: init container, restartPolicy Always",
        "2026-12-02T06:47:25Z app started      regular container",
        "2026-12-02T06:47:56Z app exited       exit code 0 (Completed)",
        "2026-12-02T06:47:56Z sidecar exited   exit code 0 (Completed)",
    ]


# --- native runs that must not pass ---------------------------------------------------------


def test_a_recorded_failed_app_fails(run):
    # make e2e-node's run of job.yaml with an app that exits 1 (tests/e2e_node/test_lifecycle.py):
    # its Pod failure policy fails the Job at once, and the sidecar is still stopped after the app.
    result = run("native", FIXTURES / "app-fails-1.37.json", FIXTURES / "app-fails-1.37.logs")
    assert (result.returncode, result.stdout) == (1, APP_FAILS_1_37)


def test_a_recorded_deleted_pod_fails(run):
    # The Pod deleted while the app worked: the app exited 143 on SIGTERM, then the sidecar 0.
    result = run("native", FIXTURES / "deleted-pod-1.37.json")
    assert result.returncode == 1
    assert result.stdout.splitlines()[4:] == [
        "2026-12-05T04:16:33Z app exited       exit code 143 (Error)",
        "2026-12-05T04:16:33Z sidecar exited   exit code 0 (Completed)",
        "2026-12-05T04:16:33Z job Failed       PodFailurePolicy",
        "FAIL: job did not complete",
        "FAIL: app did not exit 0",
    ]


def test_a_run_still_going_fails(run, native):
    job, pod = parts(native)
    job["status"] = {"startTime": "2026-12-02T06:47:24Z", "active": 1}
    for name, started in (("app", "2026-12-02T06:47:26Z"), ("sidecar", "2026-12-02T06:47:25Z")):
        pod["status"]["initContainerStatuses" if name == "sidecar" else "containerStatuses"][0]["state"] = {
            "running": {"startedAt": started}}
    result = run("native", native)
    assert result.returncode == 1
    assert result.stdout.splitlines()[2:4] == [
        "2026-12-02T06:47:25Z sidecar started  native sidecar: init container, restartPolicy Always, still running",
        "2026-12-02T06:47:26Z app started      regular container, still running",
    ]
    assert verdict(result) == ["FAIL: job did not complete", "FAIL: app did not exit 0",
                               "FAIL: sidecar did not exit 0"]


def test_sidecar_killed_fails(run, native):
    _, pod = parts(native)
    state(pod, "sidecar")["terminated"].update(exitCode=137, reason="Error")
    result = run("native", native)
    assert result.returncode == 1
    assert verdict(result) == ["FAIL: sidecar did not exit 0"]


def test_app_started_before_the_sidecar_fails(run, native):
    _, pod = parts(native)
    state(pod, "app")["terminated"]["startedAt"] = "2026-12-02T06:47:24Z"
    result = run("native", native)
    assert result.returncode == 1
    assert verdict(result) == ["FAIL: app started before the sidecar"]


def test_sidecar_gone_before_the_app_fails(run, native):
    _, pod = parts(native)
    state(pod, "sidecar")["terminated"]["finishedAt"] = "2026-12-02T06:47:40Z"
    result = run("native", native)
    assert result.returncode == 1
    assert verdict(result) == ["FAIL: sidecar exited before the app"]


def test_plain_init_container_is_not_a_native_sidecar(run, native):
    _, pod = parts(native)
    del pod["spec"]["initContainers"][0]["restartPolicy"]
    result = run("native", native)
    assert result.returncode == 1
    assert "2026-12-02T06:47:25Z sidecar started  plain init container" in result.stdout.splitlines()
    assert verdict(result) == ["FAIL: sidecar is not a native sidecar (an init container with restartPolicy: Always)"]


def test_legacy_run_is_not_a_native_pass(run):
    result = run("native", FIXTURES / "legacy-1.37.json")
    assert result.returncode == 1
    assert verdict(result) == [
        "FAIL: sidecar is not a native sidecar (an init container with restartPolicy: Always)",
        "FAIL: job did not complete",
        "FAIL: sidecar did not exit 0",
        # Same second, and the Pod lists the app first: no init container gates it here.
        "FAIL: app started before the sidecar",
    ]


def test_no_pod_fails_with_1(run, native):
    job, _ = parts(native)
    result = run("native", [job])
    assert result.returncode == 1
    assert result.stdout.splitlines()[:2] == ["2026-12-02T06:47:24Z job/native-sidecar-job started",
                                              "2026-12-02T06:47:59Z job Complete     CompletionsReached"]
    assert "FAIL: app did not exit 0" in verdict(result)


# --- legacy runs that must not pass ---------------------------------------------------------


def test_native_run_is_not_a_legacy_pass(run):
    result = run("legacy", FIXTURES / "native-1.37.json")
    assert result.returncode == 1
    assert verdict(result) == ["FAIL: sidecar is not a regular container",
                               "FAIL: job did not fail with DeadlineExceeded"]


def test_legacy_failing_for_another_reason_fails(run):
    objects = read("legacy-1.37.json")
    job, pod = parts(objects)
    for condition in job["status"]["conditions"]:
        condition["reason"] = "BackoffLimitExceeded"
    state(pod, "app")["terminated"]["exitCode"] = 2
    result = run("legacy", objects)
    assert result.returncode == 1
    assert verdict(result) == ["FAIL: job did not fail with DeadlineExceeded", "FAIL: app did not exit 0"]


# --- input it refuses ----------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "{not json", "null"])
def test_not_kubernetes_json(run, tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    result = run("native", path)
    assert result.returncode == 2
    assert result.stdout == ""


def test_missing_file_and_bad_mode(run, tmp_path):
    for mode, path in (("native", tmp_path / "absent.json"), ("both", FIXTURES / "native-1.37.json")):
        result = run(mode, path)
        assert result.returncode == 2
        assert "timeline native|legacy FILE" in result.stderr


def test_no_date_arithmetic_of_our_own():
    # The times are the API server's, ordered by `sort`; nothing here turns them into numbers.
    assert not list((ROOT / "scripts").glob("timeline*"))
    assert "days_from_civil" not in SCRIPT.read_text()


def test_the_docs_show_what_the_timeline_prints(run):
    # docs/demo.md's blocks, printed again from the fixtures they name.
    readme = (ROOT / "docs" / "demo.md").read_text()
    shown = [block.split("\n", 1) for block in readme.split("```console\n$ scripts/kind-demo.sh timeline ")[1:]]
    assert len(shown) == 3
    for command, output in shown:
        mode, path = command.split()
        assert run(mode, ROOT / path).stdout == output.split("```", 1)[0]


# --- the order, from the containers' own log lines --------------------------------------------


def with_app_first(logs: str, tmp_path: Path) -> Path:
    """The recorded logs with the app's first line moved to just before the sidecar's first line,
    in the same second: an order that the API's one-second times cannot show."""
    lines = logs.splitlines()
    sidecar = next(i for i, line in enumerate(lines) if line.startswith("[pod/") and "/sidecar] " in line)
    app = next(i for i, line in enumerate(lines) if "/app] " in line)
    stamp = lines[sidecar].split()[1]
    assert "." in stamp, "the kubelet's times have a fraction of a second"
    second, fraction = stamp.rstrip("Z").split(".")
    earlier = f"{second}.{int(fraction.ljust(9, '0')) - 1:09d}Z"
    prefix, _, rest = lines[app].partition(" ")
    lines[app] = f"{prefix} {earlier} {rest.partition(' ')[2]}"
    path = tmp_path / "wrong-order.logs"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_order_is_read_from_the_recorded_log_lines(run):
    result = run("native", FIXTURES / "app-fails-1.37.json", FIXTURES / "app-fails-1.37.logs")
    lines = result.stdout.splitlines()
    order = lines[lines.index("order, from the containers' own log lines:") + 1:]
    firsts = [line.split()[1] for line in order if line.endswith("first line")]
    assert firsts == ["sidecar", "app"], order
    # The app failed (exit 1), so the verdict fails, but not on the order.
    assert verdict(result) == ["FAIL: job did not complete", "FAIL: app did not exit 0"]


def test_an_order_wrong_within_one_second_fails(run, tmp_path):
    logs = with_app_first((FIXTURES / "app-fails-1.37.logs").read_text(), tmp_path)
    result = run("native", FIXTURES / "app-fails-1.37.json", logs)
    assert result.returncode == 1
    assert "FAIL: app started before the sidecar" in verdict(result)
    # The API's one-second times alone could not tell.
    assert "FAIL: app started before the sidecar" not in verdict(run("native", FIXTURES / "app-fails-1.37.json"))

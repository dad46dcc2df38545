"""scripts/timeline.sh against recorded pod status: exact output and exit codes, with no
cluster, under every POSIX awk installed here."""

import copy
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
TIMELINE = ROOT / "scripts" / "timeline.sh"

# awk implementations users have: mawk (Debian, Ubuntu), gawk, BWK awk (macOS, BSD), busybox.
AWKS = {
    "awk": ["awk"],
    "mawk": ["mawk"],
    "gawk-posix": ["gawk", "--posix"],
    "bwk": ["original-awk"],
    "busybox": ["busybox", "awk"],
}

NATIVE_1_37 = """\
job/native-sidecar-job  pod/native-sidecar-job-qx7lm
    +0s  job started
    +1s  sidecar started  native sidecar: init container, restartPolicy Always
    +2s  app started
   +32s  app exited       exit code 0
   +33s  sidecar exited   exit code 0
   +34s  job Complete     after 34s
PASS: job Complete after 34s; app and sidecar both exited 0
"""

NATIVE_1_28 = """\
job/native-sidecar-job  pod/native-sidecar-job-8wz4d
    +0s  job started
    +2s  sidecar started  native sidecar: init container, restartPolicy Always
    +3s  app started
   +33s  app exited       exit code 0
   +34s  sidecar exited   exit code 0
   +35s  job Complete     after 35s
PASS: job Complete after 35s; app and sidecar both exited 0
"""

LEGACY_1_37 = """\
job/legacy-sidecar-job  pod/legacy-sidecar-job-t5r9n
    +0s  job started
    +1s  sidecar started  regular container
    +1s  app started
   +31s  app exited       exit code 0
         sidecar still running
   +62s  job Failed       reason DeadlineExceeded, after 62s
PASS: app exited 0 after 31s, yet the job Failed with DeadlineExceeded after 62s: the sidecar kept its Pod running
"""


@pytest.fixture(params=sorted(AWKS), ids=sorted(AWKS))
def awk(request):
    command = AWKS[request.param]
    if not shutil.which(command[0]):
        pytest.skip(f"{command[0]} is not installed")
    return " ".join(command)


@pytest.fixture(scope="module", autouse=True)
def offline_kubeconfig(tmp_path_factory):
    """A kubeconfig whose server cannot answer: the printer must never need a cluster."""
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
def run(offline_kubeconfig):
    if not shutil.which("kubectl"):
        pytest.fail("kubectl is required: the printer reads JSON with `kubectl patch --local`")

    def run(*args, stdin=None, awk="awk"):
        environ = dict(os.environ, KUBECONFIG=str(offline_kubeconfig), AWK=awk)
        return subprocess.run(
            [str(TIMELINE), *map(str, args)],
            input=stdin,
            capture_output=True,
            text=True,
            env=environ,
            timeout=60,
            check=False,
        )

    return run


def read_objects(path):
    """The Job and Pod objects in a fixture: a List, or objects one after another."""
    text, decoder, objects, at = path.read_text(), json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            break
        obj, at = decoder.raw_decode(text, at)
        objects.extend(obj["items"] if obj["kind"] == "List" else [obj])
    return objects


def as_list(objects):
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})


def split(objects):
    job = next(o for o in objects if o["kind"] == "Job")
    pod = next(o for o in objects if o["kind"] == "Pod")
    return job, pod


def status_of(pod, name):
    statuses = pod["status"].get("initContainerStatuses", []) + pod["status"]["containerStatuses"]
    return next(s for s in statuses if s["name"] == name)


@pytest.fixture
def native():
    return copy.deepcopy(read_objects(FIXTURES / "native-1.37.json"))


# --- the recorded runs pass, with exactly this output ------------------------------------


@pytest.mark.parametrize(
    ("mode", "fixture", "expected"),
    [
        ("native", "native-1.37.json", NATIVE_1_37),
        ("native", "native-1.28.json", NATIVE_1_28),
        ("legacy", "legacy-1.37.json", LEGACY_1_37),
    ],
)
def test_recorded_run(run, awk, mode, fixture, expected):
    result = run(mode, FIXTURES / fixture, awk=awk)
    assert (result.returncode, result.stdout, result.stderr) == (0, expected, "")


def test_standard_input_reads_the_same(run):
    text = (FIXTURES / "native-1.37.json").read_text()
    result = run("native", stdin=text)
    assert (result.returncode, result.stdout) == (0, NATIVE_1_37)
    assert run("native", "-", stdin=text).stdout == NATIVE_1_37


def test_list_and_stream_give_the_same_result(run):
    # demo-legacy pipes a Pod list and the Job one after another; demo pipes one List.
    objects = read_objects(FIXTURES / "legacy-1.37.json")
    stream = "\n".join(json.dumps(o) for o in objects)
    assert run("legacy", stdin=as_list(objects)).stdout == LEGACY_1_37
    assert run("legacy", stdin=stream).stdout == LEGACY_1_37


# --- native runs that must not pass ---------------------------------------------------------


def verdict(result):
    return [line for line in result.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]


def test_app_exit_1_fails(run, awk, native):
    job, pod = split(native)
    status_of(pod, "app")["state"]["terminated"].update(exitCode=1, reason="Error")
    pod["status"]["phase"] = "Failed"
    job["status"]["conditions"] = [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
         "lastTransitionTime": "2026-11-24T09:00:34Z"},
    ]
    del job["status"]["completionTime"]
    result = run("native", stdin=as_list(native), awk=awk)
    assert result.returncode == 1
    assert "   +32s  app exited       exit code 1" in result.stdout.splitlines()
    assert "   +34s  job Failed       reason BackoffLimitExceeded, after 34s" in result.stdout.splitlines()
    assert verdict(result) == [
        "FAIL: job did not complete (Failed: BackoffLimitExceeded)",
        "FAIL: app exited with code 1",
    ]


def test_job_not_complete_fails(run, awk, native):
    job, pod = split(native)
    # As read when the wait ran out: the Job is still active and both containers run.
    job["status"] = {"startTime": "2026-11-24T09:00:00Z", "active": 1, "ready": 1}
    pod["status"]["phase"] = "Running"
    for name, started in (("app", "2026-11-24T09:00:02Z"), ("sidecar", "2026-11-24T09:00:01Z")):
        status_of(pod, name)["state"] = {"running": {"startedAt": started}}
    result = run("native", stdin=as_list(native), awk=awk)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-5:] == [
        "         sidecar still running",
        "         job still running",
        "FAIL: job did not complete",
        "FAIL: app has not exited (running)",
        "FAIL: sidecar has not exited (running)",
    ]


def test_sidecar_killed_fails(run, native):
    _, pod = split(native)
    status_of(pod, "sidecar")["state"]["terminated"].update(exitCode=137, reason="Error")
    result = run("native", stdin=as_list(native))
    assert result.returncode == 1
    assert verdict(result) == ["FAIL: sidecar exited with code 137"]


def test_app_started_before_the_sidecar_fails(run, native):
    _, pod = split(native)
    status_of(pod, "app")["state"]["terminated"]["startedAt"] = "2026-11-24T09:00:00Z"
    result = run("native", stdin=as_list(native))
    assert result.returncode == 1
    assert verdict(result) == ["FAIL: app started before the sidecar"]


def test_sidecar_gone_before_the_app_fails(run, native):
    _, pod = split(native)
    status_of(pod, "sidecar")["state"]["terminated"]["finishedAt"] = "2026-11-24T09:00:20Z"
    result = run("native", stdin=as_list(native))
    assert result.returncode == 1
    assert verdict(result) == ["FAIL: sidecar exited before the app"]


def test_plain_init_container_is_not_a_native_sidecar(run, native):
    _, pod = split(native)
    del pod["spec"]["initContainers"][0]["restartPolicy"]
    result = run("native", stdin=as_list(native))
    assert result.returncode == 1
    assert "    +1s  sidecar started  plain init container" in result.stdout.splitlines()
    assert verdict(result) == [
        "FAIL: sidecar is not a native sidecar (an init container with restartPolicy: Always)"
    ]


def test_legacy_run_is_not_a_native_pass(run):
    result = run("native", FIXTURES / "legacy-1.37.json")
    assert result.returncode == 1
    assert verdict(result) == [
        "FAIL: sidecar is not a native sidecar (an init container with restartPolicy: Always)",
        "FAIL: job did not complete (Failed: DeadlineExceeded)",
        "FAIL: sidecar has not exited (running)",
    ]


# --- legacy runs that must not pass ---------------------------------------------------------


def test_native_run_is_not_a_legacy_pass(run):
    result = run("legacy", FIXTURES / "native-1.37.json")
    assert result.returncode == 1
    assert verdict(result) == [
        "FAIL: sidecar is not a regular container",
        "FAIL: job completed, but the legacy Job must end in DeadlineExceeded",
    ]


def test_legacy_failing_for_another_reason_fails(run):
    objects = read_objects(FIXTURES / "legacy-1.37.json")
    job, pod = split(objects)
    for condition in job["status"]["conditions"]:
        condition["reason"] = "BackoffLimitExceeded"
    status_of(pod, "app")["state"]["terminated"]["exitCode"] = 2
    result = run("legacy", stdin=as_list(objects))
    assert result.returncode == 1
    assert verdict(result) == [
        "FAIL: job failed with BackoffLimitExceeded, expected DeadlineExceeded",
        "FAIL: app exited with code 2",
    ]


# --- input the printer refuses ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("no pod", lambda objs: [o for o in objs if o["kind"] == "Job"],
         "timeline: expected one Pod in the input, found 0"),
        ("two pods", lambda objs: objs + [o for o in objs if o["kind"] == "Pod"],
         "timeline: expected one Pod in the input, found 2"),
        ("no job", lambda objs: [o for o in objs if o["kind"] == "Pod"],
         "timeline: expected one Job in the input, found 0"),
    ],
)
def test_wrong_objects(run, native, name, change, message):
    result = run("native", stdin=as_list(change(native)))
    assert (result.returncode, result.stdout, result.stderr.strip()) == (2, "", message)


def test_unreadable_time(run, native):
    _, pod = split(native)
    status_of(pod, "app")["state"]["terminated"]["finishedAt"] = "2026-11-24 09:00:32"
    result = run("native", stdin=as_list(native))
    assert result.returncode == 2
    assert "timeline: not an RFC 3339 UTC time: 2026-11-24" in result.stderr


def test_renamed_containers(run, native):
    _, pod = split(native)
    pod["spec"]["containers"][0]["name"] = "main"
    result = run("native", stdin=as_list(native))
    assert (result.returncode, result.stderr.strip()) == (
        2, "timeline: the Pod has no containers named app and sidecar")


@pytest.mark.parametrize("stdin", ["", "{not json", "null"])
def test_not_kubernetes_json(run, stdin):
    result = run("native", stdin=stdin)
    assert result.returncode == 2
    assert result.stdout == ""


@pytest.mark.parametrize("args", [[], ["native", "a", "b"], ["both"]])
def test_usage(run, args):
    result = run(*args)
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_missing_file(run, tmp_path):
    result = run("native", tmp_path / "absent.json")
    assert (result.returncode, result.stderr.strip()) == (
        2, f"timeline: cannot read {tmp_path / 'absent.json'}")


def test_epoch_arithmetic_across_month_year_and_leap_day(run, native):
    job, pod = split(native)
    # Starts 2024-02-28T23:59:50Z; events across a leap day and a month end.
    job["status"]["startTime"] = "2024-02-28T23:59:50Z"
    job["status"]["completionTime"] = "2024-03-01T00:00:10Z"
    status_of(pod, "sidecar")["state"]["terminated"].update(
        startedAt="2024-02-28T23:59:55Z", finishedAt="2024-03-01T00:00:05Z")
    status_of(pod, "app")["state"]["terminated"].update(
        startedAt="2024-02-29T00:00:00Z", finishedAt="2024-03-01T00:00:00Z")
    result = run("native", stdin=as_list(native))
    assert result.returncode == 0, result.stdout + result.stderr
    day = 86400
    assert result.stdout.splitlines()[1:7] == [
        "    +0s  job started",
        "    +5s  sidecar started  native sidecar: init container, restartPolicy Always",
        "   +10s  app started",
        f"{'+' + str(day + 10) + 's':>7}  app exited       exit code 0",
        f"{'+' + str(day + 15) + 's':>7}  sidecar exited   exit code 0",
        f"{'+' + str(day + 20) + 's':>7}  job Complete     after {day + 20}s",
    ]

"""scripts/kind-demo.sh without a cluster: kind, docker and the cluster side of kubectl are
stand-ins that log their arguments and answer from tests/fixtures/; kubectl's offline parts
(`version --client`, `patch --local`) are the real kubectl."""

import json
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from images_support import images_env

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "kind-demo.sh"
FIXTURES = ROOT / "tests" / "fixtures"
# What the script may use besides kind, kubectl and the container tool.
BASICS = ["sh", "awk", "sed", "grep", "basename", "dirname", "date", "cat", "mktemp", "rm",
          "sleep", "env"]

FAKE_KIND = """#!/bin/sh
echo "kind $*" >> "$FAKE_LOG"
case "$1 $2" in
  "version "*) echo "kind $FAKE_KIND_VERSION go1.25.1 linux/amd64" ;;
  "get clusters") printf '%s\\n' $FAKE_CLUSTERS ;;
esac
"""

FAKE_ENGINE = """#!/bin/sh
echo "$(basename "$0") $*" >> "$FAKE_LOG"
case "$1" in
  info) exit "${FAKE_ENGINE_INFO:-0}" ;;
  save) while [ $# -gt 1 ]; do [ "$1" = -o ] && : > "$2"; shift; done ;;
esac
"""

# The cluster side of kubectl, answered from the files in $FAKE_STATE: job.json, pod.json and
# list.json (the Job and its Pod as `get job/NAME pod/NAME -o json` returns them).
FAKE_KUBECTL = """#!/bin/sh
case "$1" in
  version|patch) exec "$REAL_KUBECTL" "$@" ;;
  --context) echo "kubectl $*" >> "$FAKE_LOG"; shift 2 ;;
  *) echo "fake kubectl: no --context in: $*" >&2; exit 99 ;;
esac
local_() { file=$1; shift; exec "$REAL_KUBECTL" patch --local -f "$file" --type merge -p '{}' "$@"; }
case "$1 $2" in
  "delete job"|"apply -f") exit 0 ;;
  "get nodes") echo "$FAKE_NODE_VERSION" ;;
  "get job") shift 3; local_ "$FAKE_STATE/job.json" "$@" ;;
  "get pods") echo "pod/$(cat "$FAKE_STATE/podname")" ;;
  "get pod/"*)
    if [ "$3" = "-o" ] && [ "$4" = json ]; then cat "$FAKE_STATE/pod.json"; exit 0; fi
    shift 2; local_ "$FAKE_STATE/pod.json" "$@" ;;
  "get job/"*) cat "$FAKE_STATE/list.json" ;;
  "logs job/"*) echo "[pod/x/app] main application" ;;
  *) echo "fake kubectl: unexpected: $*" >&2; exit 98 ;;
esac
"""


def write(path, text):
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def objects(fixture):
    """The objects in a fixture file (a name in tests/fixtures/, or a path)."""
    path = fixture if isinstance(fixture, Path) else FIXTURES / fixture
    text, decoder, found, at = path.read_text(), json.JSONDecoder(), [], 0
    while True:
        while at < len(text) and text[at].isspace():
            at += 1
        if at == len(text):
            return found
        obj, at = decoder.raw_decode(text, at)
        found.extend(obj["items"] if obj["kind"] == "List" else [obj])


@pytest.fixture
def env(tmp_path):
    real_kubectl = shutil.which("kubectl")
    if not real_kubectl:
        pytest.fail("kubectl is required for these tests")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in BASICS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    state = tmp_path / "state"
    state.mkdir()
    log = tmp_path / "log"
    log.touch()
    environ = {
        "PATH": str(bin_dir),
        "HOME": str(tmp_path),
        "FAKE_LOG": str(log),
        "FAKE_STATE": str(state),
        "FAKE_KIND_VERSION": "v0.33.0",
        "FAKE_NODE_VERSION": "v1.37.0",
        "FAKE_CLUSTERS": "",
        "REAL_KUBECTL": real_kubectl,
        "KIND_CLUSTER": "t",
        "CONTAINER_TOOL": "docker",
    }

    class Env(dict):
        def install(self, *tools):
            for tool in tools:
                if tool == "kind":
                    write(bin_dir / "kind", FAKE_KIND)
                elif tool == "kubectl":
                    write(bin_dir / "kubectl", FAKE_KUBECTL)
                else:
                    write(bin_dir / tool, FAKE_ENGINE)

        def state(self, fixture):
            found = objects(fixture)
            job = next(o for o in found if o["kind"] == "Job")
            pod = next(o for o in found if o["kind"] == "Pod")
            (state / "job.json").write_text(json.dumps(job))
            (state / "pod.json").write_text(json.dumps(pod))
            (state / "podname").write_text(pod["metadata"]["name"])
            (state / "list.json").write_text(
                json.dumps({"apiVersion": "v1", "kind": "List", "items": [job, pod]}))

        def run(self, *args):
            return subprocess.run(["sh", str(SCRIPT), *args], env=self, capture_output=True,
                                  text=True, timeout=60, check=False)

        def calls(self):
            return log.read_text().splitlines()

    return Env(environ)


# --- check: every missing tool in one message, before anything runs ----------------------


def test_nothing_installed(env):
    result = env.run("check")
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        "kind-demo: the kind demo needs:",
        "  - kind v0.33.0 or newer: https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
        "  - kubectl v1.28.0 or newer: https://kubernetes.io/docs/tasks/tools/",
        "  - docker with a running engine (`docker info` must work): "
        "https://docs.docker.com/engine/install/ or https://podman.io/docs/installation",
    ]


def test_old_kind_and_stopped_engine(env):
    env.install("kind", "kubectl", "docker")
    env.update(FAKE_KIND_VERSION="v0.32.0", FAKE_ENGINE_INFO="1")
    result = env.run("demo")
    assert result.returncode == 3
    assert "  - kind v0.33.0 or newer (found v0.32.0): " in result.stderr
    assert "  - docker with a running engine" in result.stderr
    assert "kubectl" not in result.stderr
    # Nothing ran: only the version and engine probes.
    assert env.calls() == ["kind version", "docker info"]


def test_1_28_asks_for_its_own_kind_release(env):
    env.install("kind", "kubectl", "docker")
    env.update(K8S="1.28", FAKE_KIND_VERSION="v0.24.0")
    result = env.run("check")
    assert result.returncode == 3
    assert "kind v0.25.0 or newer (found v0.24.0)" in result.stderr


def test_1_28_with_a_newer_kind_warns(env):
    env.install("kind", "kubectl", "docker")
    env.update(K8S="1.28", FAKE_KIND_VERSION="v0.33.0")
    result = env.run("check")
    assert result.returncode == 0
    assert "published for kind v0.25.0" in result.stderr


@pytest.mark.parametrize(("setting", "value"), [("K8S", "1.30"), ("CONTAINER_TOOL", "nerdctl")])
def test_unsupported_settings(env, setting, value):
    env.install("kind", "kubectl", "docker")
    env[setting] = value
    result = env.run("check")
    assert result.returncode == 2
    assert value in result.stderr


def test_ready(env):
    env.install("kind", "kubectl", "docker")
    result = env.run("check")
    assert (result.returncode, result.stderr) == (0, "kind-demo: kind, kubectl and docker are ready\n")


# --- up, load --------------------------------------------------------------------------------


def test_up_creates_the_cluster_from_the_right_config(env):
    env.install("kind", "kubectl", "docker")
    env.update(K8S="1.28", FAKE_KIND_VERSION="v0.25.0")
    assert env.run("up").returncode == 0
    assert f"kind create cluster --name t --config {ROOT}/cluster-1.28.yaml --wait 120s" in env.calls()


def test_up_is_idempotent(env):
    env.install("kind", "kubectl", "docker")
    env["FAKE_CLUSTERS"] = "other t"
    result = env.run("up")
    assert result.returncode == 0
    assert "cluster t is already up (v1.37.0)" in result.stderr
    assert not [c for c in env.calls() if c.startswith("kind create")]


def test_up_refuses_a_cluster_of_another_version(env):
    env.install("kind", "kubectl", "docker")
    env.update(FAKE_CLUSTERS="t", FAKE_NODE_VERSION="v1.28.15")
    result = env.run("up")
    assert result.returncode == 1
    assert "runs v1.28.15, not v1.37.0" in result.stderr


def images():
    values = images_env()
    return values["APP_IMAGE"], values["SIDECAR_IMAGE"]


def test_load_with_docker(env):
    env.install("kind", "kubectl", "docker")
    assert env.run("load").returncode == 0
    app, sidecar = images()
    assert f"kind load docker-image --name t {app} {sidecar}" in env.calls()


def test_load_with_podman_goes_through_archives(env):
    env.install("kind", "kubectl", "podman")
    env["CONTAINER_TOOL"] = "podman"
    assert env.run("load").returncode == 0
    app, sidecar = images()
    calls = env.calls()
    saves = [c for c in calls if c.startswith("podman save")]
    loads = [c for c in calls if c.startswith("kind load")]
    assert [s.split()[-1] for s in saves] == [app, sidecar]
    assert all(s.startswith("podman save --format docker-archive -o ") for s in saves)
    assert [c.split()[:5] for c in loads] == [["kind", "load", "image-archive", "--name", "t"]] * 2


def test_load_refuses_images_job_yaml_does_not_run(env):
    env.install("kind", "kubectl", "docker")
    env["APP_IMAGE"] = "localhost/app:0.1.0"
    result = env.run("load")
    assert result.returncode == 1
    assert "but the app image is localhost/app:0.1.0" in result.stderr
    assert not [c for c in env.calls() if c.startswith("kind load")]


# --- demo, demo-legacy: the orchestration and the verdict -------------------------------


def test_demo_passes_on_a_completed_run(env):
    env.install("kind", "kubectl", "docker")
    env["FAKE_CLUSTERS"] = "t"
    env.state("native-1.37.json")
    result = env.run("demo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "PASS: job Complete after 34s; app and sidecar both exited 0"
    calls = [c for c in env.calls() if c.startswith("kubectl")]
    # The cluster was already up, so the first call checks its version.
    assert calls[1:3] == [
        "kubectl --context kind-t delete job native-sidecar-job --ignore-not-found --cascade=foreground --wait=true",
        f"kubectl --context kind-t apply -f {ROOT}/job.yaml",
    ]
    assert ("kubectl --context kind-t get pods -l "
            "batch.kubernetes.io/controller-uid=5f0c2d6e-8a41-4a52-9d3e-2b7c1f4e9a10 -o name") in calls


def test_demo_fails_when_the_app_fails(env):
    env.install("kind", "kubectl", "docker")
    env["FAKE_CLUSTERS"] = "t"
    found = objects("native-1.37.json")
    job = next(o for o in found if o["kind"] == "Job")
    pod = next(o for o in found if o["kind"] == "Pod")
    pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] = 1
    job["status"]["conditions"] = [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                    "lastTransitionTime": "2026-11-24T09:00:34Z"}]
    path = Path(env["FAKE_STATE"]) / "failed.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [job, pod]}))
    env.state(path)
    result = env.run("demo")
    assert result.returncode == 1
    assert "kind-demo: job/native-sidecar-job did not complete (Failed)" in result.stderr
    assert "FAIL: app exited with code 1" in result.stdout.splitlines()


def test_demo_legacy_passes_on_a_deadline(env):
    env.install("kind", "kubectl", "docker")
    env["FAKE_CLUSTERS"] = "t"
    env.state("legacy-1.37.json")
    result = env.run("demo-legacy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith(
        "PASS: app exited 0 after 31s, yet the job Failed with DeadlineExceeded after 62s")
    assert "kind-demo: job/legacy-sidecar-job ended: Failed" in result.stderr
    assert f"kubectl --context kind-t apply -f {ROOT}/job-legacy.yaml" in env.calls()


def test_every_cluster_call_names_the_context(env):
    env.install("kind", "kubectl", "docker")
    env["FAKE_CLUSTERS"] = "t"
    env.state("native-1.37.json")
    assert env.run("demo").returncode == 0
    # The fake kubectl rejects any cluster call without --context (exit 99), so reaching
    # PASS proves it; this checks the log agrees.
    assert all(c.startswith("kubectl --context kind-t ") for c in env.calls() if c.startswith("kubectl"))

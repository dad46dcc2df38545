"""`make pod`: scripts/pod.sh runs job.yaml's Pod with podman, and with the docker CLI through
podman's API, from the images that test_images.py builds.

pod.sh reads every container setting from the manifest it is given, so copies of job.yaml
with one thing broken must fail it, each with a message that names the fault.
Where podman cannot run, the tests skip and say why; with CI=true they fail instead.
"""

from __future__ import annotations

import copy
import re
import sys
import uuid
from pathlib import Path

import pytest
import test_images
import yaml
from images_support import REPO, run, timeline

# test_images.py's fixtures, so that the images are built one way.
podman = test_images.podman
built = test_images.built
docker = test_images.docker
docker_built = test_images.docker_built

JOB = yaml.safe_load((REPO / "job.yaml").read_text())
GRACE = JOB["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]


def pod_env(env: dict[str, str], tool: str, app_sleep: str) -> dict[str, str]:
    return dict(env, CONTAINER_TOOL=tool, APP_SLEEP=app_sleep, POD_ID=uuid.uuid4().hex[:8])


def run_pod(env: dict[str, str], manifest: Path | None = None):
    args = ["scripts/pod.sh"] + ([str(manifest)] if manifest else [])
    proc = run(args, env, timeout=120, check=False)
    left = run(
        [env["CONTAINER_TOOL"], "ps", "--all", "--quiet", "--filter", f"name={env['POD_ID']}"],
        env,
    ).stdout.split()
    assert not left, f"scripts/pod.sh left containers behind: {left}"
    return proc, proc.stdout + proc.stderr


def check_pod_run(proc, output: str, tool: str, grace: int = GRACE, job: dict = JOB) -> None:
    assert proc.returncode == 0, output
    assert "Sidecar application" in output, "the app got the sidecar's reply over 127.0.0.1"
    assert "main application" in proc.stdout.splitlines()
    assert f"pod ({tool}): " in output
    events = timeline(output)
    assert [event for _, event, _ in events] == [
        "sidecar started",
        "postStart done",
        "sidecar ready",
        "app started",
        "app exited",
        "sidecar SIGTERM",
        "sidecar exited",
    ], output
    details = {event: detail for _, event, detail in events}
    assert details["postStart done"].startswith("/sidecar wait-ready ")
    probes = [p for p in ("startupProbe", "readinessProbe", "livenessProbe") if p in sidecar(job)]
    assert details["sidecar ready"] == f"{' '.join(probes)} passed"
    assert details["app exited"] == "exit code 0"
    assert details["sidecar SIGTERM"] == f"{tool} stop, SIGKILL after {grace}s"
    assert details["sidecar exited"] == "exit code 0"
    times = [seconds for seconds, _, _ in events]
    assert times == sorted(times)
    # The app ran its whole sleep, and the sidecar outlived it and stopped on SIGTERM.
    assert times[4] - times[3] >= 1.0
    assert times[6] - times[5] < grace / 2
    verdict = r"^PASS: app and sidecar both exited 0 after \d+\.\d{3}s$"
    assert re.search(verdict, output, re.MULTILINE)
    print(f"\n{output}", file=sys.stderr)


def test_pod_lifecycle_podman(built):
    proc, output = run_pod(pod_env(built, "podman", "1s"))
    check_pod_run(proc, output, "podman")


BUILD_INPUTS = ["Cargo.toml", "Cargo.lock", "app", "sidecar", "lifecycle", "testkit", "docker",
                "images.env"]


def test_make_pod_with_this_commits_images_needs_no_builder(built):
    # A new shell after `make images`: whatever builder RUST_IMAGE names cannot be had, and the
    # images are this commit's, so `make pod` runs the Pod without building.
    if run(["git", "status", "--porcelain", "--", *BUILD_INPUTS], built).stdout:
        pytest.skip("the build's inputs have uncommitted changes, so no image can be current")
    env = dict(pod_env(built, "podman", "1s"), RUST_IMAGE="localhost/no-such-builder:none")
    env.pop("BUILD_OPTS", None)
    proc = run(["make", "--no-print-directory", "pod"], env, timeout=180, check=False)
    check_pod_run(proc, proc.stdout + proc.stderr, "podman")
    assert "not rebuilt" in proc.stderr
    assert " build " not in proc.stderr


def test_pod_fails_when_the_app_fails(built):
    # A malformed duration is the app's usage error (exit 2): pod.sh must say so and fail, and
    # still stop the sidecar cleanly.
    proc, output = run_pod(pod_env(built, "podman", "not-a-duration"))
    assert proc.returncode == 1, output
    events = [(event, detail) for _, event, detail in timeline(output)]
    assert ("app exited", "exit code 2") in events
    assert events[-1] == ("sidecar exited", "exit code 0")
    assert "FAIL: the app exited with code 2" in output
    assert "PASS" not in output


def sidecar(job: dict) -> dict:
    return job["spec"]["template"]["spec"]["initContainers"][0]


def app(job: dict) -> dict:
    return job["spec"]["template"]["spec"]["containers"][0]


def misspell_sidecar_url(job: dict) -> None:
    (env,) = [e for e in app(job)["env"] if e["name"] == "APP_SIDECAR_URL"]
    env["name"] = "APP_SIDECAR_ULR"


def missing_post_start_binary(job: dict) -> None:
    sidecar(job)["lifecycle"]["postStart"]["exec"]["command"][0] = "/no-such-binary"


def memory_limit_1mi(job: dict) -> None:
    sidecar(job)["resources"]["limits"]["memory"] = "1Mi"


def env_from_the_downward_api(job: dict) -> None:
    # pod.sh has no API server to resolve it from: it must refuse, not run without it.
    field = {"fieldRef": {"fieldPath": "metadata.name"}}
    app(job)["env"].append({"name": "POD_NAME", "valueFrom": field})


def failing_liveness_probe(job: dict) -> None:
    sidecar(job)["livenessProbe"] = {"exec": {"command": ["/no-such-probe"]}}


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        (misspell_sidecar_url, "sets APP_SIDECAR_ULR on app, which it does not read"),
        (missing_post_start_binary, "FAIL: the postStart hook failed: /no-such-binary "),
        (memory_limit_1mi, "FAIL: the sidecar container did not start with the settings in"),
        (failing_liveness_probe, "FAIL: the sidecar's livenessProbe failed: "),
        (env_from_the_downward_api, "app sets env[*].valueFrom, which pod.sh cannot run"),
    ],
)
def test_pod_fails_on_a_broken_copy_of_job_yaml(built, tmp_path, breakage, message):
    job = copy.deepcopy(JOB)
    breakage(job)
    manifest = tmp_path / "job.yaml"
    manifest.write_text(yaml.safe_dump(job))
    proc, output = run_pod(pod_env(built, "podman", "1s"), manifest)
    # 1, not 3: the engine runs containers; the manifest is at fault.
    assert proc.returncode == 1, output
    assert message in output, output
    assert "PASS" not in output


def test_pod_follows_the_manifest(built, tmp_path):
    # Another grace period, and exec probes instead of HTTP ones: the run changes with them.
    job = copy.deepcopy(JOB)
    job["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 7
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        url = f"http://127.0.0.1:8080{path}"
        sidecar(job)[probe] = {
            "exec": {"command": ["/sidecar", "wait-ready", "--url", url, "--timeout", "1s"]},
            "periodSeconds": 1,
        }
    # RUST_LOG is read by the logging set-up, not by clap, yet it is a setting the sidecar reads.
    sidecar(job)["env"].append({"name": "RUST_LOG", "value": "info,sidecar=debug"})
    manifest = tmp_path / "job.yaml"
    manifest.write_text(yaml.safe_dump(job))
    proc, output = run_pod(pod_env(built, "podman", "2s"), manifest)
    check_pod_run(proc, output, "podman", grace=7, job=job)
    assert '"level":"DEBUG"' in output and '"message":"request"' in output, output


def test_pod_lifecycle_docker(docker_built):
    proc, output = run_pod(pod_env(docker_built, "docker", "1s"))
    check_pod_run(proc, output, "docker")

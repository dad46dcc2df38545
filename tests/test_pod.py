"""`make pod`: scripts/pod.sh runs the Job's Pod with podman, and with the docker CLI through
podman's API, from the images that test_images.py builds.

The image fixtures come from test_images.py, so that there is one way to build the images.
Where podman cannot run, the tests skip and say why; with CI=true they fail instead.
"""

from __future__ import annotations

import re
import sys
import uuid

import test_images
from images_support import run, timeline

STOP_TIMEOUT = test_images.STOP_TIMEOUT
# test_images.py's fixtures, so that the images are built one way.
podman = test_images.podman
built = test_images.built
docker = test_images.docker
docker_built = test_images.docker_built


def check_pod_run(proc, tool: str, env: dict[str, str]) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "Sidecar application" in output, "the app got the sidecar's reply over 127.0.0.1"
    assert "main application" in proc.stdout.splitlines()
    assert f"pod ({tool}): " in output
    events = timeline(output)
    assert [(event, detail) for _, event, detail in events] == [
        ("sidecar started", "its network namespace is the pod's"),
        ("sidecar ready", "/readyz answered 200"),
        ("app started", "joins the sidecar's network namespace"),
        ("app exited", "exit code 0"),
        ("sidecar SIGTERM", f"{tool} stop, SIGKILL after {STOP_TIMEOUT}s"),
        ("sidecar exited", "exit code 0"),
    ], output
    times = [seconds for seconds, _, _ in events]
    assert times == sorted(times)
    # The app ran its whole sleep, and the sidecar outlived it.
    assert times[3] - times[2] >= 1.0
    assert times[5] - times[4] < STOP_TIMEOUT / 2
    assert re.search(r"^PASS: app and sidecar both exited 0 after \d+\.\d{3}s$", output, re.MULTILINE)
    print(f"\n{output}", file=sys.stderr)
    assert_no_pod_containers_left(tool, env)


def pod_env(env: dict[str, str], tool: str, app_sleep: str) -> dict[str, str]:
    return dict(env, CONTAINER_TOOL=tool, APP_SLEEP=app_sleep, POD_ID=uuid.uuid4().hex[:8])


def assert_no_pod_containers_left(tool: str, env: dict[str, str]) -> None:
    left = run(
        [tool, "ps", "--all", "--quiet", "--filter", f"name={env['POD_ID']}"], env
    ).stdout.split()
    assert not left, f"scripts/pod.sh left containers behind: {left}"


def test_pod_lifecycle_podman(built):
    env = pod_env(built, "podman", "1s")
    proc = run(["scripts/pod.sh"], env, timeout=120, check=False)
    check_pod_run(proc, "podman", env)


def test_pod_fails_when_the_app_fails(built):
    # A malformed duration is the app's usage error (exit 2): pod.sh must say so and fail, and
    # still stop the sidecar cleanly.
    env = pod_env(built, "podman", "not-a-duration")
    proc = run(["scripts/pod.sh"], env, timeout=120, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    events = [(event, detail) for _, event, detail in timeline(output)]
    assert ("app exited", "exit code 2") in events
    assert events[-1] == ("sidecar exited", "exit code 0")
    assert "FAIL: the app exited with code 2" in output
    assert "PASS" not in output
    assert_no_pod_containers_left("podman", env)




def test_pod_lifecycle_docker(docker_built):
    env = pod_env(docker_built, "docker", "1s")
    proc = run(["scripts/pod.sh"], env, timeout=120, check=False)
    check_pod_run(proc, "docker", env)

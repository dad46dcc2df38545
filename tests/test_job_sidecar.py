"""job.yaml's sidecar container, run as the kubelet would run it, but as plain processes: the
built binary with the container's environment, its postStart hook started first (the kubelet
runs the hook as soon as the container has started, so the hook may begin before the server
listens), then the container's probes. Everything is read from job.yaml with kubectl
(offline), so the test follows the manifest as it changes. Only the port moves, to a free one
held for the test, so that nothing else listening on the manifest's port here gets in the way."""

import json
import os
import signal
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Where docker/Dockerfile puts the binary, which is also the image's ENTRYPOINT.
IN_IMAGE = "/sidecar"
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")


def sidecar_container() -> dict:
    manifest = subprocess.run(
        ["kubectl", "patch", "--local", "-f", str(REPO / "job.yaml"), "-p", "{}", "--type", "merge",
         "-o", "json"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    pod = json.loads(manifest)["spec"]["template"]["spec"]
    sidecars = [c for c in pod.get("initContainers", []) if c.get("restartPolicy") == "Always"]
    assert [c["name"] for c in sidecars] == ["sidecar"]
    return sidecars[0]


@pytest.fixture(scope="module")
def sidecar_binary() -> Path:
    # Cheap when `cargo test` (which `make test` runs first) has built it already.
    subprocess.run(["cargo", "build", "--locked", "--quiet", "--bin", "sidecar"], cwd=REPO,
                   check=True, timeout=900)
    return REPO / "target" / "debug" / "sidecar"


def reserve(host: str) -> socket.socket:
    """A free port, bound but not listening: refused until the sidecar binds it too (tokio's
    listener sets SO_REUSEADDR, as this socket does), and taken by nothing else meanwhile."""
    reservation = socket.socket()
    reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    reservation.bind((host, 0))
    return reservation


def test_job_yamls_sidecar_is_ready_for_its_post_start_hook_and_its_probes(sidecar_binary):
    container = sidecar_container()
    env = {var["name"]: var["value"] for var in container.get("env", [])}
    host, port = env["SIDECAR_LISTEN"].rsplit(":", 1)
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}

    with reserve(host) as reservation:
        free = reservation.getsockname()[1]

        def here(words: list[str]) -> list[str]:
            return [str(sidecar_binary) if word == IN_IMAGE else word.replace(f":{port}", f":{free}")
                    for word in words]

        process_env = {"PATH": os.environ.get("PATH", ""),
                       **{name: value.replace(f":{port}", f":{free}") for name, value in env.items()}}
        hook = container["lifecycle"]["postStart"]["exec"]["command"]
        hook_run = subprocess.Popen(here(hook), env=process_env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
        # The image's ENTRYPOINT, unless the manifest sets a command.
        entrypoint = container.get("command", [IN_IMAGE]) + container.get("args", [])
        sidecar = subprocess.Popen(here(entrypoint), env=process_env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        try:
            _, hook_err = hook_run.communicate(timeout=60)
            assert hook_run.returncode == 0, hook_err

            for name in PROBES:
                probe = container.get(name)
                if probe is None:
                    continue
                if "exec" in probe:
                    result = subprocess.run(here(probe["exec"]["command"]), env=process_env,
                                            capture_output=True, text=True, timeout=60)
                    assert result.returncode == 0, (name, result.stderr)
                else:
                    get = probe["httpGet"]
                    target = ports.get(get["port"], get["port"])
                    assert str(target) == port, f"{name} probes port {target}, the sidecar listens on {port}"
                    with urllib.request.urlopen(f"http://127.0.0.1:{free}{get['path']}", timeout=10) as answer:
                        assert answer.status == 200, name

            sidecar.send_signal(signal.SIGTERM)
            _, logs = sidecar.communicate(timeout=30)
            assert sidecar.returncode == 0, logs
            lines = logs.splitlines()
            assert lines, "the sidecar logged nothing"
            if env.get("LOG_FORMAT") == "json":
                for line in lines:
                    json.loads(line)
        finally:
            for process in (hook_run, sidecar):
                if process.poll() is None:
                    process.kill()
                    process.wait()

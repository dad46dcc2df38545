"""`make local` and `make demo`'s last resort: the Job's lifecycle with plain processes.

The script under test is the one the Makefile runs (scripts/local.sh) on release binaries built
once for this module. Every assertion is on what a person reads: the timeline, the verdict, the
exit code, and the programs' own lines.
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.parse
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
LOCAL = REPO / "scripts" / "local.sh"
DEMO = REPO / "scripts" / "demo.sh"

# One line of the timeline: "  +1.014s  app exited       exit code 0".
MARK = re.compile(r"^\s+\+(\d+\.\d{3})s  (\S+(?: \S+)?)\s+(.*)$")


@pytest.fixture(scope="module")
def release_binaries() -> Path:
    subprocess.run(["cargo", "build", "--workspace", "--release", "--locked", "--quiet"],
                   cwd=REPO, check=True, timeout=900)
    return REPO / "target" / "release"


def run_local(bin_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LOCAL)], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "BIN_DIR": str(bin_dir), **env})


def timeline(output: str) -> list[tuple[float, str, str]]:
    return [(float(m[1]), m[2], m[3]) for m in map(MARK.match, output.splitlines()) if m]


def test_the_lifecycle_runs_in_the_kubelets_order_and_passes(release_binaries: Path) -> None:
    result = run_local(release_binaries, APP_SLEEP="300ms")
    assert result.returncode == 0, result.stdout + result.stderr
    marks = timeline(result.stdout)
    assert [event for _, event, _ in marks] == [
        "sidecar started", "sidecar ready", "app started", "app exited", "sidecar SIGTERM",
        "sidecar exited",
    ]
    details = {event: detail for _, event, detail in marks}
    assert details["app exited"] == "exit code 0"
    assert details["sidecar exited"] == "exit code 0"
    times = [at for at, _, _ in marks]
    assert times == sorted(times)
    # The app really worked for its APP_SLEEP between its start and its exit.
    assert times[3] - times[2] >= 0.3
    assert re.search(r"^PASS: app and sidecar both exited 0 after \d+\.\d{3}s$", result.stdout, re.M)
    # Proof that the sidecar was up before the app worked, and that the app finished its work.
    assert "  app | sidecar replied: Sidecar application\n" in result.stdout
    assert "  app | main application\n" in result.stdout
    # wait-ready's request, then the app's two calls, before and after its work.
    assert re.search(r"  sidecar \| .*stopped requests_served=3 ", result.stdout)
    # Ready means what job.yaml's postStart hook waits for: the same path.
    job = yaml.safe_load((REPO / "job.yaml").read_text())
    (sidecar,) = job["spec"]["template"]["spec"]["initContainers"]
    hook = sidecar["lifecycle"]["postStart"]["exec"]["command"]
    hook_path = urllib.parse.urlsplit(hook[hook.index("--url") + 1]).path
    assert details["sidecar ready"].startswith(f"{hook_path} answered 200 on 127.0.0.1:")


def test_an_app_that_fails_fails_the_run(release_binaries: Path) -> None:
    result = run_local(release_binaries, APP_SLEEP="soon")
    assert result.returncode == 1
    assert "FAIL: the app exited with code 2" in result.stderr
    assert "PASS" not in result.stdout
    # The sidecar is still stopped cleanly, and the timeline says so.
    assert ("sidecar exited", "exit code 0") in [(e, d) for _, e, d in timeline(result.stdout)]


def test_missing_binaries_are_named(tmp_path: Path) -> None:
    result = run_local(tmp_path)
    assert result.returncode == 1
    assert result.stderr == f"local: no {tmp_path}/sidecar: run 'cargo build --release' (or 'make local') first\n"


def test_demo_without_kind_or_an_engine_says_so_and_runs_local(release_binaries: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DEMO")}
    # docker is a CLI without an engine on this machine, and kind is not on PATH at all.
    env.update(CONTAINER_TOOL="docker", DOCKER_HOST="unix:///nonexistent.sock", APP_SLEEP="100ms",
               PATH=os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                    if not (Path(p) / "kind").exists()))
    result = subprocess.run([str(DEMO)], cwd=REPO, capture_output=True, text=True, timeout=900,
                            env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kind-demo: the kind demo needs:" in result.stderr
    assert "  - kind v0.33.0 or newer" in result.stderr
    assert "demo: no container engine answers either: running the lifecycle with plain processes" \
        in result.stderr
    assert re.search(r"^PASS: app and sidecar both exited 0 after", result.stdout, re.M)


def test_demo_refuses_an_unknown_runtime() -> None:
    result = subprocess.run([str(DEMO)], cwd=REPO, capture_output=True, text=True, timeout=30,
                            env={**os.environ, "DEMO": "minikube"})
    assert result.returncode == 2
    assert result.stderr == "demo: DEMO must be kind, pod or local, not 'minikube'\n"


def test_a_sidecar_that_dies_at_start_up_fails_the_run_and_leaves_nothing_behind(
        tmp_path: Path) -> None:
    bin_dir, scratch = tmp_path / "bin", tmp_path / "tmp"
    bin_dir.mkdir()
    scratch.mkdir()
    for name, body in [("sidecar", "echo 'cannot listen' >&2; exit 1"), ("app", "exit 0")]:
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    result = run_local(bin_dir, TMPDIR=str(scratch))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL: the sidecar exited at start-up" in result.stderr
    assert "  sidecar | cannot listen\n" in result.stdout
    assert list(scratch.iterdir()) == [], "the run's log directory was left behind"


def test_json_logs_from_the_caller_do_not_break_the_run(release_binaries: Path) -> None:
    result = run_local(release_binaries, APP_SLEEP="10ms", LOG_FORMAT="json")
    assert result.returncode == 0, result.stdout + result.stderr
    # The app logs as asked; the sidecar's address is read from its text logs.
    assert re.search(r'^  app \| \{.*"message":"working"', result.stdout, re.M)


def test_demo_falls_back_to_processes_when_the_engine_cannot_start_containers(
        release_binaries: Path, tmp_path: Path) -> None:
    # A podman that answers `info` and builds, but whose `run` fails, as podman does on a
    # machine whose runtime refuses its default settings.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "podman").write_text(
        '#!/bin/sh\n'
        f'echo "$*" >> {tmp_path}/podman.log\n'
        'if [ "$1" = run ]; then echo "Error: runc: OCI permission denied" >&2; exit 126; fi\n'
        'exit 0\n')
    (fake / "podman").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DEMO")}
    env.update(CONTAINER_TOOL="podman", APP_SLEEP="100ms",
               PATH=os.pathsep.join([str(fake)] + [p for p in env["PATH"].split(os.pathsep)
                                                   if not (Path(p) / "kind").exists()]))
    result = subprocess.run([str(DEMO)], cwd=REPO, capture_output=True, text=True, timeout=900,
                            env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("demo: podman cannot start a container here (Error: runc: OCI permission denied): "
            "running the lifecycle with plain processes instead (make local)") in result.stderr
    assert ("demo: to fix podman: `podman info`, and "
            "https://github.com/containers/podman/blob/main/troubleshooting.md") in result.stderr
    # Found out before building anything: no image was built.
    assert not [c for c in (tmp_path / "podman.log").read_text().splitlines() if c.startswith("build")]
    # The users' path: nothing about this project's CI machine.
    assert ".ci/" not in result.stderr
    assert re.search(r"^PASS: app and sidecar both exited 0 after", result.stdout, re.M)

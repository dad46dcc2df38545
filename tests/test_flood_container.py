"""The sidecar image in a container with job.yaml's own limits: under a flood, and its probes.

job.yaml is read with kubectl (`patch --local`, no cluster): the sidecar's memory and CPU limits,
its environment and the Pod's grace period. The container runs on the host's network namespace,
as the sidecar shares its Pod's with the app, and the test's clients play the flood: 3,000 of
them connect at once, and those still open send 8 KB of a request head they never finish. The
container must not be OOM-killed, its peak memory stays under MEMORY_BOUND, it serves a new
client within a second during the flood and again once it is gone, and SIGTERM during a second
flood still ends in exit 0 within the shutdown deadline.

job.yaml's liveness probe is an exec probe (the sidecar listens on loopback only): run with
`podman exec` as the kubelet runs it, in a container with only a loopback interface and job.yaml's
environment, it passes.

Traffic stays on 127.0.0.1; every wait has a deadline; the container is removed whatever
happens.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest

from pathlib import Path

from images_support import (builder_env, http_get, images_env, podman_env, run, server_ends,
                            wait_for)

CLIENTS = 3000
# A hard limit, the one flood.rs sets for the debug build; the image runs the musl release
# binary, which docs/limits.md puts under 10 MiB at the cap.
MEMORY_BOUND = 16 * 1024 * 1024
HEAD = b"GET / HTTP/1.1\r\nHost: test\r\nX-Pad: ".ljust(8 * 1024, b"a")
FLOOD_WAIT = 60
# A new client's answer under job.yaml's CPU limit beside busy clients: a generous bound
# (docs/availability.md has the figures).
THROTTLED_WITHIN = 3
LEAVING = 16  # connections closed for room that may still be ending (connection_cap.rs)
SIDECAR = '.spec.template.spec.initContainers[?(@.name=="sidecar")]'


def from_job(template: str) -> str:
    """job.yaml through a kubectl jsonpath template, without a cluster."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is required for this test (its offline `patch --local`)"
    return run([kubectl, "patch", "--local", "-f", "job.yaml", "-p", "{}", "--type", "merge",
                "-o", f"jsonpath={template}"], dict(os.environ)).stdout


def quantity_bytes(text: str) -> int:
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", text)
    assert match, f"not a binary quantity: {text!r}"
    return int(match[1]) * 1024 ** {"Ki": 1, "Mi": 2, "Gi": 3}[match[2]]


def cpus(text: str) -> str:
    match = re.fullmatch(r"(\d+)m", text)
    return str(int(match[1]) / 1000) if match else text


@pytest.fixture(scope="module")
def built():
    """The images, built as test_images.py builds them (podman caches the layers)."""
    env = podman_env()
    run(["scripts/images.sh"], builder_env(env), timeout=1200)
    return env


def job_env() -> dict[str, str]:
    """The sidecar's environment in job.yaml."""
    lines = from_job(f'{{range {SIDECAR}.env[*]}}{{.name}}={{.value}}{{"\\n"}}{{end}}')
    return dict(line.split("=", 1) for line in lines.splitlines())


def limits_and_hardening() -> list[str]:
    """job.yaml's limits for the sidecar, and its securityContext, as podman flags."""
    memory = quantity_bytes(from_job(f"{{{SIDECAR}.resources.limits.memory}}"))
    cpu = cpus(from_job(f"{{{SIDECAR}.resources.limits.cpu}}"))
    return [f"--memory={memory}", f"--memory-swap={memory}", f"--cpus={cpu}",
            "--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges"]


@pytest.fixture
def sidecar(built):
    """The sidecar image in a container with job.yaml's limits and environment; yields
    (name, address, pid, baseline): baseline is how many sockets it holds before any client."""
    env = job_env()
    assert env["SIDECAR_LISTEN"].startswith("127.0.0.1:"), env
    # The port: one the kernel picks, read from the log, as other tests on this host use 8080.
    env["SIDECAR_LISTEN"] = "127.0.0.1:0"
    name = f"nsj-test-flood-{uuid.uuid4().hex[:8]}"
    args = ["podman", "run", "--detach", "--name", name, "--network", "host",
            *limits_and_hardening()]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    try:
        run(args + [images_env()["SIDECAR_IMAGE"]], built)

        def listening():
            logs = run(["podman", "logs", name], built).stderr
            for line in logs.splitlines():
                event = json.loads(line)
                if event.get("fields", {}).get("message") == "listening":
                    return event["fields"]["address"]
            return None

        host, port = wait_for("the sidecar's address", listening, timeout=30).rsplit(":", 1)
        pid = int(run(["podman", "inspect", "--format", "{{.State.Pid}}", name], built).stdout)
        yield name, (host, int(port)), pid, sockets(pid)
    finally:
        run(["podman", "rm", "--force", name], built, check=False)


def sockets(pid: int) -> int:
    """Sockets the process holds: its listener, its runtime's, its connections."""
    links = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            links.append(fd.readlink().name)
        except OSError:
            pass  # closed while listed
    return sum(link.startswith("socket:") for link in links)


def settled_at_cap(port: int, cap: int) -> bool:
    """Whether the sidecar has taken every connection to `port` from its backlog and read
    everything each client sent, with at least `cap` of them established (the container shares
    the host's network namespace). Until then it is still closing connections for room, and a
    count of its sockets races its accepts and closes."""
    established = [read for _, state, read in server_ends(port) if state == "01"]
    return len(established) >= cap and all(established)


def peak_memory(pid: int) -> int:
    status = open(f"/proc/{pid}/status").read()
    return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)[1]) * 1024


def flood(address: tuple[str, int], pid: int, baseline: int) -> list[socket.socket]:
    """CLIENTS connections attempted at once; once the sidecar holds its cap of them, each
    still open sends an unfinished 8 KB head. Returns the sockets, to be closed by the caller,
    once the sidecar has worked through them all and holds the last ones."""
    cap = int(from_job(f'{{{SIDECAR}.env[?(@.name=="SIDECAR_MAX_CONNECTIONS")].value}}'))
    clients = []
    for _ in range(CLIENTS):
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(address)
        clients.append(client)
    # At the cap each new connection takes an older one's place at once, so the sidecar holds
    # a few sockets more for a moment: those closing, and the one just accepted
    # (docs/availability.md).
    wait_for("the cap reached", lambda: sockets(pid) - baseline >= cap, timeout=FLOOD_WAIT)
    for client in clients:
        try:
            client.send(HEAD)
        except OSError:
            pass  # still connecting, or closed to make room
    wait_for("the flood worked through", lambda: settled_at_cap(address[1], cap), timeout=FLOOD_WAIT)
    assert cap <= sockets(pid) - baseline <= cap + LEAVING + 1
    return clients


def close(clients: list[socket.socket]) -> None:
    for client in clients:
        client.close()


def state(name: str, env: dict[str, str]) -> tuple[bool, int, str]:
    out = run(["podman", "inspect", "--format",
               "{{.State.OOMKilled}} {{.State.ExitCode}} {{.State.Status}}", name], env).stdout
    oom, code, status = out.split()
    return oom == "true", int(code), status


@pytest.fixture(autouse=True)
def enough_open_files():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = CLIENTS + 256
    if soft < needed:
        if hard < needed:
            pytest.fail(f"this test needs {needed} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_flood_stays_inside_job_yaml_limits_and_sigterm_still_exits_0(built, sidecar):
    name, address, pid, baseline = sidecar
    base = f"http://{address[0]}:{address[1]}"
    wait_for("/readyz", lambda: http_get(f"{base}/readyz")[0] == 200, timeout=30)

    clients = flood(address, pid, baseline)
    peak = peak_memory(pid)
    print(f"\npeak RSS with {CLIENTS} clients holding 8 KB heads: {peak // 1024} KiB")
    assert peak < MEMORY_BOUND, peak
    assert state(name, built)[2] == "running"
    # A new client is served while the flood holds every place, inside job.yaml's limits.
    started = time.monotonic()
    assert http_get(f"{base}/")[0] == 200
    assert time.monotonic() - started < 1
    close(clients)

    # Once the flood is gone, the sidecar answers again.
    wait_for("an answer after the flood", lambda: http_get(f"{base}/")[0] == 200, timeout=30)

    # SIGTERM in the middle of a second flood: the drain waits for the unfinished heads until
    # SIDECAR_SHUTDOWN_TIMEOUT, then the sidecar exits 0, well within the grace period.
    clients = flood(address, pid, baseline)
    grace = int(from_job("{.spec.template.spec.terminationGracePeriodSeconds}"))
    started = time.monotonic()
    run(["podman", "stop", "--time", str(grace), name], built, timeout=grace + 30)
    took = time.monotonic() - started
    close(clients)
    oom_killed, code, status = state(name, built)
    assert (oom_killed, code, status) == (False, 0, "exited"), run(["podman", "logs", name], built).stderr
    assert took < grace, f"stopped after {took:.1f}s: SIGKILL at the end of the grace period"
    logs = run(["podman", "logs", name], built).stderr
    assert "stopped at the shutdown deadline" in logs, logs


def new_client(address: tuple[str, int]) -> tuple[str, float]:
    """One GET /healthz on a new connection: the status code, or why there was none, and how
    long it took."""
    started = time.monotonic()
    try:
        with socket.create_connection(address, timeout=5) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: new\r\nConnection: close\r\n\r\n")
            line = conn.recv(64).split(b"\r\n")[0]
            outcome = line.split(b" ")[1].decode() if line else "closed without an answer"
    except OSError as err:
        outcome = f"no answer: {err}"
    return outcome, time.monotonic() - started


@pytest.mark.parametrize("busy_clients", [300, 1000])
def test_beside_busy_clients_every_new_client_is_answered_inside_job_yaml_limits(
        built, sidecar, busy_clients):
    # More busy keep-alive clients than the cap, each reconnecting at once when closed (an
    # app's pool), and 200 new clients, one every 50 ms (issue 24). Each must get an answer.
    # The sidecar has job.yaml's tenth of a core for all of them here, so the time allowed is
    # THROTTLED_WITHIN; sidecar/tests/flood.rs holds the one-second promise without the limit.
    name, address, pid, baseline = sidecar
    cap = int(from_job(f'{{{SIDECAR}.env[?(@.name=="SIDECAR_MAX_CONNECTIONS")].value}}'))
    busy = subprocess.Popen([sys.executable, str(Path(__file__).parent / "busy_clients.py"),
                             str(address[1]), str(busy_clients)])
    try:
        wait_for("the cap reached", lambda: sockets(pid) - baseline >= cap, timeout=FLOOD_WAIT)
        seen = []
        for _ in range(200):
            seen.append(new_client(address))
            assert sockets(pid) - baseline <= cap + LEAVING + 1
            time.sleep(0.05)  # pacing the new clients, as the measurement does
    finally:
        busy.kill()
        busy.wait(timeout=10)
    served = sum(outcome == "200" for outcome, _ in seen)
    times = sorted(took for _, took in seen)
    worst = times[-1]
    print(f"\n{busy_clients} busy clients: {served} of {len(seen)} new clients served 200 in "
          f"{times[len(times) // 2] * 1000:.0f} ms (median), {times[-3] * 1000:.0f} ms (99th "
          f"percentile), {worst * 1000:.0f} ms at worst; peak RSS {peak_memory(pid) // 1024} KiB")
    assert all(outcome.isdigit() for outcome, _ in seen), seen
    assert worst < THROTTLED_WITHIN, seen
    assert peak_memory(pid) < MEMORY_BOUND
    assert state(name, built)[2] == "running"


def test_job_yaml_probes_pass_inside_the_container(built):
    # A network namespace with only loopback, as a Pod's seen from inside, and job.yaml's own
    # environment: the probes' commands, run as the kubelet runs them, must pass.
    name = f"nsj-test-probes-{uuid.uuid4().hex[:8]}"
    args = ["podman", "run", "--detach", "--name", name, "--network", "none",
            *limits_and_hardening()]
    for key, value in job_env().items():
        args += ["--env", f"{key}={value}"]
    try:
        run(args + [images_env()["SIDECAR_IMAGE"]], built)
        for probe in ("livenessProbe",):
            command = json.loads(from_job(f"{{{SIDECAR}.{probe}.exec.command}}"))
            timeout = int(from_job(f"{{{SIDECAR}.{probe}.timeoutSeconds}}"))

            def passes(command=command, timeout=timeout):
                return run(["podman", "exec", name, *command], built, timeout=timeout + 30,
                           check=False).returncode == 0

            wait_for(f"the {probe} to pass", passes, timeout=30, interval=0.5)
        # And a probe that can fail does: nothing listens on another port.
        wrong = run(["podman", "exec", name, "/sidecar", "wait-ready", "--url",
                     "http://127.0.0.1:8081/readyz", "--timeout", "1s"], built, check=False)
        assert wrong.returncode == 1, wrong
        assert "did not answer 200 within 1s" in wrong.stderr, wrong.stderr
    finally:
        run(["podman", "rm", "--force", name], built, check=False)

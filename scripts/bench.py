#!/usr/bin/env python3
"""Benchmark the sidecar against a bare hyper server, on loopback.

    scripts/bench.py [--rounds 9] [--duration 5s] [--out bench/results.json]

It builds static release binaries for the Dockerfile's musl target (scripts/static-target.sh): the
sidecar, the app, and the bench-only baseline `sidecar/examples/bare_hello.rs` (hyper with
nothing else, same toolchain, target and profile). Then it
runs several rounds. In each round, each server is measured in fresh processes:

  * start-up: spawn to the first 200 from GET /healthz, polled every half millisecond;
  * idle RSS (VmRSS) right after that, then SIGTERM to exit while idle;
  * load: wrk, keep-alive, 64 connections on one thread, for --duration, on GET /:
    requests/s, p50 and p99 latency, and peak RSS (VmHWM) afterwards;
  * SIGTERM to exit in the middle of the same load.

wrk and the server each get a core of their own (sched_setaffinity, as `taskset -c` does) when
at least two are available; the table says whether they did. The order of the two servers
alternates between rounds, and every figure is the median over the rounds. The machine is
shared and noisy, so the ratio of sidecar to baseline is the result, more than either number.

Then, once: the binaries' sizes, the images' sizes when podman has them (built only with
--build-images), and the local lifecycle overhead: the time of `scripts/local.sh` (what
`make local` runs) minus the app's sleep; without that script, the bench runs the same
sequence itself (start the sidecar, wait for /healthz, run the app, SIGTERM the sidecar) and
says so.

It prints a table (figure, sidecar, baseline, ratio, target, verdict) and writes the same
to JSON. The exit code is 0 when the measurement worked, whatever the verdicts, and 1 when
it did not (a server that crashed, wrk errors, a wrong exit code); with --check a missed
target is exit 3 too. All traffic stays on 127.0.0.1, and every wait has a deadline.
Python 3.9+ standard library only; needs cargo and wrk (Debian/Ubuntu package: wrk).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import select
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SIDECAR_BODY = b"Sidecar application\n"
LISTENING = re.compile(r"listening address=(\S+):(\d+)")
MB = 1_000_000
# Names the musl target that docker/Dockerfile builds for, and adds it to the toolchain if need
# be, so that the sizes measured here are the sizes shipped.
STATIC_TARGET = REPO / "scripts" / "static-target.sh"
MIB = 1024 * 1024

# wrk's own summary is text with rounded units; this prints the raw figures as one JSON line.
WRK_REPORT = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
    .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
    .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


class BenchError(Exception):
    """The measurement itself failed: the numbers would mean nothing."""


# --- small helpers ---------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"want a duration like 500ms, 10s or 1m, got {text!r}")
    value, unit = float(match[1]), match[2]
    return value * {"ms": 0.001, "s": 1.0, "m": 60.0}[unit]


def wrk_duration(seconds: float) -> str:
    # wrk takes whole seconds (or larger units) only.
    return f"{max(1, round(seconds))}s"


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run(argv: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, timeout=timeout, **kwargs)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes (the kernel reports KiB)."""
    figures = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                figures[key] = int(value.split()[0]) * 1024
    return figures


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # The command name may hold spaces and parentheses; the fields after the last ')' don't.
        fields = stat.read().rpartition(")")[2].split()
    # utime and stime are fields 14 and 15 of proc(5); fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_sockets(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                count += 1
        except FileNotFoundError:
            pass  # closed between listdir and readlink
    return count


def is_static(path: Path) -> bool:
    """True when the ELF file asks for no dynamic loader (no PT_INTERP): it runs FROM scratch."""
    with open(path, "rb") as elf:
        header = elf.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit only: all this builds
            raise BenchError(f"{path} is not a 64-bit ELF file")
        order = "<" if header[5] == 1 else ">"
        phoff = struct.unpack_from(order + "Q", header, 0x20)[0]
        phentsize, phnum = struct.unpack_from(order + "HH", header, 0x36)
        elf.seek(phoff)
        table = elf.read(phentsize * phnum)
    PT_INTERP = 3
    return all(
        struct.unpack_from(order + "I", table, i * phentsize)[0] != PT_INTERP for i in range(phnum)
    )


def http_get(port: int, path: str, timeout: float = 1.0) -> tuple[int, bytes]:
    """One GET on a fresh connection; (status, body). Raises OSError when nothing answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while len(data) < 1 << 20:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise OSError(f"not an HTTP response: {data[:80]!r}")
    return int(status_line[1]), body


@dataclass
class Cores:
    """Where wrk and the server run: a core each (None: not pinned), and how much their nice
    value is lowered, so that other jobs on a shared machine take less of those cores."""

    client: int | None
    server: int | None
    boost: int = 0

    @classmethod
    def choose(cls, pin: bool, boost: int) -> Cores:
        allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        cores = cls(client=allowed[0], server=allowed[1]) if pin and len(allowed) >= 2 \
            else cls(client=None, server=None)
        if boost > 0:
            # Only root may lower a nice value; find out once, on this thread, and undo it.
            me = threading.get_native_id()
            before = os.getpriority(os.PRIO_PROCESS, me)
            try:
                os.setpriority(os.PRIO_PROCESS, me, before - boost)
                os.setpriority(os.PRIO_PROCESS, me, before)
                cores.boost = boost
            except PermissionError:
                pass
        return cores

    def describe(self) -> str:
        where = ("not pinned (fewer than two cores, or --no-pin)" if self.server is None else
                 f"wrk on core {self.client}, server on core {self.server} (sched_setaffinity)")
        priority = f", both at nice -{self.boost}" if self.boost else ", default priority"
        return where + priority


def spawn_pinned(argv: list[str], core: int | None, boost: int = 0,
                 **kwargs) -> subprocess.Popen:
    """Popen with the child bound to one core and its nice value lowered by boost.

    Both are set on this thread just for the spawn, and the child inherits them (on Linux
    they are per thread): unlike `taskset` or `nice`, this adds no exec to the start-up
    being measured.
    """
    me = threading.get_native_id()
    affinity = os.sched_getaffinity(0) if core is not None else None
    priority = os.getpriority(os.PRIO_PROCESS, me)
    try:
        if core is not None:
            os.sched_setaffinity(0, {core})
        if boost:
            os.setpriority(os.PRIO_PROCESS, me, priority - boost)
        return subprocess.Popen(argv, **kwargs)
    finally:
        # Raising a nice value back needs no privilege.
        if boost:
            os.setpriority(os.PRIO_PROCESS, me, priority)
        if affinity is not None:
            os.sched_setaffinity(0, affinity)


# --- a server under test ---------------------------------------------------------------------


@dataclass
class Flavour:
    """One of the two servers: how to start it and what its SIGTERM exit looks like."""

    name: str
    argv: list[str]
    # The sidecar drains and exits 0; the baseline keeps SIGTERM's default action.
    sigterm_returncode: int


@dataclass
class Server:
    flavour: Flavour
    proc: subprocess.Popen
    spawned_at: float
    stderr_lines: list[str] = field(default_factory=list)
    port: int | None = None
    _port_known: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def start(cls, flavour: Flavour, cores: Cores | None, env: dict[str, str]) -> Server:
        argv = flavour.argv + ["--listen", "127.0.0.1:0"]
        core, boost = (cores.server, cores.boost) if cores is not None else (None, 0)
        spawned_at = time.perf_counter()
        proc = spawn_pinned(
            argv, core, boost, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env=env, text=True,
        )
        server = cls(flavour=flavour, proc=proc, spawned_at=spawned_at)
        threading.Thread(target=server._read_stderr, daemon=True).start()
        return server

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip("\n"))
            if self.port is None and (match := LISTENING.search(line)):
                self.port = int(match[2])
                self._port_known.set()
        self._port_known.set()  # EOF: wake the waiter, which then sees no port

    def log(self) -> str:
        return "\n".join(self.stderr_lines[-20:])

    def wait_ready(self, timeout: float = 10.0) -> float:
        """Seconds from spawn to the first 200 from GET /healthz."""
        deadline = time.perf_counter() + timeout
        if not self._port_known.wait(timeout) or self.port is None:
            raise BenchError(f"{self.flavour.name}: no 'listening address=' line:\n{self.log()}")
        while True:
            try:
                status, _ = http_get(self.port, "/healthz", timeout=1.0)
                if status == 200:
                    return time.perf_counter() - self.spawned_at
            except OSError:
                pass  # not accepting yet
            if self.proc.poll() is not None:
                raise BenchError(f"{self.flavour.name} exited during start-up:\n{self.log()}")
            if time.perf_counter() > deadline:
                raise BenchError(f"{self.flavour.name}: no 200 from /healthz in {timeout} s")
            time.sleep(0.0005)

    def memory(self) -> dict[str, int]:
        return proc_status(self.proc.pid)

    def sigterm(self, timeout: float = 30.0) -> float:
        """Sends SIGTERM; seconds until the process is gone. Checks the exit code."""
        elapsed = signal_and_wait(self.proc, signal.SIGTERM, timeout)
        if self.proc.returncode != self.flavour.sigterm_returncode:
            raise BenchError(
                f"{self.flavour.name}: exit code {self.proc.returncode} after SIGTERM, "
                f"expected {self.flavour.sigterm_returncode}:\n{self.log()}"
            )
        return elapsed

    def kill(self) -> None:
        """Cleanup after a failure: only this process, by its id."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def signal_and_wait(proc: subprocess.Popen, signum: int, timeout: float) -> float:
    """Sends signum; seconds until the process has exited, to well under a millisecond.

    A pidfd turns readable the moment the process exits: no polling interval adds to the
    figure. Without pidfd_open (Linux < 5.3), a thread blocks in waitpid instead.
    """
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is not None:
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            sent = time.perf_counter()
            proc.send_signal(signum)
            if not poller.poll(timeout * 1000):
                raise BenchError(f"pid {proc.pid} still running {timeout} s after signal {signum}")
            gone = time.perf_counter()
        finally:
            os.close(pidfd)
        proc.wait(timeout=5)
        return gone - sent
    exited: list[float] = []
    waiter = threading.Thread(target=lambda: (proc.wait(), exited.append(time.perf_counter())))
    waiter.start()
    sent = time.perf_counter()
    proc.send_signal(signum)
    waiter.join(timeout)
    if not exited:
        raise BenchError(f"pid {proc.pid} still running {timeout} s after signal {signum}")
    return exited[0] - sent


# --- wrk -------------------------------------------------------------------------------------


@dataclass
class Wrk:
    binary: str
    script: Path
    connections: int
    cores: Cores

    def start(self, port: int, seconds: float) -> subprocess.Popen:
        argv = [
            self.binary, "--threads", "1", "--connections", str(self.connections),
            "--duration", wrk_duration(seconds), "--timeout", "2s",
            "--script", str(self.script), f"http://127.0.0.1:{port}/",
        ]
        return spawn_pinned(
            argv, self.cores.client, self.cores.boost, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    @staticmethod
    def report(proc: subprocess.Popen, timeout: float) -> dict:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=10)
            raise BenchError(f"wrk did not finish within {timeout:.0f} s") from None
        for line in out.splitlines():
            if line.startswith("BENCH_JSON "):
                return json.loads(line.removeprefix("BENCH_JSON "))
        raise BenchError(f"wrk printed no report (exit {proc.returncode}):\n{out}\n{err}")


# --- one round -------------------------------------------------------------------------------


def measure_idle(flavour: Flavour, cores: Cores, env: dict[str, str]) -> dict:
    server = Server.start(flavour, cores, env)
    try:
        startup = server.wait_ready()
        memory = server.memory()
        # The same request a readiness probe makes must also answer GET / as documented.
        status, body = http_get(server.port, "/")
        if (status, body) != (200, SIDECAR_BODY):
            raise BenchError(f"{flavour.name}: GET / answered {status} {body[:80]!r}")
        return {
            "startup_s": startup,
            "idle_rss_bytes": memory["VmRSS"],
            "sigterm_idle_s": server.sigterm(),
        }
    finally:
        server.kill()


def measure_load(flavour: Flavour, cores: Cores, env: dict[str, str], wrk: Wrk,
                 seconds: float) -> dict:
    server = Server.start(flavour, cores, env)
    try:
        startup = server.wait_ready()
        cpu_before = cpu_seconds(server.proc.pid)
        report = Wrk.report(wrk.start(server.port, seconds), timeout=seconds + 60)
        cpu = cpu_seconds(server.proc.pid) - cpu_before
        memory = server.memory()
        errors = {k: v for k, v in report["errors"].items() if v}
        if errors or report["requests"] == 0:
            raise BenchError(f"{flavour.name}: wrk saw errors {errors}, "
                             f"{report['requests']} requests:\n{server.log()}")
        wall = report["duration_us"] / 1e6
        server.sigterm()
        return {
            "startup_s": startup,
            "requests_per_second": report["requests"] / wall,
            "latency_p50_s": report["latency_us"]["p50"] / 1e6,
            "latency_p99_s": report["latency_us"]["p99"] / 1e6,
            "peak_rss_bytes": memory["VmHWM"],
            # Near 1.0: the server's core was the bottleneck, so requests/s compares servers;
            # well below: wrk was, and the ratio says little.
            "server_cpu_share": cpu / wall,
            # What a request costs the server, whatever share of its core it got: the figure
            # that other jobs on a shared machine disturb least.
            "requests_per_cpu_second": report["requests"] / cpu,
            "wrk_requests": report["requests"],
        }
    finally:
        server.kill()


def measure_sigterm_under_load(flavour: Flavour, cores: Cores, env: dict[str, str],
                               wrk: Wrk) -> dict:
    server = Server.start(flavour, cores, env)
    client = None
    try:
        startup = server.wait_ready()
        cpu_before = cpu_seconds(server.proc.pid)
        client = wrk.start(server.port, 30)
        # Loaded means: every wrk connection accepted (plus the listener), and the server busy
        # serving them.
        deadline = time.perf_counter() + 10
        while (open_sockets(server.proc.pid) < wrk.connections + 1
               or cpu_seconds(server.proc.pid) - cpu_before < 0.05):
            if client.poll() is not None or server.proc.poll() is not None:
                raise BenchError(f"{flavour.name}: wrk or the server ended before the load "
                                 f"was up:\n{server.log()}")
            if time.perf_counter() > deadline:
                raise BenchError(f"{flavour.name}: load not established within 10 s")
            time.sleep(0.005)
        elapsed = server.sigterm()
        return {"startup_s": startup, "sigterm_load_s": elapsed}
    finally:
        server.kill()
        if client is not None and client.poll() is None:
            # wrk only stops on its own at the end of its duration; this is its own pid.
            client.terminate()
            client.communicate(timeout=10)


def lifecycle_sequence(flavour: Flavour, app: Path, app_sleep: float,
                       env: dict[str, str]) -> dict:
    """What `make local` does, timed here: sidecar up, app runs against it, sidecar stopped."""
    started = time.perf_counter()
    server = Server.start(flavour, None, env)
    try:
        ready = server.wait_ready()
        app_env = {k: v for k, v in env.items() if not k.startswith("APP_")}
        result = subprocess.run(
            [str(app), "--sleep", f"{round(app_sleep * 1000)}ms",
             "--sidecar-url", f"http://127.0.0.1:{server.port}/"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, env=app_env,
            timeout=app_sleep + 30,
        )
        if result.returncode != 0 or "main application" not in result.stdout:
            raise BenchError(f"app exited {result.returncode} against {flavour.name}:\n"
                             f"{result.stdout}{result.stderr}")
        app_done = time.perf_counter() - started
        server.sigterm()
        total = time.perf_counter() - started
        return {"total_s": total, "overhead_s": total - app_sleep,
                "sidecar_ready_s": ready, "app_done_s": app_done}
    finally:
        server.kill()


def local_script(app_sleep: float, bin_dir: Path) -> dict:
    """Times scripts/local.sh, the script `make local` runs after its build, with a short
    APP_SLEEP, on the binaries measured here."""
    env = dict(os.environ, APP_SLEEP=f"{round(app_sleep * 1000)}ms", BIN_DIR=str(bin_dir))
    started = time.perf_counter()
    result = subprocess.run([str(REPO / "scripts" / "local.sh")], cwd=REPO, env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            timeout=600)
    total = time.perf_counter() - started
    if result.returncode != 0:
        raise BenchError(f"scripts/local.sh exited {result.returncode}:\n"
                         f"{result.stdout}{result.stderr}")
    return {"total_s": total, "overhead_s": total - app_sleep, "output": result.stdout}


# --- sizes -----------------------------------------------------------------------------------


def podman_env() -> dict[str, str] | None:
    """The environment scripts/podman-env.sh sets, or None without podman."""
    if shutil.which("podman") is None:
        return None
    out = subprocess.run([str(REPO / "scripts" / "podman-env.sh")], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    env = dict(os.environ)
    for line in out.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, _, value = words[1].partition("=")
            env[key] = value
    return env


def image_sizes(build: bool) -> tuple[dict[str, int | None], str]:
    names = {}
    for line in (REPO / "images.env").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key in ("APP_IMAGE", "SIDECAR_IMAGE"):
            names[key.removesuffix("_IMAGE").lower()] = value.strip()
    env = podman_env()
    if env is None:
        return {name: None for name in names}, "podman not found"
    if build:
        say("building the images (scripts/images.sh)")
        run([str(REPO / "scripts" / "images.sh")], timeout=3600, cwd=REPO, env=env)
    sizes: dict[str, int | None] = {}
    for name, image in names.items():
        found = subprocess.run(["podman", "image", "inspect", "--format", "{{.Size}}", image],
                               capture_output=True, text=True, timeout=60, env=env)
        sizes[name] = int(found.stdout.strip()) if found.returncode == 0 else None
    missing = [names[n] for n, size in sizes.items() if size is None]
    note = f"not built: {', '.join(missing)} (scripts/images.sh, or --build-images)" if missing \
        else "podman image inspect"
    return sizes, note


# --- build -----------------------------------------------------------------------------------


def static_target() -> str:
    # stderr passes through: it says when rustup downloads the target, or why it cannot.
    return run([str(STATIC_TARGET)], timeout=600, stdout=subprocess.PIPE, text=True).stdout.strip()


def build(target_dir: Path, locked: bool) -> tuple[dict[str, Path], str]:
    version = run(["rustc", "-V"], timeout=60, capture_output=True, text=True).stdout.strip()
    triple = static_target()
    env = dict(os.environ, CARGO_TARGET_DIR=str(target_dir))
    # The Dockerfile builds with the target's defaults; flags from the caller's shell would make
    # the binaries measured differ from the binaries shipped.
    per_target = f"CARGO_TARGET_{triple.upper().replace('-', '_')}_RUSTFLAGS"
    for name in ("RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", per_target):
        env.pop(name, None)
    cargo = ["cargo", "build", "--release", "--target", triple] + (["--locked"] if locked else [])
    say(f"building static release binaries for {triple}")
    run(cargo + ["-p", "sidecar", "-p", "app", "--bins"], timeout=3600, cwd=REPO, env=env)
    # Separately: an example also enables the dev-dependencies' features (tokio's test-util),
    # which must not leak into the sidecar binary being measured.
    run(cargo + ["-p", "sidecar", "--example", "bare_hello"], timeout=3600, cwd=REPO, env=env)
    out = target_dir / triple / "release"
    binaries = {"sidecar": out / "sidecar", "app": out / "app",
                "baseline": out / "examples" / "bare_hello"}
    for name, path in binaries.items():
        if not is_static(path):
            raise BenchError(f"{path} is dynamically linked")
    return binaries, version


def git_state() -> dict:
    """The commit measured, and whether the working tree differed from it."""
    def git(*argv: str) -> str:
        done = subprocess.run(["git", *argv], cwd=REPO, capture_output=True, text=True,
                              timeout=60)
        return done.stdout.strip() if done.returncode == 0 else ""
    return {"commit": git("rev-parse", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


# --- the table -------------------------------------------------------------------------------


@dataclass
class Figure:
    key: str
    label: str
    unit: str
    sidecar: float | None
    baseline: float | None
    # ("ratio_min", x): sidecar/baseline >= x; ("ratio_max", x): <= x; ("max", x): sidecar <= x.
    target: tuple[str, float] | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.sidecar is None or not self.baseline:
            return None
        return self.sidecar / self.baseline

    @property
    def paired_ratios(self) -> list[float] | None:
        """sidecar/baseline per round: the two ran back to back, so each ratio saw about the
        same machine. Their spread shows how far to trust the ratio of the medians."""
        ours, theirs = self.samples.get("sidecar", []), self.samples.get("baseline", [])
        if not ours or len(ours) != len(theirs) or not all(theirs):
            return None
        return [a / b for a, b in zip(ours, theirs)]

    @property
    def target_text(self) -> str:
        if self.target is None:
            return ""
        kind, bound = self.target
        return {"ratio_min": f">= {bound:g}x", "ratio_max": f"<= {bound:g}x",
                "max": f"<= {bound:g} {self.unit}"}[kind]

    @property
    def passed(self) -> bool | None:
        if self.target is None:
            return None
        kind, bound = self.target
        value = self.sidecar if kind == "max" else self.ratio
        if value is None:
            return None
        return value >= bound if kind == "ratio_min" else value <= bound

    def as_json(self) -> dict:
        return {
            "key": self.key, "label": self.label, "unit": self.unit,
            "sidecar": self.sidecar, "baseline": self.baseline, "ratio": self.ratio,
            "target": self.target_text or None, "pass": self.passed,
            "samples": self.samples, "paired_ratios": self.paired_ratios, "note": self.note,
        }


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def render(figures: list[Figure]) -> str:
    def number(value: float | None) -> str:
        if value is None:
            return "-"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"

    rows = [("figure", "sidecar", "baseline", "ratio", "target", "")]
    for f in figures:
        verdict = {True: "pass", False: "FAIL", None: ""}[f.passed]
        if f.target is not None and f.passed is None:
            verdict = "n/a"
        ratio = f"{f.ratio:.2f}x" if f.ratio is not None else "-"
        rows.append((f"{f.label} ({f.unit})", number(f.sidecar), number(f.baseline), ratio,
                     f.target_text, verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:4], widths[1:4])]
        cells += [row[4].ljust(widths[4]), row[5]]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths).rstrip())
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Many short rounds rather than a few long ones: on a shared machine a burst of someone
    # else's work lasts seconds, and with more alternations it lands in fewer medians.
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--duration", type=parse_duration, default=5.0,
                        help="wrk duration per load run (default 5s; whole seconds)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--app-sleep", type=parse_duration, default=0.5,
                        help="the app's sleep in the lifecycle run (default 500ms)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results.json")
    parser.add_argument("--target-dir", type=Path,
                        default=Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")))
    parser.add_argument("--no-build", action="store_true",
                        help="use the binaries already in --target-dir")
    parser.add_argument("--locked", action="store_true", help="pass --locked to cargo")
    parser.add_argument("--no-pin", action="store_true", help="do not bind wrk and the server "
                        "to cores of their own")
    parser.add_argument("--boost", type=int, default=10, metavar="N",
                        help="lower the nice value of wrk and the server by N, when allowed "
                        "(root), so that other jobs disturb them less; 0: leave it")
    parser.add_argument("--build-images", action="store_true",
                        help="build the images with scripts/images.sh before sizing them")
    parser.add_argument("--local", choices=("auto", "script", "bench"), default="auto",
                        help="lifecycle overhead from scripts/local.sh (script), from the "
                        "same sequence run by the bench (bench), or the script when it "
                        "exists (auto, the default)")
    parser.add_argument("--check", action="store_true", help="exit 3 when a target is missed")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.connections < 1:
        parser.error("--rounds and --connections must be at least 1")
    wrk_binary = shutil.which("wrk")
    if wrk_binary is None:
        say("wrk not found; install it (Debian/Ubuntu: apt-get install wrk)")
        return 1

    try:
        return bench(args, wrk_binary)
    except (BenchError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        say(f"failed: {err}")
        return 1


def bench(args: argparse.Namespace, wrk_binary: str) -> int:
    if args.no_build:
        out = args.target_dir / static_target() / "release"
        binaries = {"sidecar": out / "sidecar", "app": out / "app",
                    "baseline": out / "examples" / "bare_hello"}
        rustc = subprocess.run(["rustc", "-V"], capture_output=True, text=True).stdout.strip()
    else:
        binaries, rustc = build(args.target_dir, args.locked)

    # Only the variables that change how the servers behave are pinned; the rest is inherited.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SIDECAR_", "RUST_LOG", "LOG_FORMAT"))}
    env.update(RUST_LOG="info", LOG_FORMAT="text")
    flavours = {
        "sidecar": Flavour("sidecar", [str(binaries["sidecar"])], 0),
        "baseline": Flavour("baseline", [str(binaries["baseline"])], -signal.SIGTERM),
    }
    cores = Cores.choose(not args.no_pin, args.boost)
    say(cores.describe())

    samples: dict[str, dict[str, list[float]]] = {n: {} for n in flavours}

    def keep(name: str, figures: dict) -> None:
        for key, value in figures.items():
            samples[name].setdefault(key, []).append(value)

    # The lifecycle overhead: from the script `make local` runs, when it is there.
    use_script = args.local == "script" or (
        args.local == "auto" and (REPO / "scripts" / "local.sh").exists())
    local_overheads: list[float] = []

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        script = Path(tmp) / "report.lua"
        script.write_text(WRK_REPORT)
        wrk = Wrk(wrk_binary, script, args.connections, cores)
        for round_no in range(args.rounds):
            # Alternate which server goes first, so that drift on a shared machine (another
            # job starting, the CPU warming up) does not always land on the same one.
            order = list(flavours) if round_no % 2 == 0 else list(flavours)[::-1]
            for name in order:
                say(f"round {round_no + 1}/{args.rounds}: {name}")
                keep(name, measure_idle(flavours[name], cores, env))
                keep(name, measure_load(flavours[name], cores, env, wrk, args.duration))
                keep(name, measure_sigterm_under_load(flavours[name], cores, env, wrk))
                sequence = lifecycle_sequence(flavours[name], binaries["app"], args.app_sleep,
                                              env)
                keep(name, {"lifecycle_s": sequence["overhead_s"]})
            if use_script:
                local = local_script(args.app_sleep, binaries["sidecar"].parent)
                local_overheads.append(local["overhead_s"])
    if use_script:
        local_note = ("scripts/local.sh (what make local runs after its cargo build) on the "
                      "binaries above: wall time minus APP_SLEEP")
    else:
        local_overheads = samples["sidecar"]["lifecycle_s"]
        local_note = ("scripts/local.sh absent: the bench's own run of its sequence (start, "
                      "wait for /healthz, app --sleep, SIGTERM) minus the sleep")

    images, image_note = image_sizes(args.build_images)

    def med(name: str, key: str, scale: float = 1.0) -> float | None:
        value = median(samples[name].get(key, []))
        return None if value is None else value * scale

    def series(key: str, scale: float = 1.0) -> dict[str, list[float]]:
        return {n: [v * scale for v in samples[n].get(key, [])] for n in flavours}

    def timed(key: str, sample: str, label: str, unit: str, scale: float, target=None,
              note="") -> Figure:
        return Figure(key, label, unit, med("sidecar", sample, scale),
                      med("baseline", sample, scale), target, series(sample, scale), note)

    size = {name: path.stat().st_size for name, path in binaries.items()}
    figures = [
        timed("requests_per_second", "requests_per_second", "requests/s", "req/s", 1,
              ("ratio_min", 0.9)),
        timed("requests_per_cpu_second", "requests_per_cpu_second", "requests per CPU-second",
              "req/cpu-s", 1, note="requests/s divided by the server's CPU share: what a "
              "request costs, least disturbed by other jobs"),
        timed("latency_p50_ms", "latency_p50_s", "latency p50", "ms", 1e3),
        timed("latency_p99_ms", "latency_p99_s", "latency p99", "ms", 1e3,
              ("ratio_max", 1.2)),
        timed("server_cpu_cores", "server_cpu_share", "server CPU under load", "cores", 1,
              note="near 1: the server's core, not wrk, set requests/s"),
        timed("idle_rss_mb", "idle_rss_bytes", "idle RSS", "MB", 1 / MB, ("max", 2)),
        timed("peak_rss_mb", "peak_rss_bytes", "peak RSS under load", "MB", 1 / MB,
              ("max", 4)),
        timed("startup_ms", "startup_s", "spawn to first /healthz 200", "ms", 1e3),
        timed("sigterm_idle_ms", "sigterm_idle_s", "SIGTERM to exit, idle", "ms", 1e3,
              ("max", 10),
              note="baseline: SIGTERM's default action, the kernel's lower bound"),
        timed("sigterm_load_ms", "sigterm_load_s", "SIGTERM to exit, under load", "ms", 1e3,
              note=f"the sidecar drains {args.connections} connections first"),
        Figure("sidecar_binary_mib", "sidecar binary, static", "MiB", size["sidecar"] / MIB,
               size["baseline"] / MIB, ("max", 2), note="baseline: bare_hello, static"),
        Figure("app_binary_mib", "app binary, static", "MiB", size["app"] / MIB, None,
               ("max", 1.5)),
        Figure("sidecar_image_mib", "sidecar image", "MiB",
               None if images.get("sidecar") is None else images["sidecar"] / MIB, None,
               note=image_note),
        Figure("app_image_mib", "app image", "MiB",
               None if images.get("app") is None else images["app"] / MIB, None,
               note=image_note),
        timed("lifecycle_ms", "lifecycle_s", "lifecycle sequence overhead", "ms", 1e3,
              note="timed by the bench: server up, /healthz, app --sleep, SIGTERM, minus sleep"),
        Figure("local_overhead_ms", "make local overhead", "ms",
               median([v * 1e3 for v in local_overheads]), None, ("max", 100),
               {"sidecar": [v * 1e3 for v in local_overheads]}, local_note),
    ]

    table = render(figures)
    print(table)
    print()
    print(f"{args.rounds} round(s), medians; wrk: 1 thread, {args.connections} connections, "
          f"keep-alive, {wrk_duration(args.duration)}; {cores.describe()}.")
    print("MB = 10^6 bytes (RSS), MiB = 2^20 bytes (files). Ratio = sidecar / baseline.")
    share = min((f.sidecar or 0, f.baseline or 0) for f in figures
                if f.key == "server_cpu_cores")
    if min(share) < 0.9:
        # The server was not the bottleneck of its own load run: other jobs (or the host)
        # took its core, and requests/s and latency measure them as much as the server.
        print(f"warning: the servers got only {min(share):.0%} of their core under load; "
              "the machine was busy, so trust requests per CPU-second over requests/s.")
    for f in figures:
        if f.note and f.key in ("sidecar_image_mib", "local_overhead_ms"):
            print(f"{f.label}: {f.note}")

    result = {
        "schema": 1,
        "command": "scripts/bench.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": git_state(),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "python": platform.python_version(), "rustc": rustc,
                    "wrk": subprocess.run([wrk_binary, "--version"], capture_output=True,
                                          text=True).stdout.splitlines()[0:1]},
        "settings": {"rounds": args.rounds, "duration_s": float(wrk_duration(args.duration)[:-1]),
                     "connections": args.connections, "wrk_threads": 1,
                     "pinning": cores.describe(), "nice_boost": cores.boost,
                     "app_sleep_s": args.app_sleep,
                     "local_overhead_source": "scripts/local.sh" if use_script else "bench"},
        "binaries": {name: {"path": str(path), "bytes": size[name], "static": True}
                     for name, path in binaries.items()},
        "images": images,
        "figures": [f.as_json() for f in figures],
        "diagnostics": {n: {k: v for k, v in s.items() if k == "wrk_requests"}
                        for n, s in samples.items()},
        "table": table,
        "all_targets_met": all(f.passed is not False for f in figures),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    say(f"wrote {args.out}")
    if args.check and not result["all_targets_met"]:
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())

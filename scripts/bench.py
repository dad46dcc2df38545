#!/usr/bin/env python3
"""Benchmark the sidecar against a bare hyper server, on loopback.

    scripts/bench.py [--rounds 9] [--duration 5] [--out bench/results.json]

Builds for the Dockerfile's musl target: the sidecar, the app, and sidecar/examples/bare_hello.rs
(hyper alone). Each round, each server in fresh processes: spawn to first 200 from /healthz,
idle RSS, SIGTERM to exit idle; wrk on GET / (keep-alive, one thread): requests/s, requests per
CPU-second of the server, p50, p99, peak RSS; SIGTERM to exit under load; then scripts/local.sh's
time minus the app's sleep. wrk and the server get a core each (sched_setaffinity, as
`taskset -c`) and, as root, nice -10; the order alternates by round; figures are medians.
Exit 1 when the measurement failed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MB, MIB, CONNECTIONS = 1_000_000, 1024 * 1024, 64
# wrk's own summary is rounded text; this prints the raw figures as one JSON line.
WRK_REPORT = """done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH_JSON {"requests": %d, "duration_us": %d, "errors": %d, '
    .. '"p50_us": %d, "p99_us": %d}\\n', summary.requests, summary.duration, e.connect + e.read
    + e.write + e.status + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def vm(pid: int, key: str) -> int:
    """VmRSS or VmHWM of a process, in bytes (the kernel reports KiB)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M)[1]) * 1024


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used (utime and stime in /proc/PID/stat, fields 14
    and 15 counting from 1, in clock ticks; the command name before them may hold spaces)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_get(port: int, path: str) -> tuple[int, bytes]:
    """One GET on a fresh connection: (status, body). OSError when nothing answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode())
        data = b"".join(iter(lambda: conn.recv(65536), b""))
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 "):
        raise OSError(f"not an HTTP response: {data[:80]!r}")
    return int(head[9:12]), body


def spawn(args, argv: list[str], core: int | None, **kwargs) -> subprocess.Popen:
    """Popen bound to one core at a lower nice value: both set on this thread for the spawn
    and inherited by the child, so that, unlike `taskset` or `nice`, no extra exec is timed."""
    me = threading.get_native_id()
    affinity, priority = os.sched_getaffinity(0), os.getpriority(os.PRIO_PROCESS, me)
    try:
        if core is not None:
            os.sched_setaffinity(0, {core})
        os.setpriority(os.PRIO_PROCESS, me, priority - args.boost)
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kwargs)
    finally:
        os.setpriority(os.PRIO_PROCESS, me, priority)
        os.sched_setaffinity(0, affinity)


class Server:
    """One server process on a free loopback port, read from its log's "listening" line."""

    def __init__(self, name: str, binary: Path, args, env: dict[str, str]):
        self.name, self.log = name, Path(args.tmp) / f"{name}.log"
        self.sigterm_code = 0 if name == "sidecar" else -signal.SIGTERM  # bare: default action
        with self.log.open("w") as log:
            self.spawned = time.perf_counter()
            self.proc = spawn(args, [str(binary), "--listen", "127.0.0.1:0"], args.cores[1],
                              stdout=subprocess.DEVNULL, stderr=log, env=env)

    def ready(self, timeout: float = 10) -> float:
        """Seconds from spawn to the first 200 from GET /healthz, polled every 0.5 ms."""
        deadline, self.port = time.perf_counter() + timeout, None
        while True:
            try:
                if self.port is None and (found := re.search(
                        r"listening address=\S+:(\d+)", self.log.read_text())):
                    self.port = int(found[1])
                if self.port and http_get(self.port, "/healthz")[0] == 200:
                    return time.perf_counter() - self.spawned
            except OSError:
                pass  # not accepting yet
            if self.proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"{self.name}: no 200 from /healthz:\n{self.log.read_text()}")
            time.sleep(0.0005)

    def sigterm(self, timeout: float = 30) -> float:
        """Seconds from SIGTERM until the process has exited (waitid returns at that moment)."""
        watchdog = threading.Timer(timeout, self.proc.kill)  # should it ignore SIGTERM
        watchdog.start()
        sent = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOWAIT)
        took = time.perf_counter() - sent
        watchdog.cancel()
        if self.proc.wait() != self.sigterm_code:
            raise RuntimeError(f"{self.name}: exit code {self.proc.returncode} after SIGTERM")
        return took

    def close(self) -> None:
        if self.proc.poll() is None:  # after a failure: only this process, by its id
            self.proc.kill()
            self.proc.wait(timeout=10)


def one_round(name: str, binary: Path, args, env: dict[str, str]) -> dict:
    def wrk(port: int, duration: int) -> subprocess.Popen:
        return spawn(args, [args.wrk, "--threads", "1", "--connections", str(CONNECTIONS),
                            "--duration", f"{duration}s", "--timeout", "2s", "--script",
                            str(args.script), f"http://127.0.0.1:{port}/"], args.cores[0],
                     stdout=subprocess.PIPE, text=True)

    figures = {}
    with closing(Server(name, binary, args, env)) as server:
        figures["startup_ms"] = server.ready() * 1e3
        figures["idle_rss_mb"] = vm(server.proc.pid, "VmRSS") / MB
        if http_get(server.port, "/") != (200, b"Sidecar application\n"):
            raise RuntimeError(f"{name}: GET / did not answer 'Sidecar application'")
        figures["sigterm_idle_ms"] = server.sigterm() * 1e3
    with closing(Server(name, binary, args, env)) as server:
        server.ready()
        cpu_before = cpu_seconds(server.proc.pid)
        out, _ = wrk(server.port, args.duration).communicate(timeout=args.duration + 60)
        cpu = cpu_seconds(server.proc.pid) - cpu_before
        report = json.loads(out.partition("BENCH_JSON ")[2] or "null")
        if not report or report["errors"] or not report["requests"] or not cpu:
            raise RuntimeError(f"{name}: wrk failed or saw errors, or no CPU time: {out}")
        figures["requests_per_second"] = report["requests"] / (report["duration_us"] / 1e6)
        # What a request costs the server, whatever else the machine runs at the time.
        figures["requests_per_cpu_second"] = report["requests"] / cpu
        figures["latency_p50_ms"] = report["p50_us"] / 1e3
        figures["latency_p99_ms"] = report["p99_us"] / 1e3
        figures["peak_rss_mb"] = vm(server.proc.pid, "VmHWM") / MB
        server.sigterm()
    with closing(Server(name, binary, args, env)) as server:
        server.ready()
        fds = Path(f"/proc/{server.proc.pid}/fd")
        idle, client = len(list(fds.iterdir())), wrk(server.port, 30)
        try:
            # Loaded: a descriptor open for every wrk connection; wrk sends on each at once.
            deadline = time.perf_counter() + 10
            while len(list(fds.iterdir())) < idle + CONNECTIONS:
                if time.perf_counter() > deadline or client.poll() is not None:
                    raise RuntimeError(f"{name}: the load was not up within 10 s")
                time.sleep(0.005)
            figures["sigterm_load_ms"] = server.sigterm() * 1e3
        finally:
            client.terminate()  # wrk's own pid; it only stops by itself at its duration
            client.communicate(timeout=10)
    return figures


def build() -> dict[str, Path]:
    triple = subprocess.run([str(REPO / "scripts" / "static-target.sh")], check=True, text=True,
                            stdout=subprocess.PIPE, timeout=600).stdout.strip()
    # The Dockerfile builds with the target's defaults: flags from the caller's shell would make
    # the binaries measured differ from the ones shipped.
    env = {k: v for k, v in os.environ.items() if not k.endswith("RUSTFLAGS")}
    cargo = ["cargo", "build", "--release", "--locked", "--target", triple]
    say(f"building static release binaries for {triple}")
    subprocess.run(cargo + ["-p", "sidecar", "-p", "app", "--bins"], check=True, cwd=REPO, env=env)
    # Separately: an example also enables the dev-dependencies' features (tokio's test-util),
    # which must not leak into the sidecar binary being measured.
    subprocess.run(cargo + ["-p", "sidecar", "--example", "bare_hello"], check=True, cwd=REPO,
                   env=env)
    out = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / triple / "release"
    binaries = {"sidecar": out / "sidecar", "app": out / "app",
                "baseline": out / "examples" / "bare_hello"}
    for path in binaries.values():  # no .interp section: no dynamic loader, runs FROM scratch
        if b".interp\0" in path.read_bytes():
            raise RuntimeError(f"{path} is dynamically linked")
    return binaries


# key: label, unit, target: sidecar/baseline ratio_min or ratio_max, or the sidecar's own max.
FIGURES = {
    "requests_per_second": ("requests/s", "req/s", "ratio_min", 0.9),
    "requests_per_cpu_second": ("requests per CPU-second", "req/CPU-s", "ratio_min", 0.9),
    "latency_p50_ms": ("latency p50", "ms", None, None),
    "latency_p99_ms": ("latency p99", "ms", "ratio_max", 1.2),
    "idle_rss_mb": ("idle RSS", "MB", "max", 2),
    "peak_rss_mb": ("peak RSS under load", "MB", "max", 4),
    "startup_ms": ("spawn to first /healthz 200", "ms", None, None),
    "sigterm_idle_ms": ("SIGTERM to exit, idle", "ms", "max", 10),
    "sigterm_load_ms": ("SIGTERM to exit, under load", "ms", None, None),
    "sidecar_binary_mib": ("sidecar binary, static", "MiB", "max", 2),
    "app_binary_mib": ("app binary, static", "MiB", "max", 1.5),
    "local_overhead_ms": ("make local overhead", "ms", "max", 100),
}


def figure(key: str, samples: dict[str, list[float]]) -> dict:
    label, unit, kind, bound = FIGURES[key]
    sidecar, baseline = (statistics.median(samples[n]) if samples.get(n) else None
                         for n in ("sidecar", "baseline"))
    ratio = sidecar / baseline if sidecar is not None and baseline else None
    value = sidecar if kind == "max" else ratio
    passed = None if kind is None or value is None else \
        value >= bound if kind == "ratio_min" else value <= bound
    target = kind and {"ratio_min": ">= {:g}x", "ratio_max": "<= {:g}x",
                       "max": "<= {:g} " + unit}[kind].format(bound)
    return {"key": key, "label": label, "unit": unit, "sidecar": sidecar, "baseline": baseline,
            "ratio": ratio, "target": target, "pass": passed, "samples": samples}


def render(figures: list[dict]) -> str:
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"

    lines = [f"{'figure':<36}{'sidecar':>10}{'baseline':>10}{'ratio':>8}  target", "-" * 78]
    for f in figures:
        ratio, verdict = "-" if f["ratio"] is None else f"{f['ratio']:.2f}x", \
            {True: "pass", False: "FAIL", None: ""}[f["pass"]]
        lines.append(f"{f['label'] + ' (' + f['unit'] + ')':<36}{number(f['sidecar']):>10}"
                     f"{number(f['baseline']):>10}{ratio:>8}  {f['target'] or '':<10}  {verdict}")
    return "\n".join(line.rstrip() for line in lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # Many short rounds rather than a few long ones: on a shared machine a burst of someone
    # else's work lasts seconds, and with more alternations it lands in fewer medians.
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--duration", type=int, default=5, help="seconds of wrk per load run")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results.json")
    args = parser.parse_args()
    args.wrk = shutil.which("wrk")
    if args.wrk is None:
        say("wrk not found; install it (Debian/Ubuntu: apt-get install wrk)")
        return 1
    allowed = sorted(os.sched_getaffinity(0))
    args.cores = allowed[:2] if len(allowed) >= 2 else (None, None)
    args.boost = 10 if os.geteuid() == 0 else 0  # only root may lower a nice value
    method = (f"{args.rounds} round(s), medians; wrk: 1 thread, {CONNECTIONS} connections, "
              f"keep-alive, {args.duration:g}s; " + ("not pinned" if args.cores[0] is None else
              f"wrk on core {args.cores[0]}, server on core {args.cores[1]}") +
              (f", both at nice -{args.boost}" if args.boost else ", default priority"))
    # Only what changes how the servers behave is set; the rest is inherited.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIDECAR_", "RUST_LOG"))}
    env.update(RUST_LOG="info", LOG_FORMAT="text")
    samples: dict[str, dict[str, list[float]]] = {key: {} for key in FIGURES}
    try:
        binaries = build()
        local = dict(os.environ, APP_SLEEP="500ms", BIN_DIR=str(binaries["app"].parent))
        with tempfile.TemporaryDirectory() as args.tmp:
            args.script = Path(args.tmp) / "report.lua"
            args.script.write_text(WRK_REPORT)
            for n in range(args.rounds):
                # Alternated, so that a shared machine's drift does not always hit one server.
                for name in ("sidecar", "baseline")[:: 1 if n % 2 == 0 else -1]:
                    say(f"round {n + 1}/{args.rounds}: {name}")
                    for key, value in one_round(name, binaries[name], args, env).items():
                        samples[key].setdefault(name, []).append(value)
                # scripts/local.sh, what `make local` runs after its build, minus APP_SLEEP.
                started = time.perf_counter()
                subprocess.run([str(REPO / "scripts" / "local.sh")], env=local, check=True,
                               capture_output=True, text=True, timeout=120)
                samples["local_overhead_ms"].setdefault("sidecar", []).append(
                    (time.perf_counter() - started - 0.5) * 1e3)
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:  # numbers would mislead
        say(f"failed: {err}\n{getattr(err, 'stdout', '') or ''}{getattr(err, 'stderr', '') or ''}")
        return 1
    size = {name: [path.stat().st_size / MIB] for name, path in binaries.items()}
    samples["sidecar_binary_mib"] = {"sidecar": size["sidecar"], "baseline": size["baseline"]}
    samples["app_binary_mib"] = {"sidecar": size["app"]}
    figures = [figure(key, samples[key]) for key in FIGURES]
    table = render(figures)
    print(f"{table}\n\n{method}.\nBaseline: bare_hello. Ratio = sidecar / baseline.\nMB = 10^6 "
          "bytes (RSS), MiB = 2^20 bytes (files).\nmake local overhead: scripts/local.sh's time "
          "minus APP_SLEEP.")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    result = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "commit": commit.stdout.strip() or None, "method": method, "table": table,
              "binaries": {name: {"path": str(path), "bytes": path.stat().st_size, "static": True}
                           for name, path in binaries.items()},
              "figures": figures, "all_targets_met": all(f["pass"] is not False for f in figures)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    say(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

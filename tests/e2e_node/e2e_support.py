"""What the e2e-node tests share: the running node, the report, and the ways a test runs a Job
and reads what happened to it, from the API server, the kubelet's events, containerd's trace of
the kubelet's CRI calls (nanoseconds) and the containers' own log lines (nanoseconds)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from images_support import Followed, kubectl_objects, wait_for

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "e2e" / "node.sh"
KIND_DEMO = ROOT / "scripts" / "kind-demo.sh"
JOB_YAML = ROOT / "job.yaml"
LEGACY_YAML = ROOT / "job-legacy.yaml"
# The release the node runs (a row of e2e/releases), its minor's number, and its feature gates.
RELEASE = os.environ.get("K8S", "1.37")
NUMBER = int(RELEASE.split(".")[1])
GATES = os.environ.get("FEATURE_GATES", "")
# Native sidecars exist from 1.28 with the gate on, and from 1.29 on by default; the ordered
# shutdown (the app first, then the sidecars in reverse order) from 1.29 on (docs/versions.md).
SIDECARS = NUMBER >= 29 or "SidecarContainers=true" in GATES
ORDERED_SHUTDOWN = NUMBER >= 29
# Lines printed at the end of the run, under "e2e-node": what the tests measured.
REPORT: list[str] = []
# What each scenario of test_releases.py saw, by scenario: written to E2E_RESULTS (a JSON file)
# at the end of the run, for docs/versions.md's table.
RESULTS: dict[str, str] = {}


@dataclass
class Node:
    """The running node: its kubeconfig, context and binaries, as `e2e/node.sh up` printed them."""

    settings: dict[str, str]

    @property
    def env(self) -> dict[str, str]:
        """The environment of make demo's scripts, pointed at this node, with its kubectl first;
        without K8S, which picks a kind cluster file there."""
        inherited = {key: value for key, value in os.environ.items() if key != "K8S"}
        return {**inherited, **self.settings, "PATH": f"{self.settings['E2E_NODE_BIN']}:{os.environ['PATH']}"}

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(["kubectl", "--context", self.settings["KUBE_CONTEXT"], *args], input=stdin,
                              env=self.env, capture_output=True, text=True, timeout=120)
        assert not check or done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr.strip()}"
        return done

    def follow(self, *args: str) -> Followed:
        """A kubectl that streams (`logs -f`, `get -w`), read as it writes."""
        return Followed(subprocess.Popen(["kubectl", "--context", self.settings["KUBE_CONTEXT"], *args],
                                         env=self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def ctr(self, *args: str) -> str:
        return subprocess.run(
            [f"{self.settings['E2E_NODE_BIN']}/ctr", "--address", self.settings["CONTAINERD_ADDRESS"],
             "--namespace", "k8s.io", *args], capture_output=True, text=True, check=True, timeout=60).stdout

    def node_sh(self, verb: str) -> None:
        done = subprocess.run([NODE, verb, self.settings["E2E_NODE_DIR"]], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"e2e/node.sh {verb}: {done.stderr}"

    def log(self, component: str) -> str:
        return (Path(self.settings["E2E_NODE_DIR"]) / "logs" / f"{component}.log").read_text()


def now() -> datetime:
    return datetime.now(timezone.utc)


# --- the API's view ----------------------------------------------------------------------------

def statuses(pod: dict) -> list[dict]:
    return pod["status"].get("initContainerStatuses", []) + pod["status"].get("containerStatuses", [])


def status_of(pod: dict, container: str) -> dict:
    return next(status for status in statuses(pod) if status["name"] == container)


def container_id(pod: dict, container: str) -> str:
    return status_of(pod, container)["containerID"].split("://")[1]


def condition(item: dict, kind: str) -> dict | None:
    return next((c for c in item["status"].get("conditions", []) if c["type"] == kind and c["status"] == "True"), None)


def since(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def when(event: dict) -> datetime:
    """When an event happened: the scheduler's events have an eventTime, the kubelet's only a
    firstTimestamp, to the second."""
    return datetime.fromisoformat(event.get("eventTime") or event["firstTimestamp"])


def events_of(node, pod: str) -> list[dict]:
    return node.get("events", "--field-selector", f"involvedObject.name={pod}")["items"]


def pods_of(node, job: str) -> list[dict]:
    return node.get("pods", "-l", f"batch.kubernetes.io/job-name={job}")["items"]


def pod_events(node, job: dict | None) -> list[dict]:
    """The events of the Job's Pods, which outlive a Pod the Job deleted: the Job controller
    names each Pod it creates in an event of the Job's own."""
    if job is None:
        return []
    events = node.get("events")["items"]
    pods = {event["message"].removeprefix("Created pod: ") for event in events
            if event["involvedObject"].get("uid") == job["metadata"]["uid"] and event["reason"] == "SuccessfulCreate"}
    return [event for event in events if event["involvedObject"]["kind"] == "Pod" and event["involvedObject"]["name"] in pods]


def finished(node, job: str) -> dict | None:
    """The Job once it is Complete or Failed, else None."""
    item = node.get("job", job)
    return item if condition(item, "Complete") or condition(item, "Failed") else None


# --- containerd's trace of the kubelet's CRI calls, and the containers' own lines ----------------

def containerd_lines(node) -> list[tuple[datetime, str]]:
    lines = []
    for line in node.log("containerd").splitlines():
        stamp = re.match(r'time="([^"]+)"', line)
        if stamp:
            lines.append((datetime.fromisoformat(stamp.group(1)), line))
    return lines


def kubelet_lines(node) -> list[tuple[datetime, str]]:
    """The kubelet's log lines with their times: klog's header (`I1205 22:30:00.123456`) has the
    machine's local time and no year."""
    lines = []
    year = datetime.now().year
    for line in node.log("kubelet").splitlines():
        stamp = re.match(r"[IWEF](\d{4} \d{2}:\d{2}:\d{2}\.\d{6})", line)
        if stamp:
            lines.append((datetime.strptime(f"{year}{stamp.group(1)}", "%Y%m%d %H:%M:%S.%f").astimezone(), line))
    return lines


def metadata_name(line: str) -> str | None:
    """The name in a CRI call's metadata, as containerd 2 logs it (name:\"x\") or 1.7
    (&PodSandboxMetadata{Name:x,...})."""
    found = re.search(r'name:\\"([^\\]+)\\"|Metadata\{Name:([^,]+),', line)
    return found and (found.group(1) or found.group(2))


def first(lines, needle: str, sandbox: str = "") -> datetime:
    """The time of the first line with `needle` (and, if given, after the Pod's sandbox was
    created: containerd's log holds every run on the node)."""
    start = next((i for i, (_, line) in enumerate(lines) if sandbox and metadata_name(line) == sandbox), 0)
    return next(at for at, line in lines[start:] if needle in line)


def all_of(lines, needle: str) -> list[datetime]:
    return [at for at, line in lines if needle in line]


def stopped(lines, container: str) -> datetime:
    """When the kubelet asked containerd to stop the container: its SIGTERM is sent then."""
    return first(lines, f'StopContainer for \\"{container}\\" with timeout')


def exited(lines, container: str) -> tuple[datetime, int]:
    """When the container's process exited, and its exit status, from containerd's exit event
    (which leaves out a status of 0)."""
    # containerd 2 says "received container exit event", 1.7 "received exit event".
    exit_event = re.compile(rf'received (container )?exit event container_id:\\"{container}\\"')
    for at, line in lines:
        if exit_event.search(line):
            status = re.search(r"exit_status:(\d+)", line)
            return at, int(status.group(1)) if status else 0
    raise AssertionError(f"containerd never saw {container} exit")


def sandbox_of(lines, pod: str) -> str:
    """The id of the Pod's sandbox, from containerd's RunPodSandbox."""
    return next(re.search(r'returns sandbox id \\"(\w+)', line).group(1) for _, line in lines
                if "RunPodSandbox for" in line and "returns sandbox id" in line and metadata_name(line) == pod)


def created_in(lines, sandbox: str) -> list[str]:
    """The names of the containers created in the sandbox, once per CreateContainer."""
    return [metadata_name(line) for _, line in lines
            if f'CreateContainer within sandbox \\"{sandbox}\\"' in line and "returns container id" in line]


def parse_log(out: str) -> list[tuple[datetime, str]]:
    """`kubectl logs --timestamps` output: (time, text) per line."""
    return [(datetime.fromisoformat(stamp), text) for stamp, _, text in (line.partition(" ") for line in out.splitlines())
            if stamp]


def log_lines(node, pod: str, container: str) -> list[tuple[datetime, str]]:
    return parse_log(node.kubectl("logs", "--timestamps", pod, "-c", container).stdout)


def line_with(lines, needle: str) -> datetime:
    return next(at for at, text in lines if needle in text)


def ms(delta) -> str:
    return f"{delta.total_seconds() * 1000:.0f} ms"


# --- Jobs made from job.yaml -------------------------------------------------------------------

def variant(node, tmp_path: Path, name: str, *patches: dict | list, source: Path = JOB_YAML) -> Path:
    """job.yaml (or `source`) as Job `name`, changed by `kubectl patch --local`: a dict is a
    strategic merge patch (containers and their env merge by name), a list a JSON patch."""
    text = subprocess.run(["kubectl", "patch", "--local", "-f", source, "--type", "merge", "-o", "json",
                           "-p", json.dumps({"metadata": {"name": name}})],
                          env=node.env, capture_output=True, text=True, check=True).stdout
    for patch in patches:
        kind = "json" if isinstance(patch, list) else "strategic"
        text = subprocess.run(["kubectl", "patch", "--local", "-f", "-", "--type", kind, "-o", "json",
                               "-p", json.dumps(patch)], input=text,
                              env=node.env, capture_output=True, text=True, check=True).stdout
    path = tmp_path / f"{name}.json"
    path.write_text(text)
    return path


def container_env(container: str, **env: str) -> dict:
    """A strategic merge patch that sets these variables in the container's env."""
    entry = {"name": container, "env": [{"name": key, "value": value} for key, value in env.items()]}
    key = "initContainers" if container.startswith("sidecar") else "containers"
    return {"spec": {"template": {"spec": {key: [entry]}}}}


def app_env(**env: str) -> dict:
    return container_env("app", **env)


@dataclass
class Started:
    """A Job applied to the node, its Pod running the app."""

    node: object
    name: str
    pod: dict
    began: datetime

    def current(self) -> dict:
        """The Pod as it is now; `pod` stays as it was when the app was at work."""
        return self.node.get("pod", self.pod_name)

    @property
    def pod_name(self) -> str:
        return self.pod["metadata"]["name"]


def start(node, manifest: Path, working: str = "working") -> Started:
    """Applies `manifest` and returns once its app has logged `working`: the sidecar has started
    and answered, and the app is at its work."""
    name = json.loads(manifest.read_text())["metadata"]["name"]
    node.kubectl("delete", "job", name, "--ignore-not-found", "--cascade=foreground", "--wait=true")
    began = now()
    node.kubectl("apply", "-f", str(manifest))

    def app_working():
        for pod in pods_of(node, name):
            app = next((s for s in statuses(pod) if s["name"] == "app" and "running" in s.get("state", {})), None)
            if app and working in node.kubectl("logs", pod["metadata"]["name"], "-c", "app", check=False).stdout:
                return pod
        return None

    pod = wait_for(f"job/{name}'s app at work", app_working, 90, interval=0.2)
    return Started(node, name, pod, began)


def await_end(node, name: str, seconds: float) -> dict:
    """The Job once Complete or Failed, polled every 0.1 s: when it ended is known to that."""
    return wait_for(f"job/{name} to end", lambda: finished(node, name), seconds, interval=0.1)


def main_pid(node, pod: dict, container: str) -> int:
    """The container's main process, as the host sees it."""
    cid = container_id(pod, container)
    return int(next(line.split()[1] for line in node.ctr("tasks", "list").splitlines() if line.startswith(cid)))


def signal_container(node, pod: dict, container: str, sig: signal.Signals) -> datetime:
    """Sends `sig` to the container's main process, as the host's root can."""
    os.kill(main_pid(node, pod, container), sig)
    return now()


# --- whole runs through the demo's own code ------------------------------------------------------

@dataclass
class Run:
    """One `scripts/kind-demo.sh run`, and what was seen of it on the node while it ran."""

    exit_code: int
    stdout: str
    stderr: str
    seconds: float
    objects: list[dict]
    events: list[dict]
    logs: str = ""
    watched: list[str] = field(default_factory=list)
    processes: dict[str, dict] = field(default_factory=dict)
    ready: bool = False

    def of_kind(self, kind: str) -> dict:
        return next(item for item in self.objects if item["kind"] == kind)

    def status(self, container: str) -> dict:
        return status_of(self.of_kind("Pod"), container)


def process_of(node, pod: dict, container: str) -> dict:
    """The container's main process as the kernel sees it: user, root mount, cgroup limits."""
    proc = Path("/proc") / str(main_pid(node, pod, container))
    uid = next(line.split()[1:3] for line in (proc / "status").read_text().splitlines() if line.startswith("Uid:"))
    root = next(line.split() for line in (proc / "mountinfo").read_text().splitlines() if line.split()[4] == "/")
    cgroups = cgroup_dirs(proc)
    if "memory" in cgroups:  # cgroup v1: a hierarchy per controller
        memory = int((cgroups["memory"] / "memory.limit_in_bytes").read_text())
        quota, period = (int((cgroups["cpu"] / name).read_text()) for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us"))
    else:  # cgroup v2: one hierarchy
        memory = int((cgroups[""] / "memory.max").read_text())
        quota, period = (int(value) for value in (cgroups[""] / "cpu.max").read_text().split())
    return {"uid": uid, "root_options": root[5].split(","), "memory": memory, "cpus": quota / period}


def cgroup_dirs(proc: Path) -> dict[str, Path]:
    """The process's cgroup directory per v1 controller ("cpu", "memory", ...), or "" on v2."""
    found = {}
    for line in (proc / "cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            mount = {"": "", "cpu": "cpu", "cpuacct": "cpuacct", "memory": "memory"}.get(controller)
            if mount is not None:
                found[controller] = Path(f"/sys/fs/cgroup/{mount}{path}".replace("//", "/"))
    return found


def pod_with_running(node, job: str, containers: set[str]) -> dict | None:
    for pod in pods_of(node, job):
        if containers <= {s["name"] for s in statuses(pod) if "running" in s.get("state", {})}:
            return pod
    return None


def record_stem(name: str) -> Path:
    """Where E2E_RECORD=DIR keeps a run's files: DIR/NAME-MINOR, before .json or .logs."""
    return Path(os.environ["E2E_RECORD"]) / f"{name}-{os.environ.get('K8S', '1.37')}"


def run_job(node, tmp_path: Path, mode: str, manifest: Path, inspect: set[str] = frozenset(),
            record: str = "") -> Run:
    """Runs `scripts/kind-demo.sh run MODE MANIFEST` against the node. Meanwhile watches the Job
    as `kubectl get job -w` prints it, waits for the Pod's Ready condition, and, once every
    container in `inspect` runs, reads their processes. With E2E_RECORD=DIR, the Job and Pod
    JSON the run recorded, and its containers' logs, are kept as DIR/RECORD-MINOR.json and .logs
    (tests/fixtures/ comes from there)."""
    name = subprocess.run(["kubectl", "patch", "--local", "-f", manifest, "--type", "merge", "-p", "{}",
                           "-o", "jsonpath={.metadata.name}"], env=node.env, capture_output=True, text=True,
                          check=True).stdout
    recorded, recorded_logs = tmp_path / "run.json", tmp_path / "run.logs"
    started = time.monotonic()
    demo = subprocess.Popen([KIND_DEMO, "run", mode, manifest],
                            env={**node.env, "RUN_JSON": str(recorded), "RUN_LOGS": str(recorded_logs)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watch = ready = None
    try:
        wait_for(f"job/{name} created", lambda: node.kubectl("get", "job", name, check=False).returncode == 0, 60)
        watch = node.follow("get", "job", name, "-w")
        wait_for(f"a Pod of job/{name}", lambda: pods_of(node, name), 60, interval=0.2)
        ready = subprocess.Popen(["kubectl", "--context", node.settings["KUBE_CONTEXT"], "wait", "--for=condition=Ready",
                                  "pod", "-l", f"batch.kubernetes.io/job-name={name}", "--timeout=90s"],
                                 env=node.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes = {}
        if inspect:
            pod = wait_for(f"{sorted(inspect)} running", lambda: pod_with_running(node, name, set(inspect)), 90, interval=0.2)
            processes = {container: process_of(node, pod, container) for container in inspect}
        stdout, stderr = demo.communicate(timeout=300)
        seconds = time.monotonic() - started
        watched = [line.rstrip() for line in watch.stop().splitlines()]
        objects = kubectl_objects(recorded.read_text()) if recorded.exists() else []
        logs = recorded_logs.read_text() if recorded_logs.exists() else ""
        if os.environ.get("E2E_RECORD") and record and recorded.exists():
            stem = record_stem(record)
            shutil.copy(recorded, f"{stem}.json")
            if logs:
                shutil.copy(recorded_logs, f"{stem}.logs")
        events = pod_events(node, next((item for item in objects if item["kind"] == "Job"), None))
        return Run(demo.returncode, stdout, stderr, seconds, objects, events, logs, watched, processes,
                   ready=ready.wait(timeout=120) == 0)
    finally:
        for process in (demo, ready, watch and watch.process):
            if process and process.poll() is None:
                process.kill()
                process.wait()

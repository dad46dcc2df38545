"""scripts/kind-demo.sh without a cluster, against stand-ins that record their calls: kind,
make, docker, podman, the cluster side of kubectl (its offline parts are the real kubectl), and
`ctr`, which does what a kind node does with an archive: `ctr images import --all-platforms`,
stopping at the first blob the archive names but does not hold (kubernetes-sigs/kind#3795)."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from images_support import kubectl_objects

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "kind-demo.sh"
DEMO = ROOT / "scripts" / "demo.sh"
FIXTURES = ROOT / "tests" / "fixtures"
# What the script may use besides kind, kubectl, make and the container tool.
BASICS = ["bash", "env", "sort", "head", "tail", "cut", "sed", "grep", "mktemp", "mkdir", "rm", "dirname",
          "tr", "awk"]
APP = "ghcr.io/example/native-sidecar-job/app:0.1.0"
SIDECAR = "ghcr.io/example/native-sidecar-job/sidecar:0.1.0"

PRELUDE = f"""#!{sys.executable}
import hashlib, io, json, os, subprocess, sys, tarfile, time
from pathlib import Path
args = sys.argv[1:]
name = Path(sys.argv[0]).name
state = Path(os.environ["FAKE_STATE"])
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join([name, *args]) + "\\n")
"""

# A kind that answers from $FAKE_STATE and loads archives the way a node does: into `ctr`.
FAKE_KIND = PRELUDE + """
def flag(name):
    return args[args.index(name) + 1]
def ctr(archive):
    with open(archive, "rb") as f:
        sys.exit(subprocess.run(["ctr", "--namespace=k8s.io", "images", "import", "--all-platforms",
                                 "--digests", "-"], stdin=f).returncode)
clusters = state / "clusters"
if args[0] == "version":
    print(f"kind {os.environ['FAKE_KIND_VERSION']} go1.25.1 linux/amd64")
elif args[:2] == ["get", "clusters"]:
    print(clusters.read_text() if clusters.exists() else "", end="")
elif args[:2] == ["create", "cluster"]:
    # kind writes the cluster into the kubeconfig and makes it the current context.
    clusters.write_text(flag("--name") + "\\n")
    (state / "current-context").write_text("kind-" + flag("--name"))
elif args[:2] == ["delete", "cluster"]:
    clusters.unlink(missing_ok=True)
elif args[:2] == ["load", "image-archive"]:
    ctr(args[-1])
elif args[:2] == ["load", "docker-image"]:
    # kind v0.25 to v0.33: `docker save` of the images, as they are, into the node's ctr.
    images = [a for a in args[2:] if a != "--name" and a != flag("--name")]
    archive = state / "kind-images.tar"
    subprocess.run([os.environ.get("KIND_EXPERIMENTAL_PROVIDER", "docker"), "save", "-o",
                    str(archive), *images], check=True)
    ctr(archive)
"""

# What `ctr images import --all-platforms` needs: every blob that index.json (OCI) or
# manifest.json (docker-archive) names, through every index, for every platform.
FAKE_CTR = PRELUDE + """
tar = tarfile.open(fileobj=io.BytesIO(sys.stdin.buffer.read()))
names = set(tar.getnames())
def blob(digest):
    path = "blobs/sha256/" + digest.split(":")[1]
    if path not in names:
        sys.exit(f"ctr: content digest {digest}: not found")
    return json.load(tar.extractfile(path))
def walk(desc):
    body = blob(desc["digest"])
    for part in [body.get("config")] + body.get("layers", []):
        if part:
            blob(part["digest"])
    platform = desc.get("platform")
    return [p for child in body.get("manifests", []) for p in walk(child)] + (
        [platform["os"] + "/" + platform["architecture"]] if platform else [])
if "index.json" in names:
    index = json.load(tar.extractfile("index.json"))
    for desc in index["manifests"]:
        platforms = ",".join(walk(desc))
        log_name = desc.get("annotations", {}).get("io.containerd.image.name")
        open(os.environ["FAKE_LOG"], "a").write(f"ctr imported {log_name} {platforms}\\n")
else:
    for entry in json.load(tar.extractfile("manifest.json")):
        for path in [entry["Config"], *entry["Layers"]]:
            if path not in names:
                sys.exit(f"ctr: {path}: not found")
        open(os.environ["FAKE_LOG"], "a").write(f"ctr imported {entry['RepoTags'][0]} docker-archive\\n")
"""

# docker with the containerd image store: an image is an index of every platform it was built
# for plus its attestations, and this engine holds the blobs of $FAKE_LOCAL platforms only.
# podman: one image per docker-archive.
FAKE_ENGINE = PRELUDE + """
def add(tar, path, data):
    info = tarfile.TarInfo(path)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
def blob(tar, body, present=True):
    data = json.dumps(body).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if present:
        add(tar, "blobs/sha256/" + digest[7:], data)
    return digest
def manifest(tar, image, arch, present):
    config = blob(tar, {"architecture": arch, "os": "linux", "image": image}, present)
    layer = blob(tar, {"layer": image + arch}, present)
    body = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"digest": config}, "layers": [{"digest": layer}]}
    return {"mediaType": body["mediaType"], "digest": blob(tar, body, present),
            "platform": {"os": "linux", "architecture": arch}}
local = os.environ.get("FAKE_LOCAL", "amd64").split()
if args[0] == "info":
    sys.exit(int(os.environ.get("FAKE_ENGINE_INFO", "0")))
elif args[0] == "version":
    print(os.environ.get("FAKE_DOCKER_API", "1.51"))
elif args[0] == "run":
    print("Error: runc: the stand-in's answer", file=sys.stderr)
    sys.exit(int(os.environ.get("FAKE_RUN_RC", "127")))
elif args[:2] == ["image", "inspect"]:
    sys.exit(0 if args[2] in os.environ.get("FAKE_IMAGES", args[2]).split() else 1)
elif args[0] == "save":
    out = args[args.index("-o") + 1]
    platform = args[args.index("--platform") + 1] if "--platform" in args else None
    images = [a for a in args[1:] if a not in ("-o", out, "--platform", platform, "--format",
                                               "docker-archive")]
    with tarfile.open(out, "w") as tar:
        if name == "podman":
            entries = []
            for image in images:
                add(tar, image + ".json", b"{}")
                add(tar, image + ".layer.tar", b"")
                entries.append({"Config": image + ".json", "RepoTags": [image],
                                "Layers": [image + ".layer.tar"]})
            add(tar, "manifest.json", json.dumps(entries).encode())
            sys.exit(0)
        top = []
        for image in images:
            annotations = {"io.containerd.image.name": image}
            if platform:
                arch = platform.split("/")[1]
                if arch not in local:
                    sys.exit(f"Error response from daemon: no {platform} content for {image}")
                top.append({**manifest(tar, image, arch, True), "annotations": annotations})
                continue
            children = [manifest(tar, image, arch, arch in local) for arch in ("amd64", "arm64")]
            attestation = blob(tar, {"config": None, "layers": []}, False)
            children.append({"digest": attestation, "platform": {"os": "unknown",
                                                                 "architecture": "unknown"}})
            index = {"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children}
            top.append({"mediaType": index["mediaType"], "digest": blob(tar, index),
                        "annotations": annotations})
        add(tar, "index.json", json.dumps({"schemaVersion": 2, "manifests": top}).encode())
"""

FAKE_MAKE = PRELUDE + "sys.exit(int(os.environ.get('FAKE_MAKE_RC', '0')))\n"

# The cluster side of kubectl, from the Job and Pod in $FAKE_STATE/job.json and pod.json. A
# wait whose condition the Job does not meet blocks, as the real one does, until killed.
FAKE_KUBECTL = PRELUDE + """
real = os.environ["REAL_KUBECTL"]
def local(path, *rest):
    os.execv(real, [real, "patch", "--local", "-f", str(path), "--type", "merge", "-p", "{}", *rest])
def job():
    return json.loads((state / "job.json").read_text())
if args[0] == "version" and os.environ.get("FAKE_KUBECTL_VERSION"):
    print("clientVersion:\\n  gitVersion: " + os.environ["FAKE_KUBECTL_VERSION"])
    sys.exit(0)
if args[0] in ("version", "patch"):
    os.execv(real, [real, *args])
if args[:2] == ["config", "current-context"]:
    path = state / "current-context"
    print(path.read_text()) if path.exists() else sys.exit("error: current-context is not set")
    sys.exit(0)
if args[:2] == ["config", "use-context"]:
    (state / "current-context").write_text(args[2])
    sys.exit(0)
context = os.environ.get("FAKE_CONTEXT", "kind-t")
if args[:2] != ["--context", context]:
    sys.exit(f"fake kubectl: a cluster call without --context {context}: {args}")
verb, rest = args[2], args[3:]
if verb in ("delete", "apply", "logs"):
    sys.exit(0)
if verb == "get" and rest[0] == "nodes":
    print(os.environ["FAKE_NODE_ARCH"] if "architecture" in rest[-1] else os.environ["FAKE_NODE_VERSION"])
elif verb == "get" and rest[0] == "events":
    print("LAST SEEN   TYPE     REASON    OBJECT   MESSAGE")
elif verb == "get" and rest[0] == "pods":
    pod = state / "pod.json"
    print("pod/" + json.loads(pod.read_text())["metadata"]["name"] if pod.exists() else "", end="")
elif verb == "get" and rest[:2] == ["job", job()["metadata"]["name"]]:
    local(state / "job.json", *rest[2:])
elif verb == "get" and rest[-2:] == ["-o", "json"]:
    items = [json.loads((state / (r.split("/")[0] + ".json")).read_text()) for r in rest[:-2]]
    print(json.dumps(items[0] if len(items) == 1 else {"kind": "List", "apiVersion": "v1", "items": items}))
elif verb == "wait":
    wanted = {"--for=condition=complete": "Complete", "--for=condition=failed": "Failed"}.get(rest[0])
    if wanted and not any(c["type"] == wanted and c["status"] == "True"
                          for c in job()["status"].get("conditions", [])):
        time.sleep(120)
    if wanted:
        # Returns once the other wait of the race has started (or after 10 s): so the log
        # shows whether the script started both, whichever the machine runs first.
        other = "condition=failed" if wanted == "Complete" else "condition=complete"
        deadline = time.monotonic() + 10
        while other not in Path(os.environ["FAKE_LOG"]).read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
else:
    sys.exit(f"fake kubectl: unexpected: {args}")
"""


def objects(fixture):
    """The Job and the Pod in a fixture, by kind."""
    return {o["kind"]: o for o in kubectl_objects((FIXTURES / fixture).read_text())}


@pytest.fixture
def env(tmp_path):
    real_kubectl = shutil.which("kubectl")
    if not real_kubectl:
        pytest.fail("kubectl is required: the script reads manifests with `kubectl patch --local`")
    bin_dir, state, scratch = tmp_path / "bin", tmp_path / "state", tmp_path / "tmp"
    for path in (bin_dir, state, scratch):
        path.mkdir()
    for tool in BASICS:
        (bin_dir / tool).symlink_to(shutil.which(tool))
    log = tmp_path / "log"
    log.touch()

    class Env(dict):
        state_dir = state

        def install(self, *tools):
            fakes = {"kind": FAKE_KIND, "kubectl": FAKE_KUBECTL, "ctr": FAKE_CTR, "make": FAKE_MAKE,
                     "docker": FAKE_ENGINE, "podman": FAKE_ENGINE}
            for tool in tools:
                (bin_dir / tool).write_text(fakes[tool])
                (bin_dir / tool).chmod(0o755)

        def set_run(self, job, pod=None):
            (state / "job.json").write_text(json.dumps(job))
            if pod:
                (state / "pod.json").write_text(json.dumps(pod))

        def run(self, *args, script=SCRIPT):
            return subprocess.run(["bash", str(script), *args], env=self, capture_output=True,
                                  text=True, timeout=60, check=False)

        def calls(self, tool=""):
            return [c for c in log.read_text().splitlines() if c.startswith(tool)]

        def leftovers(self):
            return list(scratch.iterdir())

    return Env(PATH=str(bin_dir), HOME=str(tmp_path), TMPDIR=str(scratch), FAKE_LOG=str(log),
               FAKE_STATE=str(state), FAKE_KIND_VERSION="v0.33.0", FAKE_NODE_VERSION="v1.37.0",
               FAKE_NODE_ARCH="amd64", REAL_KUBECTL=real_kubectl, KIND_CLUSTER="t",
               CONTAINER_TOOL="docker")


@pytest.fixture
def ready(env):
    env.install("kind", "kubectl", "docker", "ctr", "make")
    return env


# --- one message names every missing tool, with its minimum version -----------------------


def test_nothing_installed(env):
    result = env.run("demo")
    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        "kind-demo: the kind demo needs:",
        "  - kind v0.33.0 or newer: https://kind.sigs.k8s.io/docs/user/quick-start/#installation",
        "  - kubectl v1.29.0 or newer: https://kubernetes.io/docs/tasks/tools/",
        "  - docker with a running engine (`docker info` must work): "
        "https://docs.docker.com/engine/install/ or https://podman.io/docs/installation",
    ]
    assert env.calls() == []


def test_old_tools_are_named_with_what_was_found(ready):
    ready.update(FAKE_KIND_VERSION="v0.32.0", FAKE_DOCKER_API="1.47", FAKE_KUBECTL_VERSION="v1.28.15")
    result = ready.run("demo")
    assert result.returncode == 3
    assert "  - kind v0.33.0 or newer (found v0.32.0): " in result.stderr
    # 1.28's kubectl cannot wait on a filtered jsonpath, which the legacy demo does.
    assert "  - kubectl v1.29.0 or newer (found v1.28.15): " in result.stderr
    assert ("  - the Docker API 1.48 or newer (found 1.47): Docker 28.0 or newer (for "
            "`docker save --platform`): https://docs.docker.com/engine/install/") in result.stderr.splitlines()
    # Nothing ran but the probes.
    assert [c.split()[:2] for c in ready.calls()] == [["kind", "version"], ["kubectl", "version"], ["docker", "info"],
                                                      ["docker", "version"]]


def test_a_stopped_engine(ready):
    ready["FAKE_ENGINE_INFO"] = "1"
    result = ready.run("check")
    assert result.returncode == 3
    assert "  - docker with a running engine (`docker info` must work)" in result.stderr


@pytest.mark.parametrize(("k8s", "kind", "config"), [
    ("1.28", "v0.25.0", "cluster-1.28.yaml"),
    ("1.35", "v0.33.0", "cluster-1.35.yaml"),
    ("1.37", "v0.33.0", "cluster.yaml"),
])
def test_each_version_asks_for_its_kind_release_and_uses_its_config(ready, k8s, kind, config):
    ready.update(K8S=k8s, FAKE_KIND_VERSION="v0.24.0")
    result = ready.run("up")
    assert result.returncode == 3
    assert f"kind {kind} or newer (found v0.24.0)" in result.stderr
    ready["FAKE_KIND_VERSION"] = kind
    assert ready.run("up").returncode == 0
    assert f"kind create cluster --name t --config {ROOT / config} --wait 120s" in ready.calls()
    assert ready.run("config").stdout == f"{ROOT / config}\n"


@pytest.mark.parametrize(("setting", "value"), [("K8S", "1.30"), ("CONTAINER_TOOL", "nerdctl")])
def test_unsupported_settings(ready, setting, value):
    ready[setting] = value
    result = ready.run("check")
    assert result.returncode == 2
    assert value in result.stderr


def test_ready(ready):
    result = ready.run("check")
    assert (result.returncode, result.stderr) == (0, "kind-demo: kind, kubectl and docker are ready\n")


# --- the cluster: created only if missing; the current context stays ------------------------


def test_up_puts_the_current_context_back(ready):
    (ready.state_dir / "current-context").write_text("work")
    assert ready.run("up").returncode == 0
    assert ready.calls("kind create")
    assert (ready.state_dir / "current-context").read_text() == "work"


def test_up_without_a_current_context_leaves_kinds(ready):
    assert ready.run("up").returncode == 0
    assert (ready.state_dir / "current-context").read_text() == "kind-t"
    assert not ready.calls("kubectl config use-context")


# The minor decides what the demo shows: a node of another patch release (kind create --image)
# serves it too; one of another minor does not.
@pytest.mark.parametrize(("running", "code", "message"), [
    ("v1.37.0", 0, "cluster t is already up (v1.37.0)"),
    ("v1.37.2", 0, "cluster t is already up (v1.37.2)"),
    ("v1.28.15", 1, "runs v1.28.15, not Kubernetes v1.37 (cluster.yaml)"),
])
def test_up_takes_a_cluster_already_up_whose_minor_is_the_cluster_files(ready, running, code, message):
    (ready.state_dir / "clusters").write_text("other\nt\n")
    ready["FAKE_NODE_VERSION"] = running
    result = ready.run("up")
    assert result.returncode == code
    assert message in result.stderr
    assert not ready.calls("kind create")


# --- the load path: one single-platform archive per image, `kind load image-archive` --------


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_load_with_docker_saves_the_nodes_platform_only(ready, arch):
    ready.update(FAKE_NODE_ARCH=arch, FAKE_LOCAL="amd64 arm64")
    result = ready.run("load")
    assert result.returncode == 0, result.stderr
    saves, loads = ready.calls("docker save"), ready.calls("kind load")
    assert [s.split()[:4] for s in saves] == [["docker", "save", "--platform", f"linux/{arch}"]] * 2
    assert [s.split()[-1] for s in saves] == [SIDECAR, APP]
    assert [c.split()[:5] for c in loads] == [["kind", "load", "image-archive", "--name", "t"]] * 2
    # Each archive held the node's platform alone.
    assert ready.calls("ctr imported") == [f"ctr imported {SIDECAR} linux/{arch}",
                                           f"ctr imported {APP} linux/{arch}"]
    assert ready.leftovers() == [], "the archives were left behind"


def test_load_with_podman_uses_docker_archives(ready):
    ready.install("podman")
    ready["CONTAINER_TOOL"] = "podman"
    result = ready.run("load")
    assert result.returncode == 0, result.stderr
    saves = ready.calls("podman save")
    assert [s.split()[:5] for s in saves] == [["podman", "save", "--format", "docker-archive", "-o"]] * 2
    assert [c.split()[:3] for c in ready.calls("kind load")] == [["kind", "load", "image-archive"]] * 2
    assert ready.calls("ctr imported") == [f"ctr imported {SIDECAR} docker-archive",
                                           f"ctr imported {APP} docker-archive"]
    assert ready.leftovers() == []


def test_the_old_path_fails_against_ctr_and_the_new_one_passes(ready):
    # A multi-platform image of which this engine holds the amd64 blobs only: what
    # `docker build --platform linux/amd64,linux/arm64` leaves in the containerd image store.
    old = subprocess.run(["kind", "load", "docker-image", "--name", "t", APP], env=ready,
                         capture_output=True, text=True, timeout=60, check=False)
    assert old.returncode != 0
    assert "ctr: content digest sha256:" in old.stderr and "not found" in old.stderr
    assert ready.run("load").returncode == 0
    assert f"ctr imported {APP} linux/amd64" in ready.calls("ctr imported")


def test_load_names_a_missing_image(ready):
    ready["FAKE_IMAGES"] = SIDECAR
    result = ready.run("load")
    assert result.returncode == 1
    assert f"kind-demo: docker has no image {APP}; run 'make images' first" in result.stderr


def test_a_platform_the_engine_lacks_fails_the_load(ready):
    ready["FAKE_NODE_ARCH"] = "arm64"
    result = ready.run("load")
    assert result.returncode != 0
    assert "no linux/arm64 content" in result.stderr
    assert not ready.calls("kind load")
    assert ready.leftovers() == []


# --- the demos, in one pass ------------------------------------------------------------------


def test_demo_runs_in_one_pass_and_passes(ready):
    run = objects("native-1.37.json")
    ready.set_run(run["Job"], run["Pod"])
    result = ready.run("demo")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("PASS: job Complete; app and sidecar both exited 0")
    steps = [c for c in ready.calls() if not c.startswith(("kubectl version", "kubectl patch",
                                                          "kubectl config", "docker info",
                                                          "docker version", "docker image", "ctr"))]
    kc = "kubectl --context kind-t"
    assert steps[:3] == ["kind version", "kind get clusters",
                         f"kind create cluster --name t --config {ROOT}/cluster.yaml --wait 120s"]
    assert steps[3:4] == [f"make -C {ROOT} images CONTAINER_TOOL=docker"]
    assert f"{kc} delete job native-sidecar-job --ignore-not-found --cascade=foreground --wait=true" in steps
    assert f"{kc} apply -f {ROOT}/job.yaml" in steps
    assert f"{kc} wait --for=condition=complete job/native-sidecar-job --timeout=180s" in steps
    assert f"{kc} wait --for=condition=failed job/native-sidecar-job --timeout=180s" in steps
    assert (f"{kc} get pods -l batch.kubernetes.io/controller-uid="
            "3aebe6eb-dfab-44eb-b444-2e514083725a -o name") in steps
    assert steps.index(f"{kc} apply -f {ROOT}/job.yaml") > steps.index(
        f"make -C {ROOT} images CONTAINER_TOOL=docker")


def test_the_losing_wait_is_ended(ready):
    run = objects("native-1.37.json")
    ready.set_run(run["Job"], run["Pod"])
    assert ready.run("demo").returncode == 0
    # The stand-in's wait for Failed never ends by itself; the script must end it.
    fake = (Path(ready["PATH"]) / "kubectl").as_posix().encode()

    def left():
        found = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if fake in cmdline.read_bytes():
                    found.append(cmdline.parent.name)
            except OSError:
                pass
        return found
    deadline = time.monotonic() + 10
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left() == [], "a kubectl wait was left running"


def test_demo_fails_when_the_app_fails(ready):
    run = objects("native-1.37.json")
    run["Pod"]["status"]["containerStatuses"][0]["state"]["terminated"].update(exitCode=1, reason="Error")
    run["Job"]["status"]["conditions"] = [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                                           "lastTransitionTime": "2026-12-02T06:47:59Z"}]
    ready.set_run(run["Job"], run["Pod"])
    result = ready.run("demo")
    assert result.returncode == 1
    assert "2026-12-02T06:47:56Z app exited       exit code 1 (Error)" in result.stdout.splitlines()
    assert "FAIL: app did not exit 0" in result.stdout.splitlines()


def test_no_pod_exits_1(ready):
    ready.set_run(objects("native-1.37.json")["Job"])
    result = ready.run("demo")
    assert result.returncode == 1
    assert "kind-demo: job/native-sidecar-job has no Pod" in result.stderr


def test_a_failed_image_build_stops_the_demo(ready):
    ready["FAKE_MAKE_RC"] = "2"
    result = ready.run("demo")
    assert result.returncode == 2
    assert not ready.calls("kind load")


def test_demo_legacy_keeps_the_pod_before_the_deadline_deletes_it(ready):
    run = objects("legacy-1.37.json")
    ready.set_run(run["Job"], run["Pod"])
    result = ready.run("demo-legacy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("PASS: app exited 0, yet the job Failed with DeadlineExceeded")
    kc = "kubectl --context kind-t"
    cluster = [c for c in ready.calls(kc) if " get nodes " not in c]
    pod = "pod/legacy-sidecar-job-v62kv"
    cluster[7:9] = sorted(cluster[7:9])  # the two waits that race start in either order
    assert cluster[2:] == [
        f"{kc} get job legacy-sidecar-job -o jsonpath={{.metadata.uid}}",
        f"{kc} wait --for=jsonpath={{.status.active}}=1 job/legacy-sidecar-job --timeout=180s",
        f"{kc} get pods -l batch.kubernetes.io/controller-uid=7bc5b935-880c-42f4-9f95-570d406b650c -o name",
        # The app's own end, not the Pod's Ready condition, which one slow probe also turns false.
        f"{kc} wait --for=jsonpath={{.status.containerStatuses[?(@.name==\"app\")].state.terminated.reason}}=Completed"
        f" {pod} --timeout=180s",
        f"{kc} get {pod} -o json",
        f"{kc} wait --for=condition=complete job/legacy-sidecar-job --timeout=180s",
        f"{kc} wait --for=condition=failed job/legacy-sidecar-job --timeout=180s",
        f"{kc} get job/legacy-sidecar-job -o json",
        f"{kc} get events --field-selector involvedObject.name=legacy-sidecar-job-v62kv --sort-by=.lastTimestamp",
    ]
    assert ready.leftovers() == []


def test_every_cluster_call_names_the_context(ready):
    run = objects("native-1.37.json")
    ready.set_run(run["Job"], run["Pod"])
    assert ready.run("demo").returncode == 0
    # The stand-in refuses a cluster call without --context; this checks the log agrees.
    cluster = [c for c in ready.calls("kubectl") if not c.startswith(("kubectl version", "kubectl patch",
                                                                      "kubectl config"))]
    assert cluster and all(c.startswith("kubectl --context kind-t ") for c in cluster)


def test_run_needs_kubectl_alone_and_uses_the_context_it_is_given(env):
    # What make e2e-node runs on its node: no kind, no engine, another context.
    env.install("kubectl")
    env["KUBE_CONTEXT"] = env["FAKE_CONTEXT"] = "kubernetes-admin@e2e-node"
    run = objects("native-1.37.json")
    env.set_run(run["Job"], run["Pod"])
    result = env.run("run", "native", str(ROOT / "job.yaml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("PASS: job Complete")
    cluster = [c for c in env.calls("kubectl") if not c.startswith(("kubectl version", "kubectl patch"))]
    assert cluster and all(c.startswith("kubectl --context kubernetes-admin@e2e-node ") for c in cluster)


def test_logs_and_down(ready):
    assert ready.run("logs").returncode == 0
    assert ready.calls("kubectl --context kind-t logs") == [
        "kubectl --context kind-t logs job/native-sidecar-job --all-containers --prefix"]
    assert ready.run("down").returncode == 0
    assert ready.calls("kind delete") == ["kind delete cluster --name t"]


def test_usage(ready):
    for args in ([], ["frobnicate"], ["timeline", "both", str(FIXTURES / "native-1.37.json")]):
        result = ready.run(*args)
        assert result.returncode == 2
        assert "scripts/kind-demo.sh demo | demo-legacy" in result.stderr



# --- make demo without kind: can the engine start a container? Asked before any build ------


def test_demo_sh_runs_make_pod_when_the_engine_starts_containers(env):
    env.install("docker", "make", "kubectl")
    result = env.run(script=DEMO)
    assert result.returncode == 0, result.stderr
    assert "demo: running the lifecycle in containers with docker instead (make pod)" in result.stderr
    probe = "localhost/native-sidecar-engine-probe"
    calls = [c for c in env.calls() if not c.startswith(("docker info", "docker version", "kubectl"))]
    assert [c.split()[:3] for c in calls[:4]] == [["docker", "import", "-"], ["docker", "run", "--detach"],
                                                  ["docker", "rm", "--force"], ["docker", "rmi", probe]]
    assert calls[1].endswith(f"--read-only --cap-drop=ALL --security-opt=no-new-privileges {probe} /absent")
    assert calls[4:] == [f"make --no-print-directory -C {ROOT} pod CONTAINER_TOOL=docker"]


def test_demo_sh_says_why_before_building_when_the_engine_cannot(env):
    env.install("docker", "make", "kubectl")
    env["FAKE_RUN_RC"] = "126"
    result = env.run(script=DEMO)
    assert ("demo: docker cannot start a container here (Error: runc: the stand-in's answer): "
            "running the lifecycle with plain processes instead (make local)") in result.stderr
    # And where that engine's fix is.
    assert ("demo: to fix docker: `docker info`, and https://docs.docker.com/engine/daemon/troubleshoot/"
            in result.stderr)
    # No cargo on this PATH either, so nothing runs; and nothing was built.
    assert result.returncode == 3
    assert "no cargo either" in result.stderr
    assert env.calls("make") == [] and env.calls("docker rmi")


def test_demo_sh_without_kubectl_skips_make_pod_before_building(env):
    # make pod reads job.yaml with kubectl: without it, make local, said up front.
    env.install("docker", "make")
    result = env.run(script=DEMO)
    assert ("demo: make pod needs kubectl to read job.yaml: running the lifecycle with plain "
            "processes instead (make local)") in result.stderr
    # No cargo on this PATH either, so nothing runs; no container was tried, nothing built.
    assert result.returncode == 3
    assert env.calls("make") == [] and env.calls("docker run") == [] and env.calls("docker import") == []


def test_down_needs_kind_alone(env):
    # An engine too old for the load path, and no kubectl: deleting the cluster still works.
    env.install("kind", "docker")
    env["FAKE_DOCKER_API"] = "1.41"
    result = env.run("down")
    assert result.returncode == 0, result.stderr
    assert env.calls("kind delete") == ["kind delete cluster --name t"]

"""Helpers for test_images.py: running container tools, reading saved images, polling.

Kept out of conftest.py so that the image tests' plumbing stays next to them and does not
collide with other test files' fixtures.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
import threading
import time
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    """Skip with a visible reason, except in CI, where the runtime must be there."""
    if in_ci():
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def images_env() -> dict[str, str]:
    """images.env: KEY=value lines, the one place that names the images."""
    values = {}
    for line in (REPO / "images.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def images_by_binary() -> dict[str, str]:
    """The image each binary ships in, by the binary's name, as images.env names them."""
    images = images_env()
    return {"app": images["APP_IMAGE"], "sidecar": images["SIDECAR_IMAGE"]}


def workspace_version() -> str:
    cargo = tomllib.loads((REPO / "Cargo.toml").read_text())
    return cargo["workspace"]["package"]["version"]


def run(
    args: list[str],
    env: dict[str, str],
    timeout: float = 120,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Runs a command with a deadline; on failure, the message carries its output."""
    proc = subprocess.run(
        args,
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{shlex.join(args)} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc


def podman_env() -> dict[str, str]:
    """The environment for podman on this machine, or a skip (a failure in CI) saying why not."""
    if shutil.which("podman") is None:
        unavailable("podman is not installed (on the CI machine: .ci/install-container-tools.sh)")
    if os.geteuid() != 0:
        unavailable("the image tests need rootful podman (run as root)")
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(REPO / ".ci" / "containers.conf")
    env.pop("DOCKER_HOST", None)
    probe = run(["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"], env, check=False)
    if probe.returncode != 0:
        unavailable(f"podman cannot run here: {probe.stderr.strip()[-300:]}")
    return env


def exports(text: str) -> dict[str, str]:
    """Parses the `export NAME=value` lines that .ci/podman-env.sh prints."""
    values = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export":
            name, _, value = words[1].partition("=")
            values[name] = value
    return values


def kubectl_objects(text: str) -> list[dict]:
    """The objects in what `kubectl get -o json` wrote, once or several times one after another:
    a List's items, or the objects themselves."""
    found, at = [], 0
    while text[at:].strip():
        obj, at = json.JSONDecoder().raw_decode(text, len(text) - len(text[at:].lstrip()))
        found.extend(obj.get("items", [obj]))
    return found


class Followed:
    """A streaming command's output, read by a thread as it comes, so that the command never
    blocks on a full pipe and nothing it wrote is lost when it is stopped."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.chunks: list[str] = []
        self.reader = threading.Thread(target=lambda: self.chunks.extend(iter(process.stdout.readline, "")), daemon=True)
        self.reader.start()

    def wait(self, timeout: float) -> str:
        """Its whole output, once it has ended by itself."""
        self.process.wait(timeout=timeout)
        self.reader.join(timeout)
        return "".join(self.chunks)

    def stop(self) -> str:
        """Its whole output so far; it is stopped."""
        if self.process.poll() is None:
            self.process.terminate()
        return self.wait(30)


def wait_for(what: str, check, timeout: float, interval: float = 0.05):
    """Polls `check` until it returns something truthy, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def server_ends(port: int) -> list[tuple[int, str, bool]]:
    """The server's end of each TCP connection to `port` on this host, from /proc/net/tcp
    (local and remote address, state, then tx_queue:rx_queue): the client's port, the state
    (01 is established), and whether the server has read every byte the client sent."""
    ends = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state, queues = line.split()[1:5]
        if int(local.rsplit(":", 1)[1], 16) == port:
            ends.append((int(remote.rsplit(":", 1)[1], 16), state, queues.endswith(":00000000")))
    return ends


def http_get(url: str, timeout: float = 2) -> tuple[int, bytes]:
    """GET without raising on 4xx/5xx: returns (status, body)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@dataclass
class SavedImage:
    """What `docker save` / `podman save` (docker-archive format) says about one image."""

    config: dict
    files: dict[str, int]  # regular files in the layers: path -> size in bytes
    entries: list[str]  # every layer entry, directories and links included


def save_image(tool: str, image: str, env: dict[str, str], dest: Path) -> SavedImage:
    args = [tool, "save", "--output", str(dest), image]
    if tool == "podman":
        args[2:2] = ["--format", "docker-archive"]
    run(args, env, timeout=120)
    with tarfile.open(dest) as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
        (entry,) = manifest
        config = json.load(archive.extractfile(entry["Config"]))
        files: dict[str, int] = {}
        entries: list[str] = []
        for layer_name in entry["Layers"]:
            data = archive.extractfile(layer_name).read()
            with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                for member in layer.getmembers():
                    path = "/" + member.name.removeprefix("./").lstrip("/")
                    entries.append(path)
                    if member.isfile():
                        files[path] = member.size
    return SavedImage(config=config, files=files, entries=entries)


# scripts/pod.sh's lines: "+S.mmms", then the event padded to 16 columns, then a detail.
TIMELINE = re.compile(r"^ *\+(?P<seconds>\d+\.\d{3})s  (?P<event>.{16}) (?P<detail>.*)$")


def timeline(output: str) -> list[tuple[float, str, str]]:
    """The timeline lines that scripts/pod.sh prints: (seconds, event, detail), in order."""
    return [
        (float(m["seconds"]), m["event"].strip(), m["detail"])
        for m in map(TIMELINE.match, output.splitlines())
        if m
    ]


# --- multi-arch images, registries and leftovers (test_images_release.py, test_images.py) -----

PLATFORMS = "linux/amd64,linux/arm64"
# ELF e_machine for each image architecture (the ELF specification's EM_X86_64 and EM_AARCH64).
ELF_MACHINE = {"amd64": 0x3E, "arm64": 0xB7}


def builder_env(env: dict[str, str]) -> dict[str, str]:
    """`env` for scripts/images.sh, or a skip (a failure in CI) if it cannot get a builder image.

    make images never picks a stand-in builder by itself; CI names one in RUST_IMAGE
    (.ci/run runs .ci/builder-base.sh). Elsewhere the official image must be present or pullable.
    """
    if "RUST_IMAGE" not in env:
        text = (REPO / "docker" / "Dockerfile").read_text()
        official = re.search(r"^ARG RUST_IMAGE=(\S+)$", text, re.M)[1]
        if run(["podman", "image", "exists", official], env, check=False).returncode != 0:
            pulled = run(["podman", "pull", "--quiet", official], env, timeout=600, check=False)
            if pulled.returncode != 0:
                unavailable(f"cannot pull {official}; set RUST_IMAGE (CI: eval \"$(.ci/builder-base.sh)\")")
    return dict(env, CONTAINER_TOOL="podman")


def restore_native_images(env: dict[str, str]) -> None:
    """Leave the images as `make images` makes them (this machine's platform only, no manifest
    list) for the tests after these: podman 4.3's `podman images` fails once a built manifest
    list is in the store (podman-container-tools/podman#19757). Layers are cached: seconds."""
    env = {k: v for k, v in env.items() if k not in ("PLATFORMS", "TMPDIR")}
    run(["scripts/images.sh"], env, timeout=1800)


def instances(image: str, env: dict[str, str]) -> dict[str, str]:
    """The manifest list `image`'s instances: architecture -> image@digest."""
    listed = json.loads(run(["podman", "manifest", "inspect", image], env).stdout)
    repository = image.rpartition(":")[0]
    return {
        entry["platform"]["architecture"]: f"{repository}@{entry['digest']}"
        for entry in listed["manifests"]
    }


def image_file(image: str, path: str, env: dict[str, str], dest: Path) -> bytes:
    """The bytes of the file at `path` in `image` (podman save, then read from its layers)."""
    return image_member(image, path, env, dest)[1]


def image_member(image: str, path: str, env: dict[str, str], dest: Path) -> tuple[tarfile.TarInfo, bytes]:
    """The layer entry and the bytes of the file at `path` in `image`."""
    args = ["podman", "save", "--format", "docker-archive", "--output", str(dest), image]
    run(args, env, timeout=120)
    with tarfile.open(dest) as archive:
        (entry,) = json.load(archive.extractfile("manifest.json"))
        for layer_name in reversed(entry["Layers"]):
            data = archive.extractfile(layer_name).read()
            with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                for member in layer.getmembers():
                    if "/" + member.name.removeprefix("./").lstrip("/") == path:
                        return member, layer.extractfile(member).read()
    raise AssertionError(f"{image} holds no {path}")


def elf_machine(binary: bytes) -> int:
    """e_machine of a 64-bit little-endian ELF file (fails on anything else)."""
    assert binary[:4] == b"\x7fELF", "not an ELF file"
    assert binary[4] == 2 and binary[5] == 1, "not ELF64 little-endian"
    return int.from_bytes(binary[18:20], "little")


def graph_root(env: dict[str, str]) -> str:
    return run(["podman", "info", "--format", "{{.Store.GraphRoot}}"], env).stdout.strip()


def conmons_under(root: str) -> list[str]:
    """Command lines of conmon processes whose bundle lies in the storage at `root`: ours, since
    every helper and user of this machine has a storage of their own."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"conmon") and f" {root}/".encode() in b" ".join(argv):
            found.append(b" ".join(argv).decode(errors="replace")[:300])
    return found


# The names the tests and scripts/pod.sh give their containers.
CONTAINER_PREFIXES = ("nsj-test-", "k8s-native-sidecar-job-")


def assert_nothing_left(env: dict[str, str], timeout: float) -> None:
    """No container of the tests in podman's storage, and no conmon of that storage left running.

    An exec session's conmon outlives its exec by containers.conf's exit_command_delay (300 s by
    default, to mimic Docker; .ci/containers.conf shortens it), even once its container is gone.
    """
    root = graph_root(env)

    def clean():
        names = run(["podman", "ps", "--all", "--format", "{{.Names}}"], env).stdout.split()
        ours = [name for name in names if name.startswith(CONTAINER_PREFIXES)]
        return not ours and not conmons_under(root)

    try:
        wait_for("the tests' containers and conmons to be gone", clean, timeout=timeout, interval=0.5)
    except AssertionError:
        names = run(["podman", "ps", "--all", "--format", "{{.Names}}"], env).stdout.split()
        raise AssertionError(f"left running: containers {names}, conmons {conmons_under(root)}")

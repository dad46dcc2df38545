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

"""The images, on a real container runtime: podman, and the docker CLI through podman's API.

The images are built once per session, from docker/Dockerfile, with the offline builder
stand-in (scripts/builder-base.sh): no registry is needed. Where podman cannot run, the tests
that need it skip and say why; with CI=true they fail instead.

Nothing here sleeps to synchronise: every wait polls with a deadline.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import time
import tomllib
import uuid
from pathlib import Path

import pytest
import yaml

from images_support import (
    REPO,
    exports,
    http_get,
    images_env,
    podman_env,
    run,
    save_image,
    unavailable,
    wait_for,
    workspace_version,
)

IMAGES = images_env()
BINARIES = {"app": IMAGES["APP_IMAGE"], "sidecar": IMAGES["SIDECAR_IMAGE"]}
HARDENING = ["--read-only", "--cap-drop=ALL", "--security-opt=no-new-privileges"]
# The budget for "the image is its binary and nothing else".
SIZE_SLACK = 64 * 1024
# `stop` waits this long before SIGKILL; a clean exit must come well before.
STOP_TIMEOUT = 10


# --- static checks: no container runtime needed ---------------------------------------------


def dockerfile() -> str:
    return (REPO / "docker" / "Dockerfile").read_text()


def test_image_names_are_fully_qualified_and_versioned():
    version = workspace_version()
    assert IMAGES["VERSION"] == version
    for name in BINARIES.values():
        repository, _, tag = name.rpartition(":")
        registry = repository.split("/", 1)[0]
        # A registry host (with a dot) keeps podman from prefixing localhost/.
        assert "." in registry, f"{name}: not fully qualified"
        assert tag == version, f"{name}: tag is not the crate version {version}"
        assert tag != "latest"


def test_dockerfile_version_default_matches_the_workspace():
    assert re.search(rf"^ARG VERSION={re.escape(workspace_version())}$", dockerfile(), re.M)


def test_dockerfile_builder_is_the_pinned_official_rust_image():
    match = re.search(r"^ARG RUST_IMAGE=(\S+)$", dockerfile(), re.M)
    assert match, "RUST_IMAGE must have a default"
    assert re.fullmatch(r"docker\.io/library/rust:1\.\d+-slim-bookworm", match[1]), match[1]
    assert re.search(r"^FROM \$\{RUST_IMAGE\} AS builder$", dockerfile(), re.M)


def test_dockerfile_finals_are_scratch_nonroot_exec_form():
    text = dockerfile()
    for target in ("app", "sidecar"):
        stage = text.split(f"FROM scratch AS {target}\n", 1)[1].split("\nFROM ", 1)[0]
        assert "USER 65532:65532" in stage
        assert f'ENTRYPOINT ["/{target}"]' in stage
        for label in ("title", "description", "source", "version", "licenses"):
            assert f"org.opencontainers.image.{label}=" in stage, (target, label)
        assert 'org.opencontainers.image.licenses="Apache-2.0"' in stage
        assert ("EXPOSE 8080" in stage) == (target == "sidecar")


def test_dockerfile_never_hard_codes_an_architecture():
    text = dockerfile()
    assert '"$(uname -m)-unknown-linux-musl"' in text
    code = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert not re.search(r"x86_64|aarch64|amd64|arm64", code)


def test_dockerfile_is_hadolint_clean():
    hadolint = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent)
    )
    if hadolint is None:
        unavailable("hadolint not installed (pip install -r tests/requirements.txt)")
    proc = run([hadolint, "--no-color", "docker/Dockerfile"], dict(os.environ), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerignore_lets_in_only_the_workspace():
    patterns = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert patterns[0] == "*", "everything is excluded first, then the build inputs let in"
    allowed = {p[1:] for p in patterns if p.startswith("!")}
    members = set(tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["members"])
    assert allowed == {"Cargo.toml", "Cargo.lock"} | members
    assert "**/target" in patterns
    # ...and the builder copies exactly those.
    copied = set(re.findall(r"^COPY (?!--from)(.+?) \S+$", dockerfile(), re.M))
    assert {word for line in copied for word in line.split()} == allowed


@pytest.mark.parametrize("manifest", ["job.yaml", "job-legacy.yaml"])
def test_manifests_use_the_names_in_images_env(manifest):
    path = REPO / manifest
    if not path.exists():
        pytest.skip(f"{manifest} not written yet")
    images = set()
    for doc in yaml.safe_load_all(path.read_text()):
        spec = doc["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            images.add(container["image"])
    assert images == set(BINARIES.values())


# --- podman ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def podman():
    return podman_env()


def build_images(tool: str, env: dict[str, str]) -> float:
    """scripts/images.sh with the offline stand-in; returns the seconds it took."""
    started = time.monotonic()
    env = dict(env, CONTAINER_TOOL=tool, BUILDER="standin")
    run(["scripts/images.sh"], env, timeout=1200)
    return time.monotonic() - started


@pytest.fixture(scope="session")
def built(podman):
    """Both images, built once per session with podman."""
    seconds = build_images("podman", podman)
    print(f"\npodman build of both images: {seconds:.1f}s", file=sys.stderr)
    return podman


@pytest.fixture
def container_name(built):
    """A unique container name, removed after the test whatever happened."""
    names = []

    def make(role: str) -> str:
        names.append(f"nsj-test-{role}-{uuid.uuid4().hex[:8]}")
        return names[-1]

    yield make
    for name in names:
        run(["podman", "rm", "--force", name], built, check=False)


def test_images_sh_falls_back_to_the_standin_offline(built):
    # The default BUILDER=auto: where the official rust image cannot be pulled (no registry, as
    # here), `make images` still builds, and says what it did. Layers are cached by now.
    official = re.search(r"^ARG RUST_IMAGE=(\S+)$", dockerfile(), re.M)[1]
    if run(["podman", "image", "exists", official], built, check=False).returncode == 0:
        pytest.skip(f"{official} is present, so there is nothing to fall back from")
    try:
        socket.getaddrinfo("registry-1.docker.io", 443)
    except OSError:
        pass
    else:
        pytest.skip("Docker Hub resolves here: images.sh would pull the official image")
    env = dict(built, CONTAINER_TOOL="podman")
    env.pop("BUILDER", None)
    proc = run(["scripts/images.sh"], env, timeout=600, check=False)
    if "cannot pull" not in proc.stderr:
        pytest.skip(f"{official} can be pulled here")
    assert proc.returncode == 0, proc.stderr
    assert "building with the offline stand-in (BUILDER=standin)" in proc.stderr


def test_build_labels(built):
    for target, image in BINARIES.items():
        inspect = run(
            ["podman", "image", "inspect", "--format", "{{json .Labels}}", image], built
        )
        labels = yaml.safe_load(inspect.stdout)
        assert labels["org.opencontainers.image.title"] == target
        assert labels["org.opencontainers.image.version"] == workspace_version()
        assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
        assert labels["org.opencontainers.image.source"].startswith("https://")
        assert labels["org.opencontainers.image.description"]


@pytest.mark.parametrize("target", ["app", "sidecar"])
def test_image_is_its_binary_only(built, target, tmp_path):
    image = BINARIES[target]
    saved = save_image("podman", image, built, tmp_path / "image.tar")
    # One regular file, the binary: no shell, no libc, nothing to exec but the program itself.
    assert set(saved.files) == {f"/{target}"}, saved.entries
    assert "/bin/sh" not in saved.entries
    binary_size = saved.files[f"/{target}"]
    size = int(run(["podman", "image", "inspect", "--format", "{{.Size}}", image], built).stdout)
    print(f"\n{image}: image {size} B, binary {binary_size} B", file=sys.stderr)
    assert size - binary_size <= SIZE_SLACK, (size, binary_size)

    config = saved.config["config"]
    assert config["User"] == "65532:65532"
    # Exec form: the binary is PID 1 and gets SIGTERM itself; no shell wraps it.
    assert config["Entrypoint"] == [f"/{target}"]
    assert not config.get("Cmd")
    exposed = set(config.get("ExposedPorts") or {})
    assert exposed == ({"8080/tcp"} if target == "sidecar" else set())


def stop(tool: str, name: str, env: dict[str, str]) -> tuple[int, float]:
    """`<tool> stop` with STOP_TIMEOUT before SIGKILL: the container's exit code, and the seconds
    the stop took. A SIGTERM that reached PID 1's handler ends well before the deadline; a kill at
    the deadline takes STOP_TIMEOUT and gives 137."""
    started = time.monotonic()
    run([tool, "stop", "--time", str(STOP_TIMEOUT), name], env, timeout=STOP_TIMEOUT + 30)
    took = time.monotonic() - started
    code = run([tool, "inspect", "--format", "{{.State.ExitCode}}", name], env).stdout
    return int(code), took


def test_sidecar_hardened_answers_every_endpoint_and_stops_with_0(built, container_name):
    name = container_name("sidecar")
    run(
        ["podman", "run", "--detach", "--name", name, *HARDENING,
         "--publish", "127.0.0.1::8080", BINARIES["sidecar"]],
        built,
    )
    port = run(["podman", "port", name, "8080/tcp"], built).stdout.strip().rsplit(":", 1)[1]
    base = f"http://127.0.0.1:{port}"

    def ready():
        try:
            return http_get(f"{base}/readyz")[0] == 200
        except OSError:
            return False

    wait_for("the sidecar's /readyz", ready, timeout=30)
    assert http_get(f"{base}/") == (200, b"Sidecar application\n")
    assert http_get(f"{base}/healthz")[0] == 200
    assert http_get(f"{base}/readyz")[0] == 200
    assert http_get(f"{base}/nope")[0] == 404

    code, took = stop("podman", name, built)
    assert code == 0
    # SIGTERM reached PID 1's handler: a kill at the deadline would take STOP_TIMEOUT and give 137.
    assert took < STOP_TIMEOUT / 2, took


def test_app_short_sleep_prints_main_application(built):
    proc = run(
        ["podman", "run", "--rm", *HARDENING, "--env", "APP_SLEEP=100ms", BINARIES["app"]],
        built,
        timeout=60,
    )
    assert "main application" in proc.stdout.splitlines()


def test_app_stopped_early_exits_143(built, container_name):
    name = container_name("app")
    run(
        ["podman", "run", "--detach", "--name", name, *HARDENING,
         "--env", "APP_SLEEP=1h", BINARIES["app"]],
        built,
    )

    def working():
        logs = run(["podman", "logs", name], built, check=False)
        return "working" in logs.stdout + logs.stderr

    # The signal handlers are installed before the work starts, so from here SIGTERM is handled.
    wait_for("the app to start working", working, timeout=30)
    code, took = stop("podman", name, built)
    assert code == 143
    assert took < STOP_TIMEOUT / 2, took


# --- docker CLI through podman's API -----------------------------------------------------------


@pytest.fixture(scope="session")
def docker(built, tmp_path_factory):
    """The docker CLI against `podman system service`, on a socket of this session's own."""
    if shutil.which("docker") is None:
        unavailable("the docker CLI is not installed")
    run_dir = tmp_path_factory.mktemp("podman-service")
    env = dict(built, PODMAN_RUN_DIR=str(run_dir))
    started = run([".ci/podman-env.sh", "--service"], env, timeout=60)
    env.update(exports(started.stdout))
    assert env["DOCKER_HOST"] == f"unix://{run_dir}/podman.sock"
    try:
        yield env
    finally:
        run([".ci/podman-env.sh", "--stop"], env, timeout=30, check=False)


@pytest.fixture(scope="session")
def docker_built(docker):
    """Both images built through the docker CLI: the builder image carries the toolchain."""
    seconds = build_images("docker", docker)
    print(f"\ndocker (through podman) build of both images: {seconds:.1f}s", file=sys.stderr)
    return docker


def test_docker_builds_the_same_images(docker_built):
    for target, image in BINARIES.items():
        inspect = run(
            ["docker", "image", "inspect", "--format",
             "{{.Config.User}} {{json .Config.Entrypoint}}", image],
            docker_built,
        )
        assert inspect.stdout.strip() == f'65532:65532 ["/{target}"]'


def test_docker_run_stop_save(docker_built, tmp_path):
    name = f"nsj-test-docker-sidecar-{uuid.uuid4().hex[:8]}"
    env = docker_built
    try:
        run(["docker", "run", "--detach", "--name", name, *HARDENING, BINARIES["sidecar"]], env)
        wait_for(
            "the sidecar to listen",
            lambda: "listening" in run(["docker", "logs", name], env, check=False).stderr,
            timeout=30,
        )
        code, took = stop("docker", name, env)
        assert code == 0
        assert took < STOP_TIMEOUT / 2, took
    finally:
        run(["docker", "rm", "--force", name], env, check=False)

    # `docker save` is what `kind load image-archive` and the Makefile's kind-load use.
    saved = save_image("docker", BINARIES["sidecar"], env, tmp_path / "sidecar.tar")
    assert set(saved.files) == {"/sidecar"}

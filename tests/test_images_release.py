"""The images as a team ships them: one multi-arch image per binary, cross-compiled for amd64 and
arm64, carrying their dependency lists, pushed to a real registry.

Built once for this module with `PLATFORMS=linux/amd64,linux/arm64 scripts/images.sh` (podman
--manifest). The arm64 binaries run here under qemu-user, called explicitly: no binfmt handler is
registered, since the kernel is not ours to change. The registry is Debian's docker-registry (the
CNCF distribution registry) on 127.0.0.1, started and stopped by the test.

Where podman, qemu, the registry or skopeo are missing, the tests skip and say why; with CI=true
they fail instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from images_support import (
    ELF_MACHINE,
    PLATFORMS,
    REPO,
    assert_nothing_left,
    builder_env,
    elf_machine,
    http_get,
    image_file,
    images_by_binary,
    images_env,
    instances,
    podman_env,
    restore_native_images,
    run,
    unavailable,
    wait_for,
)

IMAGES = images_env()
BINARIES = images_by_binary()
TRIPLES = {"amd64": "x86_64-unknown-linux-musl", "arm64": "aarch64-unknown-linux-musl"}
# rust-audit-info reads back what cargo auditable embedded; same project, pinned (crates.io).
RUST_AUDIT_INFO = "rust-audit-info@0.5.4"


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        unavailable(f"{tool} is not installed (.ci/run installs it with apt-get)")
    return path


@pytest.fixture(scope="module")
def multiarch():
    env = podman_env()
    env = dict(builder_env(env), PLATFORMS=PLATFORMS)
    run(["scripts/images.sh"], env, timeout=1800)
    yield env
    restore_native_images(env)
    assert_nothing_left(env, timeout=60)


@pytest.fixture(scope="module")
def binaries(multiarch, tmp_path_factory):
    """Each binary of each architecture, read out of its image: {(target, arch): path}."""
    out = tmp_path_factory.mktemp("binaries")
    paths = {}
    for target, image in BINARIES.items():
        for arch, ref in instances(image, multiarch).items():
            data = image_file(ref, f"/{target}", multiarch, out / f"{target}-{arch}.tar")
            path = out / f"{target}-{arch}"
            path.write_bytes(data)
            path.chmod(0o755)
            paths[(target, arch)] = path
    return paths


@pytest.mark.parametrize("target", ["app", "sidecar"])
def test_one_image_holds_both_architectures(multiarch, target):
    found = instances(BINARIES[target], multiarch)
    assert set(found) == {"amd64", "arm64"}
    for arch, ref in found.items():
        inspect = run(
            ["podman", "image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", ref], multiarch
        )
        # Each image's config names its own architecture.
        assert inspect.stdout.strip() == f"linux/{arch}"


@pytest.mark.parametrize("target", ["app", "sidecar"])
@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_binary_is_an_elf_for_its_architecture(binaries, target, arch):
    binary = binaries[(target, arch)].read_bytes()
    assert elf_machine(binary) == ELF_MACHINE[arch]
    size = len(binary)
    print(f"\n{target} {arch}: binary {size} B", file=sys.stderr)


def test_an_unknown_targetarch_stops_with_a_clear_message(multiarch):
    # Run as images.sh runs podman; the builder stage is cached by now, so only the refusal runs.
    native = run(["podman", "info", "--format", "{{.Host.Arch}}"], multiarch).stdout.strip()
    args = ["--build-arg", f"BUILDPLATFORM=linux/{native}", *multiarch.get("BUILD_OPTS", "").split()]
    if multiarch.get("RUST_IMAGE"):
        args += ["--build-arg", f"RUST_IMAGE={multiarch['RUST_IMAGE']}"]
    proc = run(
        ["podman", "build", "--file", "docker/Dockerfile", "--platform", "linux/s390x", *args,
         "--target", "sidecar", "."],
        multiarch, timeout=900, check=False,
    )
    assert proc.returncode != 0
    assert (
        "docker/Dockerfile: TARGETARCH 's390x' is not supported: build for linux/amd64 or linux/arm64"
        in proc.stdout + proc.stderr
    )


def test_arm64_sidecar_under_qemu_answers_and_exits_0_on_sigterm(binaries, tmp_path):
    qemu = need("qemu-aarch64-static")
    log_path = tmp_path / "sidecar.log"
    with log_path.open("w") as log:
        sidecar = subprocess.Popen(
            [qemu, str(binaries[("sidecar", "arm64")]), "--listen", "127.0.0.1:0"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        def listening():
            assert sidecar.poll() is None, log_path.read_text()
            return re.search(r"address=(\S+)", log_path.read_text())

        address = wait_for("the arm64 sidecar to listen", listening, timeout=60)[1]
        assert http_get(f"http://{address}/healthz")[0] == 200
        assert http_get(f"http://{address}/") == (200, b"Sidecar application\n")
        sidecar.terminate()
        assert sidecar.wait(timeout=30) == 0, log_path.read_text()
    finally:
        if sidecar.poll() is None:
            sidecar.kill()
            sidecar.wait()


@pytest.fixture(scope="module")
def audit_info():
    """rust-audit-info, installed once into .cache/tools (cargo install --locked)."""
    root = REPO / ".cache" / "tools"
    tool = root / "bin" / "rust-audit-info"
    if not tool.exists():
        need("cargo")
        proc = run(["cargo", "install", "--locked", "--root", str(root), RUST_AUDIT_INFO],
                   dict(os.environ), timeout=900, check=False)
        if proc.returncode != 0:
            unavailable(f"cargo install {RUST_AUDIT_INFO} failed: {proc.stderr[-300:]}")
    return tool


def lock_packages() -> dict[str, set[str]]:
    lock = tomllib.loads((REPO / "Cargo.lock").read_text())
    versions: dict[str, set[str]] = {}
    for package in lock["package"]:
        versions.setdefault(package["name"], set()).add(package["version"])
    return versions


def section_size(path: Path, name: str) -> int:
    """The size of an ELF section, from readelf (binutils reads either architecture)."""
    headers = run(["readelf", "--section-headers", "--wide", str(path)], {"PATH": "/usr/bin:/bin"})
    for line in headers.stdout.splitlines():
        fields = line.replace("[ ", "[").split()
        if name in fields:
            return int(fields[fields.index(name) + 4], 16)
    raise AssertionError(f"{path} has no {name} section")


@pytest.mark.parametrize("target", ["app", "sidecar"])
@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_binary_carries_its_dependency_list_as_in_cargo_lock(binaries, audit_info, target, arch):
    path = binaries[(target, arch)]
    proc = run([str(audit_info), str(path)], {"PATH": "/usr/bin:/bin"})
    packages = json.loads(proc.stdout)["packages"]
    listed = {(p["name"], p["version"]) for p in packages}
    roots = [p["name"] for p in packages if p.get("root")]
    assert roots == [target]
    # Everything listed is in Cargo.lock at the locked version...
    versions = lock_packages()
    assert all(version in versions.get(name, set()) for name, version in listed), listed
    # ...and what the binary runs on is listed, the shared crate included.
    names = {name for name, _ in listed}
    assert {"lifecycle", "tokio", "tracing"} <= names
    if target == "sidecar":
        assert {"hyper", "hyper-util"} <= names
    # Exactly the packages cargo tree gives for this binary, with features unified across both
    # binaries as the image's single `cargo build --bin app --bin sidecar` unifies them.
    tree = run(
        ["cargo", "tree", "--locked", "--offline", "-p", "app", "-p", "sidecar",
         "--target", TRIPLES[arch], "-e", "normal,build", "--no-dedupe", "--prefix", "none", "--format", "{p}"],
        dict(os.environ), timeout=120,
    )
    (section,) = [
        part for part in tree.stdout.split("\n\n") if part.strip().startswith(f"{target} v")
    ]
    expected = set()
    for line in section.splitlines():
        words = line.split()
        if len(words) >= 2 and words[1].startswith("v"):
            expected.add((words[0], words[1][1:]))
    assert listed == expected
    print(f"\n{target} {arch}: .dep-v0 {section_size(path, '.dep-v0')} B", file=sys.stderr)


# --- push to a real registry --------------------------------------------------------------------


def free_port() -> int:
    # The registry binds it a moment later; a clash fails the readiness wait loudly, not silently.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def registry(tmp_path):
    """Debian's docker-registry on 127.0.0.1, from a config in tmp_path; stopped afterwards."""
    binary = need("docker-registry")
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log: {level: warn}\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'data'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    log = (tmp_path / "registry.log").open("w")
    process = subprocess.Popen([binary, "serve", str(config)], stdin=subprocess.DEVNULL,
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        def up():
            assert process.poll() is None, (tmp_path / "registry.log").read_text()
            try:
                return http_get(f"http://127.0.0.1:{port}/v2/")[0] == 200
            except OSError:
                return False

        wait_for("the registry's /v2/", up, timeout=30)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    assert process.returncode is not None


def test_push_sends_both_platforms_and_prints_digests(multiarch, registry):
    skopeo = need("skopeo")
    env = dict(multiarch, REGISTRY=f"{registry}/nsj", PUSH_OPTS="--tls-verify=false")
    proc = run(["scripts/images.sh", "push"], env, timeout=600)
    printed = proc.stdout.split()
    assert [ref.split("@")[0] for ref in printed] == [
        f"{registry}/nsj/{name.rsplit('/', 1)[1].split(':')[0]}"
        for name in (IMAGES["SIDECAR_IMAGE"], IMAGES["APP_IMAGE"])
    ]
    for ref, image in zip(printed, (IMAGES["SIDECAR_IMAGE"], IMAGES["APP_IMAGE"])):
        assert re.fullmatch(r"[^@]+@sha256:[0-9a-f]{64}", ref), ref
        # The registry holds a manifest list under that digest, with both platforms...
        raw = run([skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"], env)
        listed = json.loads(raw.stdout)
        remote = {m["platform"]["architecture"]: m["digest"] for m in listed["manifests"]}
        assert set(remote) == {"amd64", "arm64"}
        local = instances(image, multiarch)
        repository = ref.split("@")[0]
        for arch, digest in remote.items():
            # ...whose images are the local ones: same config digest (the image ID) per arch.
            config = run([skopeo, "inspect", "--config", "--raw", "--tls-verify=false",
                          f"docker://{repository}@{digest}"], env)
            assert json.loads(config.stdout)["architecture"] == arch
            local_id = run(["podman", "image", "inspect", "--format", "{{.Id}}", local[arch]],
                           env).stdout.strip()
            remote_id = run([skopeo, "inspect", "--tls-verify=false", "--format", "{{.Digest}}",
                             f"docker://{repository}@{digest}"], env).stdout.strip()
            assert remote_id == digest
            assert hashlib.sha256(config.stdout.encode()).hexdigest() == local_id
        # Pulled back by digest, it is the local image for this machine's architecture.
        pulled = run(["podman", "pull", "--quiet", "--tls-verify=false", ref], env, timeout=300)
        native = run(["podman", "info", "--format", "{{.Host.Arch}}"], env).stdout.strip()
        local_id = run(["podman", "image", "inspect", "--format", "{{.Id}}", local[native]],
                       env).stdout.strip()
        assert pulled.stdout.strip() == local_id
    # The README's way to run job.yaml from the pushed images, by digest (kubectl, offline).
    if shutil.which("kubectl"):
        sidecar_ref, app_ref = printed
        patched = run(["kubectl", "set", "image", "--local", "-f", "job.yaml", "-o", "json",
                       f"sidecar={sidecar_ref}", f"app={app_ref}"], env)
        spec = json.loads(patched.stdout)["spec"]["template"]["spec"]
        images = {c["name"]: c["image"] for c in spec["initContainers"] + spec["containers"]}
        assert images == {"sidecar": sidecar_ref, "app": app_ref}

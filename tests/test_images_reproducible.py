"""Two builds of the same commit, from empty caches, give the same images.

The slow tier of the image tests (two cold multi-arch builds, about 10 minutes on 2 cores); CI
runs it in `make check` like every other test. "Empty" means no layer cache (--no-cache) and
fresh cache mounts: buildah keeps RUN --mount=type=cache directories under $TMPDIR, so each
build gets a TMPDIR of its own and must have created its target caches there.
"""

from __future__ import annotations

import hashlib
import sys
import time

from images_support import (
    PLATFORMS,
    assert_nothing_left,
    builder_env,
    image_member,
    images_by_binary,
    instances,
    podman_env,
    restore_native_images,
    run,
)

BINARIES = images_by_binary()


def image_ids(env: dict[str, str], dangling: bool = False) -> list[str]:
    args = ["podman", "images", "--all", "--quiet", "--no-trunc"]
    if dangling:
        args += ["--filter", "dangling=true"]
    return run(args, env).stdout.split()


def cold_build(env: dict[str, str], tmp_path, name: str) -> dict:
    """One build from empty caches: {(target, arch): (image ID, binary sha256, binary mtime)}."""
    tmpdir = tmp_path / name
    tmpdir.mkdir()
    build_env = dict(
        env, TMPDIR=str(tmpdir), BUILD_OPTS=f"{env.get('BUILD_OPTS', '')} --no-cache".strip()
    )
    started = time.monotonic()
    run(["scripts/images.sh"], build_env, timeout=3600)
    print(f"\n{name}: cold build of {PLATFORMS} in {time.monotonic() - started:.0f}s",
          file=sys.stderr)
    # The caches were this build's own.
    for arch in ("amd64", "arm64"):
        assert (tmpdir / "buildah-cache" / f"native-sidecar-job-target-{arch}").is_dir()
    result = {}
    for target, image in BINARIES.items():
        for arch, ref in instances(image, env).items():
            image_id = run(["podman", "image", "inspect", "--format", "{{.Id}}", ref], env).stdout
            member, binary = image_member(ref, f"/{target}", env, tmp_path / f"{name}-{target}-{arch}.tar")
            result[(target, arch)] = (image_id.strip(), hashlib.sha256(binary).hexdigest(), member.mtime)
    return result


def test_two_cold_builds_give_identical_binaries_and_image_ids(tmp_path):
    env = dict(builder_env(podman_env()), PLATFORMS=PLATFORMS)
    head = run(["git", "rev-parse", "HEAD"], env).stdout
    before = set(image_ids(env))
    try:
        first = cold_build(env, tmp_path, "first")
        second = cold_build(env, tmp_path, "second")
        # The labels and timestamps come from the commit: a commit made meanwhile changes them.
        assert run(["git", "rev-parse", "HEAD"], env).stdout == head, "HEAD moved during the test"
    finally:
        restore_native_images(env)
        # Each cold build leaves its own untagged builder layers (hundreds of MB): remove what
        # this test made and nothing else uses, so repeated runs do not fill the disk.
        made = [i for i in image_ids(env, dangling=True) if i not in before]
        if made:
            run(["podman", "rmi", *made], env, check=False, timeout=300)
        assert_nothing_left(env, timeout=60)
    assert set(first) == {(t, a) for t in BINARIES for a in ("amd64", "arm64")}
    for key in first:
        print(f"{key}: image {first[key][0][:12]}, binary sha256 {first[key][1][:12]}",
              file=sys.stderr)
    assert first == second
    # Every time in the image is the commit's (podman --timestamp), the binary's included.
    epoch = int(run(["git", "log", "-1", "--format=%ct"], env).stdout)
    assert {mtime for _, _, mtime in first.values()} == {epoch}

"""`make sbom`: one CycloneDX SBOM per image and platform, a build output under target/sbom/.

Each must list exactly the crates its binary is built from, at the versions Cargo.lock pins. The
expected list does not come from the SBOM tool but from cargo itself: `cargo tree` for the
platform's target, normal dependencies only (no build-script or test dependencies), with both
binaries selected at once, because the images build them in one cargo command, which unifies
their features (the app's hyper gets httpdate from the sidecar's server features).
"""

import json
import os
import subprocess
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SBOM_DIR = ROOT / "target" / "sbom"
TRIPLES = ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"]
BINARIES = ["app", "sidecar"]


@pytest.fixture(scope="module")
def sboms():
    """Runs `make sbom` (the first run builds cargo-cyclonedx) and reads what it wrote."""
    env = {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}
    result = subprocess.run(["make", "--no-print-directory", "sbom"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    written = {(triple, name): SBOM_DIR / triple / f"{name}.cdx.json"
               for triple in TRIPLES for name in BINARIES}
    assert result.stdout.split() == [str(path.relative_to(ROOT)) for path in written.values()]
    return {key: json.loads(path.read_text()) for key, path in written.items()}


@pytest.fixture(scope="module")
def locked():
    """Cargo.lock's versions of each crate (a name may be locked at several)."""
    versions = {}
    for package in tomllib.loads((ROOT / "Cargo.lock").read_text())["package"]:
        versions.setdefault(package["name"], set()).add(package["version"])
    return versions


def built_from(triple):
    """{binary: {(crate, version)}} as cargo resolves them for `triple`, the binary excluded."""
    out = subprocess.run(
        ["cargo", "tree", "--locked", "--no-dedupe", "--target", triple, "--edges", "normal",
         "--prefix", "none", "--format", "{p}", *(f"--package={name}" for name in BINARIES)],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    trees = {}
    # One tree per selected package, separated by an empty line; each line "name vX.Y.Z ...",
    # the package itself first. --no-dedupe: else the second tree leaves out what the first
    # showed.
    for block in out.strip().split("\n\n"):
        root, *crates = [crate_of(line) for line in block.splitlines()]
        trees[root[0]] = set(crates) - {root}
    assert sorted(trees) == BINARIES, out
    return trees


def crate_of(line):
    name, version = line.split()[:2]
    return name, version.removeprefix("v")


def components(sbom):
    return {(c["name"], c["version"]) for c in sbom["components"]}


@pytest.mark.parametrize("triple", TRIPLES)
@pytest.mark.parametrize("name", BINARIES)
def test_each_sbom_describes_its_binary_for_its_platform(sboms, triple, name):
    sbom = sboms[triple, name]
    assert (sbom["bomFormat"], sbom["specVersion"]) == ("CycloneDX", "1.5")
    component = sbom["metadata"]["component"]
    assert (component["type"], component["name"]) == ("application", name)
    properties = {p["name"]: p["value"] for p in sbom["metadata"]["properties"]}
    assert properties["cdx:rustc:sbom:target:triple"] == triple


@pytest.mark.parametrize("triple", TRIPLES)
def test_each_sbom_lists_exactly_the_crates_cargo_builds_its_binary_from(sboms, triple):
    expected = built_from(triple)
    for name in BINARIES:
        listed = components(sboms[triple, name])
        assert listed == expected[name], (
            f"{name} for {triple}: missing {sorted(expected[name] - listed)}, "
            f"extra {sorted(listed - expected[name])}")


@pytest.mark.parametrize("triple", TRIPLES)
@pytest.mark.parametrize("name", BINARIES)
def test_every_crate_is_at_the_version_cargo_lock_pins(sboms, locked, triple, name):
    for component in sboms[triple, name]["components"]:
        crate, version = component["name"], component["version"]
        assert version in locked.get(crate, set()), f"{crate} {version}: {locked.get(crate)}"
        if not component["purl"].startswith(f"pkg:cargo/{crate}@{version}?download_url=file:"):
            # From crates.io: the package URL scanners match advisories against.
            assert component["purl"] == f"pkg:cargo/{crate}@{version}", component


def test_the_sidecar_lists_hyper_and_tokio_at_cargo_locks_versions(sboms, locked):
    listed = dict(components(sboms["x86_64-unknown-linux-musl", "sidecar"]))
    for crate in ["hyper", "hyper-util", "tokio", "signal-hook"]:
        assert {listed.get(crate)} == locked[crate], crate


def test_crates_only_other_platforms_need_are_left_out(sboms, locked):
    # Cargo.lock holds them (tokio and mio depend on them on Windows and WASI); no Linux
    # binary is built from them.
    elsewhere = {"windows-sys", "windows-link", "wasi"}
    assert elsewhere <= set(locked)
    for key, sbom in sboms.items():
        assert not {crate for crate, _ in components(sbom)} & elsewhere, key


def test_dated_by_the_commit_and_nothing_left_beside_the_manifests(sboms):
    commit = subprocess.run(["git", "log", "-1", "--format=%ct"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()
    for key, sbom in sboms.items():
        stamp = datetime.strptime(sbom["metadata"]["timestamp"][:19], "%Y-%m-%dT%H:%M:%S")
        assert stamp.replace(tzinfo=timezone.utc).timestamp() == int(commit), key
    assert not [path for path in ROOT.glob("*/*.cdx.json")], "cargo-cyclonedx output not moved"

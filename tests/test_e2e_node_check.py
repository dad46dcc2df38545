"""`e2e/node.sh` where it cannot run: not Linux, not root, a build tool missing. Each ends at
once with one line naming what is needed and a non-zero exit, and starts nothing."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "e2e" / "node.sh"
TOOLS = ["bash", "env", "cat", "sed", "grep", "awk", "mkdir", "ls", "dirname", "id", "ip", "iptables-save", "sort",
         "findmnt", "curl", "cc", "pkg-config", "go", "uname", "podman", "docker"]


@pytest.fixture
def path(tmp_path):
    """A PATH of links to this machine's tools, so that a test can take one away or fake it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    return bin_dir


def node(path, *args, user=None, script=NODE):
    command = ["bash", str(script), *args]
    if user is not None:
        command = [shutil.which("setpriv"), f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    return subprocess.run(command, env={"PATH": str(path), "HOME": "/nonexistent"},
                          capture_output=True, text=True, timeout=60, check=False)


def test_not_linux(path, tmp_path):
    (path / "uname").unlink()
    (path / "uname").write_text("#!/bin/sh\necho Darwin\n")
    (path / "uname").chmod(0o755)
    result = node(path, "up", str(tmp_path / "node"))
    assert (result.returncode, result.stderr) == (3, "e2e-node: needs Linux (the kubelet and containerd run as root processes here)\n")
    assert not (tmp_path / "node").exists()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root, to drop it")
def test_not_root(tmp_path):
    # A copy the other user can read: pytest's temporary directories, and a checkout cloned
    # into one (mktemp -d), are closed to other users. The system's PATH, for the same reason.
    with tempfile.TemporaryDirectory() as shared:
        e2e = Path(shared) / "e2e"
        e2e.mkdir()
        for name in ("node.sh", "releases"):
            shutil.copy(NODE.parent / name, e2e / name)
        os.chmod(shared, 0o755)
        os.chmod(e2e, 0o755)
        result = node("/usr/local/bin:/usr/bin:/bin", "up", str(tmp_path / "node"), user=65534, script=e2e / "node.sh")
    assert (result.returncode, result.stderr) == (3, "e2e-node: needs root: sudo make e2e-node (it starts containerd and the kubelet)\n")
    assert not (tmp_path / "node").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the check for tools comes after the one for root")
def test_missing_tools_are_named_in_one_line(path, tmp_path):
    for tool in ("go", "cc", "curl"):
        (path / tool).unlink(missing_ok=True)
    result = node(path, "up", str(tmp_path / "node"))
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("e2e-node: needs: Go 1.26+ (https://go.dev/doc/install); a C compiler, for runc")
    assert result.stderr.rstrip().endswith("curl")
    assert not (tmp_path / "node").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the version is checked after root")
def test_unsupported_version(path):
    result = subprocess.run(["bash", str(NODE), "check"], env={"PATH": str(path), "K8S": "1.27"},
                            capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stderr) == (2, "e2e-node: K8S must be a release of e2e/releases (1.38, 1.37, 1.36, 1.35, 1.34, 1.34.0, 1.33, 1.32, 1.31, 1.30, 1.29, 1.28), not '1.27'\n")


# What `down` could touch outside DIR, each replaced by a stand-in that only records its call.
DESTRUCTIVE = ["rm", "rmdir", "find", "pgrep", "findmnt", "umount", "tac", "ip", "iptables", "ip6tables"]


@pytest.fixture
def recorded(path, tmp_path):
    """The PATH, with every tool `down` could harm the machine with recording instead of acting:
    should the refusal ever break, the test fails on the record and nothing is harmed."""
    calls = tmp_path / "calls"
    for tool in DESTRUCTIVE:
        (path / tool).unlink(missing_ok=True)
        (path / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >>{calls}\n')
        (path / tool).chmod(0o755)
    return calls


@pytest.mark.parametrize("target", ["/", "/tmp"])
def test_down_refuses_a_directory_up_did_not_make(path, recorded, target):
    result = node(path, "down", target)
    assert (result.returncode, result.stderr) == (
        1, f"e2e-node: {target} was not made by 'e2e/node.sh up' (no .e2e-node in it): refusing\n")
    assert not recorded.exists(), recorded.read_text()
    assert Path(target).is_dir()


def test_down_takes_down_a_directory_up_made(path, recorded, tmp_path):
    # The same stand-ins see the work when the marker is there: the refusal above is the guard.
    made = tmp_path / "node"
    made.mkdir()
    (made / ".e2e-node").write_text("made by e2e/node.sh up\n")
    result = node(path, "down", str(made))
    assert result.returncode == 0, result.stderr
    assert f"rm -rf {made}\n" in recorded.read_text()

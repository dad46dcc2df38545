"""Which processes the tests started, so that the session can check none outlives it.

A process is ours when its environment carries this session's marker, `MARKER`=<session id>,
which conftest.py puts in pytest's environment before any test runs, so that every program a
test starts inherits it, and the programs those start, whatever their names: the binaries,
podman and its conmon, wrk, a registry, qemu, kind, and a kubelet tier's etcd, kube-apiserver,
kubelet, containerd and its shims, started by a script. A process is ours too when it descends
from pytest, for a test that starts a program with a cleared environment. Anyone else's
processes, someone's kubectl on a shared machine or another session's sidecar, have neither.
"""

from __future__ import annotations

import os
from pathlib import Path

# Inherited by everything the tests start; its value names one session.
MARKER = "NATIVE_SIDECAR_TEST_SESSION"


def marked(environ: bytes, session: str) -> bool:
    return f"{MARKER}={session}".encode() in environ.split(b"\0")


def processes() -> dict[int, tuple[int, str, bytes | None]]:
    """Live processes (zombies left out: they are only waiting to be reaped): their parent,
    name, and initial environment (None where it may not be read: another user's)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name = (entry / "comm").read_text().strip()
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it ended while being read
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            environ = None
        if fields[0] != "Z":
            found[int(entry.name)] = (int(fields[1]), name, environ)
    return found


def ours(session: str, root: int) -> dict[int, str]:
    """The live processes that this session's tests started, but `root` (pytest) itself."""
    table = processes()

    def descends_from_root(pid: int) -> bool:
        seen = set()
        while pid in table and pid not in seen:
            seen.add(pid)
            pid = table[pid][0]
            if pid == root:
                return True
        return False

    return {pid: name for pid, (_, name, environ) in table.items()
            if pid != root and ((environ is not None and marked(environ, session))
                                or descends_from_root(pid))}

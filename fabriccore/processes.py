"""Find and stop the processes of kvfabric's namespaces: those whose network namespace is one
of ours, and those holding a socket in one (a sender driving many hosts runs in the root
namespace with its sockets in theirs). Nothing is ever found or killed by process name."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from .naming import NETNS_DIR


def _netns_inode(name: str) -> int | None:
    try:
        return os.stat(NETNS_DIR / name).st_ino
    except OSError:
        return None


def processes_in_namespaces(names: list[str]) -> list[int]:
    inodes = {ino for ino in map(_netns_inode, names) if ino is not None}
    if not inodes:
        return []
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if os.stat(entry / "ns" / "net").st_ino in inodes:
                pids.add(int(entry.name))
    for name in names:
        pids.update(socket_holders(name))
    pids.discard(os.getpid())
    return sorted(pids)


_SS_PID = re.compile(r"pid=(\d+)")


def socket_holders(netns: str) -> set[int]:
    """Processes holding an IP or packet socket in namespace ``netns``, wherever they run."""
    try:
        shown = subprocess.run(["ip", "netns", "exec", netns, "ss", "-H", "-a", "-n", "-p",
                                "-A", "inet,packet"], capture_output=True, text=True,
                               timeout=10)
    except subprocess.TimeoutExpired as exc:
        raise OSError(f"ss in namespace {netns} did not answer in 10 s") from exc
    if shown.returncode != 0 and (NETNS_DIR / netns).exists():
        raise OSError(f"ss in namespace {netns}: {shown.stderr.strip()}")
    return {int(pid) for pid in _SS_PID.findall(shown.stdout)}


def kill_processes_in_namespaces(names: list[str], grace_s: float = 1.0) -> list[int]:
    pids = processes_in_namespaces(names)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.02)
        pids = [p for p in pids if _alive(p)]
        if not pids:
            break
    return pids


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    with contextlib.suppress(OSError):
        if (Path("/proc") / str(pid) / "stat").read_text().split(") ")[-1].startswith("Z"):
            return False
    return True


def stop_groups(procs, grace_s: float, first: int = signal.SIGTERM) -> None:
    """Send ``first`` to the process group of each running process of ``procs`` (each was
    started in a session of its own), then SIGKILL the group of any still running after
    grace_s (one deadline for all); every process is reaped."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, first)
    deadline = time.monotonic() + grace_s
    for proc in procs:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

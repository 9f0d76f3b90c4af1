"""What a run ran on: host capabilities, kernel, package versions, git commit."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKAGES = ("kvfabric", "pyroute2", "scapy", "numpy", "matplotlib", "os-ken", "mininet")
REPO_DIR = Path(__file__).resolve().parent.parent


def git_state() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO_DIR), *args], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD") or None,
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def tool_version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else None


def collect_environment(capabilities: dict[str, Any], seed: int) -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "argv": sys.argv,
        "seed": seed,
        "git": git_state(),
        "packages": package_versions(),
        "tools": {"ovs-vswitchd": tool_version(["ovs-vswitchd", "--version"]),
                  "tc": tool_version(["tc", "-V"]),
                  "iperf3": tool_version(["iperf3", "--version"])},
        "capabilities": capabilities,
    }

"""Find HPCC's ns-3 build and run its ``scratch/third`` on a folder of inputs.

The build is located by ``--ns3 PATH`` or ``$KVFABRIC_NS3``: the ``simulation/`` folder of a
built checkout (with ``build/scratch/third``), or the binary itself. Build it from the
simulator's own README (alibaba-edu/High-Precision-Congestion-Control).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "KVFABRIC_NS3"
BINARY_CANDIDATES = ("build/scratch/third", "build/scratch/third-optimized")


@dataclass(frozen=True)
class Simulator:
    binary: Path
    root: Path  # the simulation/ folder (its build/ holds the shared libraries)

    def version(self) -> dict[str, str]:
        """ns-3 version (its VERSION file) and the checkout's commit where known."""
        out = {"name": "HPCC ns-3 (alibaba-edu/High-Precision-Congestion-Control)",
               "binary": str(self.binary)}
        version_file = self.root / "VERSION"
        if version_file.exists():
            out["ns3_version"] = version_file.read_text().strip()
        commit = _git_commit(self.root)
        if commit:
            out["commit"] = commit
        return out


def locate(explicit: str | None = None) -> tuple[Simulator | None, str]:
    """The simulator, or None and why not."""
    given = explicit or os.environ.get(ENV_VAR)
    if not given:
        return None, (f"no simulator given: pass --ns3 PATH or set {ENV_VAR} to a built "
                      "simulation/ folder of alibaba-edu/High-Precision-Congestion-Control "
                      "(build it as its README says)")
    path = Path(given).expanduser()
    if path.is_file() and os.access(path, os.X_OK):
        root = path.parent.parent.parent if path.parent.name == "scratch" else path.parent
        return Simulator(path.resolve(), root.resolve()), f"binary {path}"
    for candidate in BINARY_CANDIDATES:
        binary = path / candidate
        if binary.is_file() and os.access(binary, os.X_OK):
            return Simulator(binary.resolve(), path.resolve()), f"{binary}"
    return None, (f"{path} has no built simulator ({' or '.join(BINARY_CANDIDATES)}): build "
                  "it as its README says")


@dataclass(frozen=True)
class SimRun:
    returncode: int
    wall_s: float
    cpu_s: float
    log: Path


def run(sim: Simulator, folder: Path, timeout_s: float | None = None) -> SimRun:
    """Run the simulator on ``folder``/config.txt with ``folder`` as its working directory
    (the config names its files relative to it); stdout and stderr go to sim.log."""
    env = dict(os.environ)
    libs = str(sim.root / "build")
    env["LD_LIBRARY_PATH"] = libs + (":" + env["LD_LIBRARY_PATH"]
                                     if env.get("LD_LIBRARY_PATH") else "")
    log = folder / "sim.log"
    started = time.monotonic()
    before = os.times()
    with log.open("w") as out:
        proc = subprocess.run([str(sim.binary), "config.txt"], cwd=folder, env=env,
                              stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system)
    return SimRun(proc.returncode, time.monotonic() - started, cpu, log)


def _git_commit(root: Path) -> str | None:
    for folder in (root, root.parent):
        marker = folder / ".kvfabric-source-commit"
        if marker.exists():
            return marker.read_text().strip()
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None

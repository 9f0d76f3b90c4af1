"""Running queue agents, found from outside: each agent registers its pid in AGENT_DIR while
it runs, so `kvfabric clean` can list and stop the agents a crashed run left behind."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

AGENT_DIR = Path("/run/kvfabric/agents")
#: What an agent's command line holds (``python -m topologies.queues.agent CONFIG``).
AGENT_MODULE = "topologies.queues.agent"


def register(out_dir: str) -> Path:
    """Register this process as an agent writing into `out_dir`; returns the file to unlink
    when it ends."""
    AGENT_DIR.mkdir(parents=True, exist_ok=True)
    registration = AGENT_DIR / str(os.getpid())
    registration.write_text(out_dir)
    return registration


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def live_agent_pids() -> list[int]:
    """Agents that registered themselves and are still this program (pid not reused)."""
    if not AGENT_DIR.is_dir():
        return []
    pids = []
    for entry in AGENT_DIR.iterdir():
        pid = int(entry.name) if entry.name.isdigit() else None
        if pid and AGENT_MODULE in _cmdline(pid):
            pids.append(pid)
        else:
            entry.unlink(missing_ok=True)  # stale registration
    return sorted(pids)


def stop_agents(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        (AGENT_DIR / str(pid)).unlink(missing_ok=True)

"""The queue agent as a process of the fabric: started on its config file, awaited, stopped."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from fabriccore.processes import stop_groups

from ..process_lifetime import die_with_parent
from .agent_config import AgentConfig

#: Where `python -m topologies.queues.agent` is found: the directory above `topologies`.
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def start_agent(config: AgentConfig, queue_dir: Path) -> subprocess.Popen:
    """Write queue_dir/agent-config.json and start the agent on it, logging to agent.log."""
    queue_dir.mkdir(parents=True, exist_ok=True)
    config_path = queue_dir / "agent-config.json"
    config_path.write_text(config.to_json())
    log = open(queue_dir / "agent.log", "w")
    agent = subprocess.Popen(
        [sys.executable, "-m", "topologies.queues.agent", str(config_path)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        # from the fork on, not from when the agent has imported its modules: a run
        # SIGKILLed in between left an agent that `kvfabric clean` could not yet see
        preexec_fn=die_with_parent, cwd=str(SOURCE_ROOT))
    log.close()
    return agent


def wait_ready(agent: subprocess.Popen, queue_dir: Path, timeout_s: float = 20.0) -> None:
    """Until the agent reports ready; RuntimeError (with its log) if it exits or takes longer
    than timeout_s. The caller still owns the process either way."""
    ready = queue_dir / ".agent-ready"
    deadline = time.monotonic() + timeout_s
    while not ready.exists():
        if agent.poll() is not None:
            raise RuntimeError("the queue agent exited at start; see "
                               f"{queue_dir / 'agent.log'}:\n"
                               + (queue_dir / "agent.log").read_text()[-2000:])
        if time.monotonic() > deadline:
            raise RuntimeError(f"the queue agent did not start within {timeout_s:g} s")
        time.sleep(0.02)


def stop_agent(agent: subprocess.Popen, grace_s: float = 5.0) -> None:
    """SIGTERM the agent's session (it writes its counters and the last telemetry first),
    SIGKILL it if it is still there after grace_s."""
    stop_groups([agent], grace_s)

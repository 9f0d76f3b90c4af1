"""The queue agent as the fabric's process: what it is started with, how its start is awaited,
and that the fabric keeps it from the moment it exists (without starting one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import port_cases
import pytest
from test_port import FIXTURES, hand_built

from topologies.process_lifetime import die_with_parent
from topologies.queues import agent_process


class FakeAgent:
    def __init__(self, exit_code=None):
        self.exit_code, self.pid = exit_code, 4242

    def poll(self):
        return self.exit_code


def test_the_agent_is_started_on_the_config_the_fabric_writes(monkeypatch, tmp_path):
    started = {}

    def popen(argv, **kwargs):
        started.update(argv=argv, **kwargs)
        return FakeAgent()
    monkeypatch.setattr(subprocess, "Popen", popen)
    fabric = hand_built("leafspine-l3")
    queue_dir = tmp_path / "queues"
    agent = agent_process.start_agent(fabric.agent_config(), queue_dir)
    assert isinstance(agent, FakeAgent)
    config = queue_dir / "agent-config.json"
    assert config.read_text() == (FIXTURES / "agent-config-leafspine-l3.json").read_text()
    assert started["argv"] == [sys.executable, "-m", "topologies.queues.agent", str(config)]
    assert started["preexec_fn"] is die_with_parent and started["start_new_session"]
    assert Path(started["cwd"], "topologies", "queues", "agent.py").is_file()
    assert started["stdout"].name == str(queue_dir / "agent.log")


def test_waiting_for_the_agent(tmp_path):
    (tmp_path / "agent.log").write_text("Traceback: no such map\n")
    with pytest.raises(RuntimeError, match="exited at start(.|\n)*no such map"):
        agent_process.wait_ready(FakeAgent(exit_code=1), tmp_path)
    with pytest.raises(RuntimeError, match="did not start within 0.05 s"):
        agent_process.wait_ready(FakeAgent(), tmp_path, timeout_s=0.05)
    (tmp_path / ".agent-ready").touch()
    agent_process.wait_ready(FakeAgent(), tmp_path)


def test_the_fabric_keeps_an_agent_that_never_got_ready(monkeypatch, tmp_path):
    """So that the teardown after a failed build stops it."""
    agent = FakeAgent()
    stopped = []
    monkeypatch.setattr(agent_process, "start_agent", lambda config, queue_dir: agent)
    monkeypatch.setattr(agent_process, "wait_ready", lambda a, d: (_ for _ in ()).throw(
        RuntimeError("did not start")))
    monkeypatch.setattr(agent_process, "stop_agent", lambda a, grace_s: stopped.append(a))
    fabric = hand_built("leafspine-l3")
    assert fabric.queue_dir == Path(port_cases.QUEUE_DIR)
    with pytest.raises(RuntimeError, match="did not start"):
        fabric._start_agent()
    assert fabric.agent is agent
    fabric.stop_agent()
    assert stopped == [agent] and fabric.agent is None
    fabric.stop_agent()
    assert stopped == [agent]

"""`kvfabric shell` driven in a pseudo-terminal through the installed command: commands run
on hosts, counters show, Ctrl-C stops only the running command, and every way out (exit,
Ctrl-D, SIGTERM) tears the fabric down and writes the run folder."""

from __future__ import annotations

import json
import os
import signal

import pytest
from kvfabric_command import KVFABRIC
from pty_session import READING, SLEEPING, WAITING_FOR_CHILD, PtySession

pytestmark = [pytest.mark.root]

PROMPT = r"kvfabric> "
SMALL = ["--set", "fabric.spines=1", "--set", "fabric.leaves=2", "--set",
         "fabric.hosts_per_leaf=2", "--set", "workload.senders=3", "--set", "workload.rounds=3"]
#: The first prompt may wait for another job's fabric (KVFABRIC_LOCK_WAIT_S) and bring-up.
FIRST_PROMPT_S = 1900


@pytest.fixture
def shell(tmp_path):
    sessions = []

    def start(*args: str) -> PtySession:
        session = PtySession([str(KVFABRIC), "shell", "tcp_incast", *SMALL, *args,
                              "--results", str(tmp_path)])
        sessions.append(session)
        session.expect(PROMPT, FIRST_PROMPT_S)
        return session

    yield start
    for session in sessions:
        session.close()


def _summary(tmp_path) -> dict:
    (run_dir,) = (tmp_path / "tcp_incast").iterdir()
    return json.loads((run_dir / "summary.json").read_text())


@pytest.mark.parametrize("mode", ["l3", pytest.param("openflow", marks=pytest.mark.ovs)])
def test_ping_counters_and_ctrl_c_then_exit_tears_down(shell, tmp_path, mode, nothing_left):
    sh = shell("--set", f"fabric.mode={mode}")
    sh.send("h1 ping -c1 h2\n")
    sh.expect(r"1 packets transmitted, 1 received")
    sh.expect(PROMPT)
    sh.send("port l1 h1\n")
    tx = int(sh.expect(r"tx_bytes +(\d+)").group(1))
    assert tx > 0  # the ping's reply left l1 through this port
    sh.expect(r"classes +\{'lossless': \d+, 'cnp': \d+, 'lossy': \d+\}")
    sh.expect(PROMPT)
    sh.send("h1 ping h4\n")  # runs until interrupted
    sh.expect(r"bytes from 10\.\d+\.\d+\.\d+")
    sh.wait_blocked_in(WAITING_FOR_CHILD)
    sh.send("\x03")
    sh.expect(r"packets transmitted")  # ping got SIGINT and printed its summary
    sh.expect(r"command interrupted")
    sh.expect(PROMPT)
    sh.send("nodes\n")  # the shell is still there
    sh.expect(r"h4 +host +10\.")
    sh.expect(PROMPT)
    sh.wait_blocked_in(READING)
    sh.send("h1 ip ro\x03")  # Ctrl-C at the prompt drops the line, not the shell
    sh.expect(PROMPT)
    sh.send("links\n")
    sh.expect(r"h1:h1-eth0 <-> l1:l1-eth1 +100 Mbit/s")
    sh.expect(PROMPT)
    sh.send("routes h1\n")  # h1's way to the other leaf's hosts
    sh.expect(r"-- h1\n.*10\.\d+\.\d+\.\d+")
    sh.expect(PROMPT)
    sh.send("exit\n")
    assert sh.wait() == 0, sh.output[-2000:]
    assert "OK: results in" in sh.output
    assert _summary(tmp_path)["status"] == "ok"
    nothing_left()


def test_workload_queues_and_capture_then_ctrl_d(shell, tmp_path, nothing_left):
    sh = shell()
    sh.send("capture h1-l1\n")
    sh.expect(r"capturing into \S+capture-h1-l1\.pcap")
    sh.send("workload start\n")
    sh.expect(r"workload tcp_incast started")
    sh.send("workload wait\n")
    sh.expect(r"workload finished")
    sh.send("queues l1\n")
    sh.expect(r"l1:l1-eth1 +h1 +lossless=\d+ cnp=\d+ lossy=\d+")
    sh.expect(PROMPT)
    sh.send("watch l2\n")  # refreshes until Ctrl-C
    sh.expect(r"-- \d\d:\d\d:\d\d\n.*\n.*l2:l2-eth1 +h3 ")
    sh.wait_blocked_in(SLEEPING)
    sh.send("\x03")
    sh.expect(r"\^C\n" + PROMPT)
    sh.send("h2 no-such-command\n")  # a failing command is reported, the shell stays
    sh.expect(r"\*\*\* exit \d+")
    sh.expect(PROMPT)
    sh.send("\x04")  # Ctrl-D
    assert sh.wait() == 0, sh.output[-2000:]
    summary = _summary(tmp_path)
    assert summary["status"] == "ok"
    assert summary["results"]["rounds_completed"] == 3
    (run_dir,) = (tmp_path / "tcp_incast").iterdir()
    for name in ("spec.toml", "env.json", "flows.csv", "links.csv", "report.md",
                 "capture-h1-l1.pcap"):
        assert (run_dir / name).stat().st_size > 0, name
    nothing_left()


def test_sigterm_during_a_command_tears_down(shell, tmp_path, nothing_left):
    sh = shell()
    sh.send("h1 ping h2\n")
    sh.expect(r"bytes from")
    sh.wait_blocked_in(WAITING_FOR_CHILD)
    os.kill(sh.pid, signal.SIGTERM)
    assert sh.wait() == 130, sh.output[-2000:]
    summary = _summary(tmp_path)
    assert summary["status"] == "interrupted" and "SIGTERM" in summary["error"]
    nothing_left()

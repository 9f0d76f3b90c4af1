"""Failures a user meets for real, through the installed ``kvfabric`` command: a PFC pause that
the queue agent cannot apply fails the run and names the first failure; ``kvfabric clean``
that cannot list OVS says so and exits 1 instead of claiming the host is clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kvfabric_command import KVFABRIC, TRACEBACK, kvfabric

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and tc")]


def _remove_tbfs(netns: str, ifname: str) -> int:
    """Delete every TBF of a port's classes, as another tool replacing the qdiscs would."""
    shown = subprocess.run(["ip", "netns", "exec", netns, "tc", "-j", "qdisc", "show", "dev",
                            ifname], capture_output=True, text=True, check=True)
    removed = 0
    for qdisc in json.loads(shown.stdout or "[]"):
        if qdisc.get("kind") == "tbf" and qdisc.get("parent"):
            subprocess.run(["ip", "netns", "exec", netns, "tc", "qdisc", "del", "dev", ifname,
                            "parent", qdisc["parent"]], check=True)
            removed += 1
    return removed


def test_a_pause_the_agent_cannot_apply_fails_the_run(tmp_path, nothing_left):
    # lossless_incast: 8 senders at line rate into h1; PFC pauses reach the senders' NICs
    # for the whole workload. The senders h2 and h3 lose their TBFs mid-run.
    proc = subprocess.Popen([str(KVFABRIC), "run", "lossless_incast", "--results",
                             str(tmp_path), "--set", "workload.duration=5s"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "running workload" in line:
            break
    time.sleep(1.0)
    removed = sum(_remove_tbfs(f"kvf-{h}", f"{h}-eth0") for h in ("h2", "h3"))
    out, err = proc.communicate(timeout=300)
    output = out + "".join(seen) + err
    assert removed > 0, output[-2000:]
    assert TRACEBACK not in output, output[-3000:]
    assert proc.returncode == 1, output[-3000:]
    (run_dir,) = (tmp_path / "lossless_incast").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed", summary.get("error")
    assert summary["error"].startswith("PFC could not act"), summary["error"]
    errors = json.loads((run_dir / "queues" / "agent.json").read_text())["dataplane_errors"]
    assert errors["set_paused"]["count"] >= 1, errors
    assert "-eth0" in errors["set_paused"]["first"], errors
    assert (run_dir / "report.md").stat().st_size > 0
    nothing_left()


def _fake_ovs_vsctl(bin_dir: Path, stderr: str) -> dict[str, str]:
    bin_dir.mkdir()
    tool = bin_dir / "ovs-vsctl"
    tool.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit 1\n")
    tool.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_clean_that_cannot_list_bridges_says_so_and_exits_1(tmp_path, nothing_left):
    env = _fake_ovs_vsctl(tmp_path / "bin", "ovs-vsctl: permission denied")
    proc = kvfabric("clean", env=env)
    assert TRACEBACK not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "could not list bridges" in proc.stderr and "permission denied" in proc.stderr
    assert "fix:" in proc.stderr
    assert "nothing of kvfabric's was left" not in proc.stdout
    nothing_left()


def test_clean_with_ovs_not_running_notes_it_and_succeeds(tmp_path, nothing_left):
    env = _fake_ovs_vsctl(tmp_path / "bin", "ovs-vsctl: unix:/var/run/openvswitch/db.sock: "
                          "database connection failed (No such file or directory)")
    proc = kvfabric("clean", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Open vSwitch is not running" in proc.stdout
    assert "could not list" not in proc.stderr
    nothing_left()




def test_a_killed_runner_takes_its_shared_sender_with_it(tmp_path, nothing_left):
    """The shared sender runs in the root namespace, where `kvfabric clean` finds no
    processes: SIGKILL of the runner must still end it."""
    proc = subprocess.Popen([str(KVFABRIC), "run", "roce_incast", "--results", str(tmp_path),
                             "--set", "workload.sender_processes=shared",
                             "--set", "workload.blocks=200",
                             "--set", "workload.transports=roce-dcqcn"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "roce-dcqcn:" in line:
            break
    deadline = time.monotonic() + 60
    sender = []
    while not sender and time.monotonic() < deadline:
        sender = [p for p in Path("/proc").glob("[0-9]*")
                  if "--hosts" in _cmdline(p) and "traffic.roce_endpoint" in _cmdline(p)]
        time.sleep(0.1)
    assert sender, "no shared sender process started"
    time.sleep(3)  # past its start: it sends, and no longer reads its stdin
    assert all(p.exists() for p in sender), "the shared sender ended early"
    proc.kill()
    proc.wait()
    for _ in range(50):
        if not any(p.exists() for p in sender):
            break
        time.sleep(0.1)
    assert not any(p.exists() for p in sender), "the shared sender outlived its runner"
    clean = kvfabric("clean")
    assert clean.returncode == 0, clean.stderr
    nothing_left()


def _cmdline(proc_dir: Path) -> str:
    try:
        return (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


HOLDER = """
import ctypes, os, socket, sys, time
home = os.open("/proc/self/ns/net", os.O_RDONLY)
libc = ctypes.CDLL(None, use_errno=True)
libc.setns(os.open("/run/netns/" + sys.argv[1], os.O_RDONLY), 0x40000000)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 4791))
libc.setns(home, 0x40000000)
print("ready", flush=True)
time.sleep(120)
"""


def test_clean_ends_a_root_namespace_process_holding_a_socket_in_a_fabric_namespace(
        nothing_left):
    """As a shared sender orphaned by a crash: its own namespace is the root one, so only
    its socket ties it to the fabric."""
    from kvfabric.lock import fabric_lock

    with fabric_lock("pytest: socket holder"):
        subprocess.run(["ip", "netns", "add", "kvf-hold"], check=True)
        subprocess.run(["ip", "netns", "exec", "kvf-hold", "ip", "link", "set", "lo", "up"],
                       check=True)
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, "kvf-hold"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "ready"
        except AssertionError:
            holder.kill()
            raise
    clean = kvfabric("clean")
    try:
        assert clean.returncode == 0, clean.stderr
        assert f"removed 1 processes: {holder.pid}" in clean.stdout, clean.stdout
        assert holder.wait(timeout=10) != 0
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
        subprocess.run(["ip", "netns", "del", "kvf-hold"], capture_output=True)
    nothing_left()

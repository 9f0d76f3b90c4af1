"""examples/incast_by_hand.py run as a user runs it (a subprocess, as root): the Python API
builds the fabric, its hosts reach each other, the workload runs, the port handle reads the
bottleneck's counters, and leaving the `with` tears down and writes a complete run folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "incast_by_hand.py"
BLOCK_BYTES = 256 * 1024  # tcp_incast's block_size


def test_example_script_pings_runs_the_workload_and_writes_the_run_folder(tmp_path,
                                                                         nothing_left):
    proc = subprocess.run([sys.executable, str(EXAMPLE), "--results", str(tmp_path)],
                          capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    steps = {s["step"]: s for s in map(json.loads, proc.stdout.splitlines())}
    assert steps["ping"]["exit"] == 0
    workload = steps["workload"]
    assert workload["port"] == "l1:l1-eth1"
    # 3 senders x 3 rounds of one block each crossed the receiver's downlink (plus headers).
    assert workload["tx_bytes"] >= 3 * 3 * BLOCK_BYTES
    assert set(workload["queued_bytes"]) == {"lossless", "cnp", "lossy"}
    assert steps["done"]["status"] == "ok"
    run_dir = Path(steps["done"]["run_dir"])
    assert run_dir.parent == tmp_path / "tcp_incast"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["results"]["rounds_completed"] == 3
    for name in ("spec.toml", "env.json", "run.log", "flows.csv", "links.csv", "report.md",
                 "queues/queue_counters.csv"):
        assert (run_dir / name).stat().st_size > 0, name
    nothing_left()


STAR_EXAMPLE = EXAMPLE.with_name("star_from_topo.py")


@pytest.mark.parametrize("mode", ["l3", pytest.param("openflow", marks=pytest.mark.ovs)])
def test_example_on_a_topo_pings_and_reads_the_switch_port(tmp_path, mode, nothing_left):
    proc = subprocess.run([sys.executable, str(STAR_EXAMPLE), "--mode", mode,
                           "--results", str(tmp_path)],
                          capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    live, done = map(json.loads, proc.stdout.splitlines())
    assert live["ping_exit"] == 0 and sorted(live["hosts"]) == ["h1", "h2", "h3"]
    counters = live["counters"]
    assert live["rate_bps"] == 50_000_000 and counters["peer"] == "h3"
    # The three echo requests left the switch through h3's port (ARP may add frames).
    assert counters["tx_packets"] >= 3 and counters["tx_bytes"] >= 3 * 98
    assert set(counters["classes"]) == {"fifo"} and counters["pfc"] == {}
    assert done["status"] == "ok"
    run_dir = Path(done["run_dir"])
    assert run_dir.parent == tmp_path / "star_by_hand"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["results"] == {} and summary["fabric"]["class"] == "Star"
    assert "hosts = " not in (run_dir / "spec.toml").read_text()  # the Topo gave the shape
    nothing_left()

"""Whole runs through the CLI: files written, teardown after SIGTERM, the lock, bad specs."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from kvfabric.cleanup import our_namespaces
from kvfabric.lock import fabric_lock
from kvfabric.report import format_spec_value

pytestmark = [pytest.mark.root]


def _kvfabric(*args, results):
    return [sys.executable, "-m", "kvfabric.cli", *args, "--results", str(results)]


@pytest.mark.parametrize("mode", ["l3", pytest.param("openflow", marks=pytest.mark.ovs)])
def test_incast_run_writes_a_complete_results_folder(tmp_path, mode, nothing_left):
    proc = subprocess.run(_kvfabric("run", "tcp_incast", "--set", "workload.rounds=3",
                                    "--set", f"fabric.mode={mode}", "--capture", "h1-l1",
                                    results=tmp_path), capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = (tmp_path / "tcp_incast").iterdir()
    for name in ("spec.toml", "env.json", "flows.csv", "rounds.csv", "links.csv",
                 "summary.json", "incast.png", "run.log", "capture-h1-l1.pcap"):
        assert (run_dir / name).stat().st_size > 0, name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "ok"
    assert summary["results"]["rounds_completed"] == 3
    assert summary["results"]["flows_completed"] == 3 * 7
    env = json.loads((run_dir / "env.json").read_text())
    assert env["capabilities"]["minimum_ok"] and env["seed"] == 1
    links = (run_dir / "links.csv").read_text()
    assert "l1" in links and "sent_bytes" in links
    _assert_derived_values_are_the_ones_that_ran(run_dir, summary, tmp_path)
    nothing_left()


def _assert_derived_values_are_the_ones_that_ran(run_dir, summary, results):
    """Where the spec says 0 (derive), spec.toml, summary.json, report.md and kvfabric show
    give the value the switch ports were configured with (the queue agent's config)."""
    config = json.loads((run_dir / "queues" / "agent-config.json").read_text())
    lossless = [c for p in config["ports"] if p["role"] != "host" for c in p["classes"]
                if c["lossless"]]
    xoff = sorted({c["xoff_bytes"] for c in lossless})
    assert xoff and xoff[0] > 0
    assert summary["derived"]["queues.xoff"] == xoff
    assert summary["derived"]["queues.lossless_buffer"] == sorted(
        {c["limit_bytes"] for c in lossless})
    assert f"xoff = 0  # derived: ran with {xoff[0]}" in (run_dir / "spec.toml").read_text()
    report = (run_dir / "report.md").read_text()
    shown = format_spec_value("queues.xoff", xoff[0])
    assert f"| queues.xoff | {shown} (derived) |" in report
    assert "| queues.kmin | 0 B |" not in report
    proc = subprocess.run(_kvfabric("show", str(run_dir), results=results),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and f"{shown} (derived)" in proc.stdout, proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_run_tears_down_and_records_interrupted(tmp_path, sig, nothing_left):
    """SIGTERM (kill) and SIGINT (Ctrl-C) both tear the fabric down and keep the results."""
    proc = subprocess.Popen(_kvfabric("run", "tcp_incast", "--set", "workload.rounds=500",
                                      results=tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the workload is running
        line = proc.stderr.readline()
        if "round 2/" in line or not line:
            break
    assert our_namespaces(), "the fabric should be up mid-run"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    (run_dir,) = (tmp_path / "tcp_incast").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and sig.name in summary["error"]
    assert summary["results"]["rounds_completed"] >= 1  # what it gathered is kept
    nothing_left()


def test_second_run_refuses_while_a_fabric_holds_the_lock(tmp_path, nothing_left):
    with fabric_lock("pytest holder"):
        proc = subprocess.run(_kvfabric("run", "tcp_incast", results=tmp_path),
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "KVFABRIC_LOCK_WAIT_S": "0"})
    assert proc.returncode == 3
    assert "another kvfabric fabric is running" in proc.stderr
    assert f"pid {os.getpid()}" in proc.stderr
    assert not (tmp_path / "tcp_incast").exists()
    nothing_left()


def test_bad_spec_builds_nothing(tmp_path, nothing_left):
    bad = tmp_path / "bad.toml"
    bad.write_text('[experiment]\nname = "bad"\n[fabric]\nbuffer = 10\n'
                   '[workload]\nkind = "tcp_incast"\n')
    proc = subprocess.run(_kvfabric("run", str(bad), results=tmp_path / "results"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "fabric.buffer" in proc.stderr
    assert not (tmp_path / "results").exists()
    nothing_left()


def test_clean_removes_a_crashed_runs_leftovers(tmp_path, nothing_left):
    """A run killed with SIGKILL cannot clean up; `kvfabric clean` must."""
    proc = subprocess.Popen(_kvfabric("run", "tcp_incast", "--set", "workload.rounds=500",
                                      results=tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "round 1/" in line or not line:
            break
    proc.kill()
    proc.wait()
    assert our_namespaces()
    clean = subprocess.run([sys.executable, "-m", "kvfabric.cli", "clean"],
                           capture_output=True, text=True, timeout=60)
    assert clean.returncode == 0 and "namespaces" in clean.stdout
    nothing_left()


def test_failed_run_keeps_its_folder_with_status_failed(tmp_path, nothing_left):
    """A workload that fails (rounds time out) still writes summary.json saying why."""
    proc = subprocess.run(_kvfabric("run", "tcp_incast", "--set", "workload.rounds=3",
                                    "--set", "workload.round_timeout=0.01",
                                    "--set", "workload.block_size=4MiB", results=tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    (run_dir,) = (tmp_path / "tcp_incast").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "exited with 1" in summary["error"]
    assert (run_dir / "flows.csv").exists() and (run_dir / "env.json").exists()
    nothing_left()


def test_queue_results_are_written_with_the_run(tmp_path, nothing_left):
    """A run with traffic classes keeps its telemetry (100 us bins), PFC counters and events,
    queue counters and the plot, and says which ECN backend ran."""
    proc = subprocess.run(_kvfabric("run", "pfc_spreading", "--set", "workload.duration=2s",
                                    results=tmp_path), capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (run_dir,) = (tmp_path / "pfc_spreading").iterdir()
    for name in ("queues/telemetry.csv", "queues/queue_samples.csv", "queues/pfc_events.csv",
                 "queues/pfc_counters.csv", "queues/queue_counters.csv", "queues/ecn.csv",
                 "queues/agent.json", "queues.png", "flows.csv", "flows.png"):
        assert (run_dir / name).stat().st_size > 0, name
    summary = json.loads((run_dir / "summary.json").read_text())
    queues = summary["queues"]
    assert queues["pause_frames_sent"] > 0 and queues["drops_by_class"]["lossless"] == 0
    assert queues["telemetry_bin_s"] == 0.0001
    assert queues["plot_ports"][0] == queues["bottleneck"]  # queues.png draws the bottleneck
    assert any("PFC" in note for note in summary["approximations"])
    env = json.loads((run_dir / "env.json").read_text())
    assert env["queues"]["ecn_backend"] in ("red", "ebpf")
    with open(run_dir / "queues" / "telemetry.csv") as f:
        rows = list(csv.DictReader(f))
    deepest = max(int(r["max_depth_bytes"]) for r in rows if r["class"] == "lossless")
    assert deepest > 10_000  # the congested port's queue, seen in 100 us bins
    bins = sorted({float(r["t_s"]) for r in rows if r["port"] == "l2-eth1"})
    assert min(b - a for a, b in zip(bins, bins[1:])) == pytest.approx(1e-4, abs=1e-5)
    nothing_left()

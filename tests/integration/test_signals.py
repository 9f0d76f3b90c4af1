"""Signals at awkward moments, the results root, and the working directory, through the
installed ``kvfabric`` command: every run that was not SIGKILLed ends with exit 130 (or its own
status) and a summary.json and report.md, and leaves nothing on the host."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces and tc")]

KVFABRIC = str(Path(sys.executable).parent / "kvfabric")
TINY = ["--set", "workload.senders=3", "--set", "workload.rounds=3",
        "--set", "workload.block_size=64KiB"]


def _start(results: Path, cwd: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([KVFABRIC, "run", "tcp_incast", "--results", str(results), *TINY,
                             *extra], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_phase(proc: subprocess.Popen, phase: str, seen: list[str]) -> None:
    """Read progress lines (stderr) until one names ``phase``."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise AssertionError(f"run ended before {phase!r}: {''.join(seen)[-2000:]}")
        seen.append(line)
        if phase in line:
            return
    raise AssertionError(f"no {phase!r} within 120 s")


def _finish(proc: subprocess.Popen, seen: list[str]) -> tuple[int, str]:
    out, err = proc.communicate(timeout=180)
    return proc.returncode, out + "".join(seen) + err


def _summary(results: Path) -> tuple[Path, dict]:
    (run_dir,) = (results / "tcp_incast").iterdir()
    return run_dir, json.loads((run_dir / "summary.json").read_text())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_during_teardown_keep_the_results_and_exit_130(tmp_path, sig, nothing_left):
    proc, seen = _start(tmp_path / "r", tmp_path), []
    _wait_for_phase(proc, "tearing down", seen)
    proc.send_signal(sig)
    time.sleep(0.8)  # teardown is over by now: the analysis and the report are being written
    proc.send_signal(sig)  # a second signal must not lose the summary either
    code, output = _finish(proc, seen)
    assert code == 130, output[-3000:]
    run_dir, summary = _summary(tmp_path / "r")
    # The workload had finished: its figures are complete and say so.
    assert summary["status"] == "ok", summary
    assert summary["facts"]["signals_after_workload"][0] == sig.name
    assert summary["results"]["rounds_completed"] == 3
    assert (run_dir / "report.md").stat().st_size > 0
    nothing_left()


def test_a_signal_during_the_workload_interrupts_and_tears_down(tmp_path, nothing_left):
    # 300 rounds take several seconds: the signals land while the workload runs (3 rounds
    # could finish within the 0.5 s, and the run then rightly reports "ok").
    proc, seen = _start(tmp_path / "r", tmp_path, "--set", "workload.rounds=300"), []
    _wait_for_phase(proc, "running workload", seen)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGTERM)
    code, output = _finish(proc, seen)
    assert code == 130, output[-3000:]
    run_dir, summary = _summary(tmp_path / "r")
    assert summary["status"] == "interrupted" and "SIGTERM" in summary["error"]
    assert (run_dir / "report.md").exists()
    nothing_left()


def test_a_signal_mid_transfer_stops_the_serving_senders_at_once(tmp_path, nothing_left):
    """A SIGINT while a RoCE sender carries a long KV transfer: the run stops the senders and
    says it was interrupted. (It used to tell them to end, wait 60 s for a transfer nothing
    would read, then fail with that wait's TimeoutExpired.)"""
    # One GPU per instance: NIC 0 carries the whole 8K-token KV, 1 GiB, 86 s at 100 Mbit/s.
    proc = subprocess.Popen(
        [KVFABRIC, "run", "serving_disagg", "--results", str(tmp_path / "r"),
         "--set", "workload.max_requests=1", "--set", "workload.input_tokens=8192",
         "--set", "workload.gpus_per_instance=1", "--set", "workload.timeout=600s"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    _wait_for_phase(proc, "in flight", seen)
    time.sleep(2)
    proc.send_signal(signal.SIGINT)
    signalled = time.monotonic()
    code, output = _finish(proc, seen)
    assert code == 130, output[-3000:]
    # teardown and analysis, not the rest of the transfer (80 s) or a 60 s wait
    assert time.monotonic() - signalled < 40, output[-3000:]
    (run_dir,) = (tmp_path / "r" / "serving_disagg").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and "SIGINT" in summary["error"], summary["error"]
    nothing_left()


def test_a_run_from_another_directory_with_a_relative_results_root(tmp_path, nothing_left):
    """Child processes (the queue agent, endpoints) get absolute paths."""
    proc = subprocess.run([KVFABRIC, "run", "lossless_incast", "--results", "rel",
                           "--set", "workload.duration=1s"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "rel" / "lossless_incast").iterdir()
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "ok"
    assert (run_dir / "queues").is_dir()
    nothing_left()


def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "kvfabric-test", str(path)],
                   check=True)


@pytest.mark.parametrize("kind", ["file", "read-only", "full"])
def test_an_unwritable_results_root_is_refused_before_anything_is_built(tmp_path, kind,
                                                                         nothing_left):
    root = tmp_path / "root"
    if kind == "file":
        root.write_text("not a folder")
    elif kind == "read-only":
        _mount_tmpfs(root, "1m")
        subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
    else:
        _mount_tmpfs(root, "64k")
        subprocess.run(["dd", "if=/dev/zero", f"of={root / 'filler'}", "bs=4k"],
                       capture_output=True)
    try:
        proc = subprocess.run([KVFABRIC, "run", "tcp_incast", "--results", str(root), *TINY],
                              capture_output=True, text=True, timeout=120)
    finally:
        if kind != "file":
            subprocess.run(["umount", str(root)], check=True)
    assert proc.returncode == 2, proc.stderr
    assert "--results" in proc.stderr and "cannot write runs" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "building fabric" not in proc.stderr
    nothing_left()

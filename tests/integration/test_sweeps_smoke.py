"""Root tests of the framework around runs: a sweep resumes after SIGTERM, a failed point is
recorded and the sweep goes on, the smoke check passes with a JUnit file, bad specs build
nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from kvfabric import cli
from kvfabric.cleanup import leftovers
from kvfabric.lock import fabric_lock

pytestmark = [pytest.mark.root]
BAD_SPECS = sorted((Path(__file__).resolve().parent.parent / "specs" / "bad").glob("*.toml"))


def _kvfabric(*args):
    return [sys.executable, "-m", "kvfabric.cli", *args]


def _state(results: Path) -> tuple[Path, dict]:
    (sweep_dir,) = (results / "tcp_incast").glob("sweep-*")
    return sweep_dir, json.loads((sweep_dir / "sweep.json").read_text())


def test_sweep_interrupted_by_sigterm_resumes_where_it_stopped(tmp_path, nothing_left):
    argv = _kvfabric("sweep", "tcp_incast", "--param", "workload.senders=1,3",
                     "--set", "workload.rounds=40", "--set", "workload.block_size=64KiB",
                     "--repeat", "2", "--results", str(tmp_path))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen_second = False
        # Each run may first queue for the fabric lock behind other jobs (KVFABRIC_LOCK_WAIT_S),
        # so wait for the output, not for a fixed time.
        for line in proc.stderr:  # until run 2's workload is running
            seen_second = seen_second or "[sweep 2/4]" in line
            if seen_second and "round 2/" in line:
                break
        assert seen_second, "the sweep never reached its second run"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:  # the test failed mid-way: stop the sweep the clean way
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in out
    sweep_dir, state = _state(tmp_path)
    assert state["status"] == "interrupted"
    assert [r["status"] for r in state["runs"]] == ["ok", "interrupted", "pending", "pending"]
    first_summary = (sweep_dir / "runs" / "001-senders=1-r1" / "summary.json").read_text()
    nothing_left()

    rerun = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert f"resuming {sweep_dir}: 1 of 4 runs already done" in rerun.stderr
    _, state = _state(tmp_path)  # the same folder, not a new sweep
    assert state["status"] == "complete"
    assert [r["status"] for r in state["runs"]] == ["ok"] * 4
    assert (sweep_dir / "runs" / "001-senders=1-r1" / "summary.json").read_text() == \
        first_summary, "a finished run must not be redone"
    for name in ("sweep.csv", "points.csv", "sweep.png", "report.md"):
        assert (sweep_dir / name).stat().st_size > 0, name
    for run in state["runs"]:
        summary = json.loads((sweep_dir / "runs" / run["dir"] / "summary.json").read_text())
        assert summary["status"] == "ok" and summary["results"]["rounds_completed"] == 40
        assert (sweep_dir / "runs" / run["dir"] / "report.md").exists()
    nothing_left()


def test_failed_point_is_recorded_and_the_sweep_goes_on(tmp_path, nothing_left):
    """A 10 ms round timeout on 4 MiB blocks fails that point; the next point still runs."""
    proc = subprocess.run(_kvfabric(
        "sweep", "tcp_incast", "--param", "workload.round_timeout=0.01,10s",
        "--set", "workload.block_size=4MiB", "--set", "workload.senders=2",
        "--set", "workload.rounds=2", "--results", str(tmp_path)),
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-2000:]
    sweep_dir, state = _state(tmp_path)
    assert state["status"] == "complete"
    assert [r["status"] for r in state["runs"]] == ["failed", "ok"]
    assert "exited with 1" in state["runs"][0]["error"]
    report = (sweep_dir / "report.md").read_text()
    assert "1 failed" in report and "| 2 | 10s | 1 | ok |" in report
    points = (sweep_dir / "points.csv").read_text().splitlines()
    assert points[1].startswith("0.01,0,1,") and points[2].startswith("10s,1,0,")
    nothing_left()


def test_smoke_passes_and_writes_junit(tmp_path, nothing_left):
    """Its speed (under 2 minutes) is measured by bench/smoke.py, not asserted here."""
    junit = tmp_path / "smoke.xml"
    proc = subprocess.run(_kvfabric("smoke", "--junit", str(junit)), capture_output=True,
                          text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "0" and int(suite.get("tests")) >= 4
    names = {case.get("name") for case in suite.findall("testcase")}
    assert {"capabilities", "fabric-l3", "tcp-incast-run"} <= names
    statuses = {case.get("name"): "failed" if case.find("failure") is not None else
                "skipped" if case.find("skipped") is not None else "passed"
                for case in suite.findall("testcase")}
    assert statuses["fabric-l3"] == statuses["tcp-incast-run"] == "passed"
    assert "passed" in proc.stdout and "JUnit report" in proc.stdout
    nothing_left()


def test_bad_specs_build_nothing(tmp_path, capsys):
    """Every spec of the bad collection (and a sweep with one bad point) exits 2 before any
    namespace, interface, bridge or results folder exists."""
    # Under the lock so no other job's fabric can appear while we look for ours.
    with fabric_lock("pytest: bad specs build nothing"):
        assert not any(leftovers().values())
        for path in BAD_SPECS:
            assert cli.main(["run", str(path), "--results", str(tmp_path / "r")]) == 2, path
        assert cli.main(["sweep", "tcp_incast", "--param", "workload.senders=1,2,99",
                         "--results", str(tmp_path / "r")]) == 2
        assert "workload.senders=99" in capsys.readouterr().err
        left = {kind: items for kind, items in leftovers().items() if items}
    assert not left, left
    assert not (tmp_path / "r").exists()

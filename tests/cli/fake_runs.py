"""Run folders as kvfabric writes them, without running anything: for the commands that
read results (show, compare)."""

from __future__ import annotations

import json
from pathlib import Path

from kvfabric.resolved_spec import to_toml
from kvfabric.spec import load_spec


def fake_run(root: Path, run_id: str, senders: int = 3, status: str = "ok",
             summary: object | None = None) -> Path:
    """root/tcp_incast/<run_id>/ with spec.toml, run.log and summary.json (given, or a
    finished run's)."""
    run_dir = root / "tcp_incast" / run_id
    run_dir.mkdir(parents=True)
    spec = load_spec("tcp_incast", {"workload.senders": senders})
    (run_dir / "spec.toml").write_text(to_toml(spec))
    (run_dir / "run.log").write_text("fabric up in 0.5 s\n")
    if summary is None:
        summary = {"status": status, "error": None, "experiment": "tcp_incast",
                   "run_id": run_id, "fabric": {"mode": "l3", "topology": "leafspine"},
                   "timings_s": {"bringup_s": 0.5, "workload_s": 2.0},
                   "results": {"goodput_mean_bps": 9.5e7, "rounds_completed": 3}}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def unfinished_run(root: Path, run_id: str) -> Path:
    """What SIGKILL leaves: spec.toml and run.log, no summary.json."""
    run_dir = fake_run(root, run_id)
    (run_dir / "summary.json").unlink()
    return run_dir

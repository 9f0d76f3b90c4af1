"""`kvfabric compare` of an emulated and a simulated run: both in target units."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

from kvfabric import results
from kvfabric.compare import load_runs, write_comparison
from kvfabric.engine_compare import engine_rows
from kvfabric.engines.hpcc_ns3.importer import import_outputs
from kvfabric.engines.hpcc_ns3.inputs import build_inputs
from kvfabric.resolved_spec import to_toml
from kvfabric.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = Path(__file__).parent / "fixtures" / "hpcc_ns3" / "outputs"


def _sim_run(root: Path) -> Path:
    spec = load_spec(str(ROOT / "bench" / "fidelity_incast.toml"))
    run_dir = root / "fidelity_incast" / "sim-1"
    run_dir.mkdir(parents=True)
    (run_dir / "spec.toml").write_text(to_toml(spec))
    inputs = build_inputs(spec)
    shutil.copytree(OUTPUTS, run_dir / "sim")
    imported = import_outputs(spec, inputs, run_dir / "sim", run_dir)
    results.write_json(run_dir / "summary.json", {
        "status": "ok", "experiment": "fidelity_incast", "engine": "hpcc-ns3",
        "fabric": {"mode": "simulated", "topology": "star"},
        "scale": {"dilation": 1.0}, "timings_s": {"simulation": 1.5}, **imported})
    return run_dir


def _emulated_run(root: Path, sim_dir: Path, dilation: float) -> Path:
    """The same transfers as the simulated run, in emulated time (x D)."""
    run_dir = root / "fidelity_incast" / "emu-1"
    (run_dir / "roce-dcqcn").mkdir(parents=True)
    shutil.copy(sim_dir / "spec.toml", run_dir / "spec.toml")
    for path in (sim_dir / "roce-dcqcn").glob("*.csv"):
        rows = results.read_csv(path)
        with (run_dir / "roce-dcqcn" / path.name).open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            for r in rows:
                writer.writerow({**r, **{k: float(r[k]) * dilation
                                         for k in ("posted_s", "completed_s", "fct_s")}})
    results.write_json(run_dir / "summary.json", {
        "status": "ok", "experiment": "fidelity_incast",
        "fabric": {"mode": "l3", "topology": "star"}, "scale": {"dilation": dilation},
        "timings_s": {"workload_s": 9.0}, "queues": {"pause_frames_sent": 0},
        "results": {}})
    return run_dir


def test_emulated_and_simulated_runs_line_up_in_target_units(tmp_path):
    sim_dir = _sim_run(tmp_path)
    emu_dir = _emulated_run(tmp_path, sim_dir, 1500.0)
    runs = load_runs([str(emu_dir), str(sim_dir)], tmp_path)
    rows = {row[0]: row[1:] for row in engine_rows(runs)}
    assert rows["engine"] == ["emulation", "hpcc-ns3"]
    assert rows["dilation D"] == ["1500", "1"]
    assert rows["FCT p50 (target us)"] == ["2750", "2750"]
    assert rows["PFC pauses"] == ["0", "2"]
    report = write_comparison(runs, tmp_path / "cmp").read_text()
    assert "## Emulation and simulation (target units)" in report
    assert "run.engine" in report
    assert (tmp_path / "cmp" / "engines.png").exists()

"""report.md for a run and `kvfabric compare`, from run folders alone (no fabric)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from kvfabric import cli
from kvfabric.compare import differing_fields, load_runs, write_comparison
from kvfabric.report import format_value, render_run_report, write_run_report
from kvfabric.resolved_spec import to_toml
from kvfabric.spec import load_spec
from kvfabric.workloads.tcp_incast_analysis import analyse
from traffic.tcp_incast import FLOW_FIELDS


def fake_run(root: Path, run_id: str, senders: int, fcts: list[float]) -> Path:
    """A tcp_incast run folder as the runner leaves it: spec, flows.csv, summary."""
    run_dir = root / "tcp_incast" / run_id
    run_dir.mkdir(parents=True)
    spec = load_spec("tcp_incast", {"workload.senders": senders,
                                    "workload.rounds": len(fcts)})
    (run_dir / "spec.toml").write_text(to_toml(spec))
    with (run_dir / "flows.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FLOW_FIELDS)
        writer.writeheader()
        for number, fct in enumerate(fcts, 1):
            for sender in range(2, senders + 2):
                writer.writerow({"round": number, "sender": f"h{sender}",
                                 "block_bytes": 262144, "bytes_received": 262144,
                                 "request_s": 0, "first_byte_s": 0.001, "completion_s": fct,
                                 "fct_s": fct})
    results = analyse(run_dir, spec)
    summary = {"status": "ok", "error": None, "experiment": "tcp_incast", "run_id": run_id,
               "fabric": {"mode": "l3", "topology": "leafspine", "nodes": 12, "links": 12},
               "timings_s": {"bringup_s": 2.0}, "results": results,
               "approximations": ["veth delay"]}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def test_values_are_shown_in_readable_units():
    assert format_value("goodput_mean_bps", 27_365_761.5) == "27.4 Mbit/s"
    assert format_value("fct_p99_s", 0.2283) == "228 ms"
    assert format_value("block_bytes", 262144) == "256 KiB"
    assert format_value("goodput_utilisation", 0.2736) == "27.4%"
    assert format_value("rounds_completed", 5) == "5"


def test_run_report_has_status_results_setup_and_plots(tmp_path):
    run_dir = fake_run(tmp_path, "20260101-000000-aaaa", 2, [0.05, 0.3])
    text = render_run_report(run_dir)
    assert "**Status: ok**" in text
    assert "| goodput_mean_bps |" in text and "Mbit/s" in text
    assert "| workload.senders | 2 |" in text
    assert "![incast.png](incast.png)" in text
    assert "veth delay" in text
    assert write_run_report(run_dir) == run_dir / "report.md"


def test_report_of_a_failed_run_says_why(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(json.dumps(
        {"status": "failed", "error": "RuntimeError: aggregator exited with 1",
         "experiment": "tcp_incast", "results": {}}))
    text = render_run_report(run_dir)
    assert "**Status: failed** — RuntimeError: aggregator exited with 1" in text
    assert "No results" in text


def test_compare_puts_runs_side_by_side_with_overlaid_plots(tmp_path):
    a = fake_run(tmp_path, "20260101-000000-aaaa", 2, [0.05, 0.05])
    b = fake_run(tmp_path, "20260101-000001-bbbb", 7, [0.3, 0.25])
    runs = load_runs([str(a), "20260101-000001"], tmp_path)
    assert "workload.senders" in differing_fields(runs)
    report = write_comparison(runs, tmp_path / "cmp")
    text = report.read_text()
    assert "senders=2" in text and "senders=7" in text
    assert "![incast-compare.png](incast-compare.png)" in text
    assert (tmp_path / "cmp" / "incast-compare.png").stat().st_size > 0
    rows = list(csv.DictReader((tmp_path / "cmp" / "compare.csv").open()))
    assert [r["workload.senders"] for r in rows] == ["2", "7"]
    goodputs = [float(r["goodput_mean_bps"]) for r in rows]
    assert goodputs[0] > goodputs[1]  # 2 x 256 KiB in 50 ms beats 7 x 256 KiB in 300 ms
    assert b.name in text


def test_compare_cli_writes_a_folder(tmp_path, capsys):
    fake_run(tmp_path, "20260101-000000-aaaa", 2, [0.05])
    fake_run(tmp_path, "20260101-000001-bbbb", 3, [0.06])
    code = cli.main(["compare", "20260101-000000-aaaa", "20260101-000001-bbbb",
                     "--results", str(tmp_path), "--out", str(tmp_path / "out")])
    assert code == 0 and (tmp_path / "out" / "report.md").exists()
    assert cli.main(["compare", "nope", "20260101-000001-bbbb",
                     "--results", str(tmp_path)]) == 2

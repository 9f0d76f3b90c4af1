"""serving_disagg end to end through the installed command: the serving model's KV transfers
carried by the RoCE endpoints, every request served in both modes, each disaggregated TTFT
holding a transfer measured on the fabric, and nothing left on the host."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root]

KVFABRIC = str(Path(sys.executable).parent / "kvfabric")
TRACES = [Path(__file__).resolve().parents[2] / ".." / "shared" / "traces",
          Path("/work/shared/traces")]


def _run(tmp_path, *overrides: str) -> tuple[dict, Path]:
    argv = [KVFABRIC, "run", "serving_disagg", "--results", str(tmp_path)]
    for item in overrides:
        argv += ["--set", item]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (run_dir,) = (tmp_path / "serving_disagg").iterdir()
    return json.loads((run_dir / "summary.json").read_text()), run_dir


def _check_served(summary: dict, run_dir: Path) -> None:
    assert summary["status"] == "ok"
    results = summary["results"]
    assert results["all_requests_completed"] is True
    n = results["disaggregated_requests"]
    assert n >= 1 and results["colocated_requests"] == n
    assert results["transfers_measured"] == n
    with (run_dir / "requests_disaggregated.csv").open() as f:
        rows = list(csv.DictReader(f))
    with (run_dir / "transfers.csv").open() as f:
        measured = {int(t["request_index"]): t for t in csv.DictReader(f)}
    d = summary["scale"]["dilation"]
    for row in rows:
        t = measured[int(row["index"])]
        fct_target_s = float(t["fct_emulated_s"]) / d
        assert fct_target_s > 0
        # the model's transfer is the fabric's: it ends when the measured completion says
        transfer_s = float(row["transfer_end_s"]) - float(row["transfer_start_s"])
        # (a report that reached the driver after the model's clock passed it is applied late)
        lag_s = summary["facts"]["report_lag_target_s_max"]
        assert fct_target_s - 1e-9 <= transfer_s <= fct_target_s + lag_s + 1e-9
        ttft_s = float(row["first_token_s"]) - float(row["arrival_s"])
        assert ttft_s > fct_target_s
    for mode in ("disaggregated", "colocated"):
        assert results[f"{mode}_ttft_p50_ms"] > 0 and f"{mode}_goodput_rps" in results
    assert results["colocated_network_share_of_ttft_p50"] == 0
    assert results["disaggregated_network_share_of_ttft_p50"] > 0
    assert (run_dir / "latency_cdfs.png").stat().st_size > 0
    assert summary["fidelity"]["status"] in ("ok", "degraded")


def test_a_small_load_is_served_with_transfers_measured_on_the_fabric(tmp_path, nothing_left):
    """With policies_on_fabric every routing policy's transfers are carried in a pass of
    their own, and the per-policy table is summarised from them."""
    summary, run_dir = _run(tmp_path, "workload.max_requests=3", "workload.input_tokens=1024",
                            "workload.policies_on_fabric=true")
    _check_served(summary, run_dir)
    results = summary["results"]
    assert results["disaggregated_requests"] == 3
    assert summary["facts"]["trace_mapping"]["source"] == "poisson"
    policies = ("kv_aware", "round_robin", "least_loaded")
    assert {results[f"policy_{p}_transfers"] for p in policies} == {"own"}
    for policy in ("round_robin", "least_loaded"):
        with (run_dir / f"transfers_{policy}.csv").open() as f:
            theirs = list(csv.DictReader(f))
        assert len(theirs) == 3 and all(float(t["fct_emulated_s"]) > 0 for t in theirs)
        assert list((run_dir / "roce" / f"policy_{policy}").glob("*.json"))
    nothing_left()


def test_a_thinned_mooncake_busiest_window_replays_in_both_modes(tmp_path, nothing_left):
    """The conversation trace's busiest 10 s, thinned to one request so a test can carry it
    (a second kept request has 57K tokens: 900 MB over NIC 0; the whole window is
    bench/serving_mooncake_window.py, about 16 GB)."""
    found = [p / "conversation_trace.jsonl" for p in TRACES
             if (p / "conversation_trace.jsonl").is_file()]
    if not found:
        pytest.skip(f"no conversation_trace.jsonl in {', '.join(map(str, TRACES))}")
    summary, run_dir = _run(tmp_path, f"workload.trace={found[0].resolve()}",
                            "workload.busiest_s=10.0", "workload.trace_rate_rps=0.3",
                            "workload.max_requests=1")
    _check_served(summary, run_dir)
    mapping = summary["facts"]["trace_mapping"]
    assert mapping["window_end_s"] - mapping["window_start_s"] == pytest.approx(10.0)
    assert mapping["requests_in_window"] == 73 and mapping["requests_replayed"] >= 1
    nothing_left()


def test_layerwise_transfers_leave_layer_by_layer_and_end_just_after_the_prefill(
        tmp_path, nothing_left):
    """Each 1024-token prompt is one prefill chunk of Llama-3-8B's 32 layers: 32 RDMA WRITEs,
    each posted as its layer is computed, so the transfer starts with the prefill and only
    the last layer's 1/32 is left on the wire when it ends."""
    summary, run_dir = _run(tmp_path, "workload.max_requests=3", "workload.input_tokens=1024",
                            "workload.transfer_mode=layerwise")
    assert summary["status"] == "ok" and summary["results"]["all_requests_completed"] is True
    with (run_dir / "transfers.csv").open() as f:
        transfers = {int(t["request_index"]): t for t in csv.DictReader(f)}
    with (run_dir / "requests_disaggregated.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(transfers) == 3
    rate_bps = summary["scale"]["target_rate_bps"]
    for row in rows:
        t = transfers[int(row["index"])]
        assert int(t["messages"]) == 32
        whole_wire_s = 8 * int(t["size_bytes"]) / rate_bps
        assert float(row["transfer_start_s"]) == pytest.approx(float(row["prefill_start_s"]))
        tail_s = float(row["transfer_end_s"]) - float(row["prefill_end_s"])
        # at least the last layer's wire time; far less than the whole transfer's
        assert whole_wire_s / 32 * 0.9 <= tail_s <= whole_wire_s / 2
    assert summary["results"]["disaggregated_network_share_of_ttft_p50"] < 0.1
    nothing_left()

"""serving_disagg on the simulator, through `kvfabric sim` as a user runs it: the serving
model's KV transfers are the flows (prefill host -> decode host, starting when the prefill
ends, NIC 0's share of the KV), and the simulated completion times come back into the model,
so the run has the emulated run's serving metrics."""

from __future__ import annotations

import csv
import json

import pytest
from kvfabric_command import kvfabric
from test_hpcc_ns3_trace import _fake_checkout

from kvfabric.engines.hpcc_ns3 import trace
from kvfabric.engines.hpcc_ns3.inputs import START_OFFSET_S
from kvfabric.spec import load_spec
from kvfabric.workloads.serving_disagg import cluster_config, instance_hosts
from serving.cluster import serve
from serving.transfer import FixedTransfer
from traffic.kvcache import preset

SMALL = ["--set", "workload.prefill=2", "--set", "workload.decode=2",
         "--set", "workload.input_tokens=1024", "--set", "workload.max_requests=4",
         "--set", "workload.rate=48"]
#: Llama-3-8B: 131,072 B of KV per token, over 8 NICs.
NIC0_BYTES = 1024 * 131_072 // 8


def _model_prefill_ends() -> dict[int, tuple[str, float]]:
    """What the serving model says, whatever the transfer times: request -> (prefill
    instance, prefill end), target seconds."""
    spec = load_spec("serving_disagg", {"workload.prefill": 2, "workload.decode": 2,
                                        "workload.input_tokens": 1024,
                                        "workload.max_requests": 4, "workload.rate": 48})
    from kvfabric.workloads.trace_load import load_requests

    requests, _ = load_requests(spec.target["workload"], spec.experiment["seed"], 1.0)
    run = serve(requests, "disaggregated", cluster_config(spec.target["workload"]),
                FixedTransfer(0.01))
    hosts = instance_hosts(["h1", "h2", "h3", "h4"], spec.target["workload"])
    return {r.index: (hosts[r.prefill_instance], r.prefill_end_s) for r in run.records}


def test_export_writes_a_flow_per_kv_transfer_from_prefill_to_decode(tmp_path):
    proc = kvfabric("sim", "serving_disagg", *SMALL, "--export-only", tmp_path / "in")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = (tmp_path / "in" / "flow.txt").read_text().splitlines()
    flows = [line.split() for line in lines[1:]]
    assert int(lines[0]) == len(flows) == 4
    ends = sorted(_model_prefill_ends().values(), key=lambda e: e[1])
    for (src, dst, pg, _dport, size, start), (host, end_s) in zip(flows, ends):
        assert int(src) == int(host[1:]) - 1  # h3 -> node 2: prefill hosts follow decode
        assert int(dst) in (0, 1)  # decode instances on h1, h2
        assert (int(pg), int(size)) == (3, NIC0_BYTES)
        assert float(start) == pytest.approx(START_OFFSET_S + end_s, abs=1e-9)
    notes = (tmp_path / "in" / "approximations.txt").read_text()
    assert "take turns" in notes and "own queue pair" in notes
    assert "workload.window = 32 not expressed" in notes


def test_simulated_fcts_are_the_serving_models_transfer_times(tmp_path):
    """The fake simulator finishes every flow in 3 ms: every transfer takes 3 ms in the
    model, and the summary has the emulated run's serving metrics."""
    proc = kvfabric("sim", "serving_disagg", *SMALL, "--ns3", _fake_checkout(tmp_path, False),
                    "--results", tmp_path / "results", "--no-queue-monitor",
                    env={trace.ENV_VAR: None})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = (tmp_path / "results" / "serving_disagg").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["engine"] == "hpcc-ns3" and summary["status"] == "ok"
    assert summary["facts"]["serving_rounds"] == {"rounds": 1, "transfers_differing": 0,
                                                   "converged": True}
    with (run_dir / "transfers.csv").open() as f:
        transfers = list(csv.DictReader(f))
    assert [float(t["fct_emulated_s"]) for t in transfers] == [0.003] * 4
    with (run_dir / "requests_disaggregated.csv").open() as f:
        records = list(csv.DictReader(f))
    for r in records:
        assert float(r["transfer_end_s"]) - float(r["transfer_start_s"]) == pytest.approx(0.003)
    res = summary["results"]
    assert res["transfer_p50_ms"] == pytest.approx(3.0)
    assert res["disaggregated_ttft_transfer_p50_ms"] == pytest.approx(3.0)
    for key in ("disaggregated_ttft_p50_ms", "disaggregated_ttft_p99_ms",
                "disaggregated_tpot_p50_ms", "disaggregated_tpot_p99_ms",
                "disaggregated_slo_attainment", "disaggregated_network_share_of_ttft_p50",
                "colocated_ttft_p99_ms", "colocated_slo_attainment", "goodput_gain"):
        assert key in res, key
    assert res["all_requests_completed"] is True
    assert (run_dir / "latency_cdfs.png").exists() and (run_dir / "policies.csv").exists()
    cmp = kvfabric("compare", run_dir, run_dir, "--out", tmp_path / "cmp")
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    assert "| disaggregated_ttft_p99_ms |" in (tmp_path / "cmp" / "report.md").read_text()


def test_nic0_share_is_the_kv_models():
    assert preset("llama-3-8b").bytes_per_nic(1024, 8, 8)[0] == NIC0_BYTES

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
    report = (run_dir / "report.md").read_text()
    assert "| disaggregated_ttft_p99_ms |" in report and "take turns" in report
    assert f"Repeat it with `kvfabric sim {run_dir / 'spec.toml'}`" in report
    cmp = kvfabric("compare", run_dir, run_dir, "--out", tmp_path / "cmp")
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    assert "| disaggregated_ttft_p99_ms |" in (tmp_path / "cmp" / "report.md").read_text()


def test_nic0_share_is_the_kv_models():
    assert preset("llama-3-8b").bytes_per_nic(1024, 8, 8)[0] == NIC0_BYTES


def _two_requests(tmp_path, gap_ms: float) -> str:
    """A Mooncake trace of two 1K-token requests ``gap_ms`` apart, 2 output tokens each,
    no shared prefix: whether the second goes to decode0 depends on whether the first has
    finished there, i.e. on how long its KV transfer took."""
    path = tmp_path / "two.jsonl"
    path.write_text("".join(json.dumps({"timestamp": t, "input_length": 1024,
                                        "output_length": 2, "hash_ids": [10 * i, 10 * i + 1]})
                            + "\n" for i, t in enumerate([0, gap_ms])))
    return str(path)


def _dsts(flow_txt) -> list[str]:
    return [line.split()[1] for line in flow_txt.read_text().splitlines()[1:]]


def test_when_the_simulated_times_move_a_transfer_the_moved_plan_is_simulated(tmp_path):
    """First guess (line rate): request 0 has finished on decode0 when request 1's KV is
    ready, so it goes there too. Simulated at 30 ms, request 0 is still decoding: request 1
    goes to decode1, and that plan is simulated in a second round."""
    two = ["--set", "workload.prefill=2", "--set", "workload.decode=2",
           "--set", f"workload.trace={_two_requests(tmp_path, 20)}"]
    assert kvfabric("sim", "serving_disagg", *two, "--export-only",
                    tmp_path / "in").returncode == 0
    assert _dsts(tmp_path / "in" / "flow.txt") == ["0", "0"]
    proc = kvfabric("sim", "serving_disagg", *two, "--ns3",
                    _fake_checkout(tmp_path, False, fct_ns=30_000_000),
                    "--results", tmp_path / "results", "--no-queue-monitor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = (tmp_path / "results" / "serving_disagg").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["facts"]["serving_rounds"] == {"rounds": 2, "transfers_differing": 0,
                                                   "converged": True}
    assert _dsts(run_dir / "sim" / "flow.txt") == ["0", "1"]
    with (run_dir / "transfers.csv").open() as f:
        assert [(t["dst_host"], float(t["fct_emulated_s"])) for t in csv.DictReader(f)] == [
            ("h1", 0.03), ("h2", 0.03)]


def test_a_plan_that_keeps_moving_is_reported_after_the_last_round(tmp_path):
    """Times that flip the second request's decode instance every round never settle: after
    MAX_ROUNDS the run says how many transfers differ from what was simulated."""
    from kvfabric.engines.hpcc_ns3.inputs import build_inputs
    from kvfabric.engines.hpcc_ns3.serving import MAX_ROUNDS, take_turns

    spec = load_spec("serving_disagg", {"workload.prefill": 2, "workload.decode": 2,
                                        "workload.trace": _two_requests(tmp_path, 20)})
    sim_dir = tmp_path / "sim"
    runs = []

    def simulate(inputs):  # 30 ms in odd rounds, 1 ms in even ones
        inputs.write(sim_dir)
        fct_ns = 1_000_000 if len(runs) % 2 else 30_000_000
        runs.append(_dsts(sim_dir / "flow.txt"))
        rows = [line.split() for line in (sim_dir / "flow.txt").read_text().splitlines()[1:]]
        (sim_dir / "fct.txt").write_text("".join(
            f"{0x0b000001 + int(s) * 0x100:08x} {0x0b000001 + int(d) * 0x100:08x} {10000 + k} "
            f"100 {size} {round(float(start) * 1e9)} {fct_ns} 1\n"
            for k, (s, d, _pg, _dport, size, start) in enumerate(rows)))
        return "ok", None, 1.0, 1.0

    first = build_inputs(spec)
    simulate(first)
    inputs, rounds, (status, _, wall, _) = take_turns(spec, first, sim_dir, simulate)
    assert status == "ok" and len(runs) == MAX_ROUNDS and wall == MAX_ROUNDS - 1
    assert runs[:3] == [["0", "0"], ["0", "1"], ["0", "0"]]
    assert rounds == {"rounds": MAX_ROUNDS, "transfers_differing": 1, "converged": False}
    assert any(n.startswith(f"after {MAX_ROUNDS} simulator runs the serving model's plan "
                            "still differs from the simulated one in 1 of 2 transfers")
               for n in inputs.config.approximations)


def test_a_sweep_on_the_simulator_runs_every_point(tmp_path):
    """`kvfabric sweep --engine hpcc-ns3` through the installed command (a simulated point's
    outcome once lacked the signals the sweep checks, a traceback after the first point)."""
    proc = kvfabric("sweep", "serving_disagg", "--engine", "hpcc-ns3",
                    "--ns3", _fake_checkout(tmp_path, False), "--results", tmp_path / "res",
                    "--param", "workload.max_requests=2,3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (sweep_dir,) = (tmp_path / "res" / "serving_disagg").glob("sweep-*")
    with (sweep_dir / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["workload.max_requests"], r["status"], r["disaggregated_requests"])
            for r in rows] == [("2", "ok", "2"), ("3", "ok", "3")]
    assert all(float(r["transfer_p50_ms"]) == pytest.approx(3.0) for r in rows)


@pytest.mark.parametrize("experiment,heavy", [
    ("serving_disagg", {"workload.max_requests": 200, "workload.rate": 2000.0,
                        "workload.duration": "100ms"}),
    ("kv_trace", {"workload.max_requests": 5000, "workload.rate": 100000.0,
                  "workload.duration": "50ms"})])
def test_the_emulations_plan_budget_does_not_limit_the_simulator(tmp_path, experiment, heavy):
    """A load the emulated NICs cannot carry within the timeout is refused for `kvfabric
    run` and exported for `kvfabric sim` (the simulator runs at the target rate)."""
    from kvfabric.schema import SpecError

    with pytest.raises(SpecError, match="over the 120 s timeout"):
        load_spec(experiment, heavy)
    sets = [a for k, v in heavy.items() for a in ("--set", f"{k}={v}")]
    proc = kvfabric("sim", experiment, *sets, "--export-only", tmp_path / "in")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert int((tmp_path / "in" / "flow.txt").read_text().split()[0]) > 100


def test_layerwise_transfers_are_refused_by_the_simulator_before_anything_runs(tmp_path):
    """The simulator is given each KV transfer as one flow, so a layerwise run cannot be
    expressed there: exit 2, naming the field and the fix, with nothing exported."""
    proc = kvfabric("sim", "serving_disagg", "--set", "workload.transfer_mode=layerwise",
                    "--export-only", tmp_path / "in")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "workload.transfer_mode" in proc.stderr and 'transfer_mode = "whole"' in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "in").exists()

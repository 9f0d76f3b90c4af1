"""`kvfabric sim` on HPCC's ns-3 itself, when a build is given ($KVFABRIC_NS3): the 8-to-1
reference incast must reproduce HPCC's published figures (../shared/REFERENCES.md)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from kvfabric_command import kvfabric

from kvfabric import cli, results
from kvfabric.engines.hpcc_ns3 import simulator, trace

ROOT = Path(__file__).resolve().parents[2]
SIM, WHY = simulator.locate()


@pytest.mark.skipif(SIM is None, reason=f"HPCC's ns-3 simulator not found: {WHY}")
def test_simulated_8_to_1_incast_reproduces_hpcc_figures(tmp_path):
    code = cli.main(["sim", str(ROOT / "bench" / "fidelity_incast.toml"),
                     "--results", str(tmp_path), "--timeout", "600"])
    assert code == 0
    run_dir = results.find_run("latest", tmp_path)
    summary = results.load_summary(run_dir)
    assert summary["engine"] == "hpcc-ns3" and summary["scale"]["dilation"] == 1.0
    roce = summary["results"]["transports"]["roce-dcqcn"]
    assert roce["blocks_completed"] == 8
    assert roce["fct_p50_us"] == pytest.approx(3114, rel=0.02)
    assert roce["fct_p99_us"] == pytest.approx(3183, rel=0.02)
    assert summary["queues"]["bottleneck_depth_max_bytes"] == pytest.approx(815e3, rel=0.1)
    assert summary["queues"]["pause_frames_received"] == 0
    assert summary["timings_s"]["simulation"] > 0


READER, READER_WHY = trace.locate(None, SIM.root if SIM else None)


@pytest.mark.skipif(SIM is None or READER is None,
                    reason=f"HPCC's ns-3 simulator or its trace_reader not found: {WHY}; "
                           f"{READER_WHY}")
def test_the_traced_incast_decodes_into_every_packet_the_receiver_saw(tmp_path):
    """`kvfabric sim --trace h1` as a user runs it: the receiver h1 receives every data packet
    of the 8 x 1 MB flows (1000 B payloads), and acknowledges each (ACK per packet)."""
    proc = kvfabric("sim", ROOT / "bench" / "fidelity_incast.toml", "--results", tmp_path,
                    "--trace", "h1", "--no-queue-monitor", "--timeout", "600",
                    timeout_s=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = results.find_run("latest", tmp_path)
    packets = results.load_summary(run_dir)["packet_trace"]
    assert packets["decoded"] is True and packets["drops"] == 0
    with (run_dir / "packets.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == packets["rows"]
    received = [r for r in rows if r["node"] == "h1" and r["event"] == "Recv"
                and r["packet"] == "data"]
    assert len(received) == 8 * 1000
    assert {r["src"] for r in received} == {f"h{i}" for i in range(2, 10)}
    assert sum(int(r["payload_bytes"]) for r in received) == 8 * 1_000_000
    assert 0 < packets["data_ce_marked"] < len(received)
    acks = [r for r in rows if r["node"] == "h1" and r["packet"] == "ack"
            and r["event"] == "Dequ"]
    assert len(acks) == len(received)


@pytest.mark.skipif(SIM is None, reason=f"HPCC's ns-3 simulator not found: {WHY}")
def test_a_small_serving_window_runs_on_the_simulator_and_feeds_the_model(tmp_path):
    """4 requests of 1K-token prompts, 2 prefill -> 2 decode at 25G: each 16 MB KV share
    (NIC 0 of 8) crosses an idle fabric at its line rate plus headers (1048 B frames for
    1000 B payloads), and the model's transfer times are the simulated FCTs."""
    proc = kvfabric("sim", "serving_disagg", "--set", "workload.prefill=2",
                    "--set", "workload.decode=2", "--set", "workload.input_tokens=1024",
                    "--set", "workload.max_requests=4", "--set", "workload.rate=48",
                    "--results", tmp_path, "--no-queue-monitor", "--timeout", "600",
                    timeout_s=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = results.find_run("latest", tmp_path)
    summary = results.load_summary(run_dir)
    assert summary["engine"] == "hpcc-ns3" and summary["facts"]["serving_rounds"]["converged"]
    with (run_dir / "flows.csv").open() as f:
        simulated = sorted(float(r["fct_s"]) for r in csv.DictReader(f))
    with (run_dir / "transfers.csv").open() as f:
        fed_back = sorted(float(r["fct_emulated_s"]) for r in csv.DictReader(f))
    assert len(simulated) == 4 and fed_back == pytest.approx(simulated, abs=1e-9)
    line_rate_s = 16_777_216 * 8 / 25e9 * 1048 / 1000
    assert simulated == pytest.approx([line_rate_s] * 4, rel=0.02)
    res = summary["results"]
    assert res["all_requests_completed"] and res["disaggregated_slo_attainment"] == 1.0
    assert res["disaggregated_ttft_transfer_p50_ms"] == pytest.approx(line_rate_s * 1e3,
                                                                      rel=0.02)

"""serving_disagg's analysis from raw files alone: records read back as written, attainment
counts both SLOs, goodput stops at the first rate that misses, the network share is the
transfer's, and a missing mode is not reported as completed."""

from __future__ import annotations

from dataclasses import asdict
from types import SimpleNamespace

import pytest

from kvfabric.workloads.serving_disagg import cluster_config
from kvfabric.workloads.serving_disagg_analysis import (
    analyse,
    goodput_from_curve,
    read_records,
    write_rows,
)
from serving.cluster import serve
from serving.transfer import FixedTransfer
from traffic.traces import requests_from_arrivals

WORKLOAD = {"model": "llama-3-8b", "gpu": "a100-sxm-80gb", "gpus_per_instance": 8,
            "prefill": 3, "decode": 1, "policy": "kv_aware", "transfer_mode": "whole",
            "ttft_slo_s": 0.3,
            "tpot_slo_s": 0.006}
SPEC = SimpleNamespace(workload=WORKLOAD, scale=SimpleNamespace(dilation=10.0))


def _run_dir(tmp_path, transfer_s=0.05):
    requests = requests_from_arrivals([0.0, 0.1, 0.2, 0.3], 4096, 16)
    config = cluster_config(WORKLOAD)
    disagg = serve(requests, "disaggregated", config, FixedTransfer(transfer_s))
    coloc = serve(requests, "colocated", config)
    write_rows(tmp_path / "requests_disaggregated.csv", [asdict(r) for r in disagg.records])
    write_rows(tmp_path / "requests_colocated.csv", [asdict(r) for r in coloc.records])
    write_rows(tmp_path / "transfers.csv", [
        {"request_index": r.index, "src_host": "h2", "dst_host": "h1", "size_bytes": 1 << 20,
         "start_s": r.transfer_start_s, "post_lag_s": 0.0,
         "fct_emulated_s": transfer_s * 10.0, "arrived_s": r.transfer_end_s}
        for r in disagg.records])
    write_rows(tmp_path / "attainment.csv", [
        {"mode": "disaggregated", "rate_rps": 4, "attainment": 1.0},
        {"mode": "disaggregated", "rate_rps": 8, "attainment": 0.95},
        {"mode": "disaggregated", "rate_rps": 16, "attainment": 0.5},
        {"mode": "colocated", "rate_rps": 4, "attainment": 0.92},
        {"mode": "colocated", "rate_rps": 8, "attainment": 0.85},
        {"mode": "colocated", "rate_rps": 16, "attainment": 0.95}])
    write_rows(tmp_path / "policies.csv", [
        {"policy": "kv_aware", "prefix_hit_share": 0.25, "fabric_bytes": 100,
         "ttft_p50_s": 0.08, "ttft_p99_s": 0.1, "slo_attainment": 1.0}])
    return disagg, coloc


def test_records_read_back_as_written(tmp_path):
    disagg, _ = _run_dir(tmp_path)
    assert read_records(tmp_path / "requests_disaggregated.csv") == disagg.records


def test_goodput_stops_at_the_first_rate_that_misses():
    assert goodput_from_curve([(8, 0.95), (4, 1.0), (16, 0.5), (32, 0.99)]) == 8
    assert goodput_from_curve([(4, 0.89), (8, 1.0)]) == 0.0


def test_summary_from_raw_files(tmp_path):
    disagg, coloc = _run_dir(tmp_path)
    out = analyse(tmp_path, SPEC)
    assert out["all_requests_completed"] is True
    assert out["disaggregated_goodput_rps"] == 8 and out["colocated_goodput_rps"] == 4
    assert out["goodput_gain"] == pytest.approx(1.0)
    assert out["transfers_measured"] == 4
    assert out["transfer_p50_ms"] == pytest.approx(50.0)  # emulated 0.5 s / D = 10
    assert out["disaggregated_ttft_transfer_p50_ms"] == pytest.approx(50.0)
    first = disagg.records[0]
    share = 0.05 / first.ttft_s
    assert out["disaggregated_network_share_of_ttft_p50"] == pytest.approx(share, rel=0.05)
    assert out["colocated_network_share_of_ttft_p99"] == 0
    met = sum(r.ttft_s <= 0.3 and r.tpot_s <= 0.006 for r in coloc.records) / 4
    assert out["colocated_slo_attainment"] == met
    assert out["policy_kv_aware_prefix_hit_share"] == 0.25
    assert (tmp_path / "latency_cdfs.png").stat().st_size > 0
    assert (tmp_path / "attainment.png").stat().st_size > 0


def test_a_tight_tpot_slo_counts_against_attainment(tmp_path):
    _run_dir(tmp_path)
    tight = SimpleNamespace(workload={**WORKLOAD, "tpot_slo_s": 1e-4}, scale=SPEC.scale)
    out = analyse(tmp_path, tight)
    assert out["disaggregated_slo_attainment"] == 0 and out["colocated_slo_attainment"] == 0


def test_a_run_without_colocated_records_is_not_complete(tmp_path):
    _run_dir(tmp_path)
    (tmp_path / "requests_colocated.csv").unlink()
    assert analyse(tmp_path, SPEC)["all_requests_completed"] is False


def test_the_goodput_load_repeats_the_run_with_each_copy_keeping_its_measured_transfer():
    from kvfabric.workloads.serving_disagg import repeat_load
    from traffic.traces import Request

    requests = [Request(0.0, 10, 5, block_ids=(1, 2)), Request(1.0, 10, 5, block_ids=(1, 3)),
                Request(3.0, 10, 5, block_ids=(4,))]
    out, times = repeat_load(requests, {0: 0.1, 1: 0.2, 2: 0.3}, 3)
    assert [r.arrival_s for r in out] == [0.0, 1.0, 3.0, 4.5, 5.5, 7.5, 9.0, 10.0, 12.0]
    assert [times[k] for k in range(9)] == [0.1, 0.2, 0.3] * 3
    # a copy shares prefixes within itself, never with another copy
    assert out[3].block_ids[0] == out[4].block_ids[0] != out[0].block_ids[0]

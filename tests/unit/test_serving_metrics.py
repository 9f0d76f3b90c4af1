"""SLO attainment and goodput as DistServe defines them; the Mooncake window replayed."""

import math
import time
from pathlib import Path

import pytest

from serving.cluster import ClusterConfig, serve
from serving.metrics import RequestRecord, Slo, attainment, goodput_rps, summarise
from serving.presets import roofline_profile
from serving.study import at_rate, compare_modes, table
from serving.transfer import LinkFormulaTransfer
from traffic.kvcache import preset
from traffic.traces import Request, read_azure, read_mooncake

CONVERSATION = Path("/work/shared/traces/conversation_trace.jsonl")


def record(ttft, tpot, output=11):
    r = RequestRecord(0, 0.0, 100, output, first_token_s=ttft)
    r.finish_s = ttft + tpot * (output - 1)
    return r


def test_attainment_needs_both_slos_and_counts_unfinished_requests_as_misses():
    slo = Slo(ttft_s=0.2, tpot_s=0.05)
    records = [record(0.1, 0.01), record(0.3, 0.01), record(0.1, 0.06),
               RequestRecord(3, 0.0, 100, 10)]  # never finished
    assert attainment(records, slo) == 0.25
    assert summarise(records, slo)["finished"] == 3


def test_goodput_is_the_highest_rate_before_attainment_drops_below_90_percent():
    slo = Slo(ttft_s=0.2, tpot_s=0.05)

    def fake_run(rate):  # one request in ten misses per 10 req/s beyond 10 req/s
        misses = max(0, int(rate // 10) - 1)
        return [record(0.5 if i < misses else 0.1, 0.01) for i in range(10)]

    assert goodput_rps(fake_run, [5, 10, 20, 30, 40], slo) == 20
    assert goodput_rps(lambda rate: [record(1.0, 0.01)], [5, 10], slo) == 0.0


def test_at_rate_scales_the_time_axis_to_the_mean_rate():
    reqs = [Request(10.0 + i, 100, 1) for i in range(11)]  # 1 req/s
    fast = at_rate(reqs, 4.0)
    assert [r.arrival_s for r in fast] == pytest.approx([i / 4 for i in range(11)])


@pytest.mark.skipif(not CONVERSATION.is_file(), reason=f"{CONVERSATION} absent (public "
                    "Mooncake trace, not committed; see ../shared/traces/README.md)")
def test_the_busiest_10_s_of_the_mooncake_conversation_trace_replays_in_both_modes():
    started = time.monotonic()
    requests = read_mooncake(CONVERSATION, busiest_s=10.0).requests
    model = "qwen2.5-7b"  # 131,072-token context: the trace's prompts reach 92K tokens
    config = ClusterConfig(roofline_profile(model), preset(model), 4, 4)
    slo = Slo(ttft_s=2.0, tpot_s=0.1)
    comparison = compare_modes(requests, config, lambda: LinkFormulaTransfer(100e9, 10e-6),
                               slo, rates_rps=[2, 4, 8])
    assert time.monotonic() - started < 20  # about 1 s here
    disagg, colo = comparison["disaggregated"], comparison["colocated"]
    assert disagg["finished"] == colo["finished"] == len(requests) == 73
    assert disagg["fabric_bytes"] > 0 and colo["fabric_bytes"] == 0
    assert 0 < disagg["network_share_of_ttft"]["p50"] < 1
    # colocated decodes share iterations with 13K-token prompts; separate pools do not
    assert colo["tpot_s"]["p99"] > 1.5 * disagg["tpot_s"]["p99"]
    assert not math.isnan(colo["slo_attainment"]) and "goodput_rps" in disagg
    assert "| TTFT p99 (s) |" in table(comparison)


def test_same_gpus_in_both_modes():
    config = ClusterConfig(roofline_profile("llama-3-8b"), preset("llama-3-8b"), 3, 5)
    run = serve([Request(0.0, 100, 2)], "colocated", config)
    assert run.summary()["gpus"] == 8 and len(run.instances) == 8


def test_policies_side_by_side_show_what_kv_aware_routing_saves_the_network():
    from serving.study import compare_policies
    from serving.transfer import FixedTransfer

    config = ClusterConfig(roofline_profile("llama-3-8b"), preset("llama-3-8b"), 2, 2)
    # two conversations, blocks (1, 2) and (10, 11), each extended by one block 10 s later,
    # in the order that sends both second turns to the wrong instance under round-robin
    reqs = [Request(0.0, 1024, 2, block_ids=(1, 2)), Request(0.0, 1024, 2, block_ids=(10, 11)),
            Request(10.0, 1536, 2, block_ids=(10, 11, 12)),
            Request(10.0, 1536, 2, block_ids=(1, 2, 3))]
    side_by_side = compare_policies(reqs, config, lambda: FixedTransfer(0.001))
    share = {policy: row["prefix_hit_share"] for policy, row in side_by_side.items()}
    assert share == {"round_robin": 0.0, "least_loaded": 0.0, "kv_aware": 2048 / 5120}
    assert side_by_side["kv_aware"]["fabric_bytes"] == 3072 * 131_072
    assert side_by_side["round_robin"]["fabric_bytes"] == 5120 * 131_072


AZURE_CODE = Path("/work/shared/traces/AzureLLMInferenceTrace_code.csv")


@pytest.mark.skipif(not AZURE_CODE.is_file(), reason=f"{AZURE_CODE} absent (public Azure "
                    "trace, not committed; see ../shared/traces/README.md)")
def test_the_azure_code_trace_reads_whole_and_its_busiest_window_replays():
    whole = read_azure(AZURE_CODE)  # CRLF, no final newline, 7 fractional digits
    assert len(whole.requests) == 8819 and whole.skipped_lines == 0
    assert whole.requests[-1].arrival_s == pytest.approx(3435.948056, abs=1e-6)
    window = read_azure(AZURE_CODE, busiest_s=10.0).requests
    assert len(window) == 415
    config = ClusterConfig(roofline_profile("qwen2.5-7b"), preset("qwen2.5-7b"), 4, 4)
    for mode in ("disaggregated", "colocated"):
        run = serve(window, mode, config, LinkFormulaTransfer(100e9, 10e-6))
        assert run.summary()["finished"] == 415
        assert run.summary()["prefix_hit_share"] == 0.0  # Azure publishes no block ids


def test_attainment_curve_falls_with_load_and_the_plots_are_written(tmp_path):
    from kvfabric.serving_plots import plot_attainment, plot_latency_cdfs
    from serving.study import attainment_curve

    profile = roofline_profile("llama-3-8b")
    config = ClusterConfig(profile, preset("llama-3-8b"), 1, 1)
    reqs = [Request(i * 0.1, 4000, 50) for i in range(40)]
    slo = Slo(ttft_s=0.5, tpot_s=0.05)
    curves = attainment_curve(reqs, config, lambda: LinkFormulaTransfer(100e9), slo,
                              [1, 5, 50])
    for points in curves.values():
        assert points[0][1] == 1.0 and points[-1][1] < 0.5  # 50 req/s swamps one GPU each
    plot_attainment(curves, tmp_path / "attainment.png")
    runs = {mode: serve(reqs, mode, config, LinkFormulaTransfer(100e9))
            for mode in ("disaggregated", "colocated")}
    plot_latency_cdfs(runs, tmp_path / "cdf.png", slo)
    assert (tmp_path / "attainment.png").stat().st_size > 1000
    assert (tmp_path / "cdf.png").stat().st_size > 1000

"""The serving model on hand-computed cases: every number below is worked out in a comment.

Profile ``SIMPLE``: prefill 1000 tokens/s, a decode step 10 ms whatever the batch, so times
are easy to add up by hand.
"""

import math

import pytest

from serving.cluster import ClusterConfig, serve
from serving.events import EventLoop
from serving.profiles import InstanceProfile
from serving.transfer import (
    ExternalTransfer,
    FixedTransfer,
    LinkFormulaTransfer,
    RecordedTransfer,
)
from traffic.kvcache import preset
from traffic.traces import Request

LLAMA8B = preset("llama-3-8b")  # 131,072 B/token
SIMPLE = InstanceProfile("simple", prefill_tokens_per_s=1000.0, decode_base_s=0.01,
                         decode_per_seq_s=0.0, decode_per_ctx_token_s=0.0,
                         kv_capacity_tokens=100_000, prefill_batch_tokens=1000)


def config(p=1, d=1, policy="kv_aware", profile=SIMPLE, **kwargs):
    return ClusterConfig(profile, LLAMA8B, p, d, policy=policy, **kwargs)


def test_one_request_ttft_is_prefill_plus_transfer_plus_first_decode_step():
    run = serve([Request(0.0, 1000, 5)], "disaggregated", config(), FixedTransfer(0.05))
    [r] = run.records
    # prefill 1000 tokens: 0 -> 1.0; transfer 1.0 -> 1.05; 5 steps of 10 ms: 1.06 ... 1.10
    assert r.ttft_s == pytest.approx(1.06)
    assert r.tpot_s == pytest.approx(0.01)
    assert r.e2e_s == pytest.approx(1.10)
    assert r.ttft_parts_s() == pytest.approx({"queueing": 0.0, "prefill": 1.0,
                                              "decode_memory_wait": 0.0, "transfer": 0.05,
                                              "first_decode_step": 0.01})
    assert r.network_share == pytest.approx(0.05 / 1.06)
    assert r.transfer_bytes == 1000 * 131_072


def test_two_requests_queue_for_one_prefill_instance():
    run = serve([Request(0.0, 1000, 2), Request(0.0, 1000, 2)], "disaggregated", config(),
                FixedTransfer(0.0))
    first, second = run.records
    # one 1000-token iteration each: the second starts its prefill when the first ends
    assert second.ttft_parts_s()["queueing"] == pytest.approx(1.0)
    assert first.ttft_s == pytest.approx(1.01) and second.ttft_s == pytest.approx(2.01)


def test_a_prefix_hit_shortens_the_prefill_and_the_transfer():
    reqs = [Request(0.0, 1024, 2, block_ids=(1, 2)), Request(5.0, 1536, 2, block_ids=(1, 2, 3))]
    run = serve(reqs, "disaggregated", config(), LinkFormulaTransfer(rate_bps=8e9))
    _, second = run.records
    # 2 of 3 blocks held by both instances: 512 tokens to compute, 512 tokens to move
    assert second.cached_tokens == 1024
    assert second.ttft_parts_s()["prefill"] == pytest.approx(0.512)
    assert second.transfer_bytes == 512 * 131_072
    assert second.transfer_s == pytest.approx(512 * 131_072 * 8 / 8e9)


def test_decode_memory_backpressure_holds_the_kv_until_a_sequence_finishes():
    small = InstanceProfile("small", 1000.0, 0.01, 0.0, 0.0, kv_capacity_tokens=2000,
                            prefill_batch_tokens=1000)
    reqs = [Request(0.0, 1000, 500), Request(0.0, 1000, 500)]  # 1500 KV tokens each
    run = serve(reqs, "disaggregated", config(profile=small), FixedTransfer(0.0))
    first, second = run.records
    # first: prefill 0 -> 1, 500 steps -> finishes at 6.0; second: prefilled at 2.0, its KV
    # waits for the first's memory until 6.0
    assert first.finish_s == pytest.approx(6.0)
    assert second.ttft_parts_s()["decode_memory_wait"] == pytest.approx(4.0)
    assert second.ttft_s == pytest.approx(6.01)


def test_colocated_prefill_chunks_slow_the_decodes_they_share_an_iteration_with():
    chunked = InstanceProfile("chunked", 1000.0, 0.01, 0.0, 0.0, kv_capacity_tokens=100_000,
                              colocated_chunk_tokens=512)
    reqs = [Request(0.0, 100, 100), Request(0.505, 2000, 2)]
    colo = serve(reqs, "colocated", config(profile=chunked, colocated_instances=1)).records
    # req0: prefill 0 -> 0.1 gives token 1; steps of 10 ms from 0.1. req1 arrives inside
    # the step [0.50, 0.51); from 0.51 its 2000 tokens run as chunks 512, 512, 512, 464,
    # each sharing an iteration with req0's step: 0.522, 0.522, 0.522, 0.474 s.
    assert colo[0].tpot_s == pytest.approx((95 * 0.01 + 3 * 0.522 + 0.474) / 99)
    assert colo[1].ttft_s == pytest.approx(0.51 + 3 * 0.522 + 0.474 - 0.505)
    disagg = serve(reqs, "disaggregated", config(profile=chunked), FixedTransfer(0.0)).records
    assert disagg[0].tpot_s == pytest.approx(0.01)  # separate pools: no interference


def test_colocated_without_chunking_stalls_decodes_for_the_whole_prompt():
    whole = InstanceProfile("whole", 1000.0, 0.01, 0.0, 0.0, kv_capacity_tokens=100_000,
                            prefill_batch_tokens=8192, colocated_chunk_tokens=None)
    reqs = [Request(0.0, 100, 100), Request(0.505, 2000, 2)]
    colo = serve(reqs, "colocated", config(profile=whole, colocated_instances=1)).records
    assert colo[0].tpot_s == pytest.approx((98 * 0.01 + 0.01 + 2.0) / 99)


def _conversations():
    # two conversations: blocks (1, 2) and (10, 11); each continues with one more block,
    # in an order round-robin gets wrong
    return [Request(0.0, 1024, 2, block_ids=(1, 2)), Request(0.0, 1024, 2, block_ids=(10, 11)),
            Request(10.0, 1536, 2, block_ids=(10, 11, 12)),
            Request(10.0, 1536, 2, block_ids=(1, 2, 3))]


def test_kv_aware_routing_finds_the_cached_prefixes_round_robin_misses():
    kv = serve(_conversations(), "disaggregated", config(2, 2, "kv_aware"), FixedTransfer(0.0))
    rr = serve(_conversations(), "disaggregated", config(2, 2, "round_robin"),
               FixedTransfer(0.0))
    kv_summary, rr_summary = kv.summary(), rr.summary()
    assert kv_summary["prefix_hit_share"] == pytest.approx(2048 / 5120)
    assert rr_summary["prefix_hit_share"] == 0.0
    assert kv_summary["fabric_bytes"] == (1024 + 1024 + 512 + 512) * 131_072
    assert rr_summary["fabric_bytes"] == (1024 + 1024 + 1536 + 1536) * 131_072
    assert kv_summary["ttft_s"]["p99"] < rr_summary["ttft_s"]["p99"]


def test_kv_aware_routing_leaves_a_cached_instance_when_its_queue_outweighs_the_hit():
    reqs = [Request(0.0, 1024, 2, block_ids=(1, 2)), Request(2.0, 5000, 2, block_ids=(9,)),
            Request(2.0, 1536, 2, block_ids=(1, 2, 3))]
    run = serve(reqs, "disaggregated", config(2, 1, "kv_aware"), FixedTransfer(0.0))
    # at t=2 both are idle and nobody holds block 9: the 5000-token request ties and goes
    # to prefill0 (the first); the third then weighs 512 uncached + 5000 queued on prefill0
    # (which holds blocks 1, 2) against 1536 uncached + 0 queued on prefill1
    assert [r.prefill_instance for r in run.records] == ["prefill0", "prefill0", "prefill1"]


def test_least_loaded_sends_work_to_the_instance_with_the_shorter_queue():
    reqs = [Request(0.0, 3000, 2), Request(0.0, 500, 2), Request(0.1, 500, 2)]
    run = serve(reqs, "disaggregated", config(2, 1, "least_loaded"), FixedTransfer(0.0))
    assert [r.prefill_instance for r in run.records] == ["prefill0", "prefill1", "prefill1"]


def test_measured_transfer_times_are_used_as_given():
    reqs = [Request(0.0, 1000, 2), Request(0.0, 1000, 2)]
    run = serve(reqs, "disaggregated", config(2, 1), RecordedTransfer({0: 0.3, 1: 0.7}))
    assert [r.transfer_s for r in run.records] == pytest.approx([0.3, 0.7])
    with pytest.raises(KeyError, match="request 1"):
        serve(reqs, "disaggregated", config(2, 1), RecordedTransfer({0: 0.3}))


def test_disaggregated_serving_refuses_to_assume_a_transfer_time():
    with pytest.raises(ValueError, match="TransferPort"):
        serve([Request(0.0, 10, 1)], "disaggregated", config())


def test_event_loop_runs_in_time_order_and_refuses_the_past():
    loop, seen = EventLoop(), []
    loop.schedule(2.0, lambda: seen.append(2))
    loop.schedule(1.0, lambda: seen.append(1))
    loop.schedule(1.0, lambda: seen.append(1.5))
    assert loop.run() == 3 and seen == [1, 1.5, 2] and loop.now_s == 2.0
    with pytest.raises(ValueError, match="before now"):
        loop.schedule(1.0, lambda: None)


def test_unfinished_requests_have_no_latency():
    run = serve([Request(0.0, 1000, 5)], "colocated", config(), until_s=0.5)
    assert not run.records[0].done and math.isnan(run.records[0].ttft_s)
    assert run.summary()["finished"] == 0


def test_an_external_fabric_reports_arrivals_while_a_driver_advances_the_loop():
    from serving.cluster import Cluster

    posted = []
    port = ExternalTransfer(post=posted.append)
    loop = EventLoop()
    cluster = Cluster("disaggregated", config(), loop, port)
    loop.schedule(0.0, lambda: cluster.arrive(0, Request(0.0, 1000, 3)))
    loop.run(until_s=1.2)  # prefill ends at 1.0 and the KV is handed to the fabric
    assert [(t.request_index, t.size_bytes) for t in posted] == [(0, 1000 * 131_072)]
    port.complete(0, arrived_s=1.25)  # measured by the endpoints
    loop.run()
    [r] = cluster.records
    assert r.transfer_s == pytest.approx(0.25) and r.ttft_s == pytest.approx(1.26)
    assert port.late_s == []
    loop.schedule(2.0, lambda: cluster.arrive(1, Request(2.0, 1000, 3)))
    loop.run(until_s=3.5)  # prefill 2.0 -> 3.0; the report of 3.2 comes after the loop passed
    port.complete(1, arrived_s=3.2)
    loop.run()
    assert port.late_s == pytest.approx([0.3])
    assert cluster.records[1].transfer_s == pytest.approx(0.5)  # applied at the present


def test_a_layerwise_transfer_hides_behind_the_prefill_up_to_its_last_layer():
    layerwise = config(transfer_mode="layerwise")
    [r] = serve([Request(0.0, 1000, 2)], "disaggregated", layerwise, FixedTransfer(0.5)).records
    # starts with the prefill at 0, would take 0.5 s, but the last layer is ready at 1.0
    assert r.transfer_start_s == 0.0 and r.transfer_end_s == pytest.approx(1.0)
    assert r.ttft_s == pytest.approx(1.01) and r.network_share == 0.0
    bits = 1000 * 131_072 * 8  # llama-3-8b, 32 layers
    slow = serve([Request(0.0, 1000, 2)], "disaggregated", layerwise,
                 LinkFormulaTransfer(rate_bps=bits / 2.0)).records[0]
    assert slow.transfer_end_s == pytest.approx(2.0)  # the wire, not the prefill, is last
    assert slow.ttft_parts_s()["transfer"] == pytest.approx(1.0)
    fast = serve([Request(0.0, 1000, 2)], "disaggregated", layerwise,
                 LinkFormulaTransfer(rate_bps=bits / 0.5)).records[0]
    assert fast.transfer_end_s == pytest.approx(1.0 + 0.5 / 32)  # only the last layer shows
    assert sum(fast.ttft_parts_s().values()) == pytest.approx(fast.ttft_s)


def test_a_layerwise_transfer_waiting_for_decode_memory_starts_after_the_prefill():
    small = InstanceProfile("small", 1000.0, 0.01, 0.0, 0.0, kv_capacity_tokens=2000,
                            prefill_batch_tokens=1000)
    reqs = [Request(0.0, 1000, 500), Request(0.0, 1000, 500)]
    run = serve(reqs, "disaggregated", config(profile=small, transfer_mode="layerwise"),
                FixedTransfer(0.0))
    _, second = run.records
    # prefilled 1.0 -> 2.0 with nowhere to send its layers; memory frees at 6.0
    assert second.transfer_start_s == pytest.approx(6.0)
    assert second.ttft_parts_s()["decode_memory_wait"] == pytest.approx(4.0)
    assert second.ttft_s == pytest.approx(6.01)


class _LayerLog(FixedTransfer):
    """FixedTransfer that keeps every ``layers`` and ``source_ready`` call in order."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.calls: list[tuple] = []

    def layers(self, loop, transfer, tokens, start_s, duration_s):
        self.calls.append(("layers", transfer.request_index, tokens, start_s, duration_s))

    def source_ready(self, loop, transfer):
        self.calls.append(("ready", transfer.request_index, loop.now_s))
        super().source_ready(loop, transfer)


def test_a_layerwise_transfer_is_told_each_chunk_when_its_layers_are_computed():
    port = _LayerLog(0.0)
    [r] = serve([Request(0.0, 2500, 2)], "disaggregated", config(transfer_mode="layerwise"),
                port).records
    # 2500 tokens in chunks of 1000 at 1000 tokens/s: 0 -> 1, 1 -> 2, 2 -> 2.5; the port
    # hears each chunk as its iteration starts, and that no layer follows at 2.5
    assert port.calls == [("layers", 0, 1000, 0.0, pytest.approx(1.0)),
                          ("layers", 0, 1000, pytest.approx(1.0), pytest.approx(1.0)),
                          ("layers", 0, 500, pytest.approx(2.0), pytest.approx(0.5)),
                          ("ready", 0, pytest.approx(2.5))]
    assert r.transfer_tokens == 2500


def test_layerwise_tokens_held_by_the_prefill_leave_at_once_and_held_by_the_decode_not_at_all():
    port = _LayerLog(0.0)
    cfg = config(d=2, policy="round_robin", transfer_mode="layerwise")
    first = Request(0.0, 1024, 2, block_ids=(1, 2))
    second = Request(5.0, 1536, 2, block_ids=(1, 2, 3))
    third = Request(10.0, 1536, 2, block_ids=(1, 2, 3))
    run = serve([first, second, third], "disaggregated", cfg, port)
    by_request = {i: [c for c in port.calls if c[0] == "layers" and c[1] == i]
                  for i in range(3)}
    r1, r2 = run.records[1], run.records[2]
    # the second request: the prefill holds blocks 1-2 (1024 tokens) and computes 512; its
    # decode instance holds nothing, so 1024 tokens leave at the transfer's start (duration 0)
    assert r1.cached_tokens == 1024 and r1.transfer_tokens == 1536
    assert by_request[1] == [("layers", 1, 1024, pytest.approx(5.0), 0.0),
                             ("layers", 1, 512, pytest.approx(5.0), pytest.approx(0.512))]
    # the third: the prefill holds blocks 1-3 and recomputes one token (the logits'); its
    # decode instance (decode0, after the first request) holds 1024 tokens: 512 move, 511
    # of them at once and the recomputed token with its layers
    assert r2.cached_tokens == 1535 and r2.transfer_tokens == 512
    assert [c[2] for c in by_request[2]] == [511, 1]
    for index in range(3):
        assert sum(c[2] for c in by_request[index]) == run.records[index].transfer_tokens


def test_layers_computed_while_waiting_for_decode_memory_are_handed_over_at_its_start():
    small = InstanceProfile("small", 1000.0, 0.01, 0.0, 0.0, kv_capacity_tokens=2000,
                            prefill_batch_tokens=1000)
    port = _LayerLog(0.0)
    serve([Request(0.0, 1000, 500), Request(0.0, 1000, 500)], "disaggregated",
          config(profile=small, transfer_mode="layerwise"), port)
    # the second prompt is computed 1.0 -> 2.0; its transfer starts when memory frees, at
    # 6.0: the chunk is handed over then (its layers' times are in the past), then "ready"
    second = [c for c in port.calls if c[1] == 1]
    assert second == [("layers", 1, 1000, pytest.approx(1.0), pytest.approx(1.0)),
                      ("ready", 1, pytest.approx(6.0))]

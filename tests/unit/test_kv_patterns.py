"""Transfer plans for xPyD disaggregated inference and the synthetic fabric patterns."""

import pytest

from traffic.kv_patterns import (
    KIND_ELEPHANT,
    KIND_INCAST,
    KIND_KV,
    KIND_KV_LAYER,
    KIND_SMALL,
    Pool,
    Transfer,
    elephants,
    incast,
    kv_incast,
    mix,
    plan_kv_transfers,
    small_flows,
)
from traffic.kvcache import preset
from traffic.traces import Request

LLAMA8B = preset("llama-3-8b")  # 131,072 B/token, 32 layers


def test_xpyd_pool_names_nodes_and_rejects_duplicates():
    pool = Pool.xpyd(3, 1)
    assert pool.prefill == ("prefill0", "prefill1", "prefill2") and pool.decode == ("decode0",)
    with pytest.raises(ValueError):
        Pool(("a",), ("a",))
    with pytest.raises(ValueError):
        Pool((), ("d",))


def test_whole_transfer_leaves_when_prefill_ends_with_the_uncached_kv_bytes():
    reqs = [Request(0.0, 1000, 10, 0), Request(0.5, 2000, 10, 512)]
    plan = plan_kv_transfers(reqs, Pool.xpyd(2, 2), LLAMA8B, prefill_tokens_per_s=10_000)
    assert plan == [
        Transfer(0.1, "prefill0", "decode0", 1000 * 131_072, KIND_KV, 0),
        Transfer(0.5 + 1488 / 10_000, "prefill1", "decode1", 1488 * 131_072, KIND_KV, 1),
    ]


def test_prefix_cache_hit_reduces_bytes_unless_told_to_ship_the_whole_context():
    reqs = [Request(0.0, 2048, 1, 1536)]
    pool = Pool.xpyd(1, 1)
    hit = plan_kv_transfers(reqs, pool, LLAMA8B, prefill_tokens_per_s=1e4)
    full = plan_kv_transfers(reqs, pool, LLAMA8B, prefill_tokens_per_s=1e4,
                             cache_hit_saves_transfer=False)
    assert hit[0].size_bytes == 512 * 131_072 and full[0].size_bytes == 2048 * 131_072
    assert hit[0].start_s == full[0].start_s == pytest.approx(512 / 1e4)
    fully_cached = plan_kv_transfers([Request(0.0, 512, 1, 512)], pool, LLAMA8B,
                                     prefill_tokens_per_s=1e4)
    assert fully_cached == []


def test_layerwise_streaming_sends_one_layer_as_each_is_computed():
    plan = plan_kv_transfers([Request(1.0, 3200, 1)], Pool.xpyd(1, 1), LLAMA8B,
                             prefill_tokens_per_s=32_000, mode="layerwise")
    assert len(plan) == 32 and {t.kind for t in plan} == {KIND_KV_LAYER}
    assert [t.layer for t in plan] == list(range(32))
    assert [t.start_s for t in plan] == pytest.approx([1.0 + 0.1 * (i + 1) / 32
                                                       for i in range(32)])
    assert sum(t.size_bytes for t in plan) == LLAMA8B.bytes_for_tokens(3200)


def test_prefill_nodes_queue_requests_fifo_and_least_loaded_picks_the_free_one():
    reqs = [Request(0.0, 1000, 1), Request(0.0, 1000, 1), Request(0.0, 1000, 1)]
    plan = plan_kv_transfers(reqs, Pool.xpyd(2, 1), LLAMA8B, prefill_tokens_per_s=1000)
    assert [(t.src, t.start_s) for t in plan] == [("prefill0", 1.0), ("prefill1", 1.0),
                                                  ("prefill0", 2.0)]


def test_tensor_parallel_ranks_spread_over_nics_and_nic_k_talks_to_nic_k():
    plan = plan_kv_transfers([Request(0.0, 100, 1)], Pool.xpyd(1, 1), LLAMA8B,
                             prefill_tokens_per_s=1e4, tp_size=8, nics_per_node=4)
    assert [(t.src, t.dst) for t in plan] == [(f"prefill0/nic{k}", f"decode0/nic{k}")
                                              for k in range(4)]
    assert sum(t.size_bytes for t in plan) == LLAMA8B.bytes_for_tokens(100)


def test_random_policies_are_deterministic_with_a_seed():
    reqs = [Request(i * 0.01, 500 + i, 1) for i in range(50)]
    kwargs = dict(prefill_tokens_per_s=1e5, prefill_policy="random", decode_policy="random")
    pool = Pool.xpyd(4, 4)
    assert plan_kv_transfers(reqs, pool, LLAMA8B, seed=1, **kwargs) == plan_kv_transfers(
        reqs, pool, LLAMA8B, seed=1, **kwargs)
    assert plan_kv_transfers(reqs, pool, LLAMA8B, seed=1, **kwargs) != plan_kv_transfers(
        reqs, pool, LLAMA8B, seed=2, **kwargs)


def test_synchronized_incast_starts_every_sender_at_once_towards_one_receiver():
    pool = Pool.xpyd(8, 1)
    plan = kv_incast(pool, LLAMA8B, tokens_per_sender=2, rounds=3, round_interval_s=0.01)
    assert len(plan) == 24 and {t.dst for t in plan} == {"decode0"}
    assert {t.size_bytes for t in plan} == {262_144} and {t.kind for t in plan} == {KIND_INCAST}
    assert sorted({t.start_s for t in plan}) == pytest.approx([0.0, 0.01, 0.02])
    assert {t.src for t in plan} == set(pool.prefill)


def test_incast_jitter_is_bounded_and_seeded_and_the_receiver_cannot_send():
    senders = [f"h{i}" for i in range(16)]
    plan = incast(senders, "sink", 256_000, jitter_s=1e-4, seed=4)
    assert all(0.0 <= t.start_s < 1e-4 for t in plan)
    assert plan == incast(senders, "sink", 256_000, jitter_s=1e-4, seed=4)
    with pytest.raises(ValueError):
        incast(["a", "b"], "a", 1)


def test_elephants_are_prefill_to_decode_and_seeded():
    pool = Pool.xpyd(4, 2)
    plan = elephants(pool, 10**9, count=20, spread_s=1.0, seed=9)
    assert len(plan) == 20 and {t.kind for t in plan} == {KIND_ELEPHANT}
    assert all(t.src in pool.prefill and t.dst in pool.decode for t in plan)
    assert [t.start_s for t in plan] == sorted(t.start_s for t in plan)
    assert plan == elephants(pool, 10**9, count=20, spread_s=1.0, seed=9)


def test_mixed_pattern_interleaves_small_flows_with_elephants_in_start_order():
    pool = Pool.xpyd(2, 2)
    small = small_flows(pool.nodes, rate_rps=1000, size_bytes=4096, duration_s=0.5, seed=2)
    assert all(t.src != t.dst and t.kind == KIND_SMALL for t in small)
    assert len(small) == pytest.approx(500, rel=0.15)
    merged = mix(elephants(pool, 10**8, count=5, spread_s=0.5, seed=1), small)
    assert len(merged) == len(small) + 5
    assert [t.start_s for t in merged] == sorted(t.start_s for t in merged)
    assert small == small_flows(pool.nodes, rate_rps=1000, size_bytes=4096, duration_s=0.5,
                                seed=2)


@pytest.mark.parametrize("bad", [dict(mode="chunked"), dict(prefill_policy="fastest"),
                                 dict(decode_policy="least_loaded"),
                                 dict(prefill_tokens_per_s=0)])
def test_unknown_modes_and_policies_are_rejected(bad):
    kwargs = {"prefill_tokens_per_s": 1e4, **bad}
    with pytest.raises(ValueError):
        plan_kv_transfers([Request(0.0, 10, 1)], Pool.xpyd(1, 1), LLAMA8B, **kwargs)


def test_only_the_emulated_nics_are_planned():
    plan = plan_kv_transfers([Request(0.0, 100, 1)], Pool.xpyd(1, 1), LLAMA8B,
                             prefill_tokens_per_s=1e4, tp_size=8, nics_per_node=8,
                             emulated_nics=[0])
    assert [(t.src, t.size_bytes) for t in plan] == [("prefill0/nic0",
                                                      LLAMA8B.bytes_for_tokens(100) // 8)]


def test_requests_beyond_the_maximum_context_are_kept_dropped_or_refused():
    reqs = [Request(0.0, 9000, 1), Request(0.0, 100, 1)]  # llama-3-8b: 8192 tokens
    kwargs = dict(prefill_tokens_per_s=1e4)
    assert len(plan_kv_transfers(reqs, Pool.xpyd(1, 1), LLAMA8B, **kwargs)) == 2
    kept = plan_kv_transfers(reqs, Pool.xpyd(1, 1), LLAMA8B, over_context="drop", **kwargs)
    assert [t.request_index for t in kept] == [1]
    with pytest.raises(ValueError, match="maximum context of 8192"):
        plan_kv_transfers(reqs, Pool.xpyd(1, 1), LLAMA8B, over_context="error", **kwargs)

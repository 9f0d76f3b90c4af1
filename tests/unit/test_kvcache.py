"""KV-cache bytes per token from published model configs."""

import pytest

from traffic.kvcache import (
    MODEL_PRESETS,
    VLLM_BLOCK_TOKENS,
    KvModel,
    blocks_for_tokens,
    preset,
)


def test_llama3_8b_bf16_is_131072_bytes_per_token():
    assert preset("llama-3-8b").bytes_per_token == 2 * 32 * 8 * 128 * 2 == 131_072


@pytest.mark.parametrize("name,bytes_per_token", [
    ("llama-2-7b", 524_288),  # MHA: 2 x 32 x 32 x 128 x 2
    ("llama-2-70b", 327_680),  # GQA: 2 x 80 x 8 x 128 x 2
    ("llama-3-70b", 327_680),
    ("llama-3.1-405b", 516_096),
    ("mistral-7b", 131_072),
    ("qwen2-72b", 327_680),
    ("qwen2.5-7b", 57_344),
    ("deepseek-v2", 60 * 576 * 2),
    ("deepseek-v3", 61 * (512 + 64) * 2),
])
def test_presets_follow_the_gqa_and_mla_formulas(name, bytes_per_token):
    assert MODEL_PRESETS[name].bytes_per_token == bytes_per_token


def test_mla_bytes_per_token_is_layers_times_latent_plus_rope_dims():
    v3 = preset("DeepSeek-V3")
    assert v3.bytes_per_token == 70_272
    assert v3.with_dtype(1).bytes_per_token == 35_136  # fp8 cache halves it


def test_128k_tokens_of_llama3_70b_is_about_the_40gb_mooncake_moved():
    assert preset("llama-3-70b").bytes_for_tokens(128 * 1024) == 40 * 2**30


def test_block_rounding_uses_vllm_16_token_blocks_by_default():
    model = preset("llama-3-8b")
    assert VLLM_BLOCK_TOKENS == 16
    assert blocks_for_tokens(17) == 2 and blocks_for_tokens(16) == 1 and blocks_for_tokens(0) == 0
    assert model.bytes_in_blocks(17) == 32 * 131_072
    assert model.bytes_in_blocks(1000, block_tokens=512) == 1024 * 131_072


def test_tensor_parallel_splits_kv_heads_and_replicates_them_beyond_the_head_count():
    model = preset("llama-3-70b")  # 8 KV heads
    assert model.bytes_per_token_per_rank(8) * 8 == model.bytes_per_token
    assert model.bytes_per_token_per_rank(16) == model.bytes_per_token_per_rank(8)


def test_mla_latent_is_replicated_on_every_tensor_parallel_rank():
    v3 = preset("deepseek-v3")
    assert v3.bytes_per_token_per_rank(8) == v3.bytes_per_token


def test_bytes_per_nic_sums_the_rank_shards_round_robin():
    model = preset("llama-3-8b")
    assert model.bytes_per_nic(100, tp_size=8, nics=8) == [100 * 131_072 // 8] * 8
    assert model.bytes_per_nic(100, tp_size=4, nics=2) == [100 * 131_072 // 2] * 2
    assert model.bytes_per_nic(100, tp_size=2, nics=4)[2:] == [0, 0]
    assert sum(model.bytes_per_nic(10, tp_size=4, nics=3)) == model.bytes_for_tokens(10)


@pytest.mark.parametrize("kwargs", [dict(attention="gqa", num_kv_heads=0, head_dim=128),
                                    dict(attention="mla", kv_lora_rank=0),
                                    dict(attention="sparse", num_kv_heads=8, head_dim=128)])
def test_incomplete_or_unknown_attention_configs_are_rejected(kwargs):
    with pytest.raises(ValueError):
        KvModel("bad", 32, **kwargs)


def test_unknown_preset_lists_the_known_names():
    with pytest.raises(KeyError, match="llama-3-8b"):
        preset("gpt-5")


def test_a_replicated_mla_latent_crosses_the_network_once_not_once_per_rank():
    v3 = preset("deepseek-v3")
    loads = v3.bytes_per_nic(1000, tp_size=8, nics=8)
    assert sum(loads) == v3.bytes_for_tokens(1000) == 1000 * 70_272  # was 8x before
    assert loads[0] == sum(loads)  # rank 0 holds the whole latent and sends it


def test_kv_heads_fewer_than_ranks_are_sent_once_per_distinct_head():
    qwen = preset("qwen2.5-7b")  # 4 KV heads over 8 ranks: each head on 2 ranks
    assert qwen.shard_senders(8) == [(0, 1, 4), (2, 1, 4), (4, 1, 4), (6, 1, 4)]
    loads = qwen.bytes_per_nic(100, tp_size=8, nics=8)
    assert sum(loads) == qwen.bytes_for_tokens(100)
    assert loads[1::2] == [0, 0, 0, 0] and len(set(loads[0::2])) == 1
    with pytest.raises(ValueError, match="divide"):
        qwen.shard_senders(3)


def test_sliding_window_layers_stop_growing_at_the_window():
    mistral = preset("mistral-7b")  # every layer: 4096-token window
    assert mistral.bytes_for_tokens(10_000) == mistral.bytes_for_tokens(4096)
    assert mistral.bytes_for_tokens(1000) == 1000 * 131_072
    gemma = preset("gemma-2-9b")  # 21 of 42 layers windowed, 2 x 8 x 256 x 2 B per layer
    per_layer = 2 * 8 * 256 * 2
    assert gemma.bytes_for_tokens(8192) == (21 * 8192 + 21 * 4096) * per_layer


def test_maximum_context_comes_from_the_config():
    assert preset("llama-3-8b").fits_context(8192)
    assert not preset("llama-3-8b").fits_context(8193)
    assert preset("deepseek-v3").max_context_tokens == 163_840

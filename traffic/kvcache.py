"""KV-cache sizes: how many bytes a prefill node ships to a decode node per token.

- MHA/GQA: bytes/token = 2 (K and V) x num_hidden_layers x num_key_value_heads x head_dim
  x bytes/elem. Llama-3-8B in bf16: 2 x 32 x 8 x 128 x 2 = 131,072 B/token.
- MLA (DeepSeek-V2/V3) caches one compressed latent plus the decoupled RoPE key per layer:
  bytes/token = num_hidden_layers x (kv_lora_rank + qk_rope_head_dim) x bytes/elem.
- vLLM allocates the cache in blocks of 16 tokens by default; Mooncake hashes 512-token blocks.

Tensor parallelism splits KV heads across ranks: with tp <= kv_heads each rank holds
kv_heads / tp distinct heads; with tp > kv_heads each head is replicated on tp / kv_heads ranks
(vLLM requires one to divide the other: ``vllm/model_executor/layers/linear.py``,
QKVParallelLinear). An MLA latent is not split by heads, so every rank holds all of it
(DeepSeek-V2 paper, arXiv 2405.04434, sec. 2.1). Memory per rank counts the replicas
(:meth:`KvModel.bytes_per_token_per_rank`); the network does not: a decode group needs each
distinct shard once, so :meth:`KvModel.shard_senders` names one sender rank per distinct shard
(the first rank holding it) and :meth:`KvModel.bytes_per_nic` sends only those. DeepSeek-V3 at
TP 8 therefore moves its 70,272 B/token once, not 8 times. With one NIC per GPU (as in
Mooncake's 8 x 400G nodes) rank r ships over NIC r mod nics.

Sliding-window attention keeps only the last ``sliding_window_tokens`` of the context on the
layers that use it (Mistral-7B: all 32 layers, 4096 tokens, ``config.json`` ``sliding_window``;
Gemma-2: every other layer, 4096 tokens, arXiv 2408.00118 sec. 2), so a long prompt's cache
stops growing there; ``max_context_tokens`` is the config's ``max_position_embeddings``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

VLLM_BLOCK_TOKENS = 16
MOONCAKE_BLOCK_TOKENS = 512
ATTENTION_KINDS = ("mha", "gqa", "mla")


@dataclass(frozen=True)
class KvModel:
    """The fields of a model's published config that set its KV-cache size."""

    name: str
    num_layers: int
    attention: str = "gqa"
    num_kv_heads: int = 0
    head_dim: int = 0
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    bytes_per_elem: int = 2  # bf16/fp16; 1 for an fp8 cache
    max_context_tokens: int = 0  # max_position_embeddings; 0: not limited here
    sliding_window_tokens: int = 0  # 0: full attention on every layer
    sliding_layers: int = 0  # layers using the window (all of them when 0 and a window is set)

    def __post_init__(self) -> None:
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {self.attention!r}")
        if self.num_layers <= 0 or self.bytes_per_elem <= 0:
            raise ValueError("num_layers and bytes_per_elem must be positive")
        if self.attention == "mla":
            if self.kv_lora_rank <= 0 or self.qk_rope_head_dim < 0:
                raise ValueError("MLA needs kv_lora_rank > 0 and qk_rope_head_dim >= 0")
        elif self.num_kv_heads <= 0 or self.head_dim <= 0:
            raise ValueError("MHA/GQA need num_kv_heads > 0 and head_dim > 0")
        if min(self.max_context_tokens, self.sliding_window_tokens, self.sliding_layers) < 0 \
                or self.sliding_layers > self.num_layers:
            raise ValueError("context, window and sliding layers cannot be negative; "
                             "sliding_layers at most num_layers")

    @property
    def windowed_layers(self) -> int:
        if not self.sliding_window_tokens:
            return 0
        return self.sliding_layers or self.num_layers

    def fits_context(self, tokens: int) -> bool:
        """Whether ``tokens`` (prompt plus output) fit the model's maximum context."""
        return not self.max_context_tokens or tokens <= self.max_context_tokens

    def with_dtype(self, bytes_per_elem: int) -> KvModel:
        """The same model with another cache element size (e.g. 1 for fp8)."""
        return replace(self, bytes_per_elem=bytes_per_elem)

    @property
    def bytes_per_token_per_layer(self) -> int:
        if self.attention == "mla":
            return (self.kv_lora_rank + self.qk_rope_head_dim) * self.bytes_per_elem
        return 2 * self.num_kv_heads * self.head_dim * self.bytes_per_elem

    @property
    def bytes_per_token(self) -> int:
        return self.num_layers * self.bytes_per_token_per_layer

    def bytes_for_tokens(self, tokens: int) -> int:
        """Exact bytes the cache holds after ``tokens`` tokens, all layers, one tensor-parallel
        group (windowed layers hold at most their window)."""
        if tokens < 0:
            raise ValueError(f"tokens cannot be negative, got {tokens}")
        windowed = self.windowed_layers
        held = (self.num_layers - windowed) * tokens
        held += windowed * min(tokens, self.sliding_window_tokens)
        return held * self.bytes_per_token_per_layer

    def block_bytes(self, block_tokens: int = VLLM_BLOCK_TOKENS) -> int:
        """Bytes of one cache block of ``block_tokens`` tokens, all layers."""
        return block_tokens * self.bytes_per_token

    def bytes_in_blocks(self, tokens: int, block_tokens: int = VLLM_BLOCK_TOKENS) -> int:
        """Bytes when whole blocks move: ``tokens`` rounded up to ``block_tokens``."""
        return blocks_for_tokens(tokens, block_tokens) * self.block_bytes(block_tokens)

    def bytes_per_token_per_rank(self, tp_size: int = 1) -> int:
        """KV bytes per token held by one of ``tp_size`` tensor-parallel ranks."""
        if tp_size <= 0:
            raise ValueError(f"tp_size must be positive, got {tp_size}")
        if self.attention == "mla":
            return self.bytes_per_token
        heads = math.ceil(self.num_kv_heads / tp_size)
        return self.num_layers * 2 * heads * self.head_dim * self.bytes_per_elem

    def shard_senders(self, tp_size: int = 1) -> list[tuple[int, int, int]]:
        """(rank, numerator, denominator) for each distinct shard: ``rank`` is the first rank
        holding it and the shard is numerator/denominator of the cache."""
        if tp_size <= 0:
            raise ValueError(f"tp_size must be positive, got {tp_size}")
        if self.attention == "mla":
            return [(0, 1, 1)]  # the latent is whole on every rank: sent once
        heads = self.num_kv_heads
        if heads % tp_size and tp_size % heads:
            raise ValueError(f"{heads} KV heads over {tp_size} ranks: one must divide the "
                             "other (as vLLM requires)")
        if tp_size <= heads:
            return [(rank, 1, tp_size) for rank in range(tp_size)]
        replicas = tp_size // heads  # ranks holding the same head
        return [(head * replicas, 1, heads) for head in range(heads)]

    def bytes_per_nic(self, tokens: int, tp_size: int = 1, nics: int = 1) -> list[int]:
        """Bytes each of ``nics`` NICs carries for ``tokens`` tokens when each distinct shard
        is shipped once, by the first of the ``tp_size`` ranks holding it, and rank r uses
        NIC r mod ``nics``; the loads sum to :meth:`bytes_for_tokens`."""
        if nics <= 0:
            raise ValueError(f"nics must be positive, got {nics}")
        total = self.bytes_for_tokens(tokens)
        loads = [0] * nics
        for rank, numerator, denominator in self.shard_senders(tp_size):
            loads[rank % nics] += total * numerator // denominator
        return loads


def blocks_for_tokens(tokens: int, block_tokens: int = VLLM_BLOCK_TOKENS) -> int:
    """Cache blocks needed for ``tokens`` tokens (the last one may be partly filled)."""
    if block_tokens <= 0 or tokens < 0:
        raise ValueError("block_tokens must be positive and tokens non-negative")
    return -(-tokens // block_tokens)


def _gqa(name: str, layers: int, kv_heads: int, head_dim: int, max_context: int,
         **window: int) -> KvModel:
    return KvModel(name, layers, "gqa", num_kv_heads=kv_heads, head_dim=head_dim,
                   max_context_tokens=max_context, **window)


# From each model's Hugging Face config.json: num_hidden_layers, num_key_value_heads and
# head_dim = hidden_size / num_attention_heads; for MLA, kv_lora_rank and qk_rope_head_dim;
# max_position_embeddings as the maximum context; sliding_window where the config uses one
# (Mistral-7B-v0.1: 4096; Qwen2/2.5 ship use_sliding_window: false, so none).
# All in bf16, the dtype the configs ship (torch_dtype: bfloat16).
MODEL_PRESETS: dict[str, KvModel] = {
    # meta-llama/Llama-2-7b-hf: 32 layers, 32 heads = 32 KV heads (MHA), hidden 4096.
    "llama-2-7b": KvModel("llama-2-7b", 32, "mha", num_kv_heads=32, head_dim=128,
                          max_context_tokens=4096),
    # meta-llama/Llama-2-70b-hf: 80 layers, 8 KV heads, hidden 8192 / 64 heads.
    "llama-2-70b": _gqa("llama-2-70b", 80, 8, 128, 4096),
    # meta-llama/Meta-Llama-3-8B: 32 layers, 8 KV heads, hidden 4096 / 32 heads.
    "llama-3-8b": _gqa("llama-3-8b", 32, 8, 128, 8192),
    # meta-llama/Meta-Llama-3-70B: 80 layers, 8 KV heads, hidden 8192 / 64 heads.
    "llama-3-70b": _gqa("llama-3-70b", 80, 8, 128, 8192),
    # meta-llama/Llama-3.1-405B: 126 layers, 8 KV heads, hidden 16384 / 128 heads.
    "llama-3.1-405b": _gqa("llama-3.1-405b", 126, 8, 128, 131072),
    # mistralai/Mistral-7B-v0.1: 32 layers, 8 KV heads, hidden 4096 / 32 heads.
    "mistral-7b": _gqa("mistral-7b", 32, 8, 128, 32768, sliding_window_tokens=4096),
    # mistralai/Mixtral-8x7B-v0.1: 32 layers, 8 KV heads, hidden 4096 / 32 heads.
    "mixtral-8x7b": _gqa("mixtral-8x7b", 32, 8, 128, 32768),
    # Qwen/Qwen2-72B: 80 layers, 8 KV heads, hidden 8192 / 64 heads.
    "qwen2-72b": _gqa("qwen2-72b", 80, 8, 128, 131072),
    # Qwen/Qwen2.5-7B: 28 layers, 4 KV heads, hidden 3584 / 28 heads.
    "qwen2.5-7b": _gqa("qwen2.5-7b", 28, 4, 128, 131072),
    # deepseek-ai/DeepSeek-V2: 60 layers, kv_lora_rank 512, qk_rope_head_dim 64.
    "deepseek-v2": KvModel("deepseek-v2", 60, "mla", kv_lora_rank=512, qk_rope_head_dim=64,
                           max_context_tokens=163840),
    # deepseek-ai/DeepSeek-V3: 61 layers, kv_lora_rank 512, qk_rope_head_dim 64.
    "deepseek-v3": KvModel("deepseek-v3", 61, "mla", kv_lora_rank=512, qk_rope_head_dim=64,
                           max_context_tokens=163840),
    # google/gemma-2-9b: 42 layers, 8 KV heads, head_dim 256, sliding_window 4096 on every
    # other layer (local/global alternating), max_position_embeddings 8192.
    "gemma-2-9b": _gqa("gemma-2-9b", 42, 8, 256, 8192, sliding_window_tokens=4096,
                       sliding_layers=21),
}


def preset(name: str) -> KvModel:
    """A model from :data:`MODEL_PRESETS`; the error lists the known names."""
    try:
        return MODEL_PRESETS[name.lower()]
    except KeyError:
        known = ", ".join(sorted(MODEL_PRESETS))
        raise KeyError(f"unknown model {name!r}; known: {known}") from None

"""How fast one serving instance (a tensor-parallel group of GPUs) runs each phase.

The cost model has the structure of DistServe's latency model (Zhong et al., OSDI'24,
Appendix A): a prefill iteration costs a fixed overhead plus time linear in the tokens it
computes (compute-bound: Splitwise, ISCA'24, sec. III, finds the prompt phase scales with
prompt tokens); a decode step costs a fixed part (reading the weights once) plus a part per
sequence in the batch plus a part per context token it attends to (reading their KV; the
token phase is memory-bound). Quadratic attention FLOPs in prefill are left out (a few per
cent below ~8K tokens on 7-70B models, more beyond: see docs/serving.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceProfile:
    """Throughput and capacity of one instance; times in s, sizes in tokens."""

    name: str
    prefill_tokens_per_s: float
    decode_base_s: float
    decode_per_seq_s: float
    decode_per_ctx_token_s: float
    kv_capacity_tokens: int
    prefill_fixed_s: float = 0.0
    max_batch: int = 256  # sequences in one decode step (vLLM max_num_seqs default)
    prefill_batch_tokens: int = 8192  # tokens per prefill iteration (longer prompts chunk)
    colocated_chunk_tokens: int | None = 512  # chunked prefill (Sarathi); None: whole prompts
    gpus: int = 1

    def __post_init__(self) -> None:
        for name in ("prefill_tokens_per_s", "prefill_batch_tokens", "max_batch",
                     "kv_capacity_tokens", "gpus"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be positive and finite, got {value!r}")
        for name in ("decode_base_s", "decode_per_seq_s", "decode_per_ctx_token_s",
                     "prefill_fixed_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
        if self.colocated_chunk_tokens is not None and self.colocated_chunk_tokens <= 0:
            raise ValueError("colocated_chunk_tokens must be positive or None")

    def prefill_s(self, tokens: int) -> float:
        """One prefill iteration computing ``tokens`` tokens (0 tokens: no iteration)."""
        return self.prefill_fixed_s + tokens / self.prefill_tokens_per_s if tokens else 0.0

    def decode_step_s(self, batch: int, context_tokens: int) -> float:
        """One decode step for ``batch`` sequences holding ``context_tokens`` in total."""
        if batch == 0:
            return 0.0
        return (self.decode_base_s + self.decode_per_seq_s * batch
                + self.decode_per_ctx_token_s * context_tokens)

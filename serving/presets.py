"""Instance profiles for published GPUs and models, from datasheets and a roofline.

Each figure below is a documented approximation, not a measurement:

- GPU peaks from NVIDIA's datasheets: H100 SXM5 80 GB, 989 TFLOPS dense BF16 and 3.35 TB/s
  HBM3; A100 SXM4 80 GB, 312 TFLOPS dense BF16 and 2.039 TB/s HBM2e.
- Prefill is compute-bound (Splitwise, ISCA'24, sec. III; DistServe, OSDI'24, sec. 3.1: a
  512-token prefill of a 13B model already saturates an A100): tokens/s =
  ``Gpu.prefill_mfu`` x peak FLOP/s x GPUs / (2 x parameters).
- Decode is memory-bound (same sources): a step reads the weights once and each sequence's
  KV once, at ``DECODE_BANDWIDTH_EFFICIENCY`` x HBM bandwidth x GPUs, plus
  ``STEP_OVERHEAD_S`` (kernel launches, sampling, scheduling), the per-sequence compute
  2 x parameters at ``Gpu.prefill_mfu``, and, with tensor parallelism, two all-reduces per
  layer (after attention and after the MLP) at ``ALLREDUCE_S`` each.
- KV capacity: ``MEMORY_UTILISATION`` (vLLM's gpu_memory_utilization default 0.9) of the
  GPUs' memory, less the weights, over the model's KV bytes per token (traffic/kvcache.py).

The efficiencies are calibrated against published measurements (``serving/published.py``
holds them with their sources; ``tests/unit/test_serving_presets_published.py`` keeps every
figure the roofline claims to model within 0.8-1.25x of it):

- ``A100_PREFILL_MFU`` 0.6: the A100 prefill figures imply 0.58-0.67 of peak (TensorRT-LLM's
  FP16 first-token latency, Llama-2-7B at 2048 tokens: 133 ms; Splitwise's Llama2-70B at
  TP2: 688 ms at 2048 tokens), so 0.5 made A100 prefill up to 1.33x too slow.
- ``PREFILL_MFU`` 0.5 (H100): Splitwise's Llama2-70B at TP2 implies 0.43-0.46; 0.5 is within
  15 % of it and is kept (the only H100 prefill figures found; a 2023 FP16 stack).
- ``DECODE_BANDWIDTH_EFFICIENCY`` 0.7: gpt-fast reports 1397-1410 GB/s reached at batch 1 on
  an A100 (0.69 of 2.039 TB/s); unchanged.
- ``STEP_OVERHEAD_S`` 0.5 ms (was 1 ms) and ``ALLREDUCE_S`` 20 us (new): fitted together to
  gpt-fast's batch-1 decode at TP 1-8 (Llama-2-7B, Llama-3.1-8B, Llama-2-70B,
  Llama-3.1-70B); without the all-reduce term the roofline's step fell as 1/TP, and at TP8
  gpt-fast took 1.2-1.5x the roofline's time (Splitwise's stack 3.5x).

``InstanceProfile`` takes any numbers: pass ``overrides`` (or build a profile yourself) to
use a benchmark of your own stack instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from traffic.kvcache import preset as kv_preset

from .profiles import InstanceProfile

PREFILL_MFU = 0.5  # H100, and any GPU without a calibrated value of its own
A100_PREFILL_MFU = 0.6
DECODE_BANDWIDTH_EFFICIENCY = 0.7
STEP_OVERHEAD_S = 0.5e-3
ALLREDUCE_S = 20e-6  # one small (decode-sized) all-reduce over NVLink
ALLREDUCES_PER_LAYER = 2  # Megatron-style TP: after attention and after the MLP
MEMORY_UTILISATION = 0.9
BYTES_PER_PARAM = 2  # bf16 weights


@dataclass(frozen=True)
class Gpu:
    name: str
    bf16_flops: float
    hbm_bytes_per_s: float
    memory_bytes: float
    prefill_mfu: float = PREFILL_MFU


GPUS = {
    "h100-sxm": Gpu("h100-sxm", 989e12, 3.35e12, 80e9),
    "a100-sxm-80gb": Gpu("a100-sxm-80gb", 312e12, 2.039e12, 80e9,
                         prefill_mfu=A100_PREFILL_MFU),
}

# Parameter counts from the model cards (Meta Llama 3: 8.03B and 70.6B; Llama 2: 6.74B;
# Qwen2.5-7B: 7.61B). Llama-2-70B: 68.98B, counted from meta-llama/Llama-2-70b-hf's
# config.json (80 layers, hidden 8192, MLP 28672, 8 KV heads, vocabulary 32000, untied
# embeddings); it is here because Splitwise and TensorRT-LLM publish figures for it.
PARAMETERS = {"llama-3-8b": 8.03e9, "llama-3-70b": 70.6e9, "llama-2-7b": 6.74e9,
              "llama-2-70b": 68.98e9, "qwen2.5-7b": 7.61e9}


def roofline_profile(model: str, gpu: str = "h100-sxm", gpus: int = 1,
                     **overrides) -> InstanceProfile:
    """The profile of ``model`` on ``gpus`` x ``gpu`` (tensor parallel), by the roofline
    above; ``overrides`` replace any field (e.g. ``colocated_chunk_tokens=None``)."""
    if model not in PARAMETERS:
        raise KeyError(f"no parameter count for {model!r}; known: {', '.join(PARAMETERS)}")
    if gpu not in GPUS:
        raise KeyError(f"unknown GPU {gpu!r}; known: {', '.join(GPUS)}")
    spec, params = GPUS[gpu], PARAMETERS[model]
    kv = kv_preset(model)
    flops = spec.prefill_mfu * spec.bf16_flops * gpus
    bandwidth = DECODE_BANDWIDTH_EFFICIENCY * spec.hbm_bytes_per_s * gpus
    weights = params * BYTES_PER_PARAM
    free = MEMORY_UTILISATION * spec.memory_bytes * gpus - weights
    if free <= 0:
        raise ValueError(f"{model} does not fit {gpus} x {gpu}")
    allreduces = ALLREDUCES_PER_LAYER * kv.num_layers * ALLREDUCE_S if gpus > 1 else 0.0
    fields = dict(
        name=f"{model}@{gpus}x{gpu}",
        prefill_tokens_per_s=flops / (2 * params),
        decode_base_s=STEP_OVERHEAD_S + allreduces + weights / bandwidth,
        decode_per_seq_s=2 * params / flops,
        decode_per_ctx_token_s=kv.bytes_per_token / bandwidth,
        kv_capacity_tokens=int(free // kv.bytes_per_token),
        gpus=gpus,
    )
    fields.update(overrides)
    return InstanceProfile(**fields)

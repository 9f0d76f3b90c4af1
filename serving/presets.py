"""Instance profiles for published GPUs and models, from datasheets and a roofline.

Each figure below is a documented approximation, not a measurement:

- GPU peaks from NVIDIA's datasheets: H100 SXM5 80 GB, 989 TFLOPS dense BF16 and 3.35 TB/s
  HBM3; A100 SXM4 80 GB, 312 TFLOPS dense BF16 and 2.039 TB/s HBM2e.
- Prefill is compute-bound (Splitwise, ISCA'24, sec. III; DistServe, OSDI'24, sec. 3.1: a
  512-token prefill of a 13B model already saturates an A100): tokens/s =
  ``PREFILL_MFU`` x peak FLOP/s x GPUs / (2 x parameters).
- Decode is memory-bound (same sources): a step reads the weights once and each sequence's
  KV once, at ``DECODE_BANDWIDTH_EFFICIENCY`` x HBM bandwidth x GPUs, plus
  ``STEP_OVERHEAD_S`` (kernel launches, sampling, scheduling) and the per-sequence compute
  2 x parameters at ``PREFILL_MFU``.
- KV capacity: ``MEMORY_UTILISATION`` (vLLM's gpu_memory_utilization default 0.9) of the
  GPUs' memory, less the weights, over the model's KV bytes per token (traffic/kvcache.py).

The resulting Llama-3-8B on one H100 (about 31K prefill tokens/s, a 7-8 ms decode step at
small batch) is in the range vLLM and SGLang report for that pair; calibrate against your own
benchmark (``InstanceProfile`` takes any numbers) before trusting absolute latencies.
"""

from __future__ import annotations

from dataclasses import dataclass

from traffic.kvcache import preset as kv_preset

from .profiles import InstanceProfile

PREFILL_MFU = 0.5
DECODE_BANDWIDTH_EFFICIENCY = 0.7
STEP_OVERHEAD_S = 1e-3
MEMORY_UTILISATION = 0.9
BYTES_PER_PARAM = 2  # bf16 weights


@dataclass(frozen=True)
class Gpu:
    name: str
    bf16_flops: float
    hbm_bytes_per_s: float
    memory_bytes: float


GPUS = {
    "h100-sxm": Gpu("h100-sxm", 989e12, 3.35e12, 80e9),
    "a100-sxm-80gb": Gpu("a100-sxm-80gb", 312e12, 2.039e12, 80e9),
}

# Parameter counts from the model cards (Meta Llama 3: 8.03B and 70.6B; Llama 2: 6.74B;
# Qwen2.5-7B: 7.61B).
PARAMETERS = {"llama-3-8b": 8.03e9, "llama-3-70b": 70.6e9, "llama-2-7b": 6.74e9,
              "qwen2.5-7b": 7.61e9}


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
    flops = PREFILL_MFU * spec.bf16_flops * gpus
    bandwidth = DECODE_BANDWIDTH_EFFICIENCY * spec.hbm_bytes_per_s * gpus
    weights = params * BYTES_PER_PARAM
    free = MEMORY_UTILISATION * spec.memory_bytes * gpus - weights
    if free <= 0:
        raise ValueError(f"{model} does not fit {gpus} x {gpu}")
    fields = dict(
        name=f"{model}@{gpus}x{gpu}",
        prefill_tokens_per_s=flops / (2 * params),
        decode_base_s=STEP_OVERHEAD_S + weights / bandwidth,
        decode_per_seq_s=2 * params / flops,
        decode_per_ctx_token_s=kv.bytes_per_token / bandwidth,
        kv_capacity_tokens=int(free // kv.bytes_per_token),
        gpus=gpus,
    )
    fields.update(overrides)
    return InstanceProfile(**fields)

"""Published GPU measurements, each with its source, and the roofline presets against them.

Every figure below was read in the public source it cites; none is derived from the roofline.
Where a source reports repeated runs (Splitwise's profiling data has five rows per point), the
figure is their median; where it reports a rate (gpt-fast's tokens/s at batch 1), the figure
is its inverse, the time per step. ``compare`` gives the roofline's time for the same setup
and the ratio roofline / published (above 1: the roofline is slower than the measurement).

``in_regime`` says whether the roofline claims to model a figure:

- Prefills of 128 tokens are memory- and launch-bound, not compute-bound; the linear
  prefill model has no term for that and comes out 1.7-2x too fast.
- Splitwise's measurements at TP4 and TP8 come from a stack whose decode step stops shrinking
  beyond TP4 (Llama2-70B on DGX-H100: 29.7 ms at TP4, 29.8 ms at TP8 at batch 1), where
  gpt-fast's keeps shrinking (26.3 ms to 16.0 ms on A100); the roofline follows the latter.

``tests/unit/test_serving_presets_published.py`` keeps every in-regime ratio within
``TOLERANCE`` and every out-of-regime one on its documented (optimistic) side.
"""

from __future__ import annotations

from dataclasses import dataclass

from .presets import roofline_profile
from .profiles import InstanceProfile

# Published figures for one pair disagree between stacks by about this much (Llama2-70B
# decode on two A100s at batch 1: gpt-fast 46.9 ms, Splitwise 54.9 ms, 17 %); the roofline
# cannot be held closer to any one of them than they are to each other.
TOLERANCE = (0.8, 1.25)

TRT_LLM = ("NVIDIA TensorRT-LLM, docs/source/performance.md, 'Low Latency' section, table "
           "'A100 GPUs (FP16)' (data from TensorRT-LLM v0.5), "
           "https://github.com/NVIDIA/TensorRT-LLM/blob/"
           "138f96d45f90b9667426f7c47297d8c06bafac73/docs/source/performance.md")
SPLITWISE = ("Patel et al., 'Splitwise: Efficient Generative LLM Inference Using Phase "
             "Splitting', ISCA 2024: the DGX-A100/DGX-H100 profiling data released with its "
             "simulator, data/perf_model.csv, https://github.com/Mutinifni/splitwise-sim/blob/"
             "8f99e7dc9b407f4ce2488d03dd44c0b8b946dab0/data/perf_model.csv")
GPT_FAST = ("PyTorch gpt-fast README, 'Benchmarks' and 'Tensor Parallelism' tables, "
            "https://github.com/pytorch-labs/gpt-fast/blob/"
            "c9f683edd4f89d3e81ed8f52387e866a245e3226/README.md")
LAMBDA = ("Lambda, 'LLMs inference benchmarks, using vLLM, on Lambda Cloud' "
          "(github.com/LambdaLabsML/vllm-benchmark), vLLM benchmark_serving result files "
          "results/prompt_10/<GPU>/Meta-Llama-3-8B-Instruct_tp1_len2048.json")


@dataclass(frozen=True)
class PublishedFigure:
    """One measured time and the setup it was measured in.

    ``phase`` "prefill": ``published_s`` is one prefill of ``batch`` prompts of
    ``prompt_tokens`` each (time to first token). ``phase`` "decode": it is one decode step
    (time per output token) of ``batch`` sequences holding ``context_tokens`` each on
    average while they decode.
    """

    source: str
    where: str  # table, figure or row in the source
    published_model: str  # as the source names it
    model: str  # the preset it is compared with (same architecture)
    gpu: str
    gpus: int  # tensor-parallel degree
    precision: str
    phase: str
    batch: int
    prompt_tokens: int
    context_tokens: int
    published_s: float
    in_regime: bool = True
    note: str = ""

    def setup(self) -> str:
        shape = (f"{self.prompt_tokens}-token prompt" if self.phase == "prefill"
                 else f"~{self.context_tokens}-token context")
        return (f"{self.published_model}, {self.gpus}x {self.gpu} (TP{self.gpus}), "
                f"{self.precision}, {self.phase}, batch {self.batch}, {shape}")


@dataclass(frozen=True)
class Comparison:
    figure: PublishedFigure
    roofline_s: float

    @property
    def ratio(self) -> float:
        """Roofline / published: above 1 the roofline is slower than the measurement."""
        return self.roofline_s / self.figure.published_s

    @property
    def within_tolerance(self) -> bool:
        return TOLERANCE[0] <= self.ratio <= TOLERANCE[1]


def _trt(model, published, gpus, prompt, ms, **kw):
    return PublishedFigure(TRT_LLM, f"'{published}' row, TP {gpus}, input length {prompt}, "
                           "'1st Token Latency (ms)'", published, model, "a100-sxm-80gb",
                           gpus, "fp16", "prefill", 1, prompt, prompt, ms / 1e3, **kw)


def _splitwise(gpu, gpus, phase, batch, prompt, ms, **kw):
    column = "prompt_time" if phase == "prefill" else "token_time"
    where = (f"rows llama2-70b, {gpu.split('-sxm')[0]}-80gb, tensor_parallel {gpus}, "
             f"prompt_size {prompt}, batch_size {batch}, token_size 128: median {column}")
    # Decoding 128 tokens after a prompt: the context grows from the prompt to prompt + 128.
    return PublishedFigure(SPLITWISE, where, "Llama2-70B", "llama-2-70b", gpu, gpus,
                           "fp16", phase, batch, prompt, prompt + 64, ms / 1e3, **kw)


def _gpt_fast(model, published, gpus, tokens_per_s):
    table = "'Tensor Parallelism'" if gpus > 1 or "3.1" in published else "'Benchmarks'"
    # A 5-token prompt and generate.py's default 200 new tokens: ~105 tokens of context.
    return PublishedFigure(GPT_FAST, f"{table} table, '{published}' Base, {gpus} GPU(s): "
                           f"{tokens_per_s} tokens/s", published, model, "a100-sxm-80gb",
                           gpus, "bf16", "decode", 1, 5, 105, 1 / tokens_per_s,
                           note="A100-80GB power-limited to 330 W")


def _lambda(gpu, folder, median_tpot_ms):
    # Ten ShareGPT prompts sent at once (1369 input tokens, ~1900 output tokens in all):
    # decode batches of at most 10 sequences, ~230 tokens of context each on average.
    return PublishedFigure(LAMBDA, f"results/prompt_10/{folder}/Meta-Llama-3-8B-Instruct_"
                           f"tp1_len2048.json: median_tpot_ms {median_tpot_ms}",
                           "Meta-Llama-3-8B-Instruct", "llama-3-8b", gpu, 1, "bf16", "decode",
                           10, 137, 230, median_tpot_ms / 1e3,
                           note="vLLM with multi-step scheduling; compared at batch 10, the "
                                "largest the run reached")


_UNMODELLED_SHORT = "128-token prefill: memory- and launch-bound, not in the linear model"
_UNMODELLED_TP = "this stack's step stops shrinking beyond TP4; not in the roofline"

FIGURES: tuple[PublishedFigure, ...] = (
    # TensorRT-LLM v0.5, A100 FP16, batch 1, first-token latency.
    _trt("llama-2-7b", "LLaMA 7B", 1, 2048, 133),
    _trt("llama-2-70b", "LLaMA 70B", 4, 2048, 377),
    _trt("llama-2-7b", "LLaMA 7B", 1, 128, 16, in_regime=False, note=_UNMODELLED_SHORT),
    _trt("llama-2-70b", "LLaMA 70B", 4, 128, 47, in_regime=False, note=_UNMODELLED_SHORT),
    # Splitwise, Llama2-70B FP16, TP2: prefill at batch 1, decode after a 512-token prompt.
    _splitwise("a100-sxm-80gb", 2, "prefill", 1, 512, 196.9),
    _splitwise("a100-sxm-80gb", 2, "prefill", 1, 2048, 688.1),
    _splitwise("a100-sxm-80gb", 2, "prefill", 1, 8192, 2990.2),
    _splitwise("a100-sxm-80gb", 2, "decode", 1, 512, 54.86),
    _splitwise("a100-sxm-80gb", 2, "decode", 16, 512, 65.46),
    _splitwise("h100-sxm", 2, "prefill", 1, 512, 83.8),
    _splitwise("h100-sxm", 2, "prefill", 1, 2048, 310.3),
    _splitwise("h100-sxm", 2, "prefill", 1, 8192, 1339.8),
    _splitwise("h100-sxm", 2, "decode", 1, 512, 37.0),
    _splitwise("h100-sxm", 2, "decode", 16, 512, 41.97),
    # Splitwise at TP4 and TP8: out of the roofline's regime (see the module docstring).
    _splitwise("a100-sxm-80gb", 4, "decode", 1, 512, 44.99, in_regime=False,
               note=_UNMODELLED_TP),
    _splitwise("a100-sxm-80gb", 8, "decode", 1, 512, 44.85, in_regime=False,
               note=_UNMODELLED_TP),
    _splitwise("a100-sxm-80gb", 8, "prefill", 1, 2048, 274.2, in_regime=False,
               note=_UNMODELLED_TP),
    _splitwise("h100-sxm", 4, "decode", 1, 512, 29.72, in_regime=False, note=_UNMODELLED_TP),
    _splitwise("h100-sxm", 8, "decode", 1, 512, 29.76, in_regime=False, note=_UNMODELLED_TP),
    _splitwise("h100-sxm", 8, "prefill", 1, 2048, 136.8, in_regime=False,
               note=_UNMODELLED_TP),
    # gpt-fast, A100-80GB, bf16, batch 1 decode, TP 1-8.
    _gpt_fast("llama-2-7b", "Llama-2-7B", 1, 104.9),
    _gpt_fast("llama-2-7b", "Llama-2-7B", 2, 168.84),
    _gpt_fast("llama-2-7b", "Llama-2-7B", 4, 254.02),
    _gpt_fast("llama-2-7b", "Llama-2-7B", 8, 328.43),
    _gpt_fast("llama-3-8b", "Llama-3.1-8B", 1, 93.83),
    _gpt_fast("llama-3-8b", "Llama-3.1-8B", 2, 149.10),
    _gpt_fast("llama-3-8b", "Llama-3.1-8B", 4, 217.21),
    _gpt_fast("llama-3-8b", "Llama-3.1-8B", 8, 276.01),
    _gpt_fast("llama-2-70b", "Llama-2-70B", 2, 21.32),
    _gpt_fast("llama-2-70b", "Llama-2-70B", 4, 38.01),
    _gpt_fast("llama-2-70b", "Llama-2-70B", 8, 62.50),
    _gpt_fast("llama-3-70b", "Llama-3.1-70B", 2, 16.03),
    _gpt_fast("llama-3-70b", "Llama-3.1-70B", 4, 37.45),
    _gpt_fast("llama-3-70b", "Llama-3.1-70B", 8, 58.78),
    # vLLM (Lambda's benchmark), Llama-3-8B-Instruct bf16, one GPU, up to 10 sequences.
    _lambda("h100-sxm", "1xH100-80GB-SXM", 7.558),
    _lambda("a100-sxm-80gb", "1xA100-80GB-SXM", 12.01),
)


def roofline_s(figure: PublishedFigure, profile: InstanceProfile | None = None) -> float:
    """The roofline's time for the figure's setup (``profile`` defaults to the preset)."""
    profile = profile or roofline_profile(figure.model, figure.gpu, figure.gpus)
    if figure.phase == "prefill":
        return profile.prefill_s(figure.batch * figure.prompt_tokens)
    if figure.phase == "decode":
        return profile.decode_step_s(figure.batch, figure.batch * figure.context_tokens)
    raise ValueError(f"unknown phase {figure.phase!r}")


def compare(figure: PublishedFigure, profile: InstanceProfile | None = None) -> Comparison:
    return Comparison(figure, roofline_s(figure, profile))


def compare_all(figures=FIGURES) -> list[Comparison]:
    return [compare(f) for f in figures]


def table(comparisons: list[Comparison] | None = None) -> str:
    """A Markdown table of the comparisons (the one docs/serving.md shows)."""
    rows = ["| pair | published | source | roofline | ratio |", "| --- | --- | --- | --- | --- |"]
    for c in comparisons if comparisons is not None else compare_all():
        f = c.figure
        name = {TRT_LLM: "TensorRT-LLM perf. table (A100 FP16)", SPLITWISE:
                "Splitwise (ISCA'24) profiling data", GPT_FAST: "gpt-fast README",
                LAMBDA: "Lambda vLLM benchmark"}[f.source]
        flag = "" if f.in_regime else " (not modelled)"
        rows.append(f"| {f.setup()} | {f.published_s * 1e3:.1f} ms | {name}: {f.where} | "
                    f"{c.roofline_s * 1e3:.1f} ms | {c.ratio:.2f}{flag} |")
    return "\n".join(rows)

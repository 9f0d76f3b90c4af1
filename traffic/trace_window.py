"""Cutting a trace down to what an emulation can replay, and saying exactly what was kept.

A full public trace does not fit in an emulation (Mooncake's conversation trace is an hour
of load), so :class:`Selection` picks, in this order:

1. a time window: ``start_s`` + ``duration_s`` (trace seconds from the first request), or the
   busiest window of ``busiest_s`` seconds (the one holding the most requests; the earliest
   on ties);
2. a load: ``rate_rps`` thins (or superposes) the window to that mean rate, or ``rate_scale``
   multiplies its rate; thinning is seeded Bernoulli sampling, superposition adds
   floor(scale) copies plus a seeded fraction of one more, each copy with its own block ids
   (an independent copy of the workload: its prefixes are shared within the copy, as in the
   trace, never across copies, which would make every copy a full cache hit);
3. ``time_scale`` stretches the kept window (0.1 replays ten times faster), ``jitter_s``
   spreads requests that share a coarse stamp.

Prefix-cache hits are computed last, on the requests actually kept, in arrival order: a
sample's hits are the hits the sample would see (a 10 % sample does not inherit the whole
trace's cache). :meth:`Selection.describe` returns the mapping a run stores.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

COPY_ID_STRIDE = 1 << 40  # copy k of a superposed trace uses block ids + k * stride


def _finite(value: float | None, name: str, *, positive: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} cannot be negative, got {value!r}")


@dataclass(frozen=True)
class Selection:
    """Which part of a trace to replay, at what load and speed (see the module docstring)."""

    start_s: float | None = None
    duration_s: float | None = None
    busiest_s: float | None = None
    rate_rps: float | None = None
    rate_scale: float = 1.0
    time_scale: float = 1.0
    jitter_s: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _finite(self.start_s, "start_s")
        _finite(self.duration_s, "duration_s", positive=True)
        _finite(self.busiest_s, "busiest_s", positive=True)
        _finite(self.rate_rps, "rate_rps", positive=True)
        _finite(self.rate_scale, "rate_scale", positive=True)
        _finite(self.time_scale, "time_scale", positive=True)
        _finite(self.jitter_s, "jitter_s")
        if self.busiest_s is not None and (self.start_s is not None
                                           or self.duration_s is not None):
            raise ValueError("give busiest_s or start_s/duration_s, not both")
        if self.rate_rps is not None and self.rate_scale != 1.0:
            raise ValueError("give rate_rps or rate_scale, not both")

    @property
    def windowed(self) -> bool:
        return self.busiest_s is not None or self.start_s is not None \
            or self.duration_s is not None

    def window(self, arrivals_s: np.ndarray) -> tuple[float, float]:
        """[start, end) in trace seconds for sorted ``arrivals_s`` (relative to the first)."""
        if self.busiest_s is not None:
            return busiest_window(arrivals_s, self.busiest_s)
        start = self.start_s or 0.0
        end = start + self.duration_s if self.duration_s is not None else math.inf
        return start, end

    def describe(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def busiest_window(arrivals_s: np.ndarray, length_s: float) -> tuple[float, float]:
    """The [start, start + length_s) holding the most of the sorted ``arrivals_s``; windows
    start at an arrival, the earliest wins ties."""
    if len(arrivals_s) == 0:
        return 0.0, length_s
    ends = np.searchsorted(arrivals_s, arrivals_s + length_s, side="left")
    counts = ends - np.arange(len(arrivals_s))
    best = int(np.argmax(counts))
    start = float(arrivals_s[best])
    return start, start + length_s


def thin_or_superpose(requests: Sequence, scale: float, rng: np.random.Generator) -> list:
    """Each request kept floor(scale) times plus once more with probability frac(scale);
    copy k > 0 gets its block ids shifted by ``k * COPY_ID_STRIDE``."""
    whole, fraction = divmod(scale, 1.0)
    out = []
    for request in requests:
        copies = int(whole) + int(rng.random() < fraction)
        for k in range(copies):
            if k == 0:
                out.append(request)
            else:
                out.append(replace(request, block_ids=tuple(
                    b + k * COPY_ID_STRIDE for b in request.block_ids)))
    return out


def prefix_hits(block_ids: Sequence[tuple[int, ...]], block_tokens: int,
                input_tokens: Sequence[int]) -> list[int]:
    """Cached tokens of each request in order: the leading run of block ids seen before (a
    prefix cache reuses only a prefix; Mooncake chains its block hashes, so a seen id implies
    its whole prefix was seen), capped at the input length. The cache is unbounded."""
    seen: set[int] = set()
    cached = []
    for ids, tokens in zip(block_ids, input_tokens):
        hits = 0
        while hits < len(ids) and ids[hits] in seen:
            hits += 1
        seen.update(ids)
        cached.append(min(hits * block_tokens, tokens))
    return cached


def cached_share(requests: Sequence) -> float:
    """Cached input tokens over all input tokens (nan without input)."""
    total = sum(r.input_tokens for r in requests)
    return sum(r.cached_tokens for r in requests) / total if total else math.nan

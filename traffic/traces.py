"""Request traces for disaggregated inference: public trace readers and synthetic arrivals.

Formats (read line by line, every defect named by file and line: :mod:`traffic.trace_files`)
-------
- Mooncake (kvcache-ai/Mooncake ``FAST25-release/traces/*.jsonl``): one JSON object per line,
  ``timestamp`` (ms from start), ``input_length``, ``output_length``, ``hash_ids`` (one int per
  512-token block). A block id seen in an earlier request is a prefix-cache hit; we count the
  leading run of seen ids (see :func:`traffic.trace_window.prefix_hits`), on the requests kept.
- Azure LLM inference 2023 (Azure/AzurePublicDataset ``data/AzureLLMInferenceTrace_*.csv``):
  header ``TIMESTAMP,ContextTokens,GeneratedTokens``, date-time stamps with sub-second digits,
  which may be more than the 6 ``datetime`` parses, so we parse them to integer nanoseconds.

:func:`read_trace` returns arrivals relative to the start of the selected window, sorted by
time, after the :class:`~traffic.trace_window.Selection` (window, load, time scale, jitter);
``Trace.mapping`` records what was kept. :func:`rescale` applies the same load and time scaling
to any request list.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from traffic.trace_files import (  # noqa: F401  (parse_timestamp_ns is part of this API)
    TICKS_PER_S,
    RawRequest,
    TraceError,
    parse_timestamp_ns,
    raw_requests,
)
from traffic.trace_window import Selection, cached_share, prefix_hits, thin_or_superpose

MOONCAKE_BLOCK_TOKENS = 512


@dataclass(frozen=True)
class Request:
    """One inference request; ``cached_tokens`` of its input are a prefix-cache hit and
    ``block_ids`` name its input's cache blocks (Mooncake's ``hash_ids``; empty if unknown)."""

    arrival_s: float
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0
    block_ids: tuple[int, ...] = ()


@dataclass
class Trace:
    """Requests read from ``path``; ``skipped_lines`` were malformed and skipped; ``mapping``
    says which part of the file they are and how it was scaled (plain JSON values: store it
    with the run)."""

    requests: list[Request]
    path: str = ""
    skipped_lines: int = 0
    skipped: list[str] = field(default_factory=list)
    mapping: dict = field(default_factory=dict)


def parse_timestamp_s(text: str) -> float:
    """Seconds since the Unix epoch; see :func:`traffic.trace_files.parse_timestamp_ns`."""
    return parse_timestamp_ns(text) / 1e9


def _reporter(path: str, skip: bool, skipped: list[str]):
    def on_bad(line_number: int, reason: str) -> None:
        if not skip:
            raise TraceError(path, line_number, reason)
        skipped.append(f"{path}:{line_number}: {reason}")
    return on_bad


def read_trace(
    path: str | Path,
    trace_format: str = "mooncake",
    *,
    selection: Selection | None = None,
    skip_malformed: bool = False,
    block_tokens: int = MOONCAKE_BLOCK_TOKENS,
) -> Trace:
    """Stream ``path`` and keep what ``selection`` asks for. A window needs two passes (the
    first keeps only the stamps, to find the first request and the busiest window); malformed
    lines raise :class:`TraceError` or, with ``skip_malformed``, are skipped and counted."""
    selection = selection or Selection()
    name = str(path)
    ticks = TICKS_PER_S.get(trace_format, 1)
    skipped: list[str] = []
    start_s, end_s = 0.0, math.inf
    t0 = None
    if selection.windowed:
        first_pass = raw_requests(name, trace_format, _reporter(name, skip_malformed, []))
        stamps = [r.stamp for r in first_pass]
        t0 = min(stamps)
        relative = np.sort(np.array([(s - t0) / ticks for s in stamps]))
        start_s, end_s = selection.window(relative)
    kept: list[RawRequest] = []
    in_file = 0
    for raw in raw_requests(name, trace_format, _reporter(name, skip_malformed, skipped)):
        in_file += 1
        if t0 is not None and not start_s <= (raw.stamp - t0) / ticks < end_s:
            continue
        kept.append(raw)
    if not kept:
        raise ValueError(f"{name}: the window {start_s:g}-{end_s:g} s holds no request (the "
                         f"trace spans 0-{relative[-1]:g} s from its first request)")
    if t0 is None:
        t0 = min(r.stamp for r in kept)
    kept.sort(key=lambda r: (r.stamp, r.line_number))
    requests = [Request((r.stamp - t0) / ticks - start_s, r.input_tokens, r.output_tokens, 0,
                        r.block_ids) for r in kept]
    length_s = end_s - start_s if math.isfinite(end_s) else (
        requests[-1].arrival_s - requests[0].arrival_s if requests else 0.0)
    window_rate = len(requests) / length_s if length_s > 0 else math.inf
    load_scale = selection.rate_scale
    if selection.rate_rps is not None:
        if not math.isfinite(window_rate):
            raise ValueError(f"{name}: every kept request has the same stamp, so it has no "
                             "rate to thin to rate_rps; give a duration_s or use rate_scale")
        load_scale = selection.rate_rps / window_rate
    requests = _scaled(requests, load_scale, selection.time_scale, selection.jitter_s,
                       selection.seed)
    cached = prefix_hits([r.block_ids for r in requests], block_tokens,
                         [r.input_tokens for r in requests])
    requests = [replace(r, cached_tokens=c) for r, c in zip(requests, cached)]
    mapping = {
        "source": name, "format": trace_format, "requests_in_file": in_file,
        "skipped_lines": len(skipped), "window_start_s": start_s,
        "window_end_s": end_s if math.isfinite(end_s) else None,
        "requests_in_window": len(kept),
        "window_rate_rps": window_rate if math.isfinite(window_rate) else None,
        "load_scale": load_scale, "time_scale": selection.time_scale,
        "requests_kept": len(requests),
        "cached_share": share if math.isfinite(share := cached_share(requests)) else None,
        "selection": selection.describe(),
    }
    return Trace(requests, name, len(skipped), skipped, mapping)


def read_mooncake(path: str | Path, *, skip_malformed: bool = False,
                  block_tokens: int = MOONCAKE_BLOCK_TOKENS,
                  selection: Selection | None = None, **scaling: float) -> Trace:
    """Read a Mooncake JSONL trace (``scaling``: the :class:`Selection` fields, e.g.
    ``time_scale=0.1``, ``busiest_s=10``)."""
    return read_trace(path, "mooncake", selection=selection or Selection(**scaling),
                      skip_malformed=skip_malformed, block_tokens=block_tokens)


def read_azure(path: str | Path, *, skip_malformed: bool = False,
               selection: Selection | None = None, **scaling: float) -> Trace:
    """Read an Azure LLM inference CSV trace (line numbers count the header as line 1)."""
    return read_trace(path, "azure", selection=selection or Selection(**scaling),
                      skip_malformed=skip_malformed)


def check_trace(path: str | Path, trace_format: str) -> int:
    """Read ``path`` through to the end without keeping it; the number of requests, or a
    :class:`TraceError` naming the first defect's file and line."""
    name = str(path)
    return sum(1 for _ in raw_requests(name, trace_format, _reporter(name, False, [])))


def _scaled(requests: list[Request], load_scale: float, time_scale: float, jitter_s: float,
            seed: int) -> list[Request]:
    if load_scale == 1.0 and time_scale == 1.0 and jitter_s == 0.0:
        return list(requests)
    rng = np.random.default_rng(seed)
    out = thin_or_superpose(requests, load_scale, rng) if load_scale != 1.0 else list(requests)
    if time_scale != 1.0 or jitter_s:
        jitter = rng.uniform(0.0, jitter_s, size=len(out)) if jitter_s else np.zeros(len(out))
        out = [replace(r, arrival_s=r.arrival_s * time_scale + float(j))
               for r, j in zip(out, jitter)]
    out.sort(key=lambda r: r.arrival_s)
    return out


def rescale(
    requests: Sequence[Request],
    *,
    time_scale: float = 1.0,
    rate_scale: float = 1.0,
    jitter_s: float = 0.0,
    seed: int = 0,
) -> list[Request]:
    """Stretch time by ``time_scale``, scale the load by ``rate_scale`` (seeded thinning below
    1; above 1, floor(rate_scale) copies of every request plus a seeded fraction of one more)
    and add uniform [0, ``jitter_s``) jitter; returns requests sorted by arrival. Cached
    tokens are left as given (:func:`read_trace` recomputes them on what it keeps)."""
    Selection(rate_scale=rate_scale, time_scale=time_scale, jitter_s=jitter_s)  # checks
    return _scaled(list(requests), rate_scale, time_scale, jitter_s, seed)


def poisson_arrivals(
    rate_rps: float,
    *,
    duration_s: float | None = None,
    count: int | None = None,
    start_s: float = 0.0,
    seed: int = 0,
) -> list[float]:
    """Arrival times of a Poisson process of ``rate_rps``, either ``count`` of them or all
    within ``duration_s`` of ``start_s``."""
    if rate_rps <= 0:
        raise ValueError(f"rate_rps must be positive, got {rate_rps}")
    if (duration_s is None) == (count is None):
        raise ValueError("give exactly one of duration_s and count")
    rng = np.random.default_rng(seed)
    if count is not None:
        return list(start_s + np.cumsum(rng.exponential(1.0 / rate_rps, size=count)))
    arrivals: list[float] = []
    t = start_s
    end = start_s + duration_s
    while True:
        t += rng.exponential(1.0 / rate_rps)
        if t >= end:
            return arrivals
        arrivals.append(float(t))


def on_off_arrivals(
    rate_on_rps: float,
    on_s: float,
    off_s: float,
    *,
    duration_s: float,
    start_s: float = 0.0,
    exponential_periods: bool = False,
    seed: int = 0,
) -> list[float]:
    """Bursty arrivals: Poisson at ``rate_on_rps`` during ON periods, silence during OFF.

    Periods alternate ON, OFF, ... from ``start_s``; with ``exponential_periods`` their lengths
    are exponential with means ``on_s`` and ``off_s`` (a Markov-modulated Poisson process).
    """
    if rate_on_rps <= 0 or on_s <= 0 or off_s < 0 or duration_s < 0:
        raise ValueError("rate_on_rps and on_s must be positive, off_s and duration_s >= 0")
    rng = np.random.default_rng(seed)
    end = start_s + duration_s
    arrivals: list[float] = []
    period_start = start_s
    while period_start < end:
        on = rng.exponential(on_s) if exponential_periods else on_s
        off = rng.exponential(off_s) if exponential_periods and off_s > 0 else off_s
        stop = min(period_start + on, end)
        t = period_start
        while True:
            t += rng.exponential(1.0 / rate_on_rps)
            if t >= stop:
                break
            arrivals.append(float(t))
        period_start += on + off
    return arrivals


def requests_from_arrivals(
    arrivals_s: Iterable[float],
    input_tokens: int | Sequence[int],
    output_tokens: int | Sequence[int],
    cached_tokens: int | Sequence[int] = 0,
) -> list[Request]:
    """Requests at ``arrivals_s``; each token argument is one int for all or one per arrival."""
    times = list(arrivals_s)

    def per_request(value: int | Sequence[int], name: str) -> list[int]:
        if isinstance(value, int):
            return [value] * len(times)
        values = [int(v) for v in value]
        if len(values) != len(times):
            raise ValueError(f"{name} has {len(values)} values for {len(times)} arrivals")
        return values

    inputs = per_request(input_tokens, "input_tokens")
    outputs = per_request(output_tokens, "output_tokens")
    cached = per_request(cached_tokens, "cached_tokens")
    return [
        Request(float(t), i, o, min(c, i))
        for t, i, o, c in zip(times, inputs, outputs, cached, strict=True)
    ]


def mean_rate_rps(requests: Sequence[Request]) -> float:
    """Requests per second over the span of the trace (nan for fewer than two requests)."""
    if len(requests) < 2:
        return math.nan
    span = requests[-1].arrival_s - requests[0].arrival_s
    return (len(requests) - 1) / span if span > 0 else math.inf

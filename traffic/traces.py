"""Request traces for disaggregated inference: public trace readers and synthetic arrivals.

Formats
-------
- Mooncake (kvcache-ai/Mooncake ``FAST25-release/traces/*.jsonl``): one JSON object per line,
  ``timestamp`` (ms from start), ``input_length``, ``output_length``, ``hash_ids`` (one int per
  512-token block). A block id seen in an earlier request is a prefix-cache hit; we count the
  leading run of seen ids, because a prefix cache can only reuse a prefix (Mooncake chains the
  block hashes, so a seen id implies its whole prefix was seen). The cache is unbounded.
- Azure LLM inference 2023 (Azure/AzurePublicDataset ``data/AzureLLMInferenceTrace_*.csv``):
  header ``TIMESTAMP,ContextTokens,GeneratedTokens``, date-time stamps with sub-second digits,
  which may be more than the 6 ``datetime`` parses, so we parse them to integer nanoseconds.

Every reader returns arrivals relative to the first request, sorted by time, and accepts the same
rescaling (:func:`rescale`): ``time_scale`` stretches the time axis (0.1 replays ten times
faster, bursts included), ``rate_scale`` changes the load while keeping the time axis, by
seeded thinning (< 1) or by superposing copies (> 1), and ``jitter_s`` spreads requests that
share a coarse timestamp (Mooncake's are in ms and often equal).
"""

from __future__ import annotations

import calendar
import csv
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

MOONCAKE_BLOCK_TOKENS = 512


@dataclass(frozen=True)
class Request:
    """One inference request; ``cached_tokens`` of its input are a prefix-cache hit."""

    arrival_s: float
    input_tokens: int
    output_tokens: int
    cached_tokens: int = 0


@dataclass
class Trace:
    """Requests read from ``path``; ``skipped_lines`` were malformed and skipped."""

    requests: list[Request]
    path: str = ""
    skipped_lines: int = 0
    skipped: list[str] = field(default_factory=list)


class TraceError(ValueError):
    """A malformed trace line; the message names the file and the 1-based line number."""

    def __init__(self, path: str, line_number: int, reason: str) -> None:
        super().__init__(f"{path}:{line_number}: {reason}")
        self.path = path
        self.line_number = line_number
        self.reason = reason


def _non_negative_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def _parse_mooncake(line: str, seen: set[int], block_tokens: int) -> tuple[float, Request]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    missing = [k for k in ("timestamp", "input_length", "output_length") if k not in obj]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    stamp_ms = obj["timestamp"]
    if isinstance(stamp_ms, bool) or not isinstance(stamp_ms, (int, float)) or stamp_ms < 0:
        raise ValueError(f"timestamp must be a non-negative number of ms, got {stamp_ms!r}")
    input_tokens = _non_negative_int(obj["input_length"], "input_length")
    output_tokens = _non_negative_int(obj["output_length"], "output_length")
    hash_ids = obj.get("hash_ids", [])
    if not isinstance(hash_ids, list) or not all(
        isinstance(h, int) and not isinstance(h, bool) for h in hash_ids
    ):
        raise ValueError("hash_ids must be a list of integers")
    hits = 0
    while hits < len(hash_ids) and hash_ids[hits] in seen:
        hits += 1
    seen.update(hash_ids)
    cached = min(hits * block_tokens, input_tokens)
    return stamp_ms, Request(0.0, input_tokens, output_tokens, cached)


_STAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"\s*(Z|[+-]\d{2}:?\d{2})?"
)


def parse_timestamp_ns(text: str) -> int:
    """Integer nanoseconds since the Unix epoch of ``2023-11-16 18:15:46.6805900`` (UTC unless
    an offset is given). Integers because a float epoch cannot hold 100 ns (Azure's digits)."""
    match = _STAMP.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a date-time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    whole_s = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    fraction_ns = int((match.group(7) or "")[:9].ljust(9, "0"))
    offset = match.group(8)
    if offset and offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        hh, mm = int(offset[1:3]), int(offset[-2:])
        whole_s -= sign * (hh * 3600 + mm * 60)
    return whole_s * 10**9 + fraction_ns


def parse_timestamp_s(text: str) -> float:
    """Seconds since the Unix epoch; see :func:`parse_timestamp_ns`."""
    return parse_timestamp_ns(text) / 1e9


def _parse_azure(row: dict) -> tuple[int, Request]:
    try:
        stamp = row["TIMESTAMP"]
        context, generated = row["ContextTokens"], row["GeneratedTokens"]
    except KeyError as exc:
        raise ValueError(f"missing column {exc.args[0]}") from None
    if stamp is None or context is None or generated is None:
        raise ValueError("too few fields")
    if None in row:
        raise ValueError("too many fields")
    try:
        input_tokens, output_tokens = int(context), int(generated)
    except ValueError:
        raise ValueError(f"token counts must be integers: {context!r}, {generated!r}") from None
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError("token counts cannot be negative")
    return parse_timestamp_ns(stamp), Request(0.0, input_tokens, output_tokens, 0)


def _finish(
    stamped: list[tuple[float, Request]],
    ticks_per_s: int,
    path: str,
    skipped: list[str],
    **scaling: float,
) -> Trace:
    # Subtract the first stamp in the trace's own units (ms, ns) before converting to seconds.
    stamped.sort(key=lambda pair: pair[0])
    t0 = stamped[0][0] if stamped else 0
    requests = [replace(r, arrival_s=(t - t0) / ticks_per_s) for t, r in stamped]
    return Trace(rescale(requests, **scaling), path, len(skipped), skipped)


def _fail_or_skip(
    path: str, line_number: int, reason: str, skip: bool, skipped: list[str]
) -> None:
    if not skip:
        raise TraceError(path, line_number, reason)
    skipped.append(f"{path}:{line_number}: {reason}")


def read_mooncake(
    path: str | Path,
    *,
    skip_malformed: bool = False,
    block_tokens: int = MOONCAKE_BLOCK_TOKENS,
    time_scale: float = 1.0,
    rate_scale: float = 1.0,
    jitter_s: float = 0.0,
    seed: int = 0,
) -> Trace:
    """Read a Mooncake JSONL trace; blank lines are ignored, malformed ones raise
    :class:`TraceError` or, with ``skip_malformed``, are skipped and counted."""
    name = str(path)
    stamped: list[tuple[float, Request]] = []
    skipped: list[str] = []
    seen: set[int] = set()
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                stamped.append(_parse_mooncake(line, seen, block_tokens))
            except ValueError as exc:
                _fail_or_skip(name, line_number, str(exc), skip_malformed, skipped)
    return _finish(stamped, 1000, name, skipped, time_scale=time_scale,
                   rate_scale=rate_scale, jitter_s=jitter_s, seed=seed)


def read_azure(
    path: str | Path,
    *,
    skip_malformed: bool = False,
    time_scale: float = 1.0,
    rate_scale: float = 1.0,
    jitter_s: float = 0.0,
    seed: int = 0,
) -> Trace:
    """Read an Azure LLM inference CSV trace (line numbers count the header as line 1)."""
    name = str(path)
    stamped: list[tuple[float, Request]] = []
    skipped: list[str] = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        wanted = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
        if any(column not in header for column in wanted):
            raise TraceError(name, 1, f"header must contain {', '.join(wanted)}, got {header}")
        for row in reader:
            line_number = reader.line_num
            try:
                stamped.append(_parse_azure(row))
            except ValueError as exc:
                _fail_or_skip(name, line_number, str(exc), skip_malformed, skipped)
    return _finish(stamped, 10**9, name, skipped, time_scale=time_scale,
                   rate_scale=rate_scale, jitter_s=jitter_s, seed=seed)


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
    and add uniform [0, ``jitter_s``) jitter; returns requests sorted by arrival."""
    if time_scale <= 0 or rate_scale <= 0 or jitter_s < 0:
        raise ValueError("time_scale and rate_scale must be positive, jitter_s >= 0")
    if time_scale == 1.0 and rate_scale == 1.0 and jitter_s == 0.0:
        return list(requests)
    rng = np.random.default_rng(seed)
    whole, fraction = divmod(rate_scale, 1.0)
    out = []
    for request in requests:
        copies = int(whole) + int(rng.random() < fraction)
        for _ in range(copies):
            jitter = rng.uniform(0.0, jitter_s) if jitter_s else 0.0
            out.append(replace(request, arrival_s=request.arrival_s * time_scale + jitter))
    out.sort(key=lambda r: r.arrival_s)
    return out


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

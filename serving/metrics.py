"""Per-request timings and the per-run figures serving papers report.

TTFT is split into what the request waited for: queueing before its prefill, the prefill
itself (across chunks), the wait for decode memory, the KV transfer (the part not hidden
behind the prefill), and the first decode step (including the wait for the decode iteration
it joins). TPOT is the mean time per output token
after the first. SLO attainment is the share of requests meeting both a TTFT and a TPOT SLO;
goodput is the highest request rate at which attainment stays >= 90 % (DistServe, OSDI'24,
sec. 2.3 and 6).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class RequestRecord:
    """What happened to request ``index``; times in s on the loop's clock (nan: not reached)."""

    index: int
    arrival_s: float
    input_tokens: int
    output_tokens: int
    prefill_instance: str = ""
    decode_instance: str = ""
    cached_tokens: int = 0  # prefix-cache hit on the prefill side
    transfer_tokens: int = 0
    transfer_bytes: int = 0
    prefill_start_s: float = math.nan
    prefill_end_s: float = math.nan
    transfer_start_s: float = math.nan
    transfer_end_s: float = math.nan
    first_token_s: float = math.nan
    finish_s: float = math.nan

    @property
    def done(self) -> bool:
        return not math.isnan(self.finish_s)

    @property
    def ttft_s(self) -> float:
        return self.first_token_s - self.arrival_s

    @property
    def tpot_s(self) -> float:
        """Mean time per output token after the first (0 for a one-token answer)."""
        if self.output_tokens <= 1:
            return 0.0
        return (self.finish_s - self.first_token_s) / (self.output_tokens - 1)

    @property
    def e2e_s(self) -> float:
        return self.finish_s - self.arrival_s

    @property
    def transfer_s(self) -> float:
        """The whole transfer, first byte posted to last byte arrived."""
        return 0.0 if math.isnan(self.transfer_start_s) else \
            self.transfer_end_s - self.transfer_start_s

    @property
    def transfer_exposed_s(self) -> float:
        """The part of the transfer TTFT waits for: after the prefill ended (all of it when
        the KV moves whole; the tail when it moves layer by layer during the prefill)."""
        if math.isnan(self.transfer_start_s):
            return 0.0
        return self.transfer_end_s - max(self.prefill_end_s, self.transfer_start_s)

    def ttft_parts_s(self) -> dict[str, float]:
        """TTFT as queueing + prefill + decode-memory wait + exposed transfer + first decode
        step; the parts add up to TTFT."""
        moved = not math.isnan(self.transfer_start_s)
        kv_ready = self.transfer_end_s if moved else self.prefill_end_s
        waited = max(0.0, self.transfer_start_s - self.prefill_end_s) if moved else 0.0
        return {"queueing": self.prefill_start_s - self.arrival_s,
                "prefill": self.prefill_end_s - self.prefill_start_s,
                "decode_memory_wait": waited,
                "transfer": self.transfer_exposed_s,
                "first_decode_step": self.first_token_s - kv_ready}

    @property
    def network_share(self) -> float:
        """The share of this request's TTFT spent waiting for the KV transfer."""
        return self.transfer_exposed_s / self.ttft_s if self.ttft_s > 0 else 0.0


@dataclass(frozen=True)
class Slo:
    ttft_s: float
    tpot_s: float

    def met(self, record: RequestRecord) -> bool:
        return record.done and record.ttft_s <= self.ttft_s and record.tpot_s <= self.tpot_s


def attainment(records: Sequence[RequestRecord], slo: Slo) -> float:
    """Share of requests meeting both SLOs (unfinished ones miss)."""
    return sum(slo.met(r) for r in records) / len(records) if records else math.nan


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": math.nan, "p90": math.nan, "p99": math.nan}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99)}


def summarise(records: Sequence[RequestRecord], slo: Slo | None = None) -> dict:
    """p50/p90/p99 of TTFT, TPOT, end-to-end latency and network share; prefix-hit share,
    fabric bytes; attainment when an SLO is given."""
    done = [r for r in records if r.done]
    inputs = sum(r.input_tokens for r in records)
    summary = {
        "requests": len(records), "finished": len(done),
        "ttft_s": _percentiles([r.ttft_s for r in done]),
        "tpot_s": _percentiles([r.tpot_s for r in done if r.output_tokens > 1]),
        "e2e_s": _percentiles([r.e2e_s for r in done]),
        "network_share_of_ttft": _percentiles([r.network_share for r in done]),
        "prefix_hit_share": sum(r.cached_tokens for r in records) / inputs if inputs else 0.0,
        "fabric_bytes": sum(r.transfer_bytes for r in records),
    }
    if slo is not None:
        summary["slo_attainment"] = attainment(records, slo)
    return summary


def goodput_rps(run_at_rate: Callable[[float], Sequence[RequestRecord]], rates_rps: Sequence[float],
                slo: Slo, target: float = 0.9) -> float:
    """The highest of ``rates_rps`` (tried in increasing order, stopping at the first miss)
    at which attainment is >= ``target``; 0 when even the lowest misses."""
    best = 0.0
    for rate in sorted(rates_rps):
        if attainment(run_at_rate(rate), slo) < target:
            break
        best = rate
    return best

"""Refusing transfer plans an emulation cannot carry, before anything is built.

Two limits, each reported with the numbers and the fix: the time a sender NIC needs for its
bytes at the line rate, from the plan's first start (a lower bound: it ignores every other
sender sharing the path), against the run's timeout; and the plan's size against a cap on
transfers held in memory (each :class:`~traffic.kv_patterns.Transfer` and its schedule row
cost a few hundred bytes in the driver and in every sender).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from traffic.kv_patterns import Transfer

MAX_TRANSFERS = 500_000
_FIX_LOAD = ("replay less of the trace: a shorter window (start + duration, or busiest_s), "
             "thinning to a lower rate_rps")


def plan_problems(transfers: Sequence[Transfer], *, line_rate_bps: float, timeout_s: float,
                  max_transfers: int = MAX_TRANSFERS) -> list[tuple[str, str]]:
    """(problem, fix) pairs; empty when the plan fits."""
    problems = []
    if len(transfers) > max_transfers:
        problems.append((f"{len(transfers):,} transfers, over the {max_transfers:,} the "
                         "emulation holds in memory", _FIX_LOAD))
    if not transfers:
        return problems
    first = min(t.start_s for t in transfers)
    sent: dict[str, int] = defaultdict(int)
    last_start: dict[str, float] = defaultdict(float)
    for t in transfers:
        sent[t.src] += t.size_bytes
        last_start[t.src] = max(last_start[t.src], t.start_s)
    worst = max(sent, key=lambda src: max(last_start[src] - first, 0.0)
                + 8 * sent[src] / line_rate_bps)
    wire_s = 8 * sent[worst] / line_rate_bps
    need_s = max(last_start[worst] - first, 0.0) + wire_s
    if need_s > timeout_s:
        problems.append((f"{worst} must send {sent[worst] / 1e9:.3g} GB: {wire_s:.4g} s at "
                         f"{line_rate_bps / 1e9:.4g} Gbit/s, finishing no earlier than "
                         f"{need_s:.4g} s after the first transfer, over the {timeout_s:g} s "
                         "timeout", f"{_FIX_LOAD}, a faster line rate, or a longer timeout"))
    return problems

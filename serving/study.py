"""Disaggregated against colocated serving on one trace, and one routing policy against
another: the side-by-side tables.

Both modes get the same requests, the same GPUs (P + D instances of one profile) and the same
routing policy. Goodput is searched over request rates by compressing or stretching the
trace's time axis (rate r: arrivals x mean rate / r), so the mix of prompts is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from traffic.traces import Request

from .cluster import MODES, ClusterConfig, serve
from .metrics import Slo, attainment, goodput_rps
from .routing import POLICIES
from .transfer import TransferPort


def at_rate(requests: Sequence[Request], rate_rps: float) -> list[Request]:
    """``requests`` with their time axis scaled to a mean rate of ``rate_rps``."""
    if len(requests) < 2 or rate_rps <= 0:
        raise ValueError("need two requests and a positive rate")
    span = requests[-1].arrival_s - requests[0].arrival_s
    if span <= 0:
        raise ValueError("all requests arrive at once: no rate to scale")
    factor = (len(requests) - 1) / span / rate_rps
    t0 = requests[0].arrival_s
    return [replace(r, arrival_s=(r.arrival_s - t0) * factor) for r in requests]


def compare_modes(requests: Sequence[Request], config: ClusterConfig,
                  transfer: Callable[[], TransferPort], slo: Slo,
                  rates_rps: Sequence[float] = ()) -> dict[str, dict]:
    """Per mode: the run's summary and, when ``rates_rps`` are given, its goodput.
    ``transfer`` makes a fresh port per run (ports may hold per-link state)."""
    out = {}
    for mode in MODES:
        def run(reqs, mode=mode):
            return serve(reqs, mode, config, transfer() if mode == "disaggregated" else None)
        summary = run(requests).summary(slo)
        if rates_rps:
            summary["goodput_rps"] = goodput_rps(
                lambda rate, run=run: run(at_rate(requests, rate)).records, rates_rps, slo)
        out[mode] = summary
    return out


def attainment_curve(requests: Sequence[Request], config: ClusterConfig,
                     transfer: Callable[[], TransferPort], slo: Slo,
                     rates_rps: Sequence[float]) -> dict[str, list[tuple[float, float]]]:
    """Per mode: (rate, SLO attainment) at each of ``rates_rps``, the curve goodput reads."""
    return {mode: [(rate, attainment(serve(at_rate(requests, rate), mode, config,
                                           transfer() if mode == "disaggregated" else None
                                           ).records, slo))
                   for rate in sorted(rates_rps)]
            for mode in MODES}


def compare_policies(requests: Sequence[Request], config: ClusterConfig,
                     transfer: Callable[[], TransferPort], slo: Slo | None = None,
                     mode: str = "disaggregated",
                     per_policy: dict[str, Callable[[], TransferPort]] | None = None
                     ) -> dict[str, dict]:
    """Per routing policy: prefix-hit share, bytes over the fabric and TTFT percentiles
    (what KV-aware routing saves the network). ``per_policy``: a policy's own transfer
    factory (e.g. the times its own pass measured), in place of ``transfer``."""
    out = {}
    for policy in POLICIES:
        port = (per_policy or {}).get(policy, transfer)
        run = serve(requests, mode, replace(config, policy=policy),
                    port() if mode == "disaggregated" else None)
        summary = run.summary(slo)
        out[policy] = {key: summary[key] for key in
                       ("prefix_hit_share", "fabric_bytes", "ttft_s", "slo_attainment")
                       if key in summary}
    return out


def table(comparison: dict[str, dict]) -> str:
    """A Markdown table of :func:`compare_modes`'s result."""
    rows = [("goodput (req/s)", "goodput_rps", None), ("SLO attainment", "slo_attainment", None),
            ("TTFT p50 (s)", "ttft_s", "p50"), ("TTFT p99 (s)", "ttft_s", "p99"),
            ("TPOT p50 (ms)", "tpot_s", "p50"), ("TPOT p99 (ms)", "tpot_s", "p99"),
            ("network share of TTFT p50", "network_share_of_ttft", "p50"),
            ("prefix-hit share", "prefix_hit_share", None),
            ("fabric GB", "fabric_bytes", None)]
    modes = list(comparison)  # the columns: modes or policies
    lines = ["| | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for label, key, sub in rows:
        cells = []
        for mode in modes:
            value = comparison[mode].get(key)
            if isinstance(value, dict):
                value = value[sub]
            if value is None:
                cells.append("")
                continue
            if "ms" in label:
                value *= 1e3
            if key == "fabric_bytes":
                value /= 1e9
            cells.append(f"{value:.4g}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

"""Plots of serving-model runs: TTFT and TPOT CDFs per mode, SLO attainment against rate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from serving.cluster import ServingRun
from serving.metrics import Slo

from .plotting import new_figure, save_figure


def _cdf(ax, values: Sequence[float], label: str) -> None:
    values = np.sort(values)
    if len(values):
        ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", label=label)


def plot_latency_cdfs(runs: Mapping[str, ServingRun], path: Path,
                      slo: Slo | None = None) -> None:
    """TTFT (s) and TPOT (ms) CDFs, one line per run, the SLOs as dashed lines."""
    fig, (ax_ttft, ax_tpot) = new_figure(ncols=2, width=12)
    for label, run in runs.items():
        done = [r for r in run.records if r.done]
        _cdf(ax_ttft, [r.ttft_s for r in done], label)
        _cdf(ax_tpot, [r.tpot_s * 1e3 for r in done if r.output_tokens > 1], label)
    if slo is not None:
        ax_ttft.axvline(slo.ttft_s, linestyle="--", color="grey", label="SLO")
        ax_tpot.axvline(slo.tpot_s * 1e3, linestyle="--", color="grey", label="SLO")
    ax_ttft.set(xlabel="TTFT (s)", ylabel="fraction of requests", title="Time to first token")
    ax_tpot.set(xlabel="TPOT (ms)", ylabel="fraction of requests", title="Time per output token")
    ax_ttft.legend(fontsize=8)
    ax_tpot.legend(fontsize=8)
    save_figure(fig, path)


def plot_attainment(curves: Mapping[str, Sequence[tuple[float, float]]], path: Path,
                    target: float = 0.9) -> None:
    """SLO attainment against request rate, one line per mode; goodput is where a line
    crosses ``target``."""
    fig, ax = new_figure()
    for label, points in curves.items():
        rates, values = zip(*points) if points else ((), ())
        ax.plot(rates, values, marker="o", label=label)
    ax.axhline(target, linestyle="--", color="grey", label=f"{target:.0%} attainment")
    ax.set(xlabel="request rate (req/s)", ylabel="SLO attainment", ylim=(0, 1.05),
           title="SLO attainment against load")
    ax.legend(fontsize=8)
    save_figure(fig, path)

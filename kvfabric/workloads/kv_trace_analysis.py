"""Summary and plot of a trace-driven KV transfer run, from its raw files alone; in the target
fabric's units (raw files are in emulated time: durations / D, rates x D)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from ..plotting import new_figure, save_figure
from .roce_incast_analysis import read_blocks, summarise_transport


def analyse(run_dir: Path, spec) -> dict[str, Any]:
    planned = 0
    if (run_dir / "plan.csv").exists():
        with (run_dir / "plan.csv").open() as f:
            planned = sum(1 for _ in csv.DictReader(f))
    folder = run_dir / "roce"
    d = spec.scale.dilation
    summary = summarise_transport(folder, planned, d) if folder.is_dir() else {}
    summary["transport"] = spec.workload["transport"]
    summary["all_transfers_completed"] = summary.get("blocks_completed") == planned
    blocks = read_blocks(folder) if folder.is_dir() else []
    if blocks and spec.workload["mode"] == "whole":
        # Whole-cache mode posts a request's KV when its prefill ends and decoding can start
        # only when it has arrived, so each transfer's completion time is what the network
        # adds to that request's time to first token.
        added = np.array([b["fct_s"] for b in blocks]) / d
        summary["ttft_added_p50_ms"] = float(np.percentile(added, 50) * 1e3)
        summary["ttft_added_p99_ms"] = float(np.percentile(added, 99) * 1e3)
    if blocks:
        fig, (ax_cdf, ax_time) = new_figure(ncols=2, width=12)
        fcts = np.sort([b["fct_s"] for b in blocks]) / d
        ax_cdf.step(fcts * 1e3, np.arange(1, len(fcts) + 1) / len(fcts), where="post")
        ax_cdf.set(xlabel=f"KV transfer completion time (ms, target; D = {d:g})",
                   ylabel="fraction of transfers",
                   title="KV transfer completion (CDF)")
        for sender in sorted({b["sender"] for b in blocks}):
            mine = [b for b in blocks if b["sender"] == sender]
            ax_time.scatter([b["posted_s"] / d * 1e3 for b in mine],
                            [b["fct_s"] / d * 1e3 for b in mine], s=10, label=sender)
        ax_time.set(xlabel="posted at (target ms)", ylabel="completion time (target ms)",
                    title="Completion time over the trace")
        ax_time.legend(loc="upper left", fontsize=7)
        save_figure(fig, run_dir / "kv_trace.png")
    return summary

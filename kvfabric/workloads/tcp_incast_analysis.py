"""Summary and plots of a TCP incast run, computed from its raw CSVs alone."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from ..plotting import new_figure, save_figure

#: Linux's minimum retransmission timeout (unless workload.rto_min sets another); a flow slower
#: than this almost surely waited one out.
RTO_MIN_S = 0.2


def read_flows(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "flows.csv"
    if not path.exists():
        return []
    with path.open() as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in ("round", "block_bytes", "bytes_received"):
            row[key] = int(row[key])
        for key in ("request_s", "first_byte_s", "completion_s", "fct_s"):
            row[key] = float(row[key]) if row[key] not in ("", "None") else None
    return rows


def per_round(flows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rounds = {}
    for row in flows:
        rounds.setdefault(row["round"], []).append(row)
    result = []
    for number in sorted(rounds):
        rows = rounds[number]
        complete = all(r["fct_s"] is not None for r in rows)
        duration = max(r["fct_s"] for r in rows) if complete else None
        delivered = sum(r["bytes_received"] for r in rows)
        result.append({"round": number, "flows": len(rows), "bytes": delivered,
                       "duration_s": duration, "complete": complete,
                       "goodput_bps": 8 * delivered / duration if duration else 0.0})
    return result


def analyse(run_dir: Path, spec) -> dict[str, Any]:
    flows = read_flows(run_dir)
    rounds = per_round(flows)
    _write_rounds(run_dir, rounds)
    fcts = np.array([r["fct_s"] for r in flows if r["fct_s"] is not None])
    goodputs = np.array([r["goodput_bps"] for r in rounds if r["complete"]])
    bottleneck_bps = spec.fabric["host_rate"]
    rto_min_s = spec.workload.get("rto_min") or RTO_MIN_S
    summary = {
        "rounds_completed": int(sum(r["complete"] for r in rounds)),
        "rounds_requested": spec.workload["rounds"],
        "senders": spec.workload["senders"],
        "block_bytes": spec.workload["block_size"],
        "bottleneck_rate_bps": bottleneck_bps,
        "flows_completed": int(len(fcts)),
        "flows_incomplete": int(sum(r["fct_s"] is None for r in flows)),
    }
    if len(goodputs):
        summary.update({
            "goodput_mean_bps": float(goodputs.mean()),
            "goodput_median_bps": float(np.median(goodputs)),
            "goodput_min_bps": float(goodputs.min()),
            "goodput_utilisation": float(goodputs.mean() / bottleneck_bps),
        })
    if len(fcts):
        summary.update({
            "fct_p50_s": float(np.percentile(fcts, 50)),
            "fct_p99_s": float(np.percentile(fcts, 99)),
            "fct_max_s": float(fcts.max()),
            "flows_over_rto_min": int((fcts >= rto_min_s).sum()),
        })
    _plot(run_dir, flows, rounds, bottleneck_bps, rto_min_s)
    return summary


def _write_rounds(run_dir: Path, rounds: list[dict[str, Any]]) -> None:
    with (run_dir / "rounds.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["round", "flows", "bytes", "duration_s",
                                               "complete", "goodput_bps"])
        writer.writeheader()
        writer.writerows(rounds)


def _plot(run_dir: Path, flows, rounds, bottleneck_bps: int, rto_min_s: float) -> None:
    fig, (ax_fct, ax_goodput) = new_figure(ncols=2, width=11)
    fcts = np.sort([r["fct_s"] for r in flows if r["fct_s"] is not None])
    if len(fcts):
        ax_fct.step(fcts * 1e3, np.arange(1, len(fcts) + 1) / len(fcts), where="post")
        ax_fct.axvline(rto_min_s * 1e3, color="grey", linestyle=":",
                       label=f"RTO min ({rto_min_s * 1e3:g} ms)")
        ax_fct.legend(loc="lower right")
    ax_fct.set(xlabel="flow completion time (ms)", ylabel="fraction of flows",
               title="Per-flow completion time (CDF)")
    numbers = [r["round"] for r in rounds]
    ax_goodput.bar(numbers, [r["goodput_bps"] / 1e6 for r in rounds],
                   color=["tab:blue" if r["complete"] else "tab:red" for r in rounds])
    ax_goodput.axhline(bottleneck_bps / 1e6, color="grey", linestyle=":",
                       label="bottleneck rate")
    ax_goodput.set(xlabel="round", ylabel="goodput (Mbit/s)", title="Per-round goodput")
    ax_goodput.legend(loc="lower right")
    save_figure(fig, run_dir / "incast.png")


def overlay(run_dirs: list[Path], labels: list[str], out_dir: Path) -> list[Path]:
    """`kvfabric compare`: the runs' FCT CDFs and per-round goodput on shared axes."""
    fig, (ax_fct, ax_goodput) = new_figure(ncols=2, width=11)
    for run_dir, label in zip(run_dirs, labels):
        flows = read_flows(run_dir)
        fcts = np.sort([r["fct_s"] for r in flows if r["fct_s"] is not None])
        if len(fcts):
            ax_fct.step(fcts * 1e3, np.arange(1, len(fcts) + 1) / len(fcts), where="post",
                        label=label)
        rounds = per_round(flows)
        ax_goodput.plot([r["round"] for r in rounds], [r["goodput_bps"] / 1e6 for r in rounds],
                        marker="o", markersize=3, label=label)
    ax_fct.axvline(RTO_MIN_S * 1e3, color="grey", linestyle=":")
    ax_fct.set(xlabel="flow completion time (ms)", ylabel="fraction of flows",
               title="Per-flow completion time (CDF)")
    ax_goodput.set(xlabel="round", ylabel="goodput (Mbit/s)", title="Per-round goodput",
                   ylim=(0, None))
    for ax in (ax_fct, ax_goodput):
        ax.legend(loc="best", fontsize=8)
    path = out_dir / "incast-compare.png"
    save_figure(fig, path)
    return [path]

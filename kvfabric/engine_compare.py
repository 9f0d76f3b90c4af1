"""Emulated and simulated runs of one spec side by side, in target units: per run the engine,
D, completion times, the bottleneck queue and pauses (a table), and overlaid FCT and queue-
depth CDFs. `kvfabric compare` adds this section when its runs come from more than one engine
or any from a simulator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import results
from .plotting import new_figure, save_figure
from .workloads.roce_incast_analysis import read_blocks


def engine_of(summary: dict[str, Any]) -> str:
    return summary.get("engine") or "emulation"


def wants_engine_section(runs: list[dict[str, Any]]) -> bool:
    engines = {engine_of(r["summary"]) for r in runs}
    return len(engines) > 1 or engines != {"emulation"}


def _dilation(summary: dict[str, Any]) -> float:
    return float((summary.get("scale") or {}).get("dilation") or 1.0)


def _blocks_folder(run_dir: Path) -> Path | None:
    for name in ("roce-dcqcn", "roce-none", "roce"):
        if (run_dir / name).is_dir():
            return run_dir / name
    return None


def completion_times_us(run_dir: Path, summary: dict[str, Any]) -> np.ndarray:
    """Every transfer's completion time in target microseconds."""
    folder = _blocks_folder(run_dir)
    if folder is None:
        return np.array([])
    return np.sort([b["fct_s"] for b in read_blocks(folder)]) / _dilation(summary) * 1e6


def queue_depths_bytes(run_dir: Path, summary: dict[str, Any]) -> np.ndarray:
    """Depth samples of the bottleneck port while its queue was non-empty (bytes, the same
    in both engines): the simulator's 100 ns histogram, the emulation's agent samples."""
    if engine_of(summary) != "emulation":
        rows = results.read_csv(run_dir / "queues" / "qlen_ports.csv")
        if not rows:
            return np.array([])
        worst = max(rows, key=lambda r: float(r["mean_bytes"]))
        from .engines.hpcc_ns3.outputs import parse_qlen

        _, hist = parse_qlen(run_dir / "sim" / "qlen.txt")
        names = {v: k for k, v in _node_ids(run_dir).items()}
        for (node, port), counts in hist.items():
            if names.get(node) == worst["node"] and str(port) == worst["port"]:
                return np.repeat(np.arange(len(counts)) * 1000.0,
                                 [c if kb else 0 for kb, c in enumerate(counts)])
        return np.array([])
    rows = results.read_csv(run_dir / "queues" / "queue_samples.csv")
    receiver = _receiver(run_dir)
    depths = [int(r["backlog_bytes"]) for r in rows if r["peer"] == receiver
              and r["class"] == "lossless" and not r["node"].startswith("h")]
    return np.array([d for d in depths if d > 0], dtype=float)


def _node_ids(run_dir: Path) -> dict[str, int]:
    from .engines.hpcc_ns3.plan import node_ids, target_topology
    from .spec import load_spec

    return node_ids(target_topology(load_spec(str(run_dir / "spec.toml"))))


def _receiver(run_dir: Path) -> str:
    from .report import read_spec

    return (read_spec(run_dir).get("workload") or {}).get("receiver", "h1")


def engine_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    """Rows (figure, one value per run) of the side-by-side table."""
    def per_run(fn):
        return [fn(r) for r in runs]

    def fct(r, q):
        f = completion_times_us(r["dir"], r["summary"])
        return f"{np.percentile(f, q):.0f}" if len(f) else "-"

    def queue(r):
        q = r["summary"].get("queues") or {}
        if engine_of(r["summary"]) == "emulation":
            from .queue_results import port_window

            try:
                w = port_window(r["dir"], _receiver(r["dir"]))
            except (StopIteration, ValueError, IndexError, KeyError):
                return "-", "-"
            return f"{w['mean_middle_bytes'] / 1e3:.0f}", f"{w['max_bytes'] / 1e3:.0f}"
        mean, top = q.get("bottleneck_depth_mean_bytes"), q.get("bottleneck_depth_max_bytes")
        return (f"{mean / 1e3:.0f}" if mean is not None else "-",
                f"{top / 1e3:.0f}" if top is not None else "-")

    def pauses(r):
        q = r["summary"].get("queues") or {}
        value = q.get("pause_frames_received", q.get("pause_frames_sent"))
        return "-" if value is None else str(value)

    def wall(r):
        t = r["summary"].get("timings_s") or {}
        value = t.get("simulation", t.get("workload_s"))
        return "-" if value is None else f"{value:.1f}"

    queues = per_run(queue)
    return [
        ["engine", *per_run(lambda r: engine_of(r["summary"]))],
        ["dilation D", *per_run(lambda r: f"{_dilation(r['summary']):g}")],
        ["transfers completed", *per_run(lambda r: str(len(completion_times_us(
            r["dir"], r["summary"]))))],
        ["FCT p50 (target us)", *per_run(lambda r: fct(r, 50))],
        ["FCT p99 (target us)", *per_run(lambda r: fct(r, 99))],
        ["FCT max (target us)", *per_run(lambda r: fct(r, 100))],
        ["bottleneck queue mean (KB)", *[q[0] for q in queues]],
        ["bottleneck queue max (KB)", *[q[1] for q in queues]],
        ["PFC pauses", *per_run(pauses)],
        ["host fidelity", *per_run(lambda r: (r["summary"].get("fidelity") or {}).get(
            "status", "n/a (simulated)"))],
        ["wall time of the workload or simulation (s)", *per_run(wall)],
    ]


QUEUE_MEAN_NOTE = ("Queue mean: the emulation's receiver port over the middle 80 % of its "
                   "busy span (agent samples, as bench/fidelity.py); the simulator's busiest "
                   "port over the transfers' span (100 ns samples).")


def plot_engines(runs: list[dict[str, Any]], labels: list[str], out: Path) -> Path | None:
    fig, (ax_fct, ax_q) = new_figure(ncols=2, width=12)
    drawn = False
    for run, label in zip(runs, labels):
        fcts = completion_times_us(run["dir"], run["summary"])
        if len(fcts):
            drawn = True
            ax_fct.step(fcts, np.arange(1, len(fcts) + 1) / len(fcts), where="post",
                        label=f"{label} ({engine_of(run['summary'])})")
        depths = np.sort(queue_depths_bytes(run["dir"], run["summary"]))
        if len(depths):
            ax_q.step(depths / 1e3, np.arange(1, len(depths) + 1) / len(depths), where="post",
                      label=f"{label} ({engine_of(run['summary'])})")
    if not drawn:
        return None
    ax_fct.set(xlabel="transfer completion time (target us)", ylabel="fraction of transfers",
               title="Completion time (CDF)")
    ax_fct.legend(loc="lower right", fontsize=8)
    ax_q.set(xlabel="bottleneck queue while non-empty (KB)", ylabel="fraction of samples",
             title="Bottleneck queue depth (CDF)")
    if ax_q.get_legend_handles_labels()[0]:
        ax_q.legend(loc="lower right", fontsize=8)
    save_figure(fig, out)
    return out

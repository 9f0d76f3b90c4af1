"""Queue results of a run: counters written before teardown, then summary and plot from the
files alone (queues/ in the run folder).

queues/queue_counters.csv  per port and class: bytes/packets sent, drops (kernel qdiscs)
queues/ecn.csv             per port and class: packets, ECT packets, CE marks, CE on arrival,
                           and the marks per queue-depth bucket (eBPF program)
queues/telemetry.csv       100 us bins per port and class: deepest queue a packet found, marks
queues/queue_samples.csv   real qdisc backlog per agent sweep (rows on change)
queues/pfc_events.csv, pfc_counters.csv, agent.json   see topologies/queues/agent_records.py
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from . import results
from .dilation import Scale
from .queue_plot import TelemetryFile, TelemetryView, plot_summary


def write_queue_counters(run_dir: Path, fabric) -> None:
    out = run_dir / "queues"
    out.mkdir(exist_ok=True)
    results.write_csv(out / "queue_counters.csv", fabric.queue_stats())
    rows = []
    for row in fabric.marker_counters():
        c = row.pop("counters")
        row["depth_bucket_bytes"] = c.hist_bucket_bytes
        row["hist_ect"] = " ".join(map(str, c.hist_ect))
        row["hist_marks"] = " ".join(map(str, c.hist_marks))
        rows.append(row)
    results.write_csv(out / "ecn.csv", rows)


def queue_approximations(ecn_backend: str) -> list[str]:
    notes = [
        "PFC: Linux qdiscs queue at egress and do not record a packet's ingress port, so the "
        "bytes 802.1Qbb counts per ingress are approximated by the deepest queue of that "
        "priority on the node's other ports; a congested egress pauses every port that could "
        "feed it (more head-of-line blocking than a switch with ingress accounting)",
        "PFC reaction is a userspace agent (netlink qdisc dumps about every 1 ms, SCHED_FIFO); "
        "pause is applied by slowing the peer's lossless TBF leaf to 1 kbit/s, which lets at "
        "most two frames through; the headroom is sized for the agent's measured worst case "
        "(queues.pfc_reaction)",
    ]
    if ecn_backend == "ebpf":
        notes.append("ECN: marked at enqueue by an eBPF program at clsact egress on the depth of "
                     "a virtual copy of the class queue drained at the link rate, pulled onto "
                     "the real backlog every 20 ms (the kernel here has no red qdisc)")
    notes.append("Telemetry: queue depth per 100 us bin is the depth packets found at enqueue "
                 "(bins without packets are absent); the real backlog is sampled per agent "
                 "sweep (queue_samples.csv)")
    return notes


def analyse_queues(run_dir: Path, scale: Scale) -> dict[str, Any]:
    """Queue figures of a run. Time paused is in target seconds (the emulated figure beside
    it); the agent's sweep periods are wall-clock (the agent runs in real time), with the p99
    also in target microseconds."""
    q = run_dir / "queues"
    counters = results.read_csv(q / "queue_counters.csv")
    ecn = results.read_csv(q / "ecn.csv")
    pfc = results.read_csv(q / "pfc_counters.csv")
    agent = json.loads((q / "agent.json").read_text()) if (q / "agent.json").exists() else {}
    drops: dict[str, int] = {}
    for row in counters:
        drops[row["class"]] = drops.get(row["class"], 0) + int(row["drops"])
    summary: dict[str, Any] = {
        "drops_by_class": drops,
        "ecn_marks": sum(int(r["marks"]) for r in ecn),
        "ect_packets": sum(int(r["ect_packets"]) for r in ecn),
        "pause_frames_sent": sum(int(r["pause_sent"]) for r in pfc),
        "resume_frames_sent": sum(int(r["resume_sent"]) for r in pfc),
        "pause_frames_received": sum(int(r["pause_received"]) for r in pfc),
        "time_paused_s_total": scale.target_s(sum(float(r["time_paused_s"]) for r in pfc)),
        "time_paused_s_total_emulated": round(sum(float(r["time_paused_s"]) for r in pfc), 4),
        "telemetry_bin_s": agent.get("telemetry_bin_s"),
        "agent_sweep_median_s": agent.get("sweep_period_median_s"),
        "agent_sweep_p99_s": agent.get("sweep_period_p99_s"),
        "agent_dataplane_errors": agent.get("dataplane_errors", {}),
        "agent_sweep_p99_target_us": scale.target_s(agent["sweep_period_p99_s"]) * 1e6
        if agent.get("sweep_period_p99_s") is not None else None,
    }
    telemetry = TelemetryView.read(TelemetryFile(q / "telemetry.csv"))
    summary.update(bottleneck_depth(telemetry))
    summary.update(plot_summary(telemetry, run_dir / "queues.png", scale,
                                agent.get("telemetry_bin_s")))
    return summary


def pfc_failure(queue_summary: dict[str, Any], pfc_on: bool) -> str | None:
    """Why PFC could not act in this run (the queue agent's failed data-plane calls), or
    None when every pause, resume and backlog read went through."""
    from topologies.queues.dataplane_errors import PFC_OPERATIONS

    errors = queue_summary.get("agent_dataplane_errors") or {}
    failed = {op: e for op, e in errors.items() if op in PFC_OPERATIONS}
    if not pfc_on or not failed:
        return None
    return "PFC could not act: " + "; ".join(
        f"{e['count']} failed {op} (first: {e['first']})" for op, e in sorted(failed.items()))


def bottleneck_depth(rows: Iterable[dict[str, str]] | TelemetryView) -> dict[str, Any]:
    """Queue depth (from 100 us bins) at the port and class that held the most bytes while
    queued (``queue_plot.busiest_ports``): the run's bottleneck."""
    view = rows if isinstance(rows, TelemetryView) else TelemetryView.read(rows, 1)
    if not view.busiest:
        return {}
    key = view.busiest[0]
    depths = np.sort(view.traces[key].depth).tolist()
    if not depths[-1]:
        return {}
    pick = lambda q: depths[min(len(depths) - 1, int(q * len(depths)))]  # noqa: E731
    return {"bottleneck": f"{key[0]} {key[1]} ({key[2]})",
            "bottleneck_depth_p50_bytes": pick(0.5), "bottleneck_depth_p99_bytes": pick(0.99),
            "bottleneck_depth_max_bytes": depths[-1]}


def port_window(run_dir: Path, peer: str, cls: str = "lossless") -> dict[str, float]:
    """The switch port facing ``peer``, class ``cls``, from queues/queue_samples.csv (its real
    qdisc backlog, every agent sweep): the span it was sending (first byte to last, its own
    clock), the bytes sent in it, the largest backlog and the time-weighted mean backlog over
    the middle 80 % of the span. Emulated seconds and bytes."""
    rows = [r for r in results.read_csv(run_dir / "queues" / "queue_samples.csv")
            if r["peer"] == peer and r["class"] == cls and not r["node"].startswith("h")]
    points = sorted((float(r["t_s"]), int(r["backlog_bytes"]), int(r["sent_bytes"]))
                    for r in rows)
    first, final = points[0][2], points[-1][2]
    start = next(t for t, _, sent in points if sent > first)
    end = next(t for t, _, sent in points if sent >= final)
    lo, hi = start + 0.1 * (end - start), start + 0.9 * (end - start)
    area, depth, last_t = 0.0, 0, lo
    for t, backlog, _ in points:
        if t > lo:
            area += depth * (min(t, hi) - last_t)
            last_t = min(t, hi)
        if t >= hi:
            break
        depth = backlog
    area += depth * max(0.0, hi - last_t)
    return {"busy_s": end - start, "sent_bytes": final - first,
            "max_bytes": max((b for t, b, _ in points if start <= t <= end), default=0),
            "mean_middle_bytes": area / max(hi - lo, 1e-9)}

"""Summary and plot of a RoCE-vs-TCP KV incast run, from its raw files alone.

Per transport folder: ``roce_messages_<host>.csv`` / ``tcp_messages.csv`` (one row per KV
block: posted, completed, completion time), ``roce_sender_<host>.json`` (CNPs, rate cuts,
retransmissions), ``roce_receiver_<host>.json`` (CE marks, CNPs sent), ``roce_rates_<host>.csv``
(DCQCN rate trajectory) and ``phase.json`` (bottleneck marks and drops). The raw files are in
emulated time; the summary, ``transports.csv`` and the plot are in the target fabric's units
(``spec.scale``: durations / D, rates x D), with the emulated figures beside them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from ..plotting import new_figure, save_figure

SUMMARY_FIELDS = ["transport", "blocks_completed", "blocks_expected", "fct_p50_us",
                  "fct_p99_us", "fct_max_us", "fct_p50_ms", "fct_p99_ms", "fct_max_ms",
                  "goodput_bps", "fct_p50_ms_emulated", "fct_p99_ms_emulated",
                  "goodput_bps_emulated", "cnps_sent", "cnps_received",
                  "rate_cuts", "retransmitted_packets", "timeouts", "ce_marked_packets",
                  "bottleneck_drops", "roce_class_marks", "roce_class_drops_all_ports"]


def read_blocks(folder: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(folder.glob("roce_messages_*.csv")) + sorted(
            folder.glob("tcp_messages.csv")):
        with path.open() as f:
            for row in csv.DictReader(f):
                rows.append({"sender": row["sender"], "size_bytes": int(row["size_bytes"]),
                             "posted_s": float(row["posted_s"]),
                             "completed_s": float(row["completed_s"]),
                             "fct_s": float(row["fct_s"])})
    return rows


def read_rates(folder: Path) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for path in sorted(folder.glob("roce_rates_*.csv")):
        with path.open() as f:
            for row in csv.DictReader(f):
                out.setdefault(row["sender"], []).append(
                    (float(row["t_s"]), float(row["rate_bps"])))
    return out


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def summarise_transport(folder: Path, expected: int, dilation: float = 1.0) -> dict[str, Any]:
    """Completion times and goodput in target units (emulated / ``dilation`` for times,
    x ``dilation`` for rates), the emulated p50/p99 and goodput beside them."""
    blocks = read_blocks(folder)
    fcts = np.array([b["fct_s"] for b in blocks])
    out: dict[str, Any] = {"transport": folder.name, "blocks_completed": len(blocks),
                           "blocks_expected": expected}
    if len(fcts):
        first = min(b["posted_s"] for b in blocks)
        last = max(b["completed_s"] for b in blocks)
        goodput = 8 * sum(b["size_bytes"] for b in blocks) / max(last - first, 1e-9)
        p50, p99, top = (float(np.percentile(fcts, 50)), float(np.percentile(fcts, 99)),
                         float(fcts.max()))
        out.update(fct_p50_us=p50 / dilation * 1e6, fct_p99_us=p99 / dilation * 1e6,
                   fct_max_us=top / dilation * 1e6, fct_p50_ms=p50 / dilation * 1e3,
                   fct_p99_ms=p99 / dilation * 1e3, fct_max_ms=top / dilation * 1e3,
                   goodput_bps=goodput * dilation, fct_p50_ms_emulated=p50 * 1e3,
                   fct_p99_ms_emulated=p99 * 1e3, goodput_bps_emulated=goodput)
    senders = [_json(p) for p in sorted(folder.glob("roce_sender_*.json"))]
    qps = [qp for s in senders for qp in s.get("qps", [])]
    if qps:
        out.update(cnps_received=sum(q["cnps_received"] for q in qps),
                   rate_cuts=sum(q["rate_cuts"] for q in qps),
                   retransmitted_packets=sum(q["retransmitted_packets"] for q in qps),
                   timeouts=sum(q["timeouts"] for q in qps))
    receivers = [_json(p) for p in sorted(folder.glob("roce_receiver_*.json"))]
    rqps = [qp for r in receivers for qp in r.get("qps", [])]
    if rqps:
        out.update(cnps_sent=sum(q["cnps_sent"] for q in rqps),
                   ecn_echoes_sent=sum(q.get("ecn_echoes_sent", 0) for q in rqps),
                   ce_marked_packets=sum(q["ce_packets"] for q in rqps))
    phase = _json(folder / "phase.json")
    if phase:
        out["bottleneck_drops"] = phase.get("bottleneck_drops")
        out["roce_class_marks"] = phase.get("roce_class_marks")
        out["roce_class_drops_all_ports"] = phase.get("roce_class_drops_all_ports")
    return out


def analyse(run_dir: Path, spec) -> dict[str, Any]:
    from .roce_incast import transports

    names = transports(spec.workload)
    expected = spec.workload["senders"] * spec.workload["blocks"]
    scale = spec.scale
    rows = [summarise_transport(run_dir / name, expected, scale.dilation) for name in names
            if (run_dir / name).is_dir()]
    for row in rows:
        # Kernel TCP's timers run in real time: its figures divided by D are TCP on a fabric
        # D times slower, not TCP at the target rate (docs/roce.md).
        row["dilated"] = not row["transport"].startswith("tcp-")
    with (run_dir / "transports.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    _plot(run_dir, names, scale)
    return {"transports": {r["transport"]: r for r in rows},
            "all_blocks_completed": all(r["blocks_completed"] == expected for r in rows)
            and len(rows) == len(names)}


def _plot(run_dir: Path, names: list[str], scale) -> None:
    d = scale.dilation
    target = f"{scale.target_host_rate_bps / 1e9:g} Gbit/s target, D = {d:g}"
    fig, (ax_cdf, ax_rate) = new_figure(ncols=2, width=12)
    for name in names:
        fcts = np.sort([b["fct_s"] for b in read_blocks(run_dir / name)])
        if len(fcts):
            ax_cdf.step(fcts / d * 1e6, np.arange(1, len(fcts) + 1) / len(fcts), where="post",
                        label=name)
    ax_cdf.set(xlabel=f"KV block completion time (us, {target})", ylabel="fraction of blocks",
               title="Block completion time (CDF)")
    ax_cdf.legend(loc="lower right")
    for name in names:
        for sender, points in read_rates(run_dir / name).items():
            if points:
                t, r = zip(*points)
                ax_rate.step(np.array(t) / d * 1e3, np.array(r) * d / 1e9, where="post",
                             linewidth=0.8, label=f"{name} {sender}")
    ax_rate.axhline(scale.target_host_rate_bps / 1e9, color="grey", linestyle=":",
                    label="line rate")
    ax_rate.set(xlabel="target time (ms)", ylabel="DCQCN rate (Gbit/s, target)",
                title="Reaction-point rate per sender")
    if ax_rate.get_legend_handles_labels()[0]:
        ax_rate.legend(loc="lower right", fontsize=7)
    save_figure(fig, run_dir / "roce_incast.png")

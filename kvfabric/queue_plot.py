"""queues.png of a run: queue depth and CE marks over time at the bottleneck and the busiest
ports, from queues/telemetry.csv alone, on the target fabric's time axis.

A port is ranked by the bytes it held while queued (the sum over its 100 us bins of the deepest
queue a packet found), its drops and marks breaking ties: the same measure that names the run's
bottleneck, so the bottleneck is always the first line drawn. Bins without packets are absent
from the telemetry; the lines break there instead of ramping across the gap.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .dilation import Scale

PortKey = tuple[str, str, str]  # node, port, class


def port_load(rows: list[dict[str, str]]) -> dict[PortKey, tuple[int, int]]:
    """(bytes held while queued, drops + marks) per port and class."""
    load: dict[PortKey, tuple[int, int]] = {}
    for r in rows:
        key = (r["node"], r["port"], r["class"])
        queued, events = load.get(key, (0, 0))
        load[key] = (queued + int(r["max_depth_bytes"]),
                     events + int(r.get("drops") or 0) + int(r.get("marks") or 0))
    return load


def busiest_ports(rows: list[dict[str, str]], count: int = 4) -> list[PortKey]:
    """The ``count`` ports that queued the most, busiest (the bottleneck) first; ports that
    never queued a byte nor dropped or marked a packet are left out."""
    load = port_load(rows)
    ranked = sorted((k for k, v in load.items() if any(v)), key=lambda k: load[k],
                    reverse=True)
    return ranked[:count]


def series(rows: list[dict[str, str]], key: PortKey, bin_s: float, scale: Scale,
           field: str = "max_depth_bytes") -> tuple[list[float], list[float]]:
    """One port's ``field`` per bin against target time (s), with a NaN point wherever bins
    without packets separate two bins, so a plotted line breaks there."""
    points = sorted((float(r["t_s"]), float(r[field])) for r in rows
                    if (r["node"], r["port"], r["class"]) == key)
    t_out: list[float] = []
    y_out: list[float] = []
    last = None
    for t, y in points:
        if last is not None and t - last > 1.5 * bin_s:
            t_out.append(scale.target_s((t + last) / 2))
            y_out.append(math.nan)
        t_out.append(scale.target_s(t))
        y_out.append(y)
        last = t
    return t_out, y_out


def plot_queues(rows: list[dict[str, str]], out: Path, scale: Scale, bin_s: float,
                ports: int = 4) -> list[str] | None:
    """Draw queues.png; returns the ports drawn ("node port (class)"), None without data."""
    chosen = busiest_ports(rows, ports)
    if not chosen:
        return None
    from .plotting import new_figure, save_figure

    # Lower panel: CE marks per bin, or drops when nothing was marked (ECN off, TCP incast).
    events = "marks" if any(int(r.get("marks") or 0) for r in rows) else "drops"
    fig, (ax_depth, ax_marks) = new_figure(nrows=2, width=8, height=6)
    labels = []
    for i, key in enumerate(chosen):
        label = f"{key[0]} {key[1]} ({key[2]})" + (" bottleneck" if i == 0 else "")
        labels.append(f"{key[0]} {key[1]} ({key[2]})")
        t, depth = series(rows, key, bin_s, scale)
        line, = ax_depth.plot([x * 1e3 for x in t], [d / 1000 for d in depth], lw=0.8,
                              marker=".", ms=2, label=label, zorder=3 if i == 0 else 2)
        t, counts = series(rows, key, bin_s, scale, events)
        ax_marks.plot([x * 1e3 for x in t], counts, lw=0.8, marker=".", ms=2,
                      color=line.get_color(), zorder=3 if i == 0 else 2)
    target = f"{scale.target_host_rate_bps / 1e9:g} Gbit/s target, D = {scale.dilation:g}"
    ax_depth.set(ylabel="queue depth at enqueue (KB)",
                 title="Deepest queue per bin, busiest ports (gaps: no packets)")
    ax_depth.legend(fontsize=7, loc="upper right")
    what = "CE marks" if events == "marks" else "drops (nothing was marked)"
    ax_marks.set(ylabel=f"{what} per {scale.target_s(bin_s) * 1e6:.3g} us bin",
                 xlabel=f"target time since the fabric came up (ms, {target})")
    save_figure(fig, out)
    return labels


def plot_summary(rows: list[dict[str, Any]], out: Path, scale: Scale,
                 bin_s: float | None) -> dict[str, Any]:
    """summary.json's plot keys: the file and the ports it shows."""
    drawn = plot_queues(rows, out, scale, bin_s or 1e-4)
    return {"plot": out.name, "plot_ports": drawn} if drawn else {}

"""queues.png of a run: queue depth and CE marks over time at the bottleneck and the busiest
ports, from queues/telemetry.csv alone, on the target fabric's time axis.

A port is ranked by the bytes it held while queued (the sum over its 100 us bins of the deepest
queue a packet found), its drops and marks breaking ties: the same measure that names the run's
bottleneck, so the bottleneck is always the first line drawn. Bins without packets are absent
from the telemetry; the lines break there instead of ramping across the gap.

A long run's telemetry holds tens of millions of bins (1.8 GB for a 23-minute serving run), so
it is never held as rows: :class:`TelemetryFile` streams the file on every pass, one pass ranks
the ports and a second keeps only the drawn ports' bins, as arrays. A line of more than
``MAX_POINTS`` bins is drawn from the deepest bin (and the most events) of each of
``MAX_POINTS`` equal slices of time.
"""

from __future__ import annotations

import csv
import math
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .dilation import Scale

PortKey = tuple[str, str, str]  # node, port, class
MAX_POINTS = 20_000
FIELDS = {"max_depth_bytes": "depth", "marks": "marks", "drops": "drops"}


class TelemetryFile:
    """queues/telemetry.csv as rows, read from disk again on every pass."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __iter__(self) -> Iterator[dict[str, str]]:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with self.path.open(newline="") as f:
            yield from csv.DictReader(f)


@dataclass
class PortTrace:
    """One port's bins, in time order (emulated s)."""

    t: np.ndarray
    depth: np.ndarray
    marks: np.ndarray
    drops: np.ndarray


@dataclass
class TelemetryView:
    """What the summary and the plot need from the telemetry: every port's load, whether
    anything was marked, and the bins of the ``ports`` busiest ports."""

    load: dict[PortKey, tuple[int, int]]
    marked: bool
    busiest: list[PortKey]
    traces: dict[PortKey, PortTrace]

    @classmethod
    def read(cls, rows: Iterable[dict[str, str]], ports: int = 4) -> TelemetryView:
        load, marked = scan(rows)
        busiest = rank(load, ports)
        return cls(load, marked, busiest, collect(rows, busiest))


def _key(r: dict[str, str]) -> PortKey:
    return r["node"], r["port"], r["class"]


def scan(rows: Iterable[dict[str, str]]) -> tuple[dict[PortKey, tuple[int, int]], bool]:
    """(bytes held while queued, drops + marks) per port and class, and whether any bin
    holds a mark: one pass."""
    load: dict[PortKey, tuple[int, int]] = {}
    marked = False
    for r in rows:
        key = _key(r)
        marks = int(r.get("marks") or 0)
        marked = marked or marks > 0
        queued, events = load.get(key, (0, 0))
        load[key] = (queued + int(r["max_depth_bytes"]),
                     events + int(r.get("drops") or 0) + marks)
    return load, marked


def rank(load: dict[PortKey, tuple[int, int]], count: int) -> list[PortKey]:
    """The ``count`` ports that queued the most, busiest (the bottleneck) first; ports that
    never queued a byte nor dropped or marked a packet are left out."""
    ranked = sorted((k for k, v in load.items() if any(v)), key=lambda k: load[k],
                    reverse=True)
    return ranked[:count]


def collect(rows: Iterable[dict[str, str]], keys: list[PortKey]) -> dict[PortKey, PortTrace]:
    """The bins of ``keys`` only: one pass."""
    columns = {k: (array("d"), array("q"), array("q"), array("q")) for k in keys}
    for r in rows:
        c = columns.get(_key(r))
        if c is not None:
            c[0].append(float(r["t_s"]))
            c[1].append(int(r["max_depth_bytes"]))
            c[2].append(int(r.get("marks") or 0))
            c[3].append(int(r.get("drops") or 0))
    traces = {}
    for key, (t, depth, marks, drops) in columns.items():
        order = np.argsort(np.frombuffer(t, dtype=float), kind="stable")
        traces[key] = PortTrace(*(np.frombuffer(a, dtype=a.typecode)[order]
                                  for a in (t, depth, marks, drops)))
    return traces


def port_load(rows: Iterable[dict[str, str]]) -> dict[PortKey, tuple[int, int]]:
    """(bytes held while queued, drops + marks) per port and class."""
    return scan(rows)[0]


def busiest_ports(rows: Iterable[dict[str, str]], count: int = 4) -> list[PortKey]:
    """The ``count`` ports that queued the most, busiest (the bottleneck) first."""
    return rank(port_load(rows), count)


def trace_series(trace: PortTrace, bin_s: float, scale: Scale,
                 field: str = "max_depth_bytes") -> tuple[list[float], list[float]]:
    """One port's ``field`` per bin against target time (s), with a NaN point wherever bins
    without packets separate two bins, so a plotted line breaks there; more than MAX_POINTS
    bins are reduced to the largest value of each of MAX_POINTS slices of time."""
    t, y = trace.t, getattr(trace, FIELDS[field]).astype(float)
    gap_s = 1.5 * bin_s
    if len(t) > MAX_POINTS:
        width = (t[-1] - t[0]) / MAX_POINTS
        slot = np.minimum(((t - t[0]) / width).astype(np.int64), MAX_POINTS - 1)
        starts = np.flatnonzero(np.r_[True, slot[1:] != slot[:-1]])
        t, y = t[starts], np.maximum.reduceat(y, starts)
        gap_s = 1.5 * max(bin_s, width)
    t_out: list[float] = []
    y_out: list[float] = []
    last = None
    for tv, yv in zip(t.tolist(), y.tolist(), strict=True):
        if last is not None and tv - last > gap_s:
            t_out.append(scale.target_s((tv + last) / 2))
            y_out.append(math.nan)
        t_out.append(scale.target_s(tv))
        y_out.append(yv)
        last = tv
    return t_out, y_out


def series(rows: Iterable[dict[str, str]], key: PortKey, bin_s: float, scale: Scale,
           field: str = "max_depth_bytes") -> tuple[list[float], list[float]]:
    """``trace_series`` of one port, read from ``rows``."""
    return trace_series(collect(rows, [key])[key], bin_s, scale, field)


def plot_queues(rows: Iterable[dict[str, str]] | TelemetryView, out: Path, scale: Scale,
                bin_s: float, ports: int = 4) -> list[str] | None:
    """Draw queues.png; returns the ports drawn ("node port (class)"), None without data."""
    view = rows if isinstance(rows, TelemetryView) else TelemetryView.read(rows, ports)
    chosen = view.busiest[:ports]
    if not chosen:
        return None
    from .plotting import new_figure, save_figure

    # Lower panel: CE marks per bin, or drops when nothing was marked (ECN off, TCP incast).
    events = "marks" if view.marked else "drops"
    fig, (ax_depth, ax_marks) = new_figure(nrows=2, width=8, height=6)
    labels = []
    for i, key in enumerate(chosen):
        label = f"{key[0]} {key[1]} ({key[2]})" + (" bottleneck" if i == 0 else "")
        labels.append(f"{key[0]} {key[1]} ({key[2]})")
        t, depth = trace_series(view.traces[key], bin_s, scale)
        line, = ax_depth.plot([x * 1e3 for x in t], [d / 1000 for d in depth], lw=0.8,
                              marker=".", ms=2, label=label, zorder=3 if i == 0 else 2)
        t, counts = trace_series(view.traces[key], bin_s, scale, events)
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


def plot_summary(rows: Iterable[dict[str, Any]] | TelemetryView, out: Path, scale: Scale,
                 bin_s: float | None) -> dict[str, Any]:
    """summary.json's plot keys: the file and the ports it shows."""
    drawn = plot_queues(rows, out, scale, bin_s or 1e-4)
    return {"plot": out.name, "plot_ports": drawn} if drawn else {}

"""Summary and plot of a link_failure run: per-stream outages around the failure/restore."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from ..plotting import new_figure, save_figure
from .openflow_common import controller_events

#: A gap longer than this many packet intervals, with packets lost in it, is an outage, not
#: jitter or a single drop (2 intervals). It must stay well below the recovery time it
#: measures (about 10 ms here: at 10 intervals, half of the outages went uncounted).
OUTAGE_INTERVALS = 3


def read_streams(run_dir: Path) -> dict[tuple[str, str], np.ndarray]:
    """(receiver, src:sport) -> array of (seq, sent, received) rows sorted by arrival."""
    streams: dict[tuple[str, str], list] = {}
    for path in sorted(run_dir.glob("arrivals-*.csv")):
        receiver = path.stem.removeprefix("arrivals-")
        with path.open() as f:
            for row in csv.DictReader(f):
                streams.setdefault((receiver, f"{row['src']}:{row['sport']}"), []).append(
                    (int(row["seq"]), float(row["sent"]), float(row["received"])))
    return {k: np.array(sorted(v, key=lambda r: r[2])) for k, v in streams.items()}


def outage(arrivals: np.ndarray, event_t: float, window_s: float,
           min_gap_s: float) -> tuple[float, int, float] | None:
    """(time from event_t to the first arrival after the gap, packets lost in it, the gap)
    for the gap that the event cut into the stream: longer than min_gap_s, spanning the
    event (its last packet before arrived at most min_gap_s after it: packets already past
    the link still land), ending within window_s, and with packets lost in it. A pause with
    nothing lost is a stalled sender or receiver on the host, not an outage of the path."""
    received, seqs = arrivals[:, 2], arrivals[:, 0]
    gaps = np.diff(received)
    for i, gap in enumerate(gaps):
        lost = int(seqs[i + 1] - seqs[i] - 1)
        if gap > min_gap_s and lost > 0 and received[i] <= event_t + min_gap_s \
                and event_t <= received[i + 1] <= event_t + window_s:
            return float(received[i + 1] - event_t), lost, float(gap)
    return None


def analyse(run_dir: Path, spec) -> dict[str, Any]:
    streams = read_streams(run_dir)
    events, link = {}, spec.workload["link"]
    path = run_dir / "link_events.csv"
    if path.exists():
        with path.open() as f:
            logged = list(csv.DictReader(f))
        events = {row["event"]: float(row["t"]) for row in logged}
        link = next((row["link"] for row in logged if row.get("link")), link)
    interval = spec.workload["interval"]
    summary: dict[str, Any] = {"controller": spec.fabric["controller"],
                               "link": link,
                               "streams": len(streams)}
    rows = []
    for name in ("down", "up"):
        if name not in events:
            continue
        t = events[name]
        # A down outage ends before the link comes back; an up outage within a second.
        window = 1.0 if name == "up" else events.get("up", t + 5.0) - t
        hits = {k: outage(v, t, window, OUTAGE_INTERVALS * interval)
                for k, v in streams.items()}
        affected = {k: h for k, h in hits.items() if h}
        times = [h[0] for h in affected.values()]
        summary[f"{name}_streams_affected"] = len(affected)
        summary[f"{name}_packets_lost"] = sum(h[1] for h in affected.values())
        summary[f"{name}_max_gap_s"] = max((h[2] for h in affected.values()), default=0.0)
        if name == "down":
            summary["down_recovery_max_s"] = max(times) if times else None
            summary["down_recovery_median_s"] = float(np.median(times)) if times else None
            if not times:
                summary["down_recovery_note"] = (
                    f"no stream lost packets when {summary['link']} failed: none crossed it "
                    "(set workload.link = \"auto\" to fail a link the streams use)")
        for k, h in hits.items():
            rows.append({"event": name, "receiver": k[0], "stream": k[1],
                         "recovery_s": h[0] if h else 0.0, "lost": h[1] if h else 0,
                         "gap_s": h[2] if h else 0.0})
        status = [e for e in controller_events(run_dir, "port_status")
                  if e["t"] >= t - 0.01 and e["up"] == (name == "up")]
        # None: no controller saw it (controller = "static", or it missed the event).
        summary[f"{name}_controller_notified_s"] = status[0]["t"] - t if status else None
        summary[f"{name}_controller_updated_s"] = max(
            e["t"] + e["handled_s"] for e in status[:2]) - t if status else None
    total_sent = sum(int(v[:, 0].max()) + 1 for v in streams.values() if len(v))
    total_received = sum(len(v) for v in streams.values())
    summary["packets_lost_total"] = total_sent - total_received
    if rows:
        with (run_dir / "outages.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    _plot(run_dir, streams, events)
    return summary


def _plot(run_dir: Path, streams, events) -> None:
    fig, ax = new_figure(width=9)
    t0 = events.get("start", min((v[0, 2] for v in streams.values() if len(v)), default=0))
    for i, (_name, arrivals) in enumerate(sorted(streams.items())):
        if len(arrivals):
            ax.plot(arrivals[:, 2] - t0, np.full(len(arrivals), i), "|", ms=4,
                    label=None)
    for name, color in (("down", "red"), ("up", "green")):
        if name in events:
            ax.axvline(events[name] - t0, color=color, linestyle=":", label=f"link {name}")
    ax.set(xlabel="time (s)", ylabel="stream", title="Packet arrivals per stream (gaps = "
           "outage)")
    ax.legend(loc="upper right")
    save_figure(fig, run_dir / "link_failure.png")

"""queues.png picks its ports from the data (bottleneck first) and breaks its lines where bins
had no packets, on the target's time axis."""

from __future__ import annotations

import math

from kvfabric.dilation import Scale
from kvfabric.queue_plot import busiest_ports, plot_queues, series
from kvfabric.queue_results import bottleneck_depth


def _row(t, node, port, depth, marks=0, drops=0, cls="lossy"):
    return {"t_s": str(t), "node": node, "port": port, "class": cls,
            "max_depth_bytes": str(depth), "marks": str(marks), "drops": str(drops)}


def _incast_rows():
    """A host NIC with one deep spike and a switch port queued at 60 KB for 50 bins: the
    switch port holds far more bytes over time and is the bottleneck."""
    rows = [_row(1.0, "h2", "h2-eth0", 200_000), _row(1.0001, "h2", "h2-eth0", 0)]
    rows += [_row(1.0 + i * 1e-4, "l1", "l1-eth1", 60_000, drops=1) for i in range(50)]
    rows += [_row(1.0 + i * 1e-4, "h3", "h3-eth0", 1_000) for i in range(3)]
    rows += [_row(1.0 + i * 1e-4, "s1", "s1-eth1", 0) for i in range(100)]  # idle port
    return rows


def test_the_bottleneck_is_drawn_first_and_idle_ports_are_not():
    rows = _incast_rows()
    ports = busiest_ports(rows, 4)
    assert ports[0] == ("l1", "l1-eth1", "lossy")
    assert bottleneck_depth(rows)["bottleneck"] == "l1 l1-eth1 (lossy)"
    assert ("s1", "s1-eth1", "lossy") not in ports
    assert busiest_ports(rows, 1) == [ports[0]]


def test_bins_without_packets_break_the_line_and_time_is_the_targets():
    rows = [_row(t, "l1", "l1-eth1", 5000) for t in (2.0, 2.0001, 2.0002, 3.0, 3.0001)]
    scale = Scale(250.0, 25e9, 25e9)
    t, depth = series(rows, ("l1", "l1-eth1", "lossy"), 1e-4, scale)
    assert sum(math.isnan(d) for d in depth) == 1  # one gap, between 2.0002 and 3.0
    gap = depth.index(next(d for d in depth if math.isnan(d)))
    assert depth[:gap] == [5000] * 3 and depth[gap + 1:] == [5000] * 2
    assert t[0] == 2.0 / 250 and t[-1] == 3.0001 / 250  # emulated s / D


def test_the_plot_names_the_ports_it_shows(tmp_path):
    out = tmp_path / "queues.png"
    drawn = plot_queues(_incast_rows(), out, Scale(1.0, 1e8, 1e8), 1e-4)
    assert drawn[0] == "l1 l1-eth1 (lossy)" and out.stat().st_size > 0
    assert plot_queues([], out, Scale(1.0, 1e8, 1e8), 1e-4) is None


def _write(path, rows):
    import csv
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["t_s", "node", "port", "class",
                                               "max_depth_bytes", "marks", "drops"])
        writer.writeheader()
        writer.writerows(rows)


def test_the_file_is_streamed_with_the_same_results_as_rows_in_memory(tmp_path):
    """A long run's telemetry.csv (1.8 GB for 23 minutes) once took the analysis to 24 GB
    and the out-of-memory killer; it is read in passes over the file, never as rows."""
    from kvfabric.queue_plot import TelemetryFile, TelemetryView

    rows = _incast_rows()
    _write(tmp_path / "telemetry.csv", rows)
    streamed = TelemetryFile(tmp_path / "telemetry.csv")
    assert not isinstance(iter(streamed), list)
    assert bottleneck_depth(TelemetryView.read(streamed)) == bottleneck_depth(rows)
    assert busiest_ports(streamed, 4) == busiest_ports(rows, 4)
    assert list(TelemetryFile(tmp_path / "missing.csv")) == []


def test_a_line_of_more_bins_than_max_points_keeps_each_slices_deepest_bin():
    from kvfabric.queue_plot import MAX_POINTS

    n = 3 * MAX_POINTS
    rows = [_row(1.0 + i * 1e-4, "l1", "l1-eth1", 1000 + (i % 3) * 10) for i in range(n)]
    rows[n // 2]["max_depth_bytes"] = "90000"  # one spike must survive the reduction
    t, depth = series(rows, ("l1", "l1-eth1", "lossy"), 1e-4, Scale(1.0, 1e8, 1e8))
    assert len(depth) <= MAX_POINTS and not any(math.isnan(d) for d in depth)
    assert max(depth) == 90000 and min(depth) == 1020  # each slice of 3 bins: its deepest
    assert t[0] == 1.0

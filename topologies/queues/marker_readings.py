"""What a reader of the eBPF ECN marker gets back: one class's counters, and one class's
packets in one 100 us telemetry bin."""

from __future__ import annotations

from dataclasses import dataclass

from topologies.queues.marker_layout import TL_BIN_NS


@dataclass(frozen=True)
class ClassCounters:
    """One class's counters, summed over CPUs, plus its current virtual-queue depth."""

    name: str
    packets: int
    bytes: int
    ect_packets: int
    marks: int
    ce_in: int
    vq_drops: int
    depth_sum_bytes: int
    hist_bucket_bytes: int
    hist_packets: tuple[int, ...]
    hist_ect: tuple[int, ...]
    hist_marks: tuple[int, ...]
    vq_depth_bytes: float

    @property
    def mean_depth_bytes(self) -> float:
        return self.depth_sum_bytes / self.packets if self.packets else 0.0

    @property
    def mark_fraction(self) -> float:
        return self.marks / self.ect_packets if self.ect_packets else 0.0


@dataclass(frozen=True)
class TimelineBin:
    """One class's packets in one TL_BIN_NS bin, as the program saw them at enqueue."""

    class_name: str
    bin: int                # CLOCK_MONOTONIC ns // TL_BIN_NS
    max_depth_bytes: int
    last_depth_bytes: int
    bytes: int
    packets: int
    marks: int
    drops: int
    ect_packets: int

    @property
    def start_ns(self) -> int:
        return self.bin * TL_BIN_NS

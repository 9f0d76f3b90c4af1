"""The marker's telemetry ring (kvf_tl, an mmap-able array): TL_SLOTS bins of TL_BIN_NS per
class, read without a syscall per bin, each bin handed out once."""

from __future__ import annotations

import mmap
import time

from topologies.queues.bpf_syscall import BpfMap
from topologies.queues.marker_layout import MAX_CLASSES, TL_BIN_NS, TL_DTYPE, TL_SLOT, TL_SLOTS
from topologies.queues.marker_readings import TimelineBin


class TimelineRing:
    """Maps kvf_tl at the first read; from then on each read returns the bins completed
    since the previous one."""

    def __init__(self, tl_map: BpfMap):
        self.tl_map = tl_map
        self._mapping: mmap.mmap | None = None
        self._next_bin = [0] * MAX_CLASSES

    def read(self, enabled: list[bool], class_names: list[str]) -> list[TimelineBin]:
        """Bins of the classes `enabled` (by index), oldest first."""
        import numpy as np

        if self._mapping is None:
            self._mapping = mmap.mmap(self.tl_map.fd, TL_SLOT.size * MAX_CLASSES * TL_SLOTS,
                                      flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
            now_bin = time.monotonic_ns() // TL_BIN_NS
            self._next_bin = [now_bin - TL_SLOTS + 1] * MAX_CLASSES
        current = time.monotonic_ns() // TL_BIN_NS  # still filling: left for the next call
        slots = np.frombuffer(self._mapping, dtype=TL_DTYPE).reshape(MAX_CLASSES, TL_SLOTS)
        out: list[TimelineBin] = []
        for index in range(MAX_CLASSES):
            if not enabled[index]:
                continue
            first = max(self._next_bin[index], current - TL_SLOTS + 1)
            self._next_bin[index] = current
            # Copy only the slots of the bins wanted (fancy indexing copies).
            ring = slots[index][np.arange(first, current) % TL_SLOTS]
            keep = (ring["bin"] >= first) & (ring["bin"] < current) & (ring["packets"] > 0)
            name = class_names[index]
            for row in ring[keep].tolist():
                out.append(TimelineBin(name, *row))
        out.sort(key=lambda t: t.bin)
        return out

    def close(self) -> None:
        if self._mapping is not None:
            self._mapping.close()
            self._mapping = None

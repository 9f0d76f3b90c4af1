"""The discrete-event loop every serving component is driven by.

Nothing in the model reads a clock: components schedule callbacks at times they compute and
the loop runs them in time order (ties in scheduling order). Tests and offline studies run
the loop as fast as it goes; an emulation can drive the same components and inject the
events it measures (a KV transfer completing) with :meth:`EventLoop.schedule`.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable


class EventLoop:
    """A heap of (time, order, callback); ``now_s`` is the time of the event being run."""

    def __init__(self, start_s: float = 0.0) -> None:
        self.now_s = start_s
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()

    def schedule(self, at_s: float, callback: Callable[[], None]) -> None:
        if at_s < self.now_s:
            raise ValueError(f"cannot schedule at {at_s} s, before now ({self.now_s} s)")
        heapq.heappush(self._heap, (at_s, next(self._order), callback))

    def after(self, delay_s: float, callback: Callable[[], None]) -> None:
        self.schedule(self.now_s + delay_s, callback)

    @property
    def pending(self) -> int:
        return len(self._heap)

    @property
    def next_event_s(self) -> float:
        """When the earliest pending event runs (inf when none is pending)."""
        return self._heap[0][0] if self._heap else float("inf")

    def run(self, until_s: float = float("inf"), max_events: int = 50_000_000) -> int:
        """Run events up to ``until_s`` and advance the clock to it; returns how many ran.
        ``max_events`` guards against a component that reschedules itself forever."""
        ran = 0
        while self._heap and self._heap[0][0] <= until_s:
            if ran >= max_events:
                raise RuntimeError(f"more than {max_events} events: a component loops")
            at_s, _, callback = heapq.heappop(self._heap)
            self.now_s = at_s
            callback()
            ran += 1
        if until_s != float("inf"):
            self.now_s = max(self.now_s, until_s)  # the time up to which nothing is left
        return ran

"""How the queue agent's sweeps kept time: the period of each sweep and the longest time each
phase took, for agent.json."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


class SweepTiming:
    def __init__(self) -> None:
        self.periods: list[float] = []
        self.sweeps = 0
        self.phase_max_s: dict[str, float] = {}
        self._last = 0.0  # set by begin()

    def begin(self) -> None:
        """The loop starts now: the first period is measured from here."""
        self._last = time.monotonic()

    def start_sweep(self, now: float) -> None:
        self.periods.append(now - self._last)
        self._last = now
        self.sweeps += 1

    def timed(self, phase: str, func: Callable, *args) -> Any:
        start = time.monotonic()
        result = func(*args)
        took = time.monotonic() - start
        if took > self.phase_max_s.get(phase, 0.0):
            self.phase_max_s[phase] = took
        return result

    def period_summary(self) -> dict[str, float]:
        """Median, p90, p99 and max of the sweep periods (the first, from start-up, left out)."""
        periods = sorted(self.periods[1:]) or [0.0]
        return {
            "sweep_period_median_s": statistics.median(periods),
            "sweep_period_p90_s": periods[int(0.9 * (len(periods) - 1))],
            "sweep_period_p99_s": periods[int(0.99 * (len(periods) - 1))],
            "sweep_period_max_s": periods[-1],
        }

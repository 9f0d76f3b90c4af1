"""Pure, clock-injected PFC and ECN decision models.

Nothing here reads a clock or a socket: callers pass `now_s` and queue depths, so the emulation
can drive these in real time, tests deterministically, and a simulator from its event loop.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Literal, Protocol

from topologies.queues.spec import (
    EcnRamp,
    PfcThresholds,
)
from wire.ecn import ECN_CE, ECN_ECT0, ECN_ECT1, ECN_NOT_ECT

PfcAction = Literal["pause", "resume"]


class PfcState:
    """PFC state of one (port, priority) queue with XOFF/XON hysteresis.

    `on_depth` returns "pause" when the depth reaches XOFF while running, "resume" when it
    falls to XON or below while paused, else None. With `refresh_s`, a queue still at or above
    XON is paused again every `refresh_s`, as switches do before the pause quanta expire.
    """

    def __init__(self, xoff_bytes: int, xon_bytes: int, *, refresh_s: float | None = None):
        # Reuse the spec's validation (xon < xoff, non-negative); headroom is not ours.
        PfcThresholds(xoff_bytes, xon_bytes, 0)
        if refresh_s is not None and refresh_s <= 0:
            raise ValueError(f"refresh_s must be positive, got {refresh_s!r}")
        self.xoff_bytes = xoff_bytes
        self.xon_bytes = xon_bytes
        self.refresh_s = refresh_s
        self.paused = False
        self.pause_sent = 0
        self.resume_sent = 0
        self.time_paused_s = 0.0
        self._now_s: float | None = None
        self._last_pause_s = 0.0

    @classmethod
    def from_thresholds(cls, thresholds: PfcThresholds, *,
                        refresh_s: float | None = None) -> PfcState:
        return cls(thresholds.xoff_bytes, thresholds.xon_bytes, refresh_s=refresh_s)

    def on_depth(self, depth_bytes: float, now_s: float) -> PfcAction | None:
        if self._now_s is not None:
            if now_s < self._now_s:
                raise ValueError(f"time went backwards: {now_s} after {self._now_s}")
            if self.paused:
                self.time_paused_s += now_s - self._now_s
        self._now_s = now_s
        if not self.paused:
            if depth_bytes >= self.xoff_bytes:
                return self._pause(now_s)
            return None
        if depth_bytes <= self.xon_bytes:
            self.paused = False
            self.resume_sent += 1
            return "resume"
        if self.refresh_s is not None and now_s - self._last_pause_s >= self.refresh_s:
            return self._pause(now_s)
        return None

    def _pause(self, now_s: float) -> PfcAction:
        self.paused = True
        self.pause_sent += 1
        self._last_pause_s = now_s
        return "pause"


class PfcTable:
    """One `PfcState` per (port, priority), created on first use from shared thresholds."""

    def __init__(self, thresholds: PfcThresholds, *, refresh_s: float | None = None):
        self.thresholds = thresholds
        self.refresh_s = refresh_s
        self.states: dict[tuple[Hashable, int], PfcState] = {}

    def state(self, port: Hashable, priority: int) -> PfcState:
        key = (port, priority)
        if key not in self.states:
            if priority not in range(8):
                raise ValueError(f"priority must be 0..7, got {priority!r}")
            self.states[key] = PfcState.from_thresholds(self.thresholds,
                                                        refresh_s=self.refresh_s)
        return self.states[key]

    def on_depth(self, port: Hashable, priority: int, depth_bytes: float,
                 now_s: float) -> PfcAction | None:
        return self.state(port, priority).on_depth(depth_bytes, now_s)


class UniformSource(Protocol):
    """Anything with random() -> float in [0, 1): random.Random, numpy Generator."""

    def random(self) -> float: ...


class EcnMarker:
    """Decides CE marks on a RED ramp. ECT(0)/ECT(1) packets are marked with the ramp's
    probability at the depth the packet sees; Not-ECT packets are never marked (RFC 3168:
    a router drops them instead, which is the buffer's job, not the marker's); CE stays CE."""

    def __init__(self, ramp: EcnRamp, rng: UniformSource):
        self.ramp = ramp
        self.rng = rng
        self.packets = 0
        self.ect_packets = 0
        self.marks = 0

    def mark(self, depth_bytes: float, ecn: int) -> int:
        """Return the packet's ECN bits after this queue: `ecn` or ECN_CE."""
        if ecn not in (ECN_NOT_ECT, ECN_ECT1, ECN_ECT0, ECN_CE):
            raise ValueError(f"ECN field is two bits, got {ecn!r}")
        self.packets += 1
        if ecn not in (ECN_ECT0, ECN_ECT1):
            return ecn
        self.ect_packets += 1
        p = self.ramp.probability(depth_bytes)
        # Draw only inside the ramp so p == 0 and p == 1 consume no randomness, which keeps
        # seeded runs comparable when thresholds move.
        if p >= 1.0 or (p > 0.0 and self.rng.random() < p):
            self.marks += 1
            return ECN_CE
        return ecn

    def should_mark(self, depth_bytes: float, ecn: int) -> bool:
        return self.mark(depth_bytes, ecn) == ECN_CE and ecn != ECN_CE

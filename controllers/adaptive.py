"""Adaptive routing decisions from live load: pure and clock-injected.

Design (why elephant rerouting): with a two-tier fabric the only path choice is the source
leaf's uplink. Every flow starts on a hashed uplink, as with ECMP, so mice cost the controller
nothing beyond one packet-in. The controller polls the leaves' uplink counters (port stats)
every few milliseconds and the per-flow counters of its exact-match rules less often. When an
uplink stays above ``congested_util`` for ``sustain_s`` while carrying two or more elephants (a
single flow filling a link cannot be helped by moving it), the smallest elephant moves to the
least-loaded live alternative, if that one has room for it. One move per leaf per
``holddown_s`` lets TCP settle on the new split, which avoids the oscillation of re-deciding on
rates that have not yet converged. Flowlet switching would react within a flow too, but needs
per-packet gap detection that userspace OpenFlow cannot express; weighted groups would move
whole hash buckets (mice with the elephants).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AdaptiveParams:
    congested_util: float = 0.85
    window_s: float = 0.03           # utilisation is averaged over this window of polls ...
    sustain_s: float = 0.1           # ... and must stay high this long: longer than a burst
    # such as a path probe (256 KiB at 50 Mbit/s is 42 ms). A flow's rate is averaged over
    # up to a second, so a burst that has ended still looks like an elephant; two bursts on
    # one uplink 0.15 s apart would otherwise move a flow that is no longer sending.
    elephant_fraction: float = 0.1   # a flow above this fraction of the link rate ...
    flow_window_s: float = 1.0       # ... averaged over up to this long (at least 0.2 s):
    # userspace OVS credits OpenFlow rule counters only when its revalidators run (every
    # 500 ms by default), so a flow's counter moves in steps; port counters are live.
    holddown_s: float = 0.3


@dataclass
class _Window:
    """Rate over the last window_s of samples: OVS refreshes a port's counters in steps,
    so single 10 ms deltas swing between zero and several times the line rate."""
    window_s: float
    min_age_s: float | None = None   # rate from this much history on (default: window_s)
    samples: deque = field(default_factory=deque)
    rate_bps: float = 0.0

    def update(self, now_s: float, value: int) -> float:
        self.samples.append((now_s, value))
        while len(self.samples) > 2 and now_s - self.samples[1][0] >= self.window_s:
            self.samples.popleft()
        t0, v0 = self.samples[0]
        min_age = self.window_s if self.min_age_s is None else self.min_age_s
        if now_s - t0 >= min_age and value >= v0:
            self.rate_bps = 8 * (value - v0) / (now_s - t0)
        return self.rate_bps


@dataclass(frozen=True)
class Move:
    switch: str
    flow: tuple
    old_port: int
    new_port: int
    flow_rate_bps: float
    old_util: float
    new_util: float


@dataclass
class LoadMonitor:
    """Port and flow rates of the leaves' uplinks, and the moves they call for."""

    params: AdaptiveParams
    capacity_bps: dict[tuple[str, int], int]          # (switch, uplink) -> link rate
    ports: dict[tuple[str, int], _Window] = field(default_factory=dict)
    flows: dict[tuple[str, tuple], _Window] = field(default_factory=dict)
    hot_since: dict[tuple[str, int], float] = field(default_factory=dict)
    last_move_s: dict[str, float] = field(default_factory=dict)

    def port_sample(self, switch: str, port: int, now_s: float, tx_bytes: int) -> float:
        """Record a counter reading; returns the utilisation since the previous one."""
        key = (switch, port)
        if key not in self.capacity_bps:
            return 0.0
        rate = self.ports.setdefault(key, _Window(self.params.window_s)).update(now_s,
                                                                              tx_bytes)
        util = rate / self.capacity_bps[key]
        if util < self.params.congested_util:
            self.hot_since.pop(key, None)
        else:
            self.hot_since.setdefault(key, now_s)
        return util

    def flow_sample(self, switch: str, flow: tuple, now_s: float, byte_count: int) -> None:
        """A pinned flow's byte counter (from flow stats)."""
        self.flows.setdefault((switch, flow), _Window(self.params.flow_window_s, 0.2)).update(
            now_s, byte_count)

    def forget_flow(self, switch: str, flow: tuple) -> None:
        self.flows.pop((switch, flow), None)

    def util(self, switch: str, port: int) -> float:
        counter = self.ports.get((switch, port))
        capacity = self.capacity_bps.get((switch, port))
        return counter.rate_bps / capacity if counter and capacity else 0.0

    def congested(self, switch: str, port: int, now_s: float) -> bool:
        """Above congested_util in every sample of the last sustain_s."""
        since = self.hot_since.get((switch, port))
        return since is not None and now_s - since >= self.params.sustain_s

    def decide(self, switch: str, now_s: float, placements: dict[tuple, int],
               candidates: Callable[[tuple], tuple[int, ...]]) -> Move | None:
        """At most one move for switch: placements maps its flows to their uplink,
        candidates(flow) gives the live uplinks that flow may use."""
        if now_s - self.last_move_s.get(switch, -1e9) < self.params.holddown_s:
            return None
        for sw, port in sorted(self.hot_since):
            if sw != switch or not self.congested(sw, port, now_s):
                continue
            capacity = self.capacity_bps[(sw, port)]
            elephants = sorted(
                ((self.flows[(sw, f)].rate_bps, f) for f, p in placements.items()
                 if p == port and (sw, f) in self.flows
                 and self.flows[(sw, f)].rate_bps >= self.params.elephant_fraction * capacity),
                key=lambda item: item[0])
            if len(elephants) < 2:
                continue
            for rate, flow in elephants:
                options = [p for p in candidates(flow) if p != port]
                if not options:
                    continue
                target = min(options, key=lambda p: (self.util(sw, p), p))
                room = (1.0 - self.util(sw, target)) * self.capacity_bps[(sw, target)]
                if room < self.params.elephant_fraction * capacity:
                    continue
                self.last_move_s[switch] = now_s
                self.hot_since.pop((sw, port), None)
                return Move(sw, flow, port, target, rate, self.util(sw, port),
                            self.util(sw, target))
        return None

"""DCQCN reaction point: the per-QP sender rate controller of RoCEv2 congestion control.

The model is pure and clock-injected: every method takes ``now_s`` and timers fire only when the
caller advances time, so the emulator can drive it in real time, tests deterministically and a
simulator in virtual time.

Sources
-------
- Zhu et al., "Congestion Control for Large-Scale RDMA Deployments", SIGCOMM 2015 (the paper):
  on a CNP ``R_T = R_C``, ``R_C = R_C (1 - alpha/2)``, ``alpha = (1 - g) alpha + g``; without a
  CNP for one alpha period ``alpha = (1 - g) alpha``; rate increases come from a timer and a byte
  counter; the first F = 5 increase events are fast recovery ``R_C = (R_T + R_C)/2``, then
  additive increase ``R_T += R_AI``, then hyper increase ``R_T += i R_HAI`` once both counters
  passed F. g = 1/256, timer 55 us, byte counter 10 MB.
- alibaba-edu/High-Precision-Congestion-Control ``simulation/run.py`` (HPCC's ns-3): the Mellanox
  form, alpha resume interval 1 us, rate decrease interval 4 us, rate-increase timer 300 us
  (``dcqcn``) or 55 us (``dcqcn_paper``), ``RATE_AI = 5 Mbit/s x bw/25G``,
  ``RATE_HAI = 50 Mbit/s x bw/25G``.
- NVIDIA/Mellanox ``ecn/roce_rp`` defaults: rpg_time_reset 300 us, rpg_byte_reset 32767 B,
  rpg_ai_rate 5 Mbit/s, rpg_hai_rate 50 Mbit/s, rpg_min_rate 1 Mbit/s.

Modelling choices (each is a documented simplification)
-------------------------------------------------------
- A QP that has never been cut runs at line rate and its timers are idle; the first CNP starts
  the alpha and rate-increase timers, as HPCC's ns-3 model does.
- The rate cut uses alpha *before* its update, exactly the order of the paper's equations, so a
  first CNP with alpha0 = 1 halves the rate.
- Stage selection follows QCN: fast recovery while both counters are <= F, hyper increase once
  both exceed F with ``i = min(T, BC) - F``, additive increase otherwise. ns-3-rdma compares
  with ``<`` instead of ``<=`` (four fast-recovery steps, not five).
- QCN's halved timer and byte counter during hyper increase are not modelled.
- ``rate_decrease_interval_s > 0`` (Mellanox) coalesces CNPs: at most one cut per interval, and a
  CNP inside the interval schedules one cut at its end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

REFERENCE_LINK_RATE_BPS = 25e9
"""HPCC scales RATE_AI and RATE_HAI from their values at 25 Gbit/s."""

PROFILES = ("paper", "mellanox", "hpcc")

_COUNT_EPS = 1e-9  # relative slack so a timer due exactly at now_s fires despite float rounding
_TIME_EPS_S = 1e-12


@dataclass(frozen=True)
class DcqcnParams:
    """Reaction-point parameters, in one fabric's units (the target's in a spec, the
    emulated ones after ``kvfabric.dilation.emulate_params``: every ``*_bps`` field is a rate,
    every ``*_s`` field a duration, ``*_bytes`` a size). Defaults are the paper's, with
    rates for a 25 Gbit/s link; :meth:`preset` gives each profile at a target link rate.
    """

    line_rate_bps: float
    g: float = 1 / 256
    alpha_timer_s: float = 55e-6
    rate_increase_timer_s: float = 55e-6
    byte_counter_bytes: int = 10_000_000  # 0: no byte counter (HPCC's model)
    fast_recovery_steps: int = 5
    rate_ai_bps: float = 5e6
    rate_hai_bps: float = 50e6
    min_rate_bps: float = 1e6
    rate_decrease_interval_s: float = 0.0
    initial_alpha: float = 1.0
    clamp_target_rate: bool = True  # R_T = R_C on every cut (hpcc: only after an increase)
    profile: str = "paper"          # which reaction point runs them (make_reaction_point)

    def __post_init__(self) -> None:
        if self.line_rate_bps <= 0:
            raise ValueError(f"line_rate_bps must be positive, got {self.line_rate_bps}")
        if not 0 < self.g <= 1:
            raise ValueError(f"g must be in (0, 1], got {self.g}")
        if self.alpha_timer_s <= 0 or self.rate_increase_timer_s <= 0:
            raise ValueError("alpha_timer_s and rate_increase_timer_s must be positive")
        if self.byte_counter_bytes < 0:
            raise ValueError(f"byte_counter_bytes cannot be negative, got "
                             f"{self.byte_counter_bytes}")
        if self.fast_recovery_steps < 0:
            raise ValueError("fast_recovery_steps cannot be negative")
        if min(self.rate_ai_bps, self.rate_hai_bps, self.rate_decrease_interval_s) < 0:
            raise ValueError("rate_ai_bps, rate_hai_bps and rate_decrease_interval_s must be >= 0")
        if not 0 < self.min_rate_bps <= self.line_rate_bps:
            raise ValueError("min_rate_bps must be in (0, line_rate_bps]")
        if not 0 <= self.initial_alpha <= 1:
            raise ValueError(f"initial_alpha must be in [0, 1], got {self.initial_alpha}")
        if self.profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {self.profile!r}")
        if self.profile == "hpcc" and self.rate_decrease_interval_s <= 0:
            raise ValueError("the hpcc model needs rate_decrease_interval_s > 0")

    @classmethod
    def preset(cls, profile: str, line_rate_bps: float) -> DcqcnParams:
        """A profile's published parameters for a (target) link of ``line_rate_bps``.

        Between link rates the values scale as their sources scale them: HPCC's ``run.py``
        multiplies RATE_AI and RATE_HAI by bw/25G and keeps the timers, g, the byte counter
        and MIN_RATE; NVIDIA's rpg_min_rate is one value for every link speed.

        ``paper`` (Zhu et al., SIGCOMM 2015; HPCC's ``dcqcn_paper`` rates): alpha timer and
        increase timer 55 us, byte counter 10 MB, F = 5, a cut on every CNP (the notification
        point paces CNPs to one per 50 us), min rate 1 Mbit/s.
        ``mellanox`` (NVIDIA ``ecn/roce_rp`` defaults): alpha timer 1 us, increase timer
        300 us, byte counter 32767 B, F = 5, at most one cut per 4 us, min rate 1 Mbit/s.
        ``hpcc`` (HPCC's ns-3 ``--cc dcqcn``, CC_MODE 1, ``traffic.dcqcn_hpcc``): alpha
        every 1 us, decrease check every 4 us, increase timer 300 us, no byte counter, F = 1,
        AI 5 / HAI 50 Mbit/s at 25G, MIN_RATE 1 Gbit/s, CLAMP_TARGET_RATE 0.
        """
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
        factor = line_rate_bps / REFERENCE_LINK_RATE_BPS
        rates = dict(line_rate_bps=line_rate_bps, rate_ai_bps=5e6 * factor,
                     rate_hai_bps=50e6 * factor, profile=profile)
        if profile == "paper":
            return cls(alpha_timer_s=55e-6, rate_increase_timer_s=55e-6,
                       byte_counter_bytes=10_000_000, rate_decrease_interval_s=0.0,
                       min_rate_bps=min(1e6, line_rate_bps), **rates)
        if profile == "mellanox":
            return cls(alpha_timer_s=1e-6, rate_increase_timer_s=300e-6,
                       byte_counter_bytes=32767, rate_decrease_interval_s=4e-6,
                       min_rate_bps=min(1e6, line_rate_bps), **rates)
        return cls(alpha_timer_s=1e-6, rate_increase_timer_s=300e-6, byte_counter_bytes=0,
                   rate_decrease_interval_s=4e-6, fast_recovery_steps=1,
                   min_rate_bps=min(1e9, line_rate_bps), clamp_target_rate=False, **rates)


def make_reaction_point(params: DcqcnParams):
    """The reaction point that runs ``params``: HPCC's CC_MODE 1 model for ``hpcc``, the
    paper's (with the Mellanox cut coalescing when rate_decrease_interval_s > 0) otherwise."""
    if params.profile == "hpcc":
        from traffic.dcqcn_hpcc import HpccDcqcnReactionPoint

        return HpccDcqcnReactionPoint(params)
    return DcqcnReactionPoint(params)


class DcqcnReactionPoint:
    """Sender-side DCQCN state of one QP: current rate, target rate and alpha."""

    def __init__(self, params: DcqcnParams) -> None:
        self.params = params
        self._rate_bps = params.line_rate_bps
        self._target_bps = params.line_rate_bps
        self._alpha = params.initial_alpha
        self._active = False  # timers run only once the first CNP has cut the rate
        self._timer_events = 0  # T: rate-increase timer expiries since the last cut
        self._byte_events = 0  # BC: byte-counter expiries since the last cut
        self._bytes_since_event = 0
        self._increase_base_s = 0.0
        self._increase_fired = 0
        self._alpha_base_s = 0.0
        self._alpha_fired = 0
        self._pending_cut_s: float | None = None
        self._next_cut_allowed_s = -math.inf
        self._now_s = -math.inf
        self.cnps_received = 0
        self.rate_cuts = 0

    @property
    def rate_bps(self) -> float:
        """Current sending rate R_C."""
        return self._rate_bps

    @property
    def target_rate_bps(self) -> float:
        """Target rate R_T that fast recovery converges to."""
        return self._target_bps

    @property
    def alpha(self) -> float:
        """Congestion estimate: the EWMA of CNP arrivals, in [0, 1]."""
        return self._alpha

    @property
    def stage(self) -> str:
        """'line_rate' before any cut, then 'fast_recovery', 'additive' or 'hyper'."""
        if not self._active:
            return "line_rate"
        f = self.params.fast_recovery_steps
        if max(self._timer_events, self._byte_events) <= f:
            return "fast_recovery"
        if min(self._timer_events, self._byte_events) > f:
            return "hyper"
        return "additive"

    def next_timer_s(self) -> float | None:
        """When the next timer (alpha, increase or deferred cut) is due; None when idle."""
        if not self._active:
            return None
        p = self.params
        due = [
            self._alpha_base_s + (self._alpha_fired + 1) * p.alpha_timer_s,
            self._increase_base_s + (self._increase_fired + 1) * p.rate_increase_timer_s,
        ]
        if self._pending_cut_s is not None:
            due.append(self._pending_cut_s)
        return min(due)

    def on_cnp(self, now_s: float) -> None:
        """A CNP for this QP arrived at ``now_s``."""
        self.advance(now_s)
        self.cnps_received += 1
        # The alpha timer measures time since the last CNP.
        self._alpha_base_s = now_s
        self._alpha_fired = 0
        if now_s + _TIME_EPS_S >= self._next_cut_allowed_s:
            self._cut(now_s)
        elif self._pending_cut_s is None:
            self._pending_cut_s = self._next_cut_allowed_s

    def on_bytes_sent(self, n_bytes: int, now_s: float) -> None:
        """``n_bytes`` left the sender at ``now_s``; feeds the byte counter."""
        if n_bytes < 0:
            raise ValueError(f"n_bytes cannot be negative, got {n_bytes}")
        self.advance(now_s)
        if not self._active:
            return
        if self.params.byte_counter_bytes == 0:
            return
        self._bytes_since_event += n_bytes
        events, self._bytes_since_event = divmod(
            self._bytes_since_event, self.params.byte_counter_bytes
        )
        while events:
            if self._saturated():
                self._byte_events += events
                break
            self._byte_events += 1
            events -= 1
            self._increase()

    def advance(self, now_s: float) -> None:
        """Fire every timer that expired up to ``now_s``, in time order."""
        if now_s < self._now_s - _TIME_EPS_S:
            raise ValueError(f"time went backwards: {now_s} < {self._now_s}")
        self._now_s = max(self._now_s, now_s)
        if not self._active:
            return
        if self._pending_cut_s is not None and self._pending_cut_s <= now_s + _TIME_EPS_S:
            cut_s = self._pending_cut_s
            self._pending_cut_s = None
            self._run_timers(cut_s)
            self._cut(cut_s)
        self._run_timers(now_s)

    def _cut(self, now_s: float) -> None:
        p = self.params
        if p.clamp_target_rate or max(self._timer_events, self._byte_events) > 0:
            self._target_bps = self._rate_bps
        self._rate_bps = max(p.min_rate_bps, self._rate_bps * (1 - self._alpha / 2))
        self._alpha = (1 - p.g) * self._alpha + p.g
        self._timer_events = 0
        self._byte_events = 0
        self._bytes_since_event = 0
        self._increase_base_s = now_s
        self._increase_fired = 0
        self._next_cut_allowed_s = now_s + p.rate_decrease_interval_s
        self._active = True
        self.rate_cuts += 1

    def _run_timers(self, now_s: float) -> None:
        p = self.params
        # Alpha decay and rate increase do not read each other's state, so each timer can
        # catch up on its own; only the deferred cut (handled by advance) must interleave.
        due = _expiries(self._alpha_base_s, p.alpha_timer_s, now_s)
        if due > self._alpha_fired:
            self._alpha *= (1 - p.g) ** (due - self._alpha_fired)
            self._alpha_fired = due
        due = _expiries(self._increase_base_s, p.rate_increase_timer_s, now_s)
        while self._increase_fired < due:
            if self._saturated():
                self._timer_events += due - self._increase_fired
                self._increase_fired = due
                break
            self._increase_fired += 1
            self._timer_events += 1
            self._increase()

    def _saturated(self) -> bool:
        line = self.params.line_rate_bps
        return self._rate_bps >= line and self._target_bps >= line

    def _increase(self) -> None:
        p = self.params
        f = p.fast_recovery_steps
        low, high = sorted((self._timer_events, self._byte_events))
        if high <= f:
            pass  # fast recovery: the target stays where the last cut left it
        elif low > f:
            self._target_bps += (low - f) * p.rate_hai_bps
        else:
            self._target_bps += p.rate_ai_bps
        self._target_bps = min(self._target_bps, p.line_rate_bps)
        self._rate_bps = min((self._target_bps + self._rate_bps) / 2, p.line_rate_bps)


def _expiries(base_s: float, period_s: float, now_s: float) -> int:
    """How many periodic expiries at base + k*period (k >= 1) are due by ``now_s``."""
    return max(0, math.floor((now_s - base_s) / period_s + _COUNT_EPS))

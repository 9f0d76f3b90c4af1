"""DCQCN as HPCC's ns-3 models it (CC_MODE 1, "Mellanox's version of DCQCN"): the `hpcc`
profile's reaction point.

Source: alibaba-edu/High-Precision-Congestion-Control, simulation/src/point-to-point/model/
rdma-hw.cc (UpdateAlphaMlx, cnp_received_mlx, CheckRateDecreaseMlx, RateIncEventTimerMlx) with
the `run.py --cc dcqcn` preset. It differs from the paper's reaction point
(`traffic.dcqcn.DcqcnReactionPoint`) in when things happen, not in the formulas:

- A congestion notification (an ECN echo on an ACK) only sets two flags. The first one of a
  QP sets alpha = 1 and starts two clocks: alpha every ``alpha_timer_s`` (1 us) and a
  rate-decrease check every ``rate_decrease_interval_s`` (4 us), both counted from that first
  notification. The first notification does not cut the rate itself.
- Alpha clock tick: ``alpha = (1 - g) alpha + g`` if a notification arrived since the last
  tick, else ``alpha = (1 - g) alpha``.
- Decrease check: if a notification arrived since the last check, cut
  ``R_C = max(min_rate, R_C (1 - alpha/2))``; the target ``R_T = R_C`` (before the cut) only
  when ``clamp_target_rate`` or when an increase happened since the last cut; restart the
  increase timer. A check falls an instant after an alpha tick due at the same time (HPCC
  adds 1 ns), so the cut uses the alpha of that tick.
- Increase timer (``rate_increase_timer_s``, 300 us, from the last cut): stage < F fast
  recovery ``R_C = (R_C + R_T)/2``; stage == F additive ``R_T += R_AI``; stage > F hyper
  ``R_T += R_HAI``; R_T capped at line rate, then ``R_C = (R_C + R_T)/2``; stage += 1.
- No byte counter.

Pure and clock-injected like `DcqcnReactionPoint`, with the same interface.
"""

from __future__ import annotations

import math

from traffic.dcqcn import DcqcnParams

_EPS_S = 1e-12
#: A decrease check due at the same time as an alpha tick runs after it (HPCC: + 1 ns).
_AFTER_ALPHA_S = 1e-9


class HpccDcqcnReactionPoint:
    """Sender-side state of one QP under HPCC's CC_MODE 1 model."""

    def __init__(self, params: DcqcnParams) -> None:
        self.params = params
        self._rate_bps = params.line_rate_bps
        self._target_bps = params.line_rate_bps
        self._alpha = params.initial_alpha
        self._first_s: float | None = None   # first notification: origin of both clocks
        self._alpha_ticks = 0                # alpha ticks done
        self._checks = 0                     # decrease checks done
        self._alpha_flag = False
        self._decrease_flag = False
        self._increase_base_s: float | None = None  # last cut: origin of the increase timer
        self._increases = 0                  # increase timer expiries since the last cut
        self._stage = 0
        self._now_s = -math.inf
        self.cnps_received = 0
        self.rate_cuts = 0

    @property
    def rate_bps(self) -> float:
        return self._rate_bps

    @property
    def target_rate_bps(self) -> float:
        return self._target_bps

    @property
    def alpha(self) -> float:
        return self._alpha

    @property
    def stage(self) -> str:
        if self._increase_base_s is None:
            return "line_rate"
        f = self.params.fast_recovery_steps
        if self._stage < f:
            return "fast_recovery"
        return "additive" if self._stage == f else "hyper"

    def _next_alpha_s(self) -> float:
        return self._first_s + (self._alpha_ticks + 1) * self.params.alpha_timer_s

    def _next_check_s(self) -> float:
        return (self._first_s + (self._checks + 1) * self.params.rate_decrease_interval_s
                + _AFTER_ALPHA_S)

    def _next_increase_s(self) -> float:
        if self._increase_base_s is None:
            return math.inf
        return self._increase_base_s + (self._increases + 1) * self.params.rate_increase_timer_s

    def next_timer_s(self) -> float | None:
        """The next time the state can change: a decrease check with a notification pending,
        or the increase timer. Alpha ticks change only alpha and are caught up lazily."""
        if self._first_s is None:
            return None
        due = self._next_increase_s()
        if self._decrease_flag:
            due = min(due, self._next_check_s())
        return due

    def on_cnp(self, now_s: float) -> None:
        """An ACK carrying an ECN echo (or a CNP) for this QP arrived at ``now_s``."""
        self.advance(now_s)
        self.cnps_received += 1
        self._decrease_flag = True
        if self._first_s is None:
            self._first_s = now_s
            self._alpha = 1.0
        else:
            self._alpha_flag = True

    def on_bytes_sent(self, n_bytes: int, now_s: float) -> None:
        if n_bytes < 0:
            raise ValueError(f"n_bytes cannot be negative, got {n_bytes}")
        self.advance(now_s)  # no byte counter in this model

    def advance(self, now_s: float) -> None:
        """Run every tick, check and timer due up to ``now_s``, in time order."""
        if now_s < self._now_s - _EPS_S:
            raise ValueError(f"time went backwards: {now_s} < {self._now_s}")
        self._now_s = max(self._now_s, now_s)
        if self._first_s is None:
            return
        limit = now_s + _EPS_S
        while True:
            check_s, inc_s = self._next_check_s(), self._next_increase_s()
            event_s = min(check_s, inc_s)
            if event_s > limit:
                self._alpha_until(limit)
                return
            self._alpha_until(event_s)
            if check_s <= inc_s:
                self._checks += 1
                if self._decrease_flag:
                    self._cut(check_s)
                elif not math.isfinite(inc_s) or inc_s > limit:
                    # No notification pending: skip the idle checks up to the limit at once.
                    period = self.params.rate_decrease_interval_s
                    skip = math.floor((min(limit, inc_s) - check_s) / period + 1e-9)
                    self._checks += max(0, skip)
            else:
                self._increases += 1
                self._increase()

    def _alpha_until(self, t_s: float) -> None:
        p = self.params
        due = max(0, math.floor((t_s - self._first_s) / p.alpha_timer_s + 1e-9))
        if due <= self._alpha_ticks:
            return
        if self._alpha_flag:
            self._alpha = (1 - p.g) * self._alpha + p.g
            self._alpha_flag = False
            self._alpha_ticks += 1
        n = due - self._alpha_ticks
        self._alpha *= (1 - p.g) ** n
        self._alpha_ticks = due

    def _cut(self, now_s: float) -> None:
        p = self.params
        if p.clamp_target_rate or self._stage != 0:
            self._target_bps = self._rate_bps
        self._rate_bps = max(p.min_rate_bps, self._rate_bps * (1 - self._alpha / 2))
        self._stage = 0
        self._decrease_flag = False
        self._increase_base_s = now_s
        self._increases = 0
        self.rate_cuts += 1

    def _increase(self) -> None:
        p = self.params
        f = p.fast_recovery_steps
        if self._stage == f:
            self._target_bps = min(self._target_bps + p.rate_ai_bps, p.line_rate_bps)
        elif self._stage > f:
            self._target_bps = min(self._target_bps + p.rate_hai_bps, p.line_rate_bps)
        self._rate_bps = (self._rate_bps + self._target_bps) / 2
        self._stage += 1

"""DCQCN notification point: pace the CNPs a receiver returns for ECN-marked packets.

Zhu et al., SIGCOMM 2015: the notification point sends at most one CNP per flow every 50 us.
NVIDIA/Mellanox NICs expose the same limit as ``ecn/roce_np/min_time_between_cnps`` (default
4 us). The pacer is pure and clock-injected: the caller passes ``now_s`` with each marked packet.
"""

from __future__ import annotations

from collections.abc import Hashable

PAPER_CNP_INTERVAL_S = 50e-6
MELLANOX_MIN_TIME_BETWEEN_CNPS_S = 4e-6

_TIME_EPS_S = 1e-12  # a CNP due exactly one interval later is not lost to float rounding


class CnpPacer:
    """At most one CNP per QP in any ``interval_s`` window, counted from the last one sent.

    Call :meth:`should_send` for every ECN-CE-marked packet that arrives on a QP; it answers
    whether that packet triggers a CNP now.
    """

    def __init__(self, interval_s: float = PAPER_CNP_INTERVAL_S) -> None:
        if interval_s < 0:
            raise ValueError(f"interval_s cannot be negative, got {interval_s}")
        self.interval_s = interval_s
        self._last_sent_s: dict[Hashable, float] = {}
        self.sent = 0
        self.suppressed = 0

    def should_send(self, qp: Hashable, now_s: float) -> bool:
        """True (and the CNP is counted as sent) unless ``qp`` got one less than
        ``interval_s`` ago."""
        last_s = self._last_sent_s.get(qp)
        if last_s is not None and now_s - last_s < self.interval_s - _TIME_EPS_S:
            self.suppressed += 1
            return False
        self._last_sent_s[qp] = now_s
        self.sent += 1
        return True

    def last_sent_s(self, qp: Hashable) -> float | None:
        """When the last CNP for ``qp`` was sent, or None."""
        return self._last_sent_s.get(qp)

    def forget(self, qp: Hashable) -> None:
        """Drop the state of a destroyed QP."""
        self._last_sent_s.pop(qp, None)

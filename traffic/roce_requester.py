"""The sending side of one live RC QP: go-back-N + DCQCN reaction point + pacing + frames.

Pure and clock-injected like the models it drives (:class:`traffic.gobackn.Requester`,
:class:`traffic.dcqcn.DcqcnReactionPoint`): the event loop (``traffic.roce_endpoint``) passes
``now_s`` and a ``send`` callable, tests pass a list's ``append``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from traffic.dcqcn import DcqcnReactionPoint
from traffic.gobackn import Opcode, Requester
from traffic.roce_fastpath import DataFrames

DEFAULT_MAX_BURST_S = 200e-6


class Pacer:
    """Release times of a paced flow: each frame of ``n`` bytes at ``rate`` pushes the next
    release ``8n/rate`` later. A sender that wakes late catches up at most ``max_burst_s`` of
    lost time (so the average rate holds through timer jitter, but an idle QP does not bank an
    unbounded burst)."""

    def __init__(self, max_burst_s: float = DEFAULT_MAX_BURST_S) -> None:
        if max_burst_s < 0:
            raise ValueError(f"max_burst_s cannot be negative, got {max_burst_s}")
        self.max_burst_s = max_burst_s
        self.next_s = -math.inf

    def ready(self, now_s: float) -> bool:
        return now_s >= self.next_s

    def on_sent(self, now_s: float, frame_bytes: int, rate_bps: float) -> None:
        start = max(self.next_s, now_s - self.max_burst_s)
        self.next_s = start + 8 * frame_bytes / rate_bps


@dataclass
class RateSample:
    t_s: float
    rate_bps: float
    target_bps: float
    alpha: float


class QpSender:
    """One requester QP. ``rp`` None: no congestion control, paced at ``line_rate_bps``
    (``math.inf``: unpaced, as fast as the loop goes)."""

    def __init__(self, qpn: int, frames: DataFrames, requester: Requester,
                 rp: DcqcnReactionPoint | None, line_rate_bps: float,
                 pacer: Pacer | None = None) -> None:
        self.qpn = qpn
        self.frames = frames
        self.requester = requester
        self.rp = rp
        self.line_rate_bps = line_rate_bps
        self.pacer = pacer or Pacer()
        self.mtu = requester.mtu_payload_bytes
        self.sent_bytes = 0
        self.rate_samples: list[RateSample] = []
        self._last_rate = None

    @property
    def rate_bps(self) -> float:
        return self.rp.rate_bps if self.rp is not None else self.line_rate_bps

    def next_event_s(self) -> float | None:
        """Earliest time this QP needs the loop: pacing release (if it has data), DCQCN
        timers, the transport timer."""
        times = []
        req = self.requester
        if req._next_seq < req._end_seq and req.outstanding_packets < req.window_packets:
            times.append(self.pacer.next_s)
        if req.timer_deadline_s is not None:
            times.append(req.timer_deadline_s)
        if self.rp is not None and (t := self.rp.next_timer_s()) is not None:
            times.append(t)
        return min(times) if times else None

    def send_due(self, now_s: float, send: Callable[[bytearray], object],
                 max_packets: int = 64) -> int:
        """Send what pacing and the window allow at ``now_s`` (at most ``max_packets``);
        returns the number of packets sent."""
        rp = self.rp
        if rp is not None:
            rp.advance(now_s)
        rate = self.rate_bps
        pacer = self.pacer
        req = self.requester
        frames = self.frames
        mtu = self.mtu
        sent = sent_bytes = 0
        while sent < max_packets and pacer.next_s <= now_s:
            if math.isinf(rate):
                allowed = max_packets - sent
            else:
                lag_s = now_s - max(pacer.next_s, now_s - pacer.max_burst_s)
                per_frame_s = 8 * (mtu + 82) / rate
                allowed = min(max_packets - sent, 1 + int(lag_s / per_frame_s))
            run = req.next_run(now_s, allowed)
            if run is None:
                break
            last = run.n_packets - 1
            psn = run.first_psn
            for k in range(run.count):
                index = run.first_index + k
                if 0 < index < last:
                    frame = frames.frame(Opcode.MIDDLE, mtu, psn)
                elif last == 0:
                    frame = frames.frame(Opcode.ONLY, run.size_bytes, psn, ack_req=True,
                                         dma_len=run.size_bytes)
                elif index == 0:
                    frame = frames.frame(Opcode.FIRST, mtu, psn, dma_len=run.size_bytes)
                else:
                    frame = frames.frame(Opcode.LAST, run.size_bytes - index * mtu, psn,
                                         ack_req=True)
                send(frame)
                n = len(frame)
                sent_bytes += n
                if not math.isinf(rate):
                    pacer.on_sent(now_s, n, rate)
                psn = (psn + 1) & 0xFFFFFF
            sent += run.count
        if sent_bytes:
            self.sent_bytes += sent_bytes
            if rp is not None:
                rp.on_bytes_sent(sent_bytes, now_s)
        self._sample_rate(now_s)
        return sent

    def on_ack(self, psn: int, now_s: float) -> None:
        self.requester.on_ack(psn, now_s)

    def on_nak(self, psn: int, now_s: float) -> None:
        self.requester.on_nak(psn, now_s)

    def on_cnp(self, now_s: float) -> None:
        if self.rp is not None:
            self.rp.on_cnp(now_s)
            self._sample_rate(now_s)

    def _sample_rate(self, now_s: float) -> None:
        if self.rp is None:
            return
        rate = self.rp.rate_bps
        if rate != self._last_rate:
            self._last_rate = rate
            self.rate_samples.append(RateSample(now_s, rate, self.rp.target_rate_bps,
                                                self.rp.alpha))

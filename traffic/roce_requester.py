"""The sending side of one live RC QP: go-back-N + DCQCN reaction point + pacing + frames.

Pure and clock-injected like the models it drives (:class:`traffic.gobackn.Requester`,
:class:`traffic.dcqcn.DcqcnReactionPoint`): the event loop (``traffic.roce_send``) passes
``now_s`` and a ``send`` callable, tests pass a list's ``append``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from traffic.dcqcn import DcqcnReactionPoint
from traffic.gobackn import Opcode, Requester
from traffic.roce_fastpath import DataFrames
from wire.frames import ROCE_MIDDLE_WIRE_OVERHEAD_BYTES

DEFAULT_QUANTUM_S = 20e-6
"""Frames due within this long are sent together: at 1 Gbit/s a frame lasts 9 us, less than one
pass of a Python loop plus a send() here, so exact per-frame release cannot hold the rate; a
NIC's rate limiter has the same kind of granularity, finer."""
DEFAULT_MAX_BURST_S = 10e-3
"""Catch-up allowed after a late wake-up. This VM's sleeps overshoot by 50-70 us at the median
and by up to ~6 ms at the tail (2-3% of each second lost in stalls over 1 ms); with 1 ms of
catch-up paced flows ran 2-4.5% slow, with 10 ms within 1% (bench/roce_sender.py). The price is
a burst after a stall; with DCQCN the endpoint caps it at one rate-increase timer period (the
scale on which DCQCN sets the rate), see ``traffic.roce_send``."""


MAX_LAG_SAMPLES = 200_000


class Pacer:
    """Release times of a paced flow: each frame of ``n`` bytes at ``rate`` pushes the next
    release ``8n/rate`` later. A sender that wakes late catches up at most ``max_burst_s`` of
    lost time (so the average rate holds through timer jitter, but an idle QP does not bank an
    unbounded burst)."""

    def __init__(self, max_burst_s: float = DEFAULT_MAX_BURST_S,
                 quantum_s: float = DEFAULT_QUANTUM_S) -> None:
        if max_burst_s < 0 or quantum_s < 0:
            raise ValueError("max_burst_s and quantum_s cannot be negative")
        self.max_burst_s = max_burst_s
        self.quantum_s = quantum_s
        self.next_s = -math.inf
        #: How late each frame left after its release time (s; negative: early, within the
        #: quantum): the fidelity monitor's pacing lag. Bounded, so a long run keeps memory.
        self.lags_s: list[float] = []
        self._waiting = True  # the last frame did not leave because of the pace: no lag yet

    def ready(self, now_s: float) -> bool:
        """A frame may go: its release time is at most one quantum away."""
        return now_s + self.quantum_s >= self.next_s

    def stalled(self) -> None:
        """The flow had nothing it may send (no message, or a full window): the next frame's
        lateness is not the pacer's."""
        self._waiting = True

    @property
    def wake_s(self) -> float:
        """When the next frame becomes ready."""
        return self.next_s - self.quantum_s

    def on_sent(self, now_s: float, frame_bytes: int, rate_bps: float) -> None:
        # A flow's first frame starts the schedule; it has no lost time to make good.
        if not self._waiting and len(self.lags_s) < MAX_LAG_SAMPLES:
            self.lags_s.append(now_s - self.next_s)
        self._waiting = False
        start = now_s if self.next_s == -math.inf else max(self.next_s,
                                                            now_s - self.max_burst_s)
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
        """Earliest time this QP needs the loop: pacing release (if it has data) or the
        transport timer. The DCQCN timers need no wake-up of their own: a frame's release
        time is set when the frame before it leaves, so a rate change between two frames
        acts from the next one on, and ``send_due`` runs every timer due up to its ``now_s``
        (``rp.advance``) before it takes the rate. (Waking for them cost each sender up to a
        thousand wake-ups a second at D = 250: the hpcc decrease check every 4 us.)"""
        times = []
        req = self.requester
        if req._next_seq < req._end_seq and req.outstanding_packets < req.window_packets:
            times.append(self.pacer.wake_s)
        if req.timer_deadline_s is not None:
            times.append(req.timer_deadline_s)
        return min(times) if times else None

    def send_due(self, now_s: float, tx, max_packets: int = 64) -> int:
        """Send what pacing and the window allow at ``now_s`` (at most ``max_packets``) through
        ``tx`` (``send(frame)``; ``send_run(shape, first_psn, count)`` if it has one, for runs
        of MIDDLE packets); returns the number of packets sent."""
        rp = self.rp
        if rp is not None:
            rp.advance(now_s)
        rate = self.rate_bps
        paced = not math.isinf(rate)
        pacer = self.pacer
        req = self.requester
        frames = self.frames
        mtu = self.mtu
        send = tx.send
        send_run = getattr(tx, "send_run", None)
        sent = sent_bytes = 0
        horizon_s = now_s + pacer.quantum_s
        while sent < max_packets and pacer.next_s <= horizon_s:
            if paced:
                lag_s = horizon_s - max(pacer.next_s, now_s - pacer.max_burst_s)
                per_frame_s = 8 * (mtu + ROCE_MIDDLE_WIRE_OVERHEAD_BYTES) / rate
                allowed = min(max_packets - sent, 1 + int(lag_s / per_frame_s))
            else:
                allowed = max_packets - sent
            run = req.next_run(now_s, allowed)
            if run is None:
                pacer.stalled()
                break
            last = run.n_packets - 1
            psn = run.first_psn
            index = run.first_index
            end = index + run.count
            run_bytes = 0
            while index < end:
                if 0 < index < last:
                    count = min(end, last) - index
                    shape = frames.shape(Opcode.MIDDLE, mtu)
                    if send_run is not None:
                        run_bytes += send_run(shape, psn, count)
                    else:
                        for k in range(count):
                            send(shape.render((psn + k) & 0xFFFFFF, False))
                        run_bytes += len(shape.buf) * count
                    psn = (psn + count) & 0xFFFFFF
                    index += count
                    continue
                if last == 0:
                    frame = frames.frame(Opcode.ONLY, run.size_bytes, psn, ack_req=True,
                                         dma_len=run.size_bytes)
                elif index == 0:
                    frame = frames.frame(Opcode.FIRST, mtu, psn, dma_len=run.size_bytes)
                else:
                    frame = frames.frame(Opcode.LAST, run.size_bytes - index * mtu, psn,
                                         ack_req=True)
                send(frame)
                run_bytes += len(frame)
                psn = (psn + 1) & 0xFFFFFF
                index += 1
            if paced:
                pacer.on_sent(now_s, run_bytes, rate)
            sent_bytes += run_bytes
            sent += run.count
        if sent_bytes:
            self.sent_bytes += sent_bytes
            if rp is not None:
                rp.on_bytes_sent(sent_bytes, now_s)
        self._sample_rate(now_s)
        return sent

    def warm(self, message_bytes: int, tx=None) -> None:
        """Build the frames (and ``tx``'s run tables) a message of this size needs, so the
        first message does not pay for Scapy and table building."""
        mtu = self.mtu
        n = max(1, -(-message_bytes // mtu))
        if n == 1:
            self.frames.shape(Opcode.ONLY, message_bytes, message_bytes)
            return
        self.frames.shape(Opcode.FIRST, mtu, message_bytes)
        self.frames.shape(Opcode.LAST, message_bytes - (n - 1) * mtu)
        middle = self.frames.shape(Opcode.MIDDLE, mtu)
        if tx is not None and hasattr(tx, "prepare"):
            tx.prepare(middle)

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

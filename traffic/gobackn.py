"""Go-back-N loss recovery of an InfiniBand Reliable Connected (RC) QP, as RoCEv2 NICs run it.

IBTA InfiniBand Architecture Specification vol. 1, ch. 9: PSNs are 24 bits and wrap; the
responder accepts only the expected PSN, answers the first out-of-order packet with one NAK
"PSN sequence error" carrying the expected PSN and silently drops the rest until that PSN
arrives; duplicates are re-acknowledged; the requester resends from the NAKed PSN, or from the
oldest unacknowledged PSN when its transport timer expires. ACKs are cumulative.

Both ends are pure and clock-injected: the caller passes ``now_s`` and ships the segments and
replies they return. Message payloads are segmented into RDMA WRITE FIRST/MIDDLE/LAST or ONLY
packets of at most ``mtu_payload_bytes``.
"""

from __future__ import annotations

import bisect
import enum
from dataclasses import dataclass

PSN_BITS = 24
PSN_MODULUS = 1 << PSN_BITS
_PSN_HALF = PSN_MODULUS >> 1
_TIME_EPS_S = 1e-12


def psn_add(psn: int, n: int) -> int:
    """``psn + n`` on the 24-bit PSN circle."""
    return (psn + n) % PSN_MODULUS


def psn_diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` on the 24-bit circle, in [-2^23, 2^23)."""
    d = (a - b) % PSN_MODULUS
    return d - PSN_MODULUS if d >= _PSN_HALF else d


class Opcode(enum.IntEnum):
    """RC RDMA WRITE BTH opcodes (IBTA vol. 1, table 35); RETH rides on FIRST and ONLY."""

    FIRST = 0x06
    MIDDLE = 0x07
    LAST = 0x08
    ONLY = 0x0A


@dataclass(frozen=True)
class Segment:
    """One packet the requester wants on the wire."""

    psn: int
    msg_id: int
    offset_bytes: int
    length_bytes: int
    opcode: Opcode
    ack_req: bool
    retransmission: bool


@dataclass(frozen=True)
class Run:
    """``count`` consecutive packets of one message, from its ``first_index``-th packet: what
    ``count`` calls of :meth:`Requester.next_segment` would return, without a Segment each."""

    first_psn: int
    msg_id: int
    size_bytes: int
    first_index: int
    n_packets: int  # packets of the whole message
    count: int
    retransmitted: int  # how many of the run had been sent before


@dataclass(frozen=True)
class Completion:
    """A message whose last packet was acknowledged."""

    msg_id: int
    size_bytes: int
    posted_s: float
    completed_s: float


@dataclass(frozen=True)
class _Message:
    msg_id: int
    size_bytes: int
    first_seq: int
    n_packets: int
    posted_s: float


class Requester:
    """Sending side of an RC QP with a window of ``window_packets`` unacknowledged packets.

    Internally packets are numbered by an unbounded sequence index; PSN = (start_psn + index)
    mod 2^24, so wraparound is only a matter of the wire encoding.
    """

    def __init__(
        self,
        mtu_payload_bytes: int,
        window_packets: int,
        timeout_s: float,
        *,
        start_psn: int = 0,
    ) -> None:
        if mtu_payload_bytes <= 0 or window_packets <= 0 or timeout_s <= 0:
            raise ValueError("mtu_payload_bytes, window_packets and timeout_s must be positive")
        if not 0 <= start_psn < PSN_MODULUS:
            raise ValueError(f"start_psn must fit in 24 bits, got {start_psn}")
        self.mtu_payload_bytes = mtu_payload_bytes
        self.window_packets = window_packets
        self.timeout_s = timeout_s
        self.start_psn = start_psn
        self._messages: list[_Message] = []
        self._starts: list[int] = []
        self._first_open = 0  # index of the oldest message not yet completed
        self._end_seq = 0  # one past the last packet posted
        self._next_seq = 0  # next packet to (re)send
        self._una_seq = 0  # oldest unacknowledged packet
        self._high_seq = 0  # one past the highest packet ever sent
        self._deadline_s: float | None = None
        self.completions: list[Completion] = []
        self.sent_packets = 0
        self.retransmitted_packets = 0
        self.timeouts = 0
        self.naks_received = 0

    def post(self, size_bytes: int, now_s: float) -> int:
        """Queue a message of ``size_bytes``; returns its id (0, 1, 2, ... in posting order)."""
        if size_bytes < 0:
            raise ValueError(f"size_bytes cannot be negative, got {size_bytes}")
        n_packets = max(1, -(-size_bytes // self.mtu_payload_bytes))
        msg = _Message(len(self._messages), size_bytes, self._end_seq, n_packets, now_s)
        self._messages.append(msg)
        self._starts.append(msg.first_seq)
        self._end_seq += n_packets
        return msg.msg_id

    @property
    def posted_messages(self) -> int:
        return len(self._messages)

    @property
    def next_psn(self) -> int:
        """PSN of the next packet :meth:`next_segment` would return."""
        return self._psn(self._next_seq)

    @property
    def oldest_unacked_psn(self) -> int:
        return self._psn(self._una_seq)

    @property
    def outstanding_packets(self) -> int:
        """Packets sent and not acknowledged since the last rewind."""
        return self._next_seq - self._una_seq

    @property
    def done(self) -> bool:
        """Every posted packet has been acknowledged."""
        return self._una_seq == self._end_seq

    @property
    def timer_deadline_s(self) -> float | None:
        return self._deadline_s

    def completion_s(self, msg_id: int) -> float | None:
        """When message ``msg_id`` completed, or None while it is in flight."""
        for completion in self.completions:
            if completion.msg_id == msg_id:
                return completion.completed_s
        return None

    def next_segment(self, now_s: float) -> Segment | None:
        """The packet to send at ``now_s``, or None when the window is full or nothing is left.

        Checks the transport timer first, so a caller that only polls this still recovers.
        """
        self.check_timeout(now_s)
        if self._next_seq >= self._end_seq:
            return None
        if self._next_seq - self._una_seq >= self.window_packets:
            return None
        seq = self._next_seq
        self._next_seq += 1
        retransmission = seq < self._high_seq
        self._high_seq = max(self._high_seq, self._next_seq)
        self.sent_packets += 1
        self.retransmitted_packets += retransmission
        if self._deadline_s is None:
            self._deadline_s = now_s + self.timeout_s
        return self._segment(seq, retransmission)

    def next_run(self, now_s: float, max_packets: int) -> Run | None:
        """Up to ``max_packets`` packets to send now, all of one message; same bookkeeping as
        that many :meth:`next_segment` calls. For senders that cannot afford an object per
        packet: the caller derives each packet's opcode, offset and PSN from the run."""
        self.check_timeout(now_s)
        room = min(self._end_seq - self._next_seq,
                   self.window_packets - (self._next_seq - self._una_seq), max_packets)
        if room <= 0:
            return None
        seq = self._next_seq
        index = bisect.bisect_right(self._starts, seq, lo=self._first_open) - 1
        msg = self._messages[index]
        count = min(room, msg.first_seq + msg.n_packets - seq)
        self._next_seq += count
        retransmitted = max(0, min(self._high_seq, self._next_seq) - seq)
        self._high_seq = max(self._high_seq, self._next_seq)
        self.sent_packets += count
        self.retransmitted_packets += retransmitted
        if self._deadline_s is None:
            self._deadline_s = now_s + self.timeout_s
        return Run(self._psn(seq), msg.msg_id, msg.size_bytes, seq - msg.first_seq,
                   msg.n_packets, count, retransmitted)

    def on_ack(self, psn: int, now_s: float) -> int:
        """Cumulative ACK of every packet up to and including ``psn``; returns how many packets
        it newly acknowledged (0 for stale, duplicate or out-of-window ACKs)."""
        d = psn_diff(psn, self._psn(self._una_seq))
        if d < 0 or d >= self._high_seq - self._una_seq:
            return 0
        return self._ack_through(self._una_seq + d, now_s)

    def on_nak(self, psn: int, now_s: float) -> None:
        """NAK "PSN sequence error": the responder got everything before ``psn`` and expects
        ``psn`` next; resend from there."""
        d = psn_diff(psn, self._psn(self._una_seq))
        if d < 0 or d > self._high_seq - self._una_seq:
            return
        self.naks_received += 1
        if d > 0:
            self._ack_through(self._una_seq + d - 1, now_s)
        self._next_seq = self._una_seq
        self._deadline_s = None

    def check_timeout(self, now_s: float) -> bool:
        """Rewind to the oldest unacknowledged packet if the transport timer expired."""
        if self._deadline_s is None or now_s + _TIME_EPS_S < self._deadline_s:
            return False
        self._deadline_s = None
        if self._una_seq == self._high_seq:
            return False
        self.timeouts += 1
        self._next_seq = self._una_seq
        return True

    def _ack_through(self, seq: int, now_s: float) -> int:
        newly = seq + 1 - self._una_seq
        self._una_seq = seq + 1
        self._next_seq = max(self._next_seq, self._una_seq)
        # The timer guards the oldest outstanding packet: restart it on progress.
        self._deadline_s = None if self._una_seq == self._next_seq else now_s + self.timeout_s
        while self._first_open < len(self._messages):
            msg = self._messages[self._first_open]
            if msg.first_seq + msg.n_packets > self._una_seq:
                break
            self.completions.append(Completion(msg.msg_id, msg.size_bytes, msg.posted_s, now_s))
            self._first_open += 1
        return newly

    def _psn(self, seq: int) -> int:
        return (self.start_psn + seq) % PSN_MODULUS

    def _segment(self, seq: int, retransmission: bool) -> Segment:
        index = bisect.bisect_right(self._starts, seq, lo=self._first_open) - 1
        msg = self._messages[index]
        k = seq - msg.first_seq
        offset = k * self.mtu_payload_bytes
        length = min(self.mtu_payload_bytes, msg.size_bytes - offset)
        if msg.n_packets == 1:
            opcode = Opcode.ONLY
        elif k == 0:
            opcode = Opcode.FIRST
        elif k == msg.n_packets - 1:
            opcode = Opcode.LAST
        else:
            opcode = Opcode.MIDDLE
        ack_req = opcode in (Opcode.LAST, Opcode.ONLY)
        return Segment(self._psn(seq), msg.msg_id, offset, length, opcode, ack_req, retransmission)


def run_segment(run: Run, k: int, mtu_payload_bytes: int) -> tuple[Opcode, int, int, bool]:
    """(opcode, offset, length, ack_req) of the ``k``-th packet of ``run``."""
    index = run.first_index + k
    offset = index * mtu_payload_bytes
    length = min(mtu_payload_bytes, run.size_bytes - offset)
    if run.n_packets == 1:
        return Opcode.ONLY, offset, max(length, 0), True
    if index == 0:
        return Opcode.FIRST, offset, length, False
    if index == run.n_packets - 1:
        return Opcode.LAST, offset, length, True
    return Opcode.MIDDLE, offset, length, False


class ReplyKind(enum.Enum):
    ACK = "ack"
    NAK = "nak"


@dataclass(frozen=True)
class Reply:
    """An ACK (cumulative through ``psn``) or a NAK sequence error (expecting ``psn``)."""

    kind: ReplyKind
    psn: int
    msn: int


@dataclass(frozen=True)
class Reception:
    """What the responder did with one packet."""

    delivered: bool
    reply: Reply | None


class Responder:
    """Receiving side of an RC QP; ACKs every ``ack_coalesce_packets`` in-order packets and on
    every packet that asks for one (AckReq, set on the last packet of a message)."""

    def __init__(self, ack_coalesce_packets: int = 1, *, start_psn: int = 0) -> None:
        if ack_coalesce_packets <= 0:
            raise ValueError(f"ack_coalesce_packets must be positive, got {ack_coalesce_packets}")
        if not 0 <= start_psn < PSN_MODULUS:
            raise ValueError(f"start_psn must fit in 24 bits, got {start_psn}")
        self.ack_coalesce_packets = ack_coalesce_packets
        self.expected_psn = start_psn
        self.msn = 0  # messages completed, echoed in the AETH
        self._unacked = 0
        self._nak_sent = False  # one NAK per gap, until the expected PSN arrives
        self.delivered_packets = 0
        self.duplicate_packets = 0
        self.dropped_packets = 0
        self.naks_sent = 0

    def on_packet(
        self, psn: int, opcode: Opcode = Opcode.ONLY, ack_req: bool = False
    ) -> Reception:
        d = psn_diff(psn, self.expected_psn)
        last_in_order = psn_add(self.expected_psn, -1)
        if d < 0:
            self.duplicate_packets += 1
            self._unacked = 0
            return Reception(False, Reply(ReplyKind.ACK, last_in_order, self.msn))
        if d > 0:
            self.dropped_packets += 1
            if self._nak_sent:
                return Reception(False, None)
            self._nak_sent = True
            self._unacked = 0
            self.naks_sent += 1
            return Reception(False, Reply(ReplyKind.NAK, self.expected_psn, self.msn))
        self.expected_psn = psn_add(psn, 1)
        self._nak_sent = False
        self.delivered_packets += 1
        if opcode in (Opcode.LAST, Opcode.ONLY):
            self.msn = (self.msn + 1) % PSN_MODULUS
        self._unacked += 1
        if ack_req or self._unacked >= self.ack_coalesce_packets:
            self._unacked = 0
            return Reception(True, Reply(ReplyKind.ACK, psn, self.msn))
        return Reception(True, None)

"""The receiving side of live RC QPs: go-back-N responder + DCQCN notification point.

Pure and clock-injected: :meth:`ResponderQp.on_packet` takes a parsed BTH, whether the packet
arrived CE-marked and ``now_s``, and returns the frames to send back (ACK/NAK and CNP; with
``echo_on_ack`` the ECN echo rides on the next ACK/NAK as its BTH BECN bit instead of a CNP).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from traffic.cnp import CnpPacer
from traffic.gobackn import Opcode, ReplyKind, Responder
from traffic.roce_fastpath import ControlFrames
from traffic.roce_wire import Bth

_DATA_OPCODES = frozenset(int(op) for op in Opcode)


@dataclass
class ResponderStats:
    packets: int = 0
    bytes: int = 0
    delivered_packets: int = 0
    ce_packets: int = 0
    cnps_sent: int = 0
    ecn_echoes_sent: int = 0
    acks_sent: int = 0
    naks_sent: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    messages: int = 0
    message_times_s: list[float] = field(default_factory=list)


class ResponderQp:
    """One responder QP (``local_qpn``) answering the requester QP behind ``frames``."""

    def __init__(self, local_qpn: int, frames: ControlFrames, pacer: CnpPacer,
                 ack_coalesce_packets: int = 1, echo_on_ack: bool = False) -> None:
        self.local_qpn = local_qpn
        self.frames = frames
        self.pacer = pacer
        self.responder = Responder(ack_coalesce_packets)
        self.stats = ResponderStats()
        #: Echo ECN on the next ACK/NAK (BTH BECN), as HPCC's ns-3 does, instead of a CNP.
        self.echo_on_ack = echo_on_ack
        self._echo_pending = False

    def on_packet(self, bth: Bth, ce: bool, size_bytes: int, now_s: float) -> list[bytes]:
        out: list[bytes] = []
        if bth.opcode not in _DATA_OPCODES:
            return out
        st = self.stats
        st.packets += 1
        st.bytes += size_bytes
        if ce:
            st.ce_packets += 1
            # The notification point reacts to every CE packet, in order or not.
            if self.echo_on_ack:
                self._echo_pending = True
            elif self.pacer.should_send(self.local_qpn, now_s):
                st.cnps_sent += 1
                out.append(self.frames.cnp)
        opcode = Opcode(bth.opcode)
        reception = self.responder.on_packet(bth.psn, opcode, bth.ack_req)
        if reception.delivered:
            st.delivered_packets += 1
            if opcode in (Opcode.LAST, Opcode.ONLY):
                st.messages += 1
                st.message_times_s.append(now_s)
        elif reception.reply is None or reception.reply.kind is ReplyKind.NAK:
            st.out_of_order += 1
        else:
            st.duplicates += 1
        reply = reception.reply
        if reply is not None:
            echo = self._echo_pending
            self._echo_pending = False
            st.ecn_echoes_sent += echo
            if reply.kind is ReplyKind.ACK:
                st.acks_sent += 1
                out.append(self.frames.ack(reply.psn, reply.msn, becn=echo))
            else:
                st.naks_sent += 1
                out.append(self.frames.nak(reply.psn, reply.msn, becn=echo))
        return out

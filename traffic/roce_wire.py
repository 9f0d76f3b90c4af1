"""Reading RoCEv2 headers from received bytes (pure), for the live endpoints.

The endpoints receive on a UDP socket bound to port 4791, so they see the UDP payload: BTH
(12 B) [+ AETH (4 B)] ... ICRC, plus the IPv4 TOS byte from an ``IP_TOS`` control message.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from traffic.roce_packets import ACK_OPCODE, AETH_NAK, CNP_OPCODE
from wire.frames import AETH_BYTES, BTH_BYTES

_BTH = struct.Struct("!BBHII")  # opcode, flags, pkey, (resv8 | dest QP), (AckReq | PSN)


@dataclass(frozen=True)
class Bth:
    opcode: int
    dest_qp: int
    psn: int
    ack_req: bool
    becn: bool


def parse_bth(udp_payload: bytes | memoryview) -> Bth | None:
    """The BTH at the start of a RoCEv2 UDP payload, or None if it is too short."""
    if len(udp_payload) < BTH_BYTES:
        return None
    opcode, _flags, _pkey, qp_word, psn_word = _BTH.unpack_from(udp_payload)
    return Bth(opcode, qp_word & 0xFFFFFF, psn_word & 0xFFFFFF, bool(psn_word >> 31),
               bool(qp_word & 0x40000000))


def parse_aeth(udp_payload: bytes | memoryview) -> tuple[int, int] | None:
    """(syndrome, MSN) of the AETH that follows the BTH on an ACK/NAK."""
    if len(udp_payload) < BTH_BYTES + AETH_BYTES:
        return None
    (word,) = struct.unpack_from("!I", udp_payload, BTH_BYTES)
    return word >> 24, word & 0xFFFFFF


def is_ack(opcode: int) -> bool:
    return opcode == ACK_OPCODE


def is_cnp(opcode: int) -> bool:
    return opcode == CNP_OPCODE


def is_nak(syndrome: int) -> bool:
    """AETH syndrome bits 6..5 = 11: a NAK (the low 5 bits carry its code)."""
    return syndrome & AETH_NAK == AETH_NAK


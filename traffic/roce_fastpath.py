"""Per-packet RoCEv2 frames without Scapy: prebuilt bytearrays patched in place.

Data frames: :class:`DataFrames` keeps one prebuilt frame per (opcode, payload length,
DMA length) of a QP, built once by :class:`traffic.roce_packets.FrameTemplate`. Per packet only
the BTH AckReq/PSN word and the ICRC change. The ICRC is a CRC-32, which is affine over GF(2):
for messages of equal length ``crc(a ^ b) = crc(a) ^ crc(b) ^ crc(0)``, so the ICRC of the frame
with PSN p is the ICRC with PSN 0 XOR one precomputed delta per byte of the BTH's last word
(four table lookups, no pass over the payload). Tests check every rendering against Scapy.

Control frames (ACK, NAK, CNP) are rarer: :class:`ControlFrames` patches PSN, syndrome and MSN
into a prebuilt ACK and recomputes the ICRC with zlib (:func:`compute_icrc`); a QP's CNP never
changes, so it is built once.
"""

from __future__ import annotations

import struct
import zlib

from traffic.gobackn import Opcode
from traffic.roce_packets import (
    AETH_ACK,
    AETH_NAK,
    CNP_DSCP,
    DATA_DSCP,
    Endpoints,
    FrameTemplate,
    ack_packet,
    cnp_packet,
    compute_icrc,
)
from wire.frames import BTH_BYTES, ETH_HEADER_BYTES, ICRC_BYTES, IPV4_HEADER_BYTES, UDP_HEADER_BYTES

_BTH_OFFSET = ETH_HEADER_BYTES + IPV4_HEADER_BYTES + UDP_HEADER_BYTES
_PSN_WORD = _BTH_OFFSET + 8  # AckReq bit + 7 reserved bits + 24-bit PSN
_AETH_OFFSET = _BTH_OFFSET + BTH_BYTES
_ICRC_PREFIX_BYTES = 8  # the all-ones pseudo LRH the ICRC starts with
PSN_WORD_OFFSET = _PSN_WORD
_BECN_BIT = 0x40  # BTH byte 4 (resv8 | dest QP word): FECN 0x80, BECN 0x40
_U32_BE = struct.Struct("!I")
_U32_LE = struct.Struct("<I")


def _byte_delta_tables(message_len: int, first_pos: int, n_bytes: int) -> list[list[int]]:
    """For each of ``n_bytes`` positions from ``first_pos`` in a CRC-32 message of
    ``message_len`` bytes, the CRC change caused by each byte value (256 entries)."""
    zero_crc = zlib.crc32(bytes(message_len))
    tables = []
    for pos in range(first_pos, first_pos + n_bytes):
        bit_deltas = []
        for bit in range(8):
            msg = bytearray(message_len)
            msg[pos] = 1 << bit
            bit_deltas.append(zlib.crc32(msg) ^ zero_crc)
        table = [0] * 256
        for value in range(1, 256):
            low = value & -value
            table[value] = table[value ^ low] ^ bit_deltas[low.bit_length() - 1]
        tables.append(table)
    return tables


class _PatchedFrame:
    """One frame shape; :meth:`render` writes PSN/AckReq and the ICRC into its buffer."""

    __slots__ = ("buf", "_base_crc", "_t0", "_t1", "_t2", "_t3", "_hi16", "_lo16")

    def __init__(self, frame: bytes) -> None:
        self.buf = bytearray(frame)
        self.buf[_PSN_WORD:_PSN_WORD + 4] = bytes(4)
        self.buf[-ICRC_BYTES:] = compute_icrc(bytes(self.buf))
        (self._base_crc,) = _U32_LE.unpack_from(self.buf, len(self.buf) - ICRC_BYTES)
        # ICRC message = 8 pseudo-LRH bytes + IP..end without the ICRC itself.
        message_len = _ICRC_PREFIX_BYTES + len(frame) - ETH_HEADER_BYTES - ICRC_BYTES
        word_pos = _ICRC_PREFIX_BYTES + _PSN_WORD - ETH_HEADER_BYTES
        self._t0, self._t1, self._t2, self._t3 = _byte_delta_tables(message_len, word_pos, 4)
        self._hi16: list[int] | None = None
        self._lo16: list[int] | None = None

    @property
    def base_crc(self) -> int:
        return self._base_crc

    def word_tables(self) -> tuple[list[int], list[int]]:
        """ICRC deltas of the high and low 16 bits of the AckReq/PSN word: two lookups per
        packet for senders that patch many frames of this shape in a row (built once)."""
        if self._hi16 is None:
            t0, t1, t2, t3 = self._t0, self._t1, self._t2, self._t3
            self._hi16 = [t0[v >> 8] ^ t1[v & 0xFF] for v in range(1 << 16)]
            self._lo16 = [t2[v >> 8] ^ t3[v & 0xFF] for v in range(1 << 16)]
        return self._hi16, self._lo16

    def render(self, psn: int, ack_req: bool) -> bytearray:
        word = psn | (0x80000000 if ack_req else 0)
        buf = self.buf
        _U32_BE.pack_into(buf, _PSN_WORD, word)
        crc = (self._base_crc ^ self._t0[word >> 24] ^ self._t1[(word >> 16) & 0xFF]
               ^ self._t2[(word >> 8) & 0xFF] ^ self._t3[word & 0xFF])
        _U32_LE.pack_into(buf, len(buf) - ICRC_BYTES, crc)
        return buf


class DataFrames:
    """RDMA WRITE frames of one QP. The returned bytearray is reused: send it before asking
    for the next frame of the same shape."""

    def __init__(self, ep: Endpoints, *, dest_qp: int, mtu_payload_bytes: int,
                 fill: bytes = b"\x00", rkey: int = 0, dscp: int = DATA_DSCP) -> None:
        self._templates = {
            op: FrameTemplate(ep, dest_qp=dest_qp, opcode=op, max_payload_bytes=mtu_payload_bytes,
                              rkey=rkey, fill=fill, dscp=dscp)
            for op in Opcode
        }
        self._frames: dict[tuple[Opcode, int, int | None], _PatchedFrame] = {}

    def shape(self, opcode: Opcode, payload_len: int,
              dma_len: int | None = None) -> _PatchedFrame:
        """The prebuilt frame of this opcode and length (``dma_len``: the RETH length, FIRST
        and ONLY only, i.e. the message size)."""
        if opcode not in (Opcode.FIRST, Opcode.ONLY):
            dma_len = None
        key = (opcode, payload_len, dma_len)
        shape = self._frames.get(key)
        if shape is None:
            base = self._templates[opcode].render(0, payload_len=payload_len, dma_len=dma_len)
            shape = self._frames[key] = _PatchedFrame(base)
        return shape

    def frame(self, opcode: Opcode, payload_len: int, psn: int, *, ack_req: bool = False,
              dma_len: int | None = None) -> bytearray:
        """Frame bytes for this packet."""
        return self.shape(opcode, payload_len, dma_len).render(psn, ack_req)


class ControlFrames:
    """ACK, NAK and CNP frames a responder sends to one requester QP.

    ``ep`` is the responder -> requester direction; ``dest_qp`` the requester's QPN. ACK and
    NAK differ only in the BTH PSN word and the AETH word: their ICRC is patched from
    per-byte tables like data frames' (8 lookups), not recomputed. ACKs and NAKs go in the
    QP's own class (``dscp``, the data's), CNPs in the CNP class (``cnp_dscp``), as a RoCE
    NIC sends them.
    """

    def __init__(self, ep: Endpoints, *, dest_qp: int, dscp: int = DATA_DSCP,
                 cnp_dscp: int = CNP_DSCP) -> None:
        self._ack = bytearray(bytes(ack_packet(ep, dest_qp=dest_qp, psn=0, msn=0, dscp=dscp)))
        self._ack[_PSN_WORD:_PSN_WORD + 4] = bytes(4)
        self._ack[_AETH_OFFSET:_AETH_OFFSET + 4] = bytes(4)
        self._ack[-ICRC_BYTES:] = compute_icrc(bytes(self._ack))
        (self._ack_crc,) = _U32_LE.unpack_from(self._ack, len(self._ack) - ICRC_BYTES)
        message_len = _ICRC_PREFIX_BYTES + len(self._ack) - ETH_HEADER_BYTES - ICRC_BYTES
        first = _ICRC_PREFIX_BYTES + _PSN_WORD - ETH_HEADER_BYTES
        self._tables = _byte_delta_tables(message_len, first, 8)  # PSN word, then AETH
        # The same ACK with the BTH's BECN bit set: an ECN echo carried on the ACK itself.
        self._ack_becn = bytearray(self._ack)
        self._ack_becn[_BTH_OFFSET + 4] |= _BECN_BIT
        self._ack_becn[-ICRC_BYTES:] = compute_icrc(bytes(self._ack_becn))
        (self._ack_becn_crc,) = _U32_LE.unpack_from(self._ack_becn,
                                                     len(self._ack_becn) - ICRC_BYTES)
        self.cnp = bytes(cnp_packet(ep, dest_qp=dest_qp, dscp=cnp_dscp))

    def ack(self, psn: int, msn: int, syndrome: int = AETH_ACK, becn: bool = False) -> bytes:
        """An ACK (or with a NAK ``syndrome``, a NAK); ``becn`` sets the BTH's BECN bit,
        the ECN echo of a responder that echoes on its ACKs instead of sending CNPs."""
        buf = self._ack_becn if becn else self._ack
        psn_word = psn & 0xFFFFFF
        aeth_word = (syndrome << 24) | (msn & 0xFFFFFF)
        _U32_BE.pack_into(buf, _PSN_WORD, psn_word)
        _U32_BE.pack_into(buf, _AETH_OFFSET, aeth_word)
        t = self._tables
        crc = self._ack_becn_crc if becn else self._ack_crc
        for i, byte in enumerate((psn_word << 32 | aeth_word).to_bytes(8, "big")):
            crc ^= t[i][byte]
        _U32_LE.pack_into(buf, len(buf) - ICRC_BYTES, crc)
        return bytes(buf)

    def nak(self, psn: int, msn: int, code: int = 0, becn: bool = False) -> bytes:
        return self.ack(psn, msn, AETH_NAK | code, becn)

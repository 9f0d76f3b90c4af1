"""RoCEv2 frames: declared with Scapy, sent from prebuilt bytes.

Wire format (IBTA Annex A17 "RoCEv2"; layers from ``scapy.contrib.roce``):
Ethernet / IPv4 (ECT(0) for data, DF; DSCP from `wire.dscp`: the lossless DSCP for data and
ACKs, 26 by default, the CNP DSCP for CNPs, 48 by default) / UDP (dst 4791, src port =
flow entropy, checksum 0) / BTH 12 B / [RETH 16 B on RDMA WRITE FIRST and ONLY] [AETH 4 B on
ACK and NAK] / payload padded to 4 B (pad count in the BTH) / ICRC 4 B.

Scapy builds every frame here, including the ICRC (``BTH.post_build``). The sending hot path does
not: :class:`FrameTemplate` builds one data frame with Scapy and then patches PSN, UDP source
port, lengths, IPv4 header checksum and ICRC in plain Python. :func:`compute_icrc` is our own
implementation of the ICRC rule (CRC-32 over 8 bytes of ones, then the IP/UDP/BTH headers with
the variant fields (TOS, TTL, IP checksum, UDP checksum, BTH FECN/BECN/resv6) set to ones, then
the rest of the packet, stored little-endian); tests check it against Scapy and a ConnectX-4 Lx
capture.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from scapy.contrib import roce
from scapy.contrib.roce import AETH, BTH, cnp
from scapy.fields import IntField, XIntField, XLongField
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw, bind_layers

from traffic.gobackn import PSN_MODULUS, Opcode
from wire.dscp import DEFAULT_DSCP_MAP
from wire.ecn import ECN_ECT0, ECN_NOT_ECT, tos_byte
from wire.frames import (
    BTH_BYTES,
    ETH_HEADER_BYTES,
    ICRC_BYTES,
    IPV4_HEADER_BYTES,
    RETH_BYTES,
    UDP_HEADER_BYTES,
    VLAN_TAG_BYTES,
)

ROCEV2_UDP_PORT = 4791
#: The default DSCPs of data (and its ACKs) and of CNPs; a run passes the spec's.
DATA_DSCP = DEFAULT_DSCP_MAP.lossless_dscp
CNP_DSCP = DEFAULT_DSCP_MAP.cnp_dscp

ACK_OPCODE = 0x11  # RC ACKNOWLEDGE
CNP_OPCODE = roce.CNP_OPCODE  # 0x81
AETH_ACK = 0x1F  # ACK with credit count 31, "invalid": no end-to-end credits (RoCE NICs' usual)
AETH_NAK = 0x60  # syndrome bits 6..5 = 11: NAK; the low 5 bits carry the NAK code
NAK_PSN_SEQUENCE_ERROR = 0

_RETH_OPCODES = (Opcode.FIRST, Opcode.ONLY)

if hasattr(roce, "RETH"):
    RETH = roce.RETH
else:

    class RETH(Packet):
        """RDMA Extended Transport Header (IBTA vol. 1, 9.3.3): where an RDMA WRITE lands."""

        name = "RETH"
        fields_desc = [
            XLongField("va", 0),
            XIntField("rkey", 0),
            IntField("dma_len", 0),
        ]

    for _op in _RETH_OPCODES:
        bind_layers(BTH, RETH, opcode=int(_op))


@dataclass(frozen=True)
class Endpoints:
    """Addresses of one direction of a QP; ``sport`` is the UDP source port (flow entropy)."""

    src_mac: str
    dst_mac: str
    src_ip: str
    dst_ip: str
    sport: int = 49152

    def reversed(self, sport: int | None = None) -> Endpoints:
        """The opposite direction, e.g. for the responder's ACKs and CNPs."""
        return Endpoints(self.dst_mac, self.src_mac, self.dst_ip, self.src_ip,
                         self.sport if sport is None else sport)


def _l3(ep: Endpoints, dscp: int, ecn: int, ttl: int, ip_id: int) -> Packet:
    tos = tos_byte(dscp, ecn)
    return (
        Ether(src=ep.src_mac, dst=ep.dst_mac)
        / IP(src=ep.src_ip, dst=ep.dst_ip, tos=tos, ttl=ttl, id=ip_id, flags="DF")
        / UDP(sport=ep.sport, dport=ROCEV2_UDP_PORT, chksum=0)
    )


def _check_psn(psn: int) -> None:
    if not 0 <= psn < PSN_MODULUS:
        raise ValueError(f"psn must fit in 24 bits, got {psn}")


def data_packet(
    ep: Endpoints,
    *,
    dest_qp: int,
    psn: int,
    opcode: Opcode | int,
    payload: bytes = b"",
    va: int = 0,
    rkey: int = 0,
    dma_len: int | None = None,
    ack_req: bool = False,
    dscp: int = DATA_DSCP,
    ecn: int = ECN_ECT0,
    ttl: int = 64,
    ip_id: int = 0,
) -> Packet:
    """An RC RDMA WRITE packet; RETH on FIRST/ONLY (``dma_len`` defaults to the payload)."""
    opcode = Opcode(opcode)
    _check_psn(psn)
    pad = -len(payload) % 4
    pkt = _l3(ep, dscp, ecn, ttl, ip_id) / BTH(
        opcode=int(opcode), padcount=pad, dqpn=dest_qp, ackreq=int(ack_req), psn=psn
    )
    if opcode in _RETH_OPCODES:
        pkt = pkt / RETH(va=va, rkey=rkey, dma_len=len(payload) if dma_len is None else dma_len)
    if payload or pad:
        pkt = pkt / Raw(payload + bytes(pad))
    return pkt


def ack_packet(
    ep: Endpoints,
    *,
    dest_qp: int,
    psn: int,
    msn: int,
    syndrome: int = AETH_ACK,
    dscp: int = DATA_DSCP,
    ecn: int = ECN_NOT_ECT,
    ttl: int = 64,
    ip_id: int = 0,
) -> Packet:
    """An RC ACKNOWLEDGE: BTH (opcode 0x11) + AETH (syndrome, MSN)."""
    _check_psn(psn)
    return (
        _l3(ep, dscp, ecn, ttl, ip_id)
        / BTH(opcode=ACK_OPCODE, dqpn=dest_qp, psn=psn)
        / AETH(syndrome=syndrome, msn=msn)
    )


def nak_packet(
    ep: Endpoints,
    *,
    dest_qp: int,
    psn: int,
    msn: int,
    code: int = NAK_PSN_SEQUENCE_ERROR,
    **kwargs: int,
) -> Packet:
    """A NAK; with the default code (PSN sequence error) ``psn`` is the expected PSN."""
    if not 0 <= code < 32:
        raise ValueError(f"NAK code must be 0..31, got {code}")
    return ack_packet(ep, dest_qp=dest_qp, psn=psn, msn=msn, syndrome=AETH_NAK | code, **kwargs)


def cnp_packet(
    ep: Endpoints,
    *,
    dest_qp: int,
    dscp: int = CNP_DSCP,
    ecn: int = ECN_NOT_ECT,
    ttl: int = 64,
    ip_id: int = 0,
) -> Packet:
    """A RoCEv2 CNP: BTH opcode 0x81 with BECN set, 16 reserved bytes."""
    return _l3(ep, dscp, ecn, ttl, ip_id) / cnp(dest_qp)


def ipv4_checksum(header: bytes) -> int:
    """RFC 791 header checksum of ``header`` (its checksum field must be zero)."""
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _l3_offset(frame: bytes) -> int:
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype == 0x8100:  # one 802.1Q tag
        ethertype = int.from_bytes(frame[16:18], "big")
        offset = ETH_HEADER_BYTES + VLAN_TAG_BYTES
    else:
        offset = ETH_HEADER_BYTES
    if ethertype != 0x0800:
        raise ValueError(f"only Ethernet/IPv4 RoCEv2 frames are supported, got {ethertype:#x}")
    return offset


def _masked_headers(ip_udp_bth: bytes | bytearray, ihl_bytes: int) -> bytes:
    masked = bytearray(b"\xff" * 8)  # the pseudo LRH of RoCEv2 is all ones
    masked += ip_udp_bth
    ip = 8
    masked[ip + 1] = 0xFF  # TOS: DSCP and ECN change hop by hop
    masked[ip + 8] = 0xFF  # TTL
    masked[ip + 10 : ip + 12] = b"\xff\xff"  # IPv4 header checksum
    udp = ip + ihl_bytes
    masked[udp + 6 : udp + 8] = b"\xff\xff"  # UDP checksum
    masked[udp + UDP_HEADER_BYTES + 4] = 0xFF  # BTH FECN, BECN and 6 reserved bits
    return bytes(masked)


def compute_icrc(frame: bytes) -> bytes:
    """The 4 ICRC bytes of an Ethernet/IPv4 RoCEv2 frame whose last 4 bytes are the ICRC slot
    (no Ethernet FCS)."""
    l3 = _l3_offset(frame)
    ihl_bytes = (frame[l3] & 0x0F) * 4
    end = l3 + ihl_bytes + UDP_HEADER_BYTES + BTH_BYTES
    crc = zlib.crc32(_masked_headers(frame[l3:end], ihl_bytes))
    crc = zlib.crc32(memoryview(frame)[end:-ICRC_BYTES], crc)
    return struct.pack("<I", crc)


class FrameTemplate:
    """Prebuilt RDMA WRITE frame of one QP and opcode; :meth:`render` patches the per-packet
    fields without Scapy.

    ``max_payload_bytes`` of ``fill`` (repeated) are built once; a rendered packet carries the
    first ``payload_len`` of them.
    """

    def __init__(
        self,
        ep: Endpoints,
        *,
        dest_qp: int,
        opcode: Opcode | int,
        max_payload_bytes: int,
        va: int = 0,
        rkey: int = 0,
        dma_len: int | None = None,
        dscp: int = DATA_DSCP,
        ecn: int = ECN_ECT0,
        ttl: int = 64,
        ip_id: int = 0,
        fill: bytes = b"\x00",
    ) -> None:
        if max_payload_bytes < 0 or not fill:
            raise ValueError("max_payload_bytes must be >= 0 and fill non-empty")
        self.endpoints = ep
        self.opcode = Opcode(opcode)
        self.max_payload_bytes = max_payload_bytes
        self.dma_len = max_payload_bytes if dma_len is None else dma_len
        reps = -(-max_payload_bytes // len(fill))
        self._payload = (fill * reps)[:max_payload_bytes]
        frame = bytes(
            data_packet(
                ep, dest_qp=dest_qp, psn=0, opcode=self.opcode, payload=self._payload,
                va=va, rkey=rkey, dma_len=self.dma_len, dscp=dscp, ecn=ecn, ttl=ttl,
                ip_id=ip_id,
            )
        )
        self._has_reth = self.opcode in _RETH_OPCODES
        self._ip = ETH_HEADER_BYTES
        self._udp = self._ip + IPV4_HEADER_BYTES
        self._bth = self._udp + UDP_HEADER_BYTES
        self._reth = self._bth + BTH_BYTES
        self._header = bytes(frame[: self._reth + (RETH_BYTES if self._has_reth else 0)])

    def render(
        self,
        psn: int,
        *,
        sport: int | None = None,
        payload_len: int | None = None,
        ack_req: bool = False,
        va: int | None = None,
        dma_len: int | None = None,
    ) -> bytes:
        """Frame bytes for ``psn``; equal to a fresh :func:`data_packet` build with the same
        fields. On ONLY, ``dma_len`` defaults to ``payload_len``; on FIRST, to the template's."""
        _check_psn(psn)
        length = self.max_payload_bytes if payload_len is None else payload_len
        if not 0 <= length <= self.max_payload_bytes:
            raise ValueError(f"payload_len must be 0..{self.max_payload_bytes}, got {length}")
        pad = -length % 4
        body = self._payload[:length] + bytes(pad)
        hdr = bytearray(self._header)
        udp_len = len(hdr) - self._udp + len(body) + ICRC_BYTES
        struct.pack_into("!H", hdr, self._ip + 2, IPV4_HEADER_BYTES + udp_len)
        hdr[self._ip + 10 : self._ip + 12] = b"\x00\x00"
        struct.pack_into("!H", hdr, self._ip + 10, ipv4_checksum(hdr[self._ip : self._udp]))
        if sport is not None:
            struct.pack_into("!H", hdr, self._udp, sport)
        struct.pack_into("!H", hdr, self._udp + 4, udp_len)
        hdr[self._bth + 1] = (hdr[self._bth + 1] & 0xCF) | (pad << 4)
        struct.pack_into("!I", hdr, self._bth + 8, (int(bool(ack_req)) << 31) | psn)
        if self._has_reth:
            if va is not None:
                struct.pack_into("!Q", hdr, self._reth, va)
            if dma_len is None:
                dma_len = length if self.opcode is Opcode.ONLY else self.dma_len
            struct.pack_into("!I", hdr, self._reth + 12, dma_len)
        crc = zlib.crc32(_masked_headers(hdr[self._ip : self._reth], IPV4_HEADER_BYTES))
        crc = zlib.crc32(hdr[self._reth :], crc)
        crc = zlib.crc32(body, crc)
        return bytes(hdr) + body + struct.pack("<I", crc)

    @property
    def dest_qp(self) -> int:
        return int.from_bytes(self._header[self._bth + 5 : self._bth + 8], "big")

"""Sockets and addresses of the live RoCEv2 endpoints (inside a host's namespace).

- Transmit: one AF_PACKET raw socket per interface, bound with protocol 0 so it receives
  nothing, reused for every frame (frames are complete Ethernet frames from prebuilt bytes).
- Receive: a UDP socket bound to port 4791 with IP_RECVTOS. The kernel demultiplexes RoCEv2 to
  us and hands over the TOS byte (so the CE bits) with each datagram, and a bound port stops it
  from answering every RoCE packet with ICMP port unreachable. An AF_PACKET receiver would also
  see every other frame on the link and need its own filter; a UDP socket costs one recvmsg per
  packet either way.
"""

from __future__ import annotations

import ctypes
import json
import mmap
import socket
import struct
import subprocess
import time
from dataclasses import dataclass

import numpy as np

from traffic.roce_fastpath import PSN_WORD_OFFSET
from traffic.roce_packets import ROCEV2_UDP_PORT
from wire.frames import ICRC_BYTES

IP_RECVTOS = getattr(socket, "IP_RECVTOS", 13)
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
PR_SET_TIMERSLACK = 29
_TOS_CMSG_SPACE = socket.CMSG_SPACE(4)


def set_timer_slack_ns(ns: int = 1) -> None:
    """Sleeps of tens of microseconds need the timer slack (default 50 us) out of the way."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0)


def open_tx(ifname: str, sndbuf_bytes: int = 4 << 20) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, sndbuf_bytes)
    sock.bind((ifname, 0))
    return sock


SOL_PACKET = 263
PACKET_VERSION, PACKET_TX_RING, TPACKET_V2 = 10, 13, 1
TP_STATUS_SEND_REQUEST = 1
# struct tpacket2_hdr is 32 bytes; without PACKET_TX_HAS_OFF a TX frame's data starts at
# TPACKET2_HDRLEN - sizeof(struct sockaddr_ll) = 52 - 20 = 32.
_TX_DATA_OFFSET = 32
_STATUS_LEN = struct.Struct("=II")  # tp_status, tp_len
_U32_BE = struct.Struct("!I")
_U32_LE = struct.Struct("<I")
NUMPY_RUN_MIN = 16  # shorter runs are cheaper patched one by one in Python


class SocketTx:
    """One send() per frame on an AF_PACKET socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.drops = 0

    def send(self, frame: bytes | bytearray) -> None:
        try:
            self.sock.send(frame)
        except OSError:  # ENOBUFS: the interface's queue was full; go-back-N recovers
            self.drops += 1

    def flush(self) -> None:
        pass


class TxRing:
    """PACKET_TX_RING (TPACKET_V2) on an AF_PACKET socket: frames are written into a ring
    shared with the kernel and one send() transmits all that are queued, so the per-packet
    cost is a copy and two patches, not a system call. :meth:`send_run` patches PSN and ICRC
    of consecutive packets of one prebuilt shape straight into the ring; a slot that already
    holds that shape's bytes (from an earlier lap) is not copied again."""

    def __init__(self, sock: socket.socket, frame_size: int = 2048,
                 frames: int = 1024) -> None:
        block = 1 << 16
        per_block = block // frame_size
        blocks = -(-frames // per_block)
        self.sock = sock
        self.frame_size = frame_size
        self.nframes = per_block * blocks
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        sock.setsockopt(SOL_PACKET, PACKET_TX_RING,
                        struct.pack("=IIII", block, blocks, frame_size, self.nframes))
        self.ring = mmap.mmap(sock.fileno(), block * blocks, mmap.MAP_SHARED,
                              mmap.PROT_READ | mmap.PROT_WRITE)
        self.offsets = [i * frame_size for i in range(self.nframes)]
        self._slots = np.frombuffer(self.ring, dtype=np.uint8).reshape(self.nframes, frame_size)
        self._shapes: dict[int, tuple] = {}
        self._np_tables: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._holds: list[int] = [0] * self.nframes  # number of the shape a slot holds
        self._slot = 0
        self._queued = 0
        self.drops = 0
        self.max_frame = frame_size - _TX_DATA_OFFSET

    def send(self, frame: bytes | bytearray) -> None:
        if self._queued == self.nframes:
            self.flush()
        n = len(frame)
        off = self.offsets[self._slot]
        self.ring[off + _TX_DATA_OFFSET:off + _TX_DATA_OFFSET + n] = frame
        self._holds[self._slot] = 0
        _STATUS_LEN.pack_into(self.ring, off, TP_STATUS_SEND_REQUEST, n)
        self._slot = (self._slot + 1) % self.nframes
        self._queued += 1

    def send_run(self, shape, first_psn: int, count: int) -> int:
        """``count`` frames of ``shape`` with PSNs from ``first_psn`` (AckReq clear); returns
        the bytes queued."""
        if count >= NUMPY_RUN_MIN:
            return self._send_run_numpy(shape, first_psn, count)
        base = shape.buf
        n = len(base)
        hi, lo, number = self._tables(shape)
        crc0 = shape.base_crc
        ring, offsets, holds = self.ring, self.offsets, self._holds
        psn_at = _TX_DATA_OFFSET + PSN_WORD_OFFSET
        crc_at = _TX_DATA_OFFSET + n - ICRC_BYTES
        data_end = _TX_DATA_OFFSET + n
        pack_be, pack_le, pack_st = _U32_BE.pack_into, _U32_LE.pack_into, _STATUS_LEN.pack_into
        psn = first_psn
        left = count
        while left:
            if self._queued == self.nframes:
                self.flush()
            slot = self._slot
            batch = min(left, self.nframes - self._queued, self.nframes - slot)
            for s in range(slot, slot + batch):
                off = offsets[s]
                if holds[s] != number:
                    ring[off + _TX_DATA_OFFSET:off + data_end] = base
                    holds[s] = number
                pack_be(ring, off + psn_at, psn)
                pack_le(ring, off + crc_at, crc0 ^ hi[psn >> 16] ^ lo[psn & 0xFFFF])
                pack_st(ring, off, TP_STATUS_SEND_REQUEST, n)
                psn = (psn + 1) & 0xFFFFFF
            self._slot = (slot + batch) % self.nframes
            self._queued += batch
            left -= batch
        return n * count

    def prepare(self, shape) -> None:
        """Build ``shape``'s ICRC tables now rather than at its first run."""
        self._tables(shape)

    def _tables(self, shape) -> tuple[list[int], list[int], int]:
        """ICRC tables of ``shape`` and its number here (shapes live as long as their QP)."""
        entry = self._shapes.get(id(shape))
        if entry is None or entry[0] is not shape:
            hi, lo = shape.word_tables()
            number = len(self._shapes) + 1
            entry = self._shapes[id(shape)] = (shape, hi, lo, number)
            self._np_tables[number] = (np.array(hi, dtype=np.uint32),
                                       np.array(lo, dtype=np.uint32))
        return entry[1], entry[2], entry[3]

    def _send_run_numpy(self, shape, first_psn: int, count: int) -> int:
        """The same patches as the loop in :meth:`send_run`, a whole batch of slots at once."""
        base = shape.buf
        n = len(base)
        hi_list, lo_list, number = self._tables(shape)
        hi, lo = self._np_tables[number]
        status = np.frombuffer(_STATUS_LEN.pack(TP_STATUS_SEND_REQUEST, n), dtype=np.uint8)
        base_np = np.frombuffer(bytes(base), dtype=np.uint8)
        psn_at = _TX_DATA_OFFSET + PSN_WORD_OFFSET
        crc_at = _TX_DATA_OFFSET + n - ICRC_BYTES
        done = 0
        while done < count:
            if self._queued == self.nframes:
                self.flush()
            slot = self._slot
            batch = min(count - done, self.nframes - self._queued, self.nframes - slot)
            rows = self._slots[slot:slot + batch]
            psns = (np.arange(first_psn + done, first_psn + done + batch, dtype=np.uint32)
                    & 0xFFFFFF)
            crcs = np.uint32(shape.base_crc) ^ hi[psns >> 16] ^ lo[psns & 0xFFFF]
            if self._holds[slot:slot + batch].count(number) != batch:
                rows[:, _TX_DATA_OFFSET:_TX_DATA_OFFSET + n] = base_np  # else: already there
                self._holds[slot:slot + batch] = [number] * batch
            rows[:, psn_at:psn_at + 4] = psns.astype(">u4").view(np.uint8).reshape(batch, 4)
            rows[:, crc_at:crc_at + 4] = crcs.astype("<u4").view(np.uint8).reshape(batch, 4)
            rows[:, :8] = status
            self._slot = (slot + batch) % self.nframes
            self._queued += batch
            done += batch
        return n * count

    def flush(self) -> None:
        """Transmit every queued frame; returns when the kernel has taken them all."""
        if not self._queued:
            return
        # A frame the qdisc refuses fails the send() and the kernel stops there; each retry
        # carries on from the next queued frame.
        for _ in range(self.nframes + 1):
            try:
                self.sock.send(b"")
                break
            except OSError:
                self.drops += 1
        self._queued = 0


def open_rx(bind_ip: str, rcvbuf_bytes: int = 8 << 20) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf_bytes)
    sock.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
    sock.bind((bind_ip, ROCEV2_UDP_PORT))
    sock.setblocking(False)
    return sock


def recv(sock: socket.socket) -> tuple[bytes, str, int] | None:
    """(UDP payload, source IP, TOS) of the next datagram, or None if none is waiting."""
    try:
        data, ancdata, _flags, addr = sock.recvmsg(4096, _TOS_CMSG_SPACE)
    except BlockingIOError:
        return None
    tos = 0
    for level, kind, value in ancdata:
        if level == socket.IPPROTO_IP and kind == socket.IP_TOS and value:
            tos = value[0]
    return data, addr[0], tos


@dataclass(frozen=True)
class Route:
    """How this namespace reaches ``dst_ip``: interface, source address, MACs of the hop."""

    dst_ip: str
    ifname: str
    src_ip: str
    src_mac: str
    next_hop_mac: str


def _ip_json(argv: list[str]) -> list[dict]:
    out = subprocess.run(["ip", "-j", *argv], capture_output=True, text=True, check=True)
    return json.loads(out.stdout or "[]")


def resolve_route(dst_ip: str, timeout_s: float = 3.0) -> Route:
    """The route and next-hop MAC to ``dst_ip``, provoking ARP if the neighbour is unknown."""
    socket.inet_aton(dst_ip)  # validated before it reaches argv
    (route,) = _ip_json(["route", "get", dst_ip])
    ifname, src_ip = route["dev"], route["prefsrc"]
    hop = route.get("gateway", dst_ip)
    # Asked of the kernel, not read from /sys: a process that entered this namespace with
    # setns (one sender process driving many hosts) still sees its home namespace's /sys.
    (link,) = _ip_json(["link", "show", "dev", ifname])
    src_mac = link["address"]
    deadline = time.monotonic() + timeout_s
    while True:
        for entry in _ip_json(["neigh", "show", "to", hop, "dev", ifname]):
            if entry.get("lladdr") and not set(entry.get("state", [])) & {"FAILED",
                                                                            "INCOMPLETE"}:
                return Route(dst_ip, ifname, src_ip, src_mac, entry["lladdr"])
        if time.monotonic() > deadline:
            raise RuntimeError(f"no ARP answer from {hop} on {ifname} (route to {dst_ip})")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.sendto(b"", (dst_ip, 9))  # discard port: only the ARP resolution matters
        time.sleep(0.05)

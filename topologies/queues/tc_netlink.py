"""A minimal rtnetlink client for the hot paths of the queue agent: dump qdisc statistics and
change a TBF rate, in microseconds, from one process, in any namespace.

pyroute2 is used to *build* ports; it forks a helper per namespace and costs milliseconds per
call, which is too slow for a PFC reaction loop. Here a plain NETLINK_ROUTE socket is opened
inside each namespace (setns, socket, setns back: a socket stays in the namespace it was
created in) and requests are packed with `struct`.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from fabriccore.netns import in_namespace

NETLINK_ROUTE = 0
RTM_NEWQDISC = 36
RTM_GETQDISC = 38
RTM_GETTFILTER = 46
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLMSG_ERROR = 0x2
NLMSG_DONE = 0x3

TCA_KIND = 1
TCA_OPTIONS = 2
TCA_STATS2 = 7
TCA_STATS_BASIC = 1
TCA_STATS_QUEUE = 3
TCA_TBF_PARMS = 1
TCA_TBF_BURST = 6
TC_LINKLAYER_ETHERNET = 1
TCA_BPF_ID = 11
TC_H_CLSACT = 0xFFFFFFF1
TC_H_CLSACT_HANDLE = 0xFFFF0000
TC_H_CLSACT_EGRESS = 0xFFFFFFF3

_NLMSG = struct.Struct("=IHHII")
_TCMSG = struct.Struct("=BxxxiIII")      # family, ifindex, handle, parent, info
_RTA = struct.Struct("=HH")
_RATESPEC = struct.Struct("=BBHhHI")    # cell_log, linklayer, overhead, cell_align, mpu, rate
_TBF_QOPT = struct.Struct("=12s12sIII")  # rate, peakrate, limit, buffer, mtu

@dataclass(frozen=True)
class QdiscStats:
    ifindex: int
    handle: int
    parent: int
    kind: str
    bytes: int
    packets: int
    drops: int
    overlimits: int
    backlog_bytes: int
    qlen: int


def _attrs(data: bytes, offset: int, end: int) -> Iterator[tuple[int, bytes]]:
    while offset + 4 <= end:
        length, kind = _RTA.unpack_from(data, offset)
        if length < 4:
            break
        yield kind & 0x3FFF, data[offset + 4:offset + length]
        offset += (length + 3) & ~3


def _attr(kind: int, payload: bytes) -> bytes:
    raw = _RTA.pack(4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


class RouteSocket:
    """One NETLINK_ROUTE socket bound to a namespace."""

    def __init__(self, netns: str | None = None):
        self.netns = netns
        with in_namespace(netns):
            self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RouteSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, msg_type: int, flags: int, payload: bytes) -> int:
        self._seq += 1
        self.sock.send(_NLMSG.pack(_NLMSG.size + len(payload), msg_type, flags, self._seq, 0)
                       + payload)
        return self._seq

    def _replies(self, seq: int) -> Iterator[tuple[int, bytes]]:
        """(type, body) of each reply message to `seq` until DONE or an ACK/error."""
        while True:
            data = self.sock.recv(1 << 16)
            offset = 0
            while offset + _NLMSG.size <= len(data):
                length, msg_type, _flags, msg_seq, _pid = _NLMSG.unpack_from(data, offset)
                body = data[offset + _NLMSG.size:offset + length]
                offset += (length + 3) & ~3
                if msg_seq != seq:
                    continue
                if msg_type == NLMSG_DONE:
                    return
                if msg_type == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", body)
                    if code:
                        raise OSError(-code, f"netlink ({self.netns or 'root'}): "
                                      f"{os.strerror(-code)}")
                    return
                yield msg_type, body

    def dump_qdiscs(self, wanted: set[tuple[int, int]] | None = None) -> list[QdiscStats]:
        """Every qdisc of the namespace, or only the (ifindex, handle) pairs in `wanted`
        (the kernel dumps them all; skipping the others saves the parsing)."""
        seq = self._send(RTM_GETQDISC, NLM_F_REQUEST | NLM_F_DUMP,
                         _TCMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0))
        out = []
        for _type, body in self._replies(seq):
            _family, ifindex, handle, parent, _info = _TCMSG.unpack_from(body)
            if wanted is not None and (ifindex, handle) not in wanted:
                continue
            kind = ""
            basic = (0, 0)
            queue = (0, 0, 0, 0, 0)
            for attr_type, payload in _attrs(body, _TCMSG.size, len(body)):
                if attr_type == TCA_KIND:
                    kind = payload.rstrip(b"\0").decode()
                elif attr_type == TCA_STATS2:
                    for sub_type, sub in _attrs(payload, 0, len(payload)):
                        if sub_type == TCA_STATS_BASIC and len(sub) >= 12:
                            basic = struct.unpack_from("=QI", sub)
                        elif sub_type == TCA_STATS_QUEUE and len(sub) >= 20:
                            queue = struct.unpack_from("=5I", sub)
            qlen, backlog, drops, _requeues, overlimits = queue
            out.append(QdiscStats(ifindex, handle, parent, kind, basic[0], basic[1], drops,
                                  overlimits, backlog, qlen))
        return out

    def add_clsact(self, ifindex: int) -> None:
        """Add the clsact qdisc to an interface (EEXIST if it has one)."""
        payload = (_TCMSG.pack(socket.AF_UNSPEC, ifindex, TC_H_CLSACT_HANDLE, TC_H_CLSACT, 0)
                   + _attr(TCA_KIND, b"clsact\0"))
        seq = self._send(RTM_NEWQDISC, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                         payload)
        for _ in self._replies(seq):
            pass

    def has_qdisc(self, ifindex: int, kind: str) -> bool:
        return any(q.ifindex == ifindex and q.kind == kind for q in self.dump_qdiscs())

    def egress_bpf_prog_ids(self, ifindex: int, pref: int) -> list[int]:
        """The ids of the eBPF programs of the cls_bpf filters at clsact egress of an
        interface with this preference (what ``tc filter show dev X egress pref P`` lists)."""
        seq = self._send(RTM_GETTFILTER, NLM_F_REQUEST | NLM_F_DUMP,
                         _TCMSG.pack(socket.AF_UNSPEC, ifindex, 0, TC_H_CLSACT_EGRESS,
                                     pref << 16))
        ids = []
        for _type, body in self._replies(seq):
            _family, _index, _handle, _parent, info = _TCMSG.unpack_from(body)
            if info >> 16 != pref:
                continue
            kind = ""
            for attr_type, payload in _attrs(body, _TCMSG.size, len(body)):
                if attr_type == TCA_KIND:
                    kind = payload.rstrip(b"\0").decode()
                elif attr_type == TCA_OPTIONS and kind == "bpf":
                    ids += [struct.unpack_from("=I", sub)[0]
                            for sub_type, sub in _attrs(payload, 0, len(payload))
                            if sub_type == TCA_BPF_ID]
        return ids

    def change_tbf(self, ifindex: int, handle: int, parent: int, *, rate_bps: int,
                   burst_bytes: int, limit_bytes: int, create: bool = False) -> None:
        """Set an existing TBF's rate; the kernel refills its bucket and keeps its packets
        (the child FIFO's limit is set again to the same value, so nothing is flushed).
        `create` adds the TBF instead."""
        bytes_per_s = rate_bps // 8
        if not 0 < bytes_per_s < 1 << 32:
            raise ValueError(f"TBF rate {rate_bps} bit/s is out of range")
        ratespec = _RATESPEC.pack(0, TC_LINKLAYER_ETHERNET, 0, -1, 0, bytes_per_s)
        buffer_ticks = min(0xFFFFFFFF, int(burst_bytes / bytes_per_s * 1e9 / 64))
        qopt = _TBF_QOPT.pack(ratespec, bytes(12), limit_bytes, buffer_ticks, 0)
        options = _attr(TCA_TBF_PARMS, qopt) + _attr(TCA_TBF_BURST, struct.pack("=I", burst_bytes))
        payload = (_TCMSG.pack(socket.AF_UNSPEC, ifindex, handle, parent, 0)
                   + _attr(TCA_KIND, b"tbf\0") + _attr(TCA_OPTIONS, options))
        flags = NLM_F_REQUEST | NLM_F_ACK | (NLM_F_CREATE | NLM_F_EXCL if create else 0)
        seq = self._send(RTM_NEWQDISC, flags, payload)
        for _ in self._replies(seq):
            pass

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
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from traffic.roce_packets import ROCEV2_UDP_PORT

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
    src_mac = Path(f"/sys/class/net/{ifname}/address").read_text().strip()
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

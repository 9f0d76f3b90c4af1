"""The raw sockets of one port that PFC frames go through: a receiver for 802.1Qbb frames, a
sender that bypasses the port's qdisc, and the kick frame that wakes a resumed TBF."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

from .pfc_frames import parse_pfc_bytes

ETH_P_PFC = 0x8808
SOL_PACKET = 263
PACKET_QDISC_BYPASS = 20
PACKET_OUTGOING = 4
#: IEEE 802 "local experimental" ethertype: the kick frame the peer drops.
KICK_ETHERTYPE = 0x88B5


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(x, 16) for x in mac.split(":"))


class PfcSockets:
    """Open inside the port's namespace: `receive` opens the PFC receiver and the kick
    sender (a port whose egress can be paused), `send` the PFC sender (a port that sends
    PAUSE). Either side is None when not opened."""

    def __init__(self, ifname: str, *, receive: bool, send: bool):
        self.rx: socket.socket | None = None
        self.tx: socket.socket | None = None
        self.kick: socket.socket | None = None
        if receive:
            # Opened with no protocol and given it at bind: a packet socket opened with one
            # is already hooked, and binding it again waits for a kernel grace period
            # (milliseconds per port).
            self.rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            self.rx.bind((ifname, ETH_P_PFC))
            self.rx.setblocking(False)
            self.kick = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            self.kick.bind((ifname, 0))
        if send:
            self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            self.tx.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
            self.tx.bind((ifname, 0))

    def send(self, frame: bytes) -> bool:
        """Send a prebuilt PFC frame; False when this port sends none."""
        if self.tx is None:
            return False
        self.tx.send(frame)
        return True

    def send_kick(self, mac: str) -> None:
        """A minimal frame to ourselves that makes the qdisc dequeue again (Linux has no
        other way to wake a TBF that was slowed down); nothing when this port has no kick."""
        if self.kick is not None:
            self.kick.send(_mac_bytes(mac) + _mac_bytes(mac)
                           + struct.pack("!H", KICK_ETHERTYPE) + bytes(46))

    def received(self) -> Iterator[dict[int, int]]:
        """Each PFC frame waiting on the receiver (not those we sent), as priority -> quanta;
        empty for a frame that is not PFC."""
        while True:
            try:
                frame, addr = self.rx.recvfrom(256)
            except BlockingIOError:
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            yield parse_pfc_bytes(frame) or {}

    def close(self) -> None:
        for sock in (self.rx, self.tx, self.kick):
            if sock is not None:
                sock.close()

"""Sequence-numbered UDP streams for outage measurement.

``send --dst IP --port P --flows N --interval-s T --duration-s D``: N flows (one socket, so one
source port, each), one packet per flow every T seconds, each carrying (flow, seq, send time).
``recv --port P --duration-s D --out CSV``: records every arrival with its receive time (wall
clock), written when the duration ends. A path outage shows as a gap in a flow's arrivals.
"""

from __future__ import annotations

import argparse
import csv
import socket
import struct
import sys
import time

from traffic.endpoint_exit import run_endpoint

PAYLOAD = struct.Struct("!IQd")  # flow, seq, send time
PAD = bytes(64)


def send(dst: str, port: int, flows: int, interval_s: float, duration_s: float,
         sport_base: int = 0) -> int:
    """``sport_base``: flow i sends from port sport_base + i (0: ephemeral ports), so that a
    run's five-tuples, and so its ECMP paths, are the same every time."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(flows)]
    for i, sock in enumerate(socks):
        sock.bind(("0.0.0.0", sport_base + i if sport_base else 0))
    print(" ".join(str(s.getsockname()[1]) for s in socks), flush=True)
    seq = 0
    next_send = time.monotonic()
    end = next_send + duration_s
    while next_send < end:
        now = time.time()
        for flow, sock in enumerate(socks):
            try:
                sock.sendto(PAYLOAD.pack(flow, seq, now) + PAD, (dst, port))
            except OSError:
                pass  # ENOBUFS etc.: counted as loss at the receiver
        seq += 1
        next_send += interval_s
        delay = next_send - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return 0


def recv(port: int, duration_s: float, out: str) -> int:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind(("0.0.0.0", port))
    sock.settimeout(0.2)
    rows = []
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        try:
            data, (src, sport) = sock.recvfrom(2048)
        except TimeoutError:
            continue
        flow, seq, sent = PAYLOAD.unpack_from(data)
        rows.append((src, sport, flow, seq, sent, time.time()))
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["src", "sport", "flow", "seq", "sent", "received"])
        writer.writerows(rows)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    p_send = sub.add_parser("send")
    p_send.add_argument("--dst", required=True)
    p_send.add_argument("--port", type=int, required=True)
    p_send.add_argument("--flows", type=int, default=4)
    p_send.add_argument("--interval-s", type=float, default=0.001)
    p_send.add_argument("--duration-s", type=float, required=True)
    p_send.add_argument("--sport-base", type=int, default=0,
                        help="flow i sends from this port + i (default: ephemeral ports)")
    p_recv = sub.add_parser("recv")
    p_recv.add_argument("--port", type=int, required=True)
    p_recv.add_argument("--duration-s", type=float, required=True)
    p_recv.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.role == "send":
        return send(args.dst, args.port, args.flows, args.interval_s, args.duration_s,
                    args.sport_base)
    return recv(args.port, args.duration_s, args.out)


if __name__ == "__main__":
    sys.exit(run_endpoint(main))

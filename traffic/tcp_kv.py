"""TCP baseline for KV-block transfers, with the same schedule as the RoCE endpoints.

``send``: one connection to the receiver with a chosen congestion control (TCP_CONGESTION);
block k is handed to the socket at ``start + k x interval`` (or as soon as block k-1 is out).
``serve``: accepts the senders, reads blocks and writes one CSV row per block: its post time
(carried in the block's header; CLOCK_MONOTONIC is shared by every namespace), when its last
byte arrived, and the difference (the block completion time). It exits once it has
``--expect`` blocks, or on SIGTERM.

    python -m traffic.tcp_kv serve --port 5201 --expect 140 --out D/tcp_messages.csv
    python -m traffic.tcp_kv send --dst 10.0.1.1:5201 --cc cubic --name h2 --blocks 20 \\
        --block-bytes 262144 --interval-s 0.25 --start-at T
"""

from __future__ import annotations

import argparse
import csv
import selectors
import signal
import socket
import struct
import sys
import time
from pathlib import Path

from traffic.endpoint_exit import run_endpoint

HEADER = struct.Struct("!16sIQd")  # sender name, block id, size, posted (CLOCK_MONOTONIC)
FIELDS = ["sender", "cc", "msg_id", "size_bytes", "posted_s", "completed_s", "fct_s"]
CHUNK_BYTES = 256 * 1024


def available_congestion_controls(
        path: str = "/proc/sys/net/ipv4/tcp_available_congestion_control") -> list[str]:
    """What this kernel offers (loaded modules only: we cannot load more)."""
    try:
        return Path(path).read_text().split()
    except OSError:
        return []


def send(dst: str, port: int, cc: str, name: str, blocks: int, block_bytes: int,
         interval_s: float, start_at: str, connect_timeout_s: float = 10.0) -> int:
    """``start_at``: a CLOCK_MONOTONIC time, or "stdin": connect, print ready, read it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    deadline = time.monotonic() + connect_timeout_s
    while True:
        try:
            sock.connect((dst, port))
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
            sock.close()
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    payload = bytes(min(block_bytes, CHUNK_BYTES))
    if start_at == "stdin":
        print('{"ready": true}', flush=True)
        start_at = sys.stdin.readline()
    start_s = float(start_at)
    for k in range(blocks):
        posted = start_s + k * interval_s
        delay = posted - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sock.sendall(HEADER.pack(name.encode()[:16], k, block_bytes, posted))
        left = block_bytes
        while left:
            n = min(left, len(payload))
            sock.sendall(payload[:n])
            left -= n
    sock.shutdown(socket.SHUT_WR)
    sock.recv(1)  # wait for the receiver to close: every byte has been read
    sock.close()
    return 0


class _Conn:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.block: tuple[str, int, int, float] | None = None
        self.left = 0


def serve(port: int, expect: int, out_path: str, cc_label: str, time_zero: float,
          timeout_s: float) -> int:
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    listener = socket.create_server(("0.0.0.0", port), backlog=128)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    rows = []
    deadline = time.monotonic() + timeout_s
    conns = []
    while len(rows) < expect and not stop and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.1):
            if key.fileobj is listener:
                sock, _ = listener.accept()
                sock.setblocking(False)
                conn = _Conn(sock)
                conns.append(conn)
                selector.register(sock, selectors.EVENT_READ, conn)
                continue
            conn = key.data
            try:
                data = conn.sock.recv(1 << 20)
            except BlockingIOError:
                continue
            now = time.monotonic()
            if not data:
                selector.unregister(conn.sock)
                continue
            rows += _consume(conn, data, now)
    if time_zero <= 0 and rows:
        time_zero = min(r[3] for r in rows)  # the first post: the senders' common start
    with open(out_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FIELDS)
        for sender, msg_id, size, posted, done in rows:
            writer.writerow([sender, cc_label, msg_id, size, f"{posted - time_zero:.6f}",
                             f"{done - time_zero:.6f}", f"{done - posted:.6f}"])
    for conn in conns:
        conn.sock.close()
    return 0 if len(rows) >= expect else 1


def _consume(conn: _Conn, data: bytes, now: float) -> list[tuple]:
    done = []
    view = memoryview(data)
    while view:
        if conn.block is None:
            need = HEADER.size - len(conn.buf)
            conn.buf += view[:need]
            view = view[need:]
            if len(conn.buf) < HEADER.size:
                break
            name, msg_id, size, posted = HEADER.unpack(bytes(conn.buf))
            conn.buf.clear()
            conn.block = (name.rstrip(b"\0").decode(), msg_id, size, posted)
            conn.left = size
        take = min(conn.left, len(view))
        conn.left -= take
        view = view[take:]
        if conn.left == 0:
            done.append((*conn.block, now))
            conn.block = None
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    s = sub.add_parser("send")
    s.add_argument("--dst", required=True, help="IP:PORT")
    s.add_argument("--cc", required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--blocks", type=int, required=True)
    s.add_argument("--block-bytes", type=int, required=True)
    s.add_argument("--interval-s", type=float, default=0.0)
    s.add_argument("--start-at", required=True, help="CLOCK_MONOTONIC time or 'stdin'")
    r = sub.add_parser("serve")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--expect", type=int, required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--cc-label", default="")
    r.add_argument("--time-zero", type=float, default=0.0,
                   help="origin of the times written; 0: the earliest post")
    r.add_argument("--timeout-s", type=float, default=600.0)
    args = parser.parse_args(argv)
    if args.role == "serve":
        return serve(args.port, args.expect, args.out, args.cc_label, args.time_zero,
                     args.timeout_s)
    host, _, port = args.dst.rpartition(":")
    return send(host, int(port), args.cc, args.name, args.blocks, args.block_bytes,
                args.interval_s, args.start_at)


if __name__ == "__main__":
    sys.exit(run_endpoint(main))

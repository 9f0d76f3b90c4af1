"""TCP incast endpoints, after Vasudevan et al. (SIGCOMM 2009) and Chen et al. (WREN 2009).

The aggregator (``fetch``, on the receiver) keeps one connection to each sender (``serve``).
Each round it asks every sender for one block at the same instant and waits until all blocks
have arrived: a synchronized, barrier-per-round many-to-one burst. It writes one CSV row per
flow per round and a JSON progress line per round on stdout.

Run inside a fabric host, e.g. ``python -m traffic.tcp_incast serve --port 5001``.
"""

from __future__ import annotations

import argparse
import csv
import json
import selectors
import socket
import struct
import sys
import time

from traffic.endpoint_exit import PEER_GONE, run_endpoint

REQUEST = struct.Struct("!Q")  # block size in bytes
CHUNK_BYTES = 64 * 1024
FLOW_FIELDS = ["round", "sender", "block_bytes", "bytes_received", "request_s", "first_byte_s",
               "completion_s", "fct_s"]


def serve(port: int) -> None:
    """Answer each request on each connection with that many bytes."""
    listener = socket.create_server(("0.0.0.0", port), reuse_port=False)
    payload = bytes(CHUNK_BYTES)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is listener:
                conn, _ = listener.accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                selector.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj
            try:
                header = _recv_exact(conn, REQUEST.size)
                if header is not None:
                    (remaining,) = REQUEST.unpack(header)
                    while remaining > 0:
                        remaining -= conn.send(payload[: min(remaining, CHUNK_BYTES)])
                    continue
            except PEER_GONE:
                pass  # the aggregator went away (teardown stops it first, or it failed)
            selector.unregister(conn)
            conn.close()


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def connect_all(servers: list[tuple[str, int]], timeout_s: float) -> list[socket.socket]:
    """Connect to every sender, retrying while they start up."""
    deadline = time.monotonic() + timeout_s
    sockets = []
    for host, port in servers:
        while True:
            try:
                sock = socket.create_connection((host, port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def run_round(sockets: list[socket.socket], names: list[str], block_bytes: int,
              round_number: int, t0: float, timeout_s: float) -> list[dict]:
    """One synchronized round; returns a row per flow (times relative to t0)."""
    selector = selectors.DefaultSelector()
    request = REQUEST.pack(block_bytes)
    start = time.monotonic()
    for sock in sockets:
        sock.setblocking(True)
        sock.sendall(request)
        sock.setblocking(False)
    rows = {}
    for sock, name in zip(sockets, names):
        rows[sock] = {"round": round_number, "sender": name, "block_bytes": block_bytes,
                      "bytes_received": 0, "request_s": start - t0, "first_byte_s": None,
                      "completion_s": None, "fct_s": None}
        selector.register(sock, selectors.EVENT_READ)
    pending = len(sockets)
    deadline = start + timeout_s
    while pending and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.05):
            row = rows[key.fileobj]
            data = key.fileobj.recv(1 << 20)
            now = time.monotonic()
            if not data:
                raise ConnectionError(f"sender {row['sender']} closed the connection")
            if row["first_byte_s"] is None:
                row["first_byte_s"] = now - t0
            row["bytes_received"] += len(data)
            if row["bytes_received"] >= block_bytes:
                row["completion_s"] = now - t0
                row["fct_s"] = now - start
                selector.unregister(key.fileobj)
                pending -= 1
    selector.close()
    return list(rows.values())


def fetch(servers: list[tuple[str, int]], names: list[str], block_bytes: int, rounds: int,
          out_path: str, round_timeout_s: float, gap_s: float) -> int:
    sockets = connect_all(servers, timeout_s=10.0)
    t0 = time.monotonic()
    incomplete = 0
    with open(out_path, "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=FLOW_FIELDS)
        writer.writeheader()
        for round_number in range(1, rounds + 1):
            rows = run_round(sockets, names, block_bytes, round_number, t0, round_timeout_s)
            writer.writerows(rows)
            out.flush()
            done = [r for r in rows if r["fct_s"] is not None]
            incomplete += len(rows) - len(done)
            round_s = max((r["fct_s"] for r in done), default=round_timeout_s)
            print(json.dumps({"round": round_number, "rounds": rounds, "round_s": round_s,
                              "goodput_bps": 8 * sum(r["bytes_received"] for r in rows)
                              / max(round_s, 1e-9), "incomplete": len(rows) - len(done)}),
                  flush=True)
            if len(done) < len(rows):
                break  # a sender is stuck; the next round would not be synchronized
            time.sleep(gap_s)
    for sock in sockets:
        sock.close()
    return 0 if incomplete == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    p_serve = sub.add_parser("serve")
    p_serve.add_argument("--port", type=int, required=True)
    p_fetch = sub.add_parser("fetch")
    p_fetch.add_argument("--server", action="append", required=True,
                         help="NAME=IP:PORT, once per sender")
    p_fetch.add_argument("--block-bytes", type=int, required=True)
    p_fetch.add_argument("--rounds", type=int, required=True)
    p_fetch.add_argument("--out", required=True)
    p_fetch.add_argument("--round-timeout-s", type=float, default=10.0)
    p_fetch.add_argument("--gap-s", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.role == "serve":
        serve(args.port)
        return 0
    names, servers = [], []
    for item in args.server:
        name, _, address = item.partition("=")
        host, _, port = address.rpartition(":")
        names.append(name)
        servers.append((host, int(port)))
    return fetch(servers, names, args.block_bytes, args.rounds, args.out,
                 args.round_timeout_s, args.gap_s)


if __name__ == "__main__":
    sys.exit(run_endpoint(main))

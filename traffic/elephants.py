"""Long TCP flows on pre-opened connections, driven step by step from stdin.

``sink --port P`` (on a receiver) reads framed messages (8-byte length, then the payload) on
every connection and answers each with one byte once it has all of it.
``send --flow NAME=IP:PORT ...`` (on a sender) opens one connection per --flow, prints
``{"ready": ...}``, then obeys stdin lines:

* ``probe K BYTES`` send one message on connection K and print when it was acknowledged
  (the workload watches which uplink carried it: a connection keeps its five-tuple, so it
  keeps its hashed path);
* ``go K1,K2 BYTES`` send BYTES on those connections at once, print each flow's start and
  completion (wall clock) and exit.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time

from traffic.endpoint_exit import run_endpoint

HEADER = struct.Struct("!Q")
CHUNK = 64 * 1024


def _recv_exact(conn: socket.socket, size: int) -> bool:
    while size:
        data = conn.recv(min(size, 1 << 20))
        if not data:
            return False
        size -= len(data)
    return True


def _serve_connection(conn: socket.socket) -> None:
    with conn:
        while True:
            header = b""
            while len(header) < HEADER.size:
                data = conn.recv(HEADER.size - len(header))
                if not data:
                    return
                header += data
            (size,) = HEADER.unpack(header)
            if not _recv_exact(conn, size):
                return
            conn.sendall(b"k")


def sink(port: int) -> None:
    server = socket.create_server(("0.0.0.0", port), backlog=64, reuse_port=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=_serve_connection, args=(conn,), daemon=True).start()


def _send_message(conn: socket.socket, size: int) -> None:
    conn.sendall(HEADER.pack(size))
    payload = bytes(CHUNK)
    left = size
    while left:
        n = min(left, CHUNK)
        conn.sendall(payload[:n])
        left -= n
    if conn.recv(1) != b"k":
        raise ConnectionError("sink closed before acknowledging")


def _timed_send(conn: socket.socket, k: int, size: int, results: dict[int, dict]) -> None:
    start = time.time()
    try:
        _send_message(conn, size)
        results[k] = {"flow": k, "start": start, "end": time.time(), "bytes": size, "ok": True}
    except OSError as exc:
        results[k] = {"flow": k, "start": start, "end": time.time(), "bytes": size,
                      "ok": False, "error": str(exc)}


def send(flows: list[tuple[str, str, int]]) -> int:
    conns = []
    for _, ip, port in flows:
        conn = socket.create_connection((ip, port), timeout=30)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conns.append(conn)
    print(json.dumps({"ready": True, "flows": [
        {"name": name, "dst": ip, "dport": port, "sport": c.getsockname()[1]}
        for (name, ip, port), c in zip(flows, conns)]}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "probe":
            k, size = int(words[1]), int(words[2])
            start = time.time()
            _send_message(conns[k], size)
            print(json.dumps({"probe": k, "s": time.time() - start}), flush=True)
        elif words[0] == "go":
            chosen = [int(k) for k in words[1].split(",")]
            size = int(words[2])
            results: dict[int, dict] = {}

            threads = [threading.Thread(target=_timed_send, args=(conns[k], k, size, results))
                       for k in chosen]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            print(json.dumps({"done": [results[k] for k in chosen]}), flush=True)
            return 0 if all(r["ok"] for r in results.values()) else 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    p_sink = sub.add_parser("sink")
    p_sink.add_argument("--port", type=int, required=True)
    p_send = sub.add_parser("send")
    p_send.add_argument("--flow", action="append", required=True, help="NAME=IP:PORT")
    args = parser.parse_args(argv)
    if args.role == "sink":
        sink(args.port)
        return 0
    flows = []
    for item in args.flow:
        name, _, address = item.partition("=")
        ip, _, port = address.rpartition(":")
        flows.append((name, ip, int(port)))
    return send(flows)


if __name__ == "__main__":
    sys.exit(run_endpoint(main))

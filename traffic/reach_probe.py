"""Reachability probes between hosts: ICMP, TCP, UDP and UDP 4791 (RoCEv2's port).

``serve --iface IF --duration-s D --out CSV``: a TCP listener (7000), UDP echo on 7001 and
4791, and a raw-socket sniffer that counts every IPv4 frame arriving on IF by source address,
so "nothing crossed" is checked at the receiver, not only by missing replies.
``probe --target NAME=IP ... --out CSV``: one probe of each kind to every target.
"""

from __future__ import annotations

import argparse
import csv
import socket
import subprocess
import sys
import threading
import time

from traffic.endpoint_exit import run_endpoint

TCP_PORT, UDP_PORT, ROCE_PORT = 7000, 7001, 4791
ETH_P_ALL = 0x0003


def _tcp_listener(stop: threading.Event) -> None:
    server = socket.create_server(("0.0.0.0", TCP_PORT), backlog=64)
    server.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = server.accept()
            conn.close()
        except TimeoutError:
            continue


def _udp_echo(port: int, stop: threading.Event) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(2048)
            sock.sendto(data, peer)
        except TimeoutError:
            continue


def serve(iface: str, duration_s: float, out: str) -> int:
    stop = threading.Event()
    threads = [threading.Thread(target=_tcp_listener, args=(stop,), daemon=True)]
    threads += [threading.Thread(target=_udp_echo, args=(p, stop), daemon=True)
                for p in (UDP_PORT, ROCE_PORT)]
    for t in threads:
        t.start()
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sniff.bind((iface, 0))
    sniff.settimeout(0.2)
    seen: dict[tuple[str, int], int] = {}
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        try:
            frame, info = sniff.recvfrom(65535)
        except TimeoutError:
            continue
        if info[2] == socket.PACKET_OUTGOING or frame[12:14] != b"\x08\x00":
            continue
        key = (socket.inet_ntoa(frame[26:30]), frame[23])
        seen[key] = seen.get(key, 0) + 1
    stop.set()
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["src", "proto", "frames"])
        for (src, proto), count in sorted(seen.items()):
            writer.writerow([src, proto, count])
    return 0


def _udp_probe(ip: str, port: int, timeout_s: float) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.sendto(b"kvfabric-probe", (ip, port))
            data, _ = sock.recvfrom(2048)
            return data == b"kvfabric-probe"
        except OSError:
            return False


def _tcp_probe(ip: str, timeout_s: float) -> bool:
    try:
        with socket.create_connection((ip, TCP_PORT), timeout=timeout_s):
            return True
    except OSError:
        return False


def _icmp_probe(ip: str, timeout_s: float) -> bool:
    proc = subprocess.run(["ping", "-n", "-c", "1", "-W", f"{timeout_s:g}", ip],
                          capture_output=True, check=False)
    return proc.returncode == 0


def probe(targets: list[tuple[str, str]], timeout_s: float, out: str) -> int:
    rows = []
    for name, ip in targets:
        rows.append({"dst": name, "dst_ip": ip, "icmp": _icmp_probe(ip, timeout_s),
                     "tcp": _tcp_probe(ip, timeout_s),
                     "udp": _udp_probe(ip, UDP_PORT, timeout_s),
                     "roce_udp_4791": _udp_probe(ip, ROCE_PORT, timeout_s)})
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    p_serve = sub.add_parser("serve")
    p_serve.add_argument("--iface", required=True)
    p_serve.add_argument("--duration-s", type=float, required=True)
    p_serve.add_argument("--out", required=True)
    p_probe = sub.add_parser("probe")
    p_probe.add_argument("--target", action="append", required=True, help="NAME=IP")
    p_probe.add_argument("--timeout-s", type=float, default=0.5)
    p_probe.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    if args.role == "serve":
        return serve(args.iface, args.duration_s, args.out)
    targets = [tuple(item.split("=", 1)) for item in args.target]
    return probe(targets, args.timeout_s, args.out)


if __name__ == "__main__":
    sys.exit(run_endpoint(main))

"""Plain UDP test flows with a chosen DSCP and ECN codepoint, and a receiver that counts.

For queue tests and experiments that need traffic in a given class without a transport's
congestion control: the lossless class (DSCP 26) at line rate, ECT(0) traffic for ECN
marking, a victim flow. The sender's socket blocks when its NIC queue is paused and the send
buffer is full, so a paused host pushes back instead of dropping, as a NIC with PFC does.

    python -m traffic.udp_flow send --dst 10.1.1.2 --dscp 26 --ecn ect0 --duration 3
    python -m traffic.udp_flow recv --duration 5

Both print one JSON line with their counts at the end.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import socket
import struct
import sys
import time

from traffic.endpoint_exit import run_endpoint
from wire.ecn import ECN_CE, ECN_CODEPOINTS, ECN_ECT0, ECN_ECT1, ecn_of, tos_byte

DEFAULT_PORT = 5201
_HEADER = struct.Struct("!IQ")  # flow id, sequence number
IP_RECVTOS = 13
SO_RCVBUFFORCE = 33


def _positive(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return value


def send(args: argparse.Namespace) -> dict:
    tos = tos_byte(args.dscp, ECN_CODEPOINTS[args.ecn])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
    sock.connect((args.dst, args.port))
    payload = bytearray(args.size)
    sent = blocked_s = 0
    start = time.monotonic()
    end = start + args.duration
    interval = args.size * 8 / args.rate if args.rate else 0.0
    next_send = start
    period = args.on + args.off if args.on and args.off else 0.0
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if period and (now - start) % period >= args.on:
            time.sleep(min(period - (now - start) % period, end - now))
            next_send = time.monotonic()
            continue
        if interval:
            if now < next_send:
                time.sleep(min(next_send - now, 0.002))
                continue
            next_send += interval
            if next_send < now - 0.05:  # far behind (host stall): do not burst to catch up
                next_send = now
        _HEADER.pack_into(payload, 0, args.flow, sent)
        t = time.monotonic()
        sock.send(payload)
        blocked_s += time.monotonic() - t
        sent += 1
    elapsed = time.monotonic() - start
    return {"role": "send", "flow": args.flow, "dst": args.dst, "dscp": args.dscp,
            "ecn": args.ecn, "packets": sent, "bytes": sent * args.size,
            "duration_s": elapsed, "blocked_s": round(blocked_s, 4),
            "rate_bps": sent * args.size * 8 / elapsed if elapsed else 0.0}


def recv(args: argparse.Namespace) -> dict:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:  # beyond net.core.rmem_max (root only): bursts must not overflow the socket
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    sock.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
    sock.bind(("0.0.0.0", args.port))
    sock.settimeout(0.2)
    flows: dict[str, dict] = {}
    end = time.monotonic() + args.duration
    idle_end = None
    cmsg_space = socket.CMSG_SPACE(1)
    while time.monotonic() < end:
        try:
            data, ancillary, _flags, addr = sock.recvmsg(65535, cmsg_space)
        except TimeoutError:
            if idle_end is not None and time.monotonic() >= idle_end:
                break
            continue
        now = time.monotonic()
        if args.idle:
            idle_end = now + args.idle
        tos = 0
        for level, kind, value in ancillary:
            if level == socket.IPPROTO_IP and kind in (socket.IP_TOS, IP_RECVTOS) and value:
                tos = value[0]
        flow_id, seq = _HEADER.unpack_from(data) if len(data) >= _HEADER.size else (0, 0)
        key = f"{addr[0]}/{flow_id}"
        f = flows.setdefault(key, {"src": addr[0], "flow": flow_id, "packets": 0, "bytes": 0,
                                   "ce": 0, "ect": 0, "max_seq": -1, "first_s": now,
                                   "last_s": now})
        f["packets"] += 1
        f["bytes"] += len(data)
        ecn = ecn_of(tos)
        f["ce"] += ecn == ECN_CE
        f["ect"] += ecn in (ECN_ECT0, ECN_ECT1)
        f["max_seq"] = max(f["max_seq"], seq)
        f["last_s"] = now
    socket_drops = _udp_receive_buffer_errors()
    for f in flows.values():
        f["missing"] = f["max_seq"] + 1 - f["packets"]
        span = f["last_s"] - f["first_s"]
        f["span_s"] = round(span, 6)
        f["rate_bps"] = f["bytes"] * 8 / span if span > 0 else 0.0
        del f["first_s"], f["last_s"]
    return {"role": "recv", "socket_buffer_drops": socket_drops,
            "flows": sorted(flows.values(), key=lambda f: (f["src"], f["flow"]))}


def _udp_receive_buffer_errors() -> int:
    """Udp RcvbufErrors of this network namespace: datagrams the host dropped because a
    receiver was too slow, which is not loss in the fabric."""
    with open("/proc/net/snmp") as f:
        lines = [line.split() for line in f if line.startswith("Udp:")]
    header, values = lines[0], lines[1]
    return int(values[header.index("RcvbufErrors")])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m traffic.udp_flow", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="role", required=True)
    s = sub.add_parser("send")
    s.add_argument("--dst", required=True, type=lambda v: str(ipaddress.IPv4Address(v)))
    s.add_argument("--port", type=int, default=DEFAULT_PORT)
    s.add_argument("--dscp", type=int, default=0, choices=range(64), metavar="0..63")
    s.add_argument("--ecn", choices=sorted(ECN_CODEPOINTS), default="notect")
    s.add_argument("--size", type=int, default=1400, help="UDP payload bytes (>= 12)")
    s.add_argument("--rate", type=_positive, default=0.0,
                   help="payload bit/s; 0 = as fast as the socket accepts")
    s.add_argument("--duration", type=_positive, default=3.0)
    s.add_argument("--on", type=_positive, default=0.0, help="on/off bursts: seconds on")
    s.add_argument("--off", type=_positive, default=0.0, help="on/off bursts: seconds off")
    s.add_argument("--flow", type=int, default=0, help="flow id carried in each packet")
    r = sub.add_parser("recv")
    r.add_argument("--port", type=int, default=DEFAULT_PORT)
    r.add_argument("--duration", type=_positive, default=10.0)
    r.add_argument("--idle", type=_positive, default=0.0,
                   help="stop this long after the last packet (0: run the full duration)")
    args = parser.parse_args(argv)
    if args.role == "send" and not 12 <= args.size <= 65000:
        parser.error("--size must be 12..65000 bytes")
    result = send(args) if args.role == "send" else recv(args)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_endpoint(main))


# ---- driving flows on a fabric --------------------------------------------------------------

def run_flows(fabric, flows: list[dict], *, duration_s: float, drain_s: float = 3.0,
              port: int = DEFAULT_PORT) -> dict:
    """Start one receiver per destination host, then every sender of `flows` (dicts with
    src, dst, and optionally dscp, ecn, rate, size, on, off); wait; return
    {"senders": [...], "receivers": {host: {...}}}. Receivers stop `drain_s` after their
    last packet, so queues held by PFC are emptied into the count."""
    import subprocess

    receivers = {}
    for host in sorted({f["dst"] for f in flows}):
        receivers[host] = fabric.popen(
            host, [sys.executable, "-m", "traffic.udp_flow", "recv", "--port", str(port),
                   "--duration", str(duration_s + 60), "--idle", str(drain_s)],
            stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    senders = []
    for number, flow in enumerate(flows):
        argv = [sys.executable, "-m", "traffic.udp_flow", "send",
                "--dst", fabric.host_ips[flow["dst"]], "--port", str(port),
                "--dscp", str(flow.get("dscp", 0)), "--ecn", flow.get("ecn", "notect"),
                "--size", str(flow.get("size", 1400)), "--rate", str(flow.get("rate", 0)),
                "--duration", str(duration_s), "--flow", str(number),
                "--on", str(flow.get("on", 0)), "--off", str(flow.get("off", 0))]
        senders.append((flow, fabric.popen(flow["src"], argv, stdout=subprocess.PIPE,
                                            text=True)))
    sent = []
    for flow, proc in senders:
        out, _ = proc.communicate(timeout=duration_s + 60)
        sent.append({**json.loads(out), "src": flow["src"], "dst_host": flow["dst"]})
    received = {}
    for host, proc in receivers.items():
        out, _ = proc.communicate(timeout=duration_s + 120)
        received[host] = json.loads(out)
    return {"senders": sent, "receivers": received}

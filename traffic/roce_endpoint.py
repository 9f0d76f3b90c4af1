"""Live RoCEv2 RC endpoints, one process per host (run inside its namespace).

``send``: requester QPs writing messages (KV blocks) to responders; DCQCN reaction point and
pacing per QP; one CSV row per message (post and completion time), the rate trajectory, and a
JSON stats line at the end. ``recv``: responder QPs; ACKs (coalescing configurable), NAKs a
PSN gap, CNPs on CE at most once per QP per interval; stats JSON on SIGTERM/SIGINT or after
``--duration-s``.

    python -m traffic.roce_endpoint recv --bind 10.0.1.1 --qp 10.0.2.1:17:16 --out-dir D
    python -m traffic.roce_endpoint send --qp 10.0.1.1:16:17 --line-rate-bps 1e8 \\
        --messages 20 --message-bytes 262144 --out-dir D --name h2

A ``--qp`` is PEER_IP:LOCAL_QPN:REMOTE_QPN. Times are CLOCK_MONOTONIC, shared by every
namespace of the machine, so ``--start-at`` synchronizes senders in different hosts.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import select
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from topologies.process_lifetime import die_with_parent
from topologies.queues.tc_netlink import in_namespace
from traffic.cnp import PAPER_CNP_INTERVAL_S, CnpPacer
from traffic.dcqcn import PROFILES, DcqcnParams, make_reaction_point
from traffic.dequeue_ecn import DequeueMarker
from traffic.endpoint_exit import run_endpoint
from traffic.gobackn import Requester
from traffic.roce_fastpath import ControlFrames, DataFrames
from traffic.roce_io import (
    SocketTx,
    TxRing,
    open_rx,
    open_tx,
    recv,
    resolve_route,
    set_timer_slack_ns,
)
from traffic.roce_packets import CNP_DSCP, DATA_DSCP, Endpoints
from traffic.roce_requester import DEFAULT_MAX_BURST_S, Pacer, QpSender
from traffic.roce_responder import ResponderQp
from traffic.roce_wire import is_ack, is_cnp, is_nak, parse_aeth, parse_bth
from wire.ecn import is_ce

MESSAGE_FIELDS = ["sender", "qpn", "msg_id", "size_bytes", "posted_s", "completed_s", "fct_s"]
RATE_FIELDS = ["sender", "qpn", "t_s", "rate_bps", "target_bps", "alpha"]
SPIN_S = 30e-6  # waits shorter than this spin; longer ones sleep in select()


def dcqcn_params(args: argparse.Namespace) -> DcqcnParams:
    """``--dcqcn-params`` (a JSON object of DcqcnParams fields, already in emulated units:
    kvfabric.dilation.emulate_params), else ``--dcqcn-profile`` preset at the line rate as
    it is (no dilation)."""
    if args.dcqcn_params:
        return DcqcnParams(**json.loads(args.dcqcn_params))
    return DcqcnParams.preset(args.dcqcn_profile, args.line_rate_bps)


def parse_qp(text: str) -> tuple[str, int, int]:
    ip, local, remote = text.rsplit(":", 2)
    return ip, int(local, 0), int(remote, 0)


def entropy_port(qpn: int) -> int:
    """UDP source port of a QP: in the dynamic range, from the QPN (flow entropy for ECMP)."""
    return 49152 + (qpn * 2654435761) % 16384


class _Stop:
    def __init__(self) -> None:
        self.requested = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handler)

    def _handler(self, *_: object) -> None:
        self.requested = True


# ---- requester ---------------------------------------------------------------------------

def build_senders(args: argparse.Namespace, qp_texts: list[str]) -> tuple[list[QpSender],
                                                                       dict[str, TxRing]]:
    """The QPs of one host (in the namespace this thread is in), each with its TX ring."""
    senders = []
    tx_socks: dict[str, TxRing] = {}
    line = args.line_rate_bps
    for text in qp_texts:
        peer_ip, local_qpn, remote_qpn = parse_qp(text)
        route = resolve_route(peer_ip)
        ep = Endpoints(route.src_mac, route.next_hop_mac, route.src_ip, peer_ip,
                       entropy_port(local_qpn))
        frames = DataFrames(ep, dest_qp=remote_qpn, mtu_payload_bytes=args.mtu_payload,
                            dscp=args.dscp)
        req = Requester(args.mtu_payload, args.window, args.timeout_s)
        rp = None
        max_burst_s = args.max_burst_s
        if args.cc == "dcqcn":
            params = dcqcn_params(args)
            rp = make_reaction_point(params)
            max_burst_s = min(max_burst_s, params.rate_increase_timer_s)
        qp = QpSender(local_qpn, frames, req, rp, math.inf if args.unpaced else line,
                      Pacer(max_burst_s))
        qp.src_ip = route.src_ip
        if route.ifname not in tx_socks:
            tx_socks[route.ifname] = TxRing(open_tx(route.ifname), frames=4096)
        qp.ring = tx_socks[route.ifname]
        senders.append(qp)
    return senders, tx_socks


@dataclass
class SenderHost:
    """One sending host: its QPs and the sockets they use, opened in the host's namespace
    (a socket stays in the namespace it was created in, whichever one its process is in)."""

    name: str
    qps: list[QpSender]
    rings: dict[str, TxRing]
    rx: object

    @property
    def by_qpn(self) -> dict[int, QpSender]:
        return {qp.qpn: qp for qp in self.qps}


def open_host(args: argparse.Namespace, name: str, qp_texts: list[str],
              netns: str | None = None) -> SenderHost:
    with in_namespace(netns):
        qps, rings = build_senders(args, qp_texts)
        rx = open_rx(qps[0].src_ip)
    return SenderHost(name, qps, rings, rx)


def sender_hosts(args: argparse.Namespace) -> list[SenderHost]:
    """This host (``--name``/``--qp``), or every host of ``--hosts``: one process then drives
    the senders of many hosts on one clock, so that a busy 2-core machine does not have to
    schedule one process per host on time (see docs/roce.md, "What limits a low D")."""
    if args.hosts is None:
        if not args.qp or not args.name:
            raise SystemExit("give --qp and --name, or --hosts")
        return [open_host(args, args.name, args.qp)]
    die_with_parent()  # in the root namespace, where `kvfabric clean` would not find us
    if args.qp or args.schedule or args.posts:
        raise SystemExit("--hosts gives each host's QPs and takes --messages/--message-bytes;"
                         " it cannot be combined with --qp, --schedule or --posts")
    try:
        rows = json.loads(Path(args.hosts).read_text())
        hosts = [(str(r["name"]), [str(q) for q in r["qp"]], str(r["netns"])) for r in rows]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SystemExit(f"--hosts {args.hosts}: a JSON list of {{name, netns, qp: [...]}} "
                         f"is needed ({exc})") from exc
    return [open_host(args, name, qps, netns) for name, qps, netns in hosts]


def run_sender(args: argparse.Namespace) -> int:
    set_timer_slack_ns(1)
    stop = _Stop()
    hosts = sender_hosts(args)
    qps = [qp for host in hosts for qp in host.qps]
    by_qpn = [host.by_qpn for host in hosts]
    live = args.posts == "stdin"
    # (offset_s, host index, qpn, size_bytes), in time order
    plan = [] if live else sorted(
        ((offset, h, qpn, size) for h, host in enumerate(hosts)
         for offset, qpn, size in _schedule(args, host.qps)), key=lambda row: row[0])
    for h in range(len(hosts)):
        sizes = sorted({(qpn, size) for _, i, qpn, size in plan if i == h})
        for qpn, size in sizes[:64]:
            by_qpn[h][qpn].warm(size, by_qpn[h][qpn].ring)
    feed = _LivePosts(by_qpn[0]) if live else None
    start = feed.start_time() if feed is not None else _start_time(args)
    posts = [start + row[0] for row in plan]
    posted = 0
    deadline = start + args.max_duration_s
    rings = [ring for host in hosts for ring in host.rings.values()]
    rxs = [host.rx for host in hosts]
    while not stop.requested:
        now = time.monotonic()
        while posted < len(posts) and posts[posted] <= now:
            _, h, qpn, size = plan[posted]
            by_qpn[h][qpn].requester.post(size, posts[posted])
            posted += 1
        if feed is not None:
            feed.read(now)
        for h, rx in enumerate(rxs):
            while (item := recv(rx)) is not None:
                _on_control(item[0], by_qpn[h], time.monotonic())
        now = time.monotonic()
        for qp in qps:
            qp.send_due(now, qp.ring, args.batch)
        for ring in rings:
            ring.flush()
        if feed is not None:
            feed.report()
            if feed.ended and all(qp.requester.done for qp in qps):
                break
        elif posted == len(posts) and all(qp.requester.done for qp in qps):
            break
        if now > deadline:
            break
        events = [t for qp in qps if (t := qp.next_event_s()) is not None]
        if posted < len(posts):
            events.append(posts[posted])
        wait = (min(events) if events else now + 0.05) - time.monotonic()
        if wait > SPIN_S:
            fds = [*rxs, sys.stdin] if feed is not None and not feed.ended else rxs
            select.select(fds, [], [], min(wait, 0.05))
    end = time.monotonic()
    for host in hosts:
        _write_sender_outputs(args, host.name, host.qps, start, end,
                              sum(r.drops for r in host.rings.values()))
    if feed is not None:
        return 0 if feed.ended and all(qp.requester.done for qp in qps) else 1
    return 0 if all(qp.requester.done for qp in qps) and posted == len(posts) else 1


class _LivePosts:
    """``--posts stdin``: messages posted as a driver asks, and their completions reported.

    Each stdin line is ``QPN SIZE_BYTES TAG`` (post now) or ``end`` (no more posts); each
    completion is printed as a JSON line ``{"tag", "posted_s", "completed_s"}`` (CLOCK_MONOTONIC
    seconds), so a driver (the serving model) can react to what the fabric measured."""

    def __init__(self, by_qpn: dict[int, QpSender]) -> None:
        self.by_qpn = by_qpn
        self.ended = False
        self._buffer = b""
        self._tags: dict[tuple[int, int], str] = {}
        self._reported = {qpn: 0 for qpn in by_qpn}
        os.set_blocking(sys.stdin.fileno(), False)

    def start_time(self) -> float:
        """Say ready, then wait for the first line: the start time (CLOCK_MONOTONIC s)."""
        print(json.dumps({"ready": True}), flush=True)
        while b"\n" not in self._buffer:
            select.select([sys.stdin], [], [], 1.0)
            try:
                chunk = os.read(sys.stdin.fileno(), 65536)
            except BlockingIOError:
                continue
            if not chunk:
                raise SystemExit("no start time on stdin")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return float(line)

    def read(self, now: float) -> None:
        if self.ended:
            return
        try:
            chunk = os.read(sys.stdin.fileno(), 65536)
            if not chunk:
                self.ended = True
            self._buffer += chunk
        except BlockingIOError:
            pass
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            fields = line.decode().split()
            if fields == ["end"]:
                self.ended = True
            elif len(fields) == 3:
                qpn = int(fields[0], 0)
                msg_id = self.by_qpn[qpn].requester.post(int(fields[1]), now)
                self._tags[(qpn, msg_id)] = fields[2]

    def report(self) -> None:
        for qpn, qp in self.by_qpn.items():
            completions = qp.requester.completions
            for c in completions[self._reported[qpn]:]:
                print(json.dumps({"tag": self._tags.get((qpn, c.msg_id), ""),
                                  "posted_s": c.posted_s, "completed_s": c.completed_s}),
                      flush=True)
            self._reported[qpn] = len(completions)


def _schedule(args: argparse.Namespace, qps: list[QpSender]) -> list[tuple[float, int, int]]:
    """Messages to post: ``--messages`` of ``--message-bytes`` on every QP every
    ``--interval-s``, or the rows of ``--schedule`` (CSV: offset_s, qpn, size_bytes)."""
    if args.schedule:
        with open(args.schedule, newline="") as f:
            rows = [(float(r["offset_s"]), int(r["qpn"], 0), int(r["size_bytes"]))
                    for r in csv.DictReader(f)]
        known = {qp.qpn for qp in qps}
        unknown = {qpn for _, qpn, _ in rows} - known
        if unknown:
            raise SystemExit(f"--schedule names QPs {sorted(unknown)} not given with --qp")
        return sorted(rows)
    if args.messages is None or args.message_bytes is None:
        raise SystemExit("give --messages and --message-bytes, or --schedule")
    return [(k * args.interval_s, qp.qpn, args.message_bytes)
            for k in range(args.messages) for qp in qps]


def _start_time(args: argparse.Namespace) -> float:
    """--start-at T, or with --start-at stdin: say ready, then read T from stdin (a driver
    starting many senders gives them one start time once they have all started up)."""
    if args.start_at == "stdin":
        print(json.dumps({"ready": True}), flush=True)
        line = sys.stdin.readline()
        if not line:
            raise SystemExit("no start time on stdin")
        return float(line)
    return float(args.start_at) if args.start_at is not None else time.monotonic()


def _on_control(payload: bytes, by_qpn: dict[int, QpSender], now: float) -> None:
    bth = parse_bth(payload)
    if bth is None:
        return
    qp = by_qpn.get(bth.dest_qp)
    if qp is None:
        return
    if is_cnp(bth.opcode):
        qp.on_cnp(now)
    elif is_ack(bth.opcode):
        aeth = parse_aeth(payload)
        if aeth is None:
            return
        if is_nak(aeth[0]):
            qp.on_nak(bth.psn, now)
        else:
            qp.on_ack(bth.psn, now)


def _write_sender_outputs(args, name: str, qps: list[QpSender], start: float, end: float,
                          local_drops: int) -> None:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = args.time_zero if args.time_zero is not None else start
    with (out / f"roce_messages_{name}.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(MESSAGE_FIELDS)
        for qp in qps:
            for c in qp.requester.completions:
                writer.writerow([name, qp.qpn, c.msg_id, c.size_bytes,
                                 f"{c.posted_s - t0:.6f}", f"{c.completed_s - t0:.6f}",
                                 f"{c.completed_s - c.posted_s:.6f}"])
    with (out / f"roce_rates_{name}.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(RATE_FIELDS)
        for qp in qps:
            for s in qp.rate_samples:
                writer.writerow([name, qp.qpn, f"{s.t_s - t0:.6f}", f"{s.rate_bps:.0f}",
                                 f"{s.target_bps:.0f}", f"{s.alpha:.5f}"])
    stats = {"sender": name, "cc": args.cc, "duration_s": end - start,
             "local_drops": local_drops, "qps": []}
    for qp in qps:
        req, rp = qp.requester, qp.rp
        stats["qps"].append({
            "qpn": qp.qpn, "messages_posted": qp.requester.posted_messages,
            "messages_completed": len(req.completions), "sent_packets": req.sent_packets,
            "sent_bytes": qp.sent_bytes, "retransmitted_packets": req.retransmitted_packets,
            "timeouts": req.timeouts, "naks_received": req.naks_received,
            "cnps_received": rp.cnps_received if rp else 0,
            "rate_cuts": rp.rate_cuts if rp else 0,
            "final_rate_bps": qp.rate_bps if not math.isinf(qp.rate_bps) else None,
            "min_rate_bps": min((s.rate_bps for s in qp.rate_samples),
                                default=qp.rate_bps if not math.isinf(qp.rate_bps) else None),
            **_lag_stats(qp.pacer.lags_s),
        })
    (out / f"roce_sender_{name}.json").write_text(json.dumps(stats, indent=1))
    print(json.dumps(stats), flush=True)


def _lag_stats(lags_s: list[float]) -> dict[str, float | None]:
    """Pacing lag of one QP (s, emulated): how late frames left after their release time."""
    if not lags_s:
        return {"pacing_lag_p50_s": None, "pacing_lag_p99_s": None, "pacing_lag_max_s": None}
    ordered = sorted(lags_s)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"pacing_lag_p50_s": pick(0.5), "pacing_lag_p99_s": pick(0.99),
            "pacing_lag_max_s": ordered[-1]}


# ---- responder ---------------------------------------------------------------------------

def run_receiver(args: argparse.Namespace) -> int:
    stop = _Stop()
    rx = open_rx(args.bind)
    pacer = CnpPacer(args.cnp_interval_s)
    qps: dict[int, ResponderQp] = {}
    tx_socks: dict[str, object] = {}
    sends = {}
    peers = {}
    for text in args.qp:
        peer_ip, local_qpn, remote_qpn = parse_qp(text)
        route = resolve_route(peer_ip)
        ep = Endpoints(route.src_mac, route.next_hop_mac, route.src_ip, peer_ip,
                       entropy_port(local_qpn))
        frames = ControlFrames(ep, dest_qp=remote_qpn, dscp=args.dscp, cnp_dscp=args.cnp_dscp)
        qps[local_qpn] = ResponderQp(local_qpn, frames, pacer, args.ack_coalesce)
        peers[local_qpn] = peer_ip
        if route.ifname not in tx_socks:
            tx_socks[route.ifname] = SocketTx(open_tx(route.ifname))
        sends[local_qpn] = tx_socks[route.ifname].send
    dequeue = DequeueMarker(args.dequeue_ecn) if args.dequeue_ecn else None
    print(json.dumps({"ready": True}), flush=True)
    started = time.monotonic()
    unknown = 0
    while not stop.requested and time.monotonic() - started < args.duration_s:
        select.select([rx], [], [], 0.1)
        # One read of the downlink's queue per wake-up: the packets of a batch left it
        # within a few microseconds of each other.
        depth = dequeue.depth_bytes() if dequeue is not None else 0.0
        while (item := recv(rx)) is not None:
            payload, _src, tos = item
            bth = parse_bth(payload)
            qp = qps.get(bth.dest_qp) if bth is not None else None
            if qp is None:
                unknown += 1
                continue
            now = time.monotonic()
            send = sends[bth.dest_qp]
            ce = is_ce(tos) or (dequeue is not None and dequeue.mark(depth))
            for frame in qp.on_packet(bth, ce, len(payload), now):
                send(frame)  # a lost ACK is made good by the next one or the requester's timer
    _write_receiver_outputs(args, qps, peers, unknown, dequeue)
    return 0


def _write_receiver_outputs(args, qps: dict[int, ResponderQp], peers: dict[int, str],
                            unknown: int, dequeue: DequeueMarker | None = None) -> None:
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = args.time_zero or 0.0
    with (out / f"roce_arrivals_{args.name}.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["receiver", "qpn", "peer", "msn", "t_s"])
        for qpn, qp in qps.items():
            for k, t in enumerate(qp.stats.message_times_s, 1):
                writer.writerow([args.name, qpn, peers[qpn], k, f"{t - t0:.6f}"])
    stats = {"receiver": args.name, "unknown_qp_packets": unknown,
             "cnp_interval_s": args.cnp_interval_s, "ack_coalesce": args.ack_coalesce,
             "dequeue_marks": dequeue.marks if dequeue else None,
             "dequeue_decisions": dequeue.decisions if dequeue else None, "qps": []}
    for qpn, qp in qps.items():
        row = {k: v for k, v in vars(qp.stats).items() if k != "message_times_s"}
        stats["qps"].append({"qpn": qpn, "peer": peers[qpn], **row})
    (out / f"roce_receiver_{args.name}.json").write_text(json.dumps(stats, indent=1))
    print(json.dumps(stats), flush=True)


def _dscp(text: str) -> int:
    value = int(text)
    if not 0 <= value < 64:
        raise argparse.ArgumentTypeError(f"a DSCP is 0..63, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="role", required=True)
    p = sub.add_parser("send")
    p.add_argument("--qp", action="append", help="PEER_IP:LOCAL_QPN:REMOTE_QPN")
    p.add_argument("--name")
    p.add_argument("--hosts", default=None, metavar="FILE",
                   help="JSON list of {name, netns, qp: [...]}: drive the senders of these "
                   "hosts from this one process (as root, from any namespace) instead of "
                   "--name and --qp")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--messages", type=int, default=None)
    p.add_argument("--message-bytes", type=int, default=None)
    p.add_argument("--posts", choices=("stdin",), default=None,
                   help="post messages as stdin asks (QPN SIZE TAG lines, then 'end') and "
                   "print each completion as a JSON line")
    p.add_argument("--schedule", default=None,
                   help="CSV with offset_s,qpn,size_bytes rows instead of --messages")
    p.add_argument("--interval-s", type=float, default=0.0,
                   help="message k is posted at start + k x interval (0: all at once)")
    p.add_argument("--start-at", default=None,
                   help="CLOCK_MONOTONIC start time, or 'stdin': print ready, read it there")
    p.add_argument("--time-zero", type=float, default=None,
                   help="CLOCK_MONOTONIC origin of the times written (default: start)")
    p.add_argument("--line-rate-bps", type=float, required=True)
    p.add_argument("--unpaced", action="store_true", help="no pacing at all (benchmarks)")
    p.add_argument("--mtu-payload", type=int, default=1024)
    p.add_argument("--window", type=int, default=32, help="packets in flight per QP")
    p.add_argument("--timeout-s", type=float, default=0.02, help="transport timer")
    p.add_argument("--cc", choices=("dcqcn", "none"), default="dcqcn")
    p.add_argument("--dcqcn-profile", choices=PROFILES, default="paper")
    p.add_argument("--dcqcn-params", default=None,
                   help="JSON object of DcqcnParams fields in emulated units (overrides "
                   "--dcqcn-profile)")
    p.add_argument("--max-burst-s", type=float, default=DEFAULT_MAX_BURST_S)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--max-duration-s", type=float, default=300.0)
    p.add_argument("--dscp", type=_dscp, default=DATA_DSCP,
                   help="DSCP of the data frames: the fabric's lossless class")
    r = sub.add_parser("recv")
    r.add_argument("--bind", required=True)
    r.add_argument("--qp", action="append", required=True, help="PEER_IP:LOCAL_QPN:REMOTE_QPN")
    r.add_argument("--name", required=True)
    r.add_argument("--out-dir", required=True)
    r.add_argument("--ack-coalesce", type=int, default=1)
    r.add_argument("--cnp-interval-s", type=float, default=PAPER_CNP_INTERVAL_S)
    r.add_argument("--duration-s", type=float, default=3600.0)
    r.add_argument("--dequeue-ecn", default=None, metavar="VQ:ADJ:CFG:CLASS",
                   help="mark at dequeue: BPF map ids of the downlink marker and the class")
    r.add_argument("--time-zero", type=float, default=None)
    r.add_argument("--dscp", type=_dscp, default=DATA_DSCP,
                   help="DSCP of ACKs and NAKs: the QP's (lossless) class, as the data's")
    r.add_argument("--cnp-dscp", type=_dscp, default=CNP_DSCP, help="DSCP of CNPs")
    args = parser.parse_args(argv)
    return run_sender(args) if args.role == "send" else run_receiver(args)


if __name__ == "__main__":
    sys.exit(run_endpoint(main))

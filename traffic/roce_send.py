"""The ``send`` role of the RoCE endpoint: one host's requester QPs (or many hosts') on one clock.

Each QP is a :class:`traffic.roce_requester.QpSender` (go-back-N, DCQCN reaction point, pacing)
with the TX ring of its route's interface; the loop below posts the messages when they are due,
hands received ACKs, NAKs and CNPs to their QP, sends what the QPs release, and sleeps until the
next event. The messages are a schedule (``--messages`` or ``--schedule``) or what a driver
posts on stdin (:mod:`traffic.roce_driver_protocol`).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import select
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from fabriccore.netns import in_namespace
from topologies.process_lifetime import die_with_parent
from traffic.dcqcn import DcqcnParams, make_reaction_point
from traffic.endpoint_exit import StopOnSignal
from traffic.gobackn import Requester
from traffic.roce_driver_protocol import LivePosts, start_time
from traffic.roce_fastpath import DataFrames
from traffic.roce_io import TxRing, open_rx, open_tx, recv, resolve_route, set_timer_slack_ns
from traffic.roce_packets import Endpoints
from traffic.roce_qp_address import entropy_port, parse_qp
from traffic.roce_requester import Pacer, QpSender
from traffic.roce_results import write_sender_outputs
from traffic.roce_wire import is_ack, is_cnp, is_nak, parse_aeth, parse_bth

SPIN_S = 30e-6  # waits shorter than this spin; longer ones sleep in select()
CONTROL_BATCH = 64  # ACKs, NAKs and CNPs handled per host and loop pass


def dcqcn_params(args: argparse.Namespace) -> DcqcnParams:
    """``--dcqcn-params`` (a JSON object of DcqcnParams fields, already in emulated units:
    kvfabric.dilation.emulate_params), else ``--dcqcn-profile`` preset at the line rate as
    it is (no dilation)."""
    if args.dcqcn_params:
        return DcqcnParams(**json.loads(args.dcqcn_params))
    return DcqcnParams.preset(args.dcqcn_profile, args.line_rate_bps)


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
                      Pacer(max_burst_s, args.pacing_quantum_s))
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
    """Send until every message has completed (status 0); a signal, ``--max-duration-s``, or
    messages still outstanding when the driver ends, give status 1."""
    set_timer_slack_ns(1)
    stop = StopOnSignal()
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
    feed = LivePosts(by_qpn[0]) if live else None
    start = feed.start_time() if feed is not None else start_time(args)
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
            # At most a batch per pass: under a steady stream of ACKs the sends due must
            # not wait for the socket to empty.
            for _ in range(CONTROL_BATCH):
                if (item := recv(rx)) is None:
                    break
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
        write_sender_outputs(args, host.name, host.qps, start, end,
                             sum(r.drops for r in host.rings.values()))
    if feed is not None:
        return 0 if feed.ended and all(qp.requester.done for qp in qps) else 1
    return 0 if all(qp.requester.done for qp in qps) and posted == len(posts) else 1


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
        if bth.becn:  # an ECN echo on the ACK: a congestion notification, before the ACK
            qp.on_cnp(now)
        if is_nak(aeth[0]):
            qp.on_nak(bth.psn, now)
        else:
            qp.on_ack(bth.psn, now)


"""The ``recv`` role of the RoCE endpoint: responder QPs that ACK, NAK a PSN gap and send CNPs.

Each QP is a :class:`traffic.roce_responder.ResponderQp`; the CNPs of all QPs share one
:class:`traffic.cnp.CnpPacer` (at most one CNP per QP per ``--cnp-interval-s``). CE comes from
the IP header, or with ``--dequeue-ecn`` from the downlink's queue depth as the packet leaves
it. With ``--ecn-echo ack`` a CE packet is echoed on the ACK it triggers (BTH BECN) instead.
The receiver runs until SIGTERM/SIGINT or ``--duration-s``, then writes its outputs.
"""

from __future__ import annotations

import argparse
import json
import select
import time

from topologies.realtime import run_fifo
from traffic.cnp import CnpPacer
from traffic.dequeue_ecn import DepthCache, DequeueMarker
from traffic.endpoint_exit import StopOnSignal
from traffic.roce_fastpath import ControlFrames
from traffic.roce_io import SocketTx, open_rx, open_tx, recv, resolve_route
from traffic.roce_packets import Endpoints
from traffic.roce_qp_address import entropy_port, parse_qp
from traffic.roce_responder import ResponderQp
from traffic.roce_results import write_receiver_outputs
from traffic.roce_wire import parse_bth
from wire.ecn import is_ce

#: A real-time receiver that has not found its socket empty for this long sleeps as long.
MAX_BUSY_S = 0.2
#: Packets handled within this long of each other share one read of the downlink's depth (a
#: sixth of a 1500 B frame time at 100 Mbit/s; three map lookups cost a few microseconds).
DEPTH_REFRESH_S = 20e-6


def realtime(priority: int) -> str:
    """Run SCHED_FIFO at ``priority`` (0: leave the scheduling alone); what it runs under."""
    return (run_fifo(priority) if priority > 0 else None) or "default"


def run_receiver(args: argparse.Namespace) -> int:
    """Answer the QPs' packets until SIGTERM/SIGINT or ``--duration-s``, then write outputs."""
    stop = StopOnSignal()
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
        qps[local_qpn] = ResponderQp(local_qpn, frames, pacer, args.ack_coalesce,
                                     echo_on_ack=args.ecn_echo == "ack")
        peers[local_qpn] = peer_ip
        if route.ifname not in tx_socks:
            tx_socks[route.ifname] = SocketTx(open_tx(route.ifname))
        sends[local_qpn] = tx_socks[route.ifname].send
    dequeue = DequeueMarker(args.dequeue_ecn) if args.dequeue_ecn else None
    scheduling = realtime(args.rt_priority)
    print(json.dumps({"ready": True}), flush=True)
    started = time.monotonic()
    unknown = 0
    depth = DepthCache(dequeue.depth_bytes, DEPTH_REFRESH_S) if dequeue is not None else None
    while not stop.requested and time.monotonic() - started < args.duration_s:
        select.select([rx], [], [], 0.1)
        busy_from = time.monotonic()
        while (item := recv(rx)) is not None:
            payload, _src, tos = item
            bth = parse_bth(payload)
            qp = qps.get(bth.dest_qp) if bth is not None else None
            if qp is None:
                unknown += 1
                continue
            now = time.monotonic()
            send = sends[bth.dest_qp]
            ce = is_ce(tos) or (dequeue is not None and dequeue.mark(depth.depth(now)))
            for frame in qp.on_packet(bth, ce, len(payload), now):
                send(frame)  # a lost ACK is made good by the next one or the requester's timer
            if scheduling != "default" and now - busy_from > MAX_BUSY_S:
                # Real-time and never idle: yield as long as it ran, as the queue agent does,
                # so that the senders and the kernel keep at least half a core.
                time.sleep(now - busy_from)
                busy_from = time.monotonic()
    write_receiver_outputs(args, qps, peers, unknown, dequeue, scheduling)
    return 0


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

This module is the endpoint's command line; the roles are :mod:`traffic.roce_send` and
:mod:`traffic.roce_recv`.
"""

from __future__ import annotations

import argparse
import sys

from traffic.cnp import PAPER_CNP_INTERVAL_S
from traffic.dcqcn import PROFILES
from traffic.endpoint_exit import run_endpoint
from traffic.roce_packets import CNP_DSCP, DATA_DSCP
from traffic.roce_recv import run_receiver
from traffic.roce_requester import DEFAULT_MAX_BURST_S, DEFAULT_QUANTUM_S
from traffic.roce_send import run_sender


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
    p.add_argument("--pacing-quantum-s", type=float, default=DEFAULT_QUANTUM_S,
                   help="frames due within this long are sent together")
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
    r.add_argument("--ecn-echo", choices=("cnp", "ack"), default="cnp",
                   help="answer a CE packet with a CNP (paced by --cnp-interval-s), or with "
                   "the BECN bit on the ACK it triggers (HPCC's ns-3)")
    r.add_argument("--duration-s", type=float, default=3600.0)
    r.add_argument("--rt-priority", type=int, default=0,
                   help="SCHED_FIFO priority (0: normal scheduling); busy at most half a core")
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

"""The files a RoCE endpoint writes when its run ends, and the stats line it prints.

A sender writes ``roce_messages_NAME.csv`` (post and completion time of each message),
``roce_rates_NAME.csv`` (each QP's DCQCN rate trajectory) and ``roce_sender_NAME.json``; a
receiver writes ``roce_arrivals_NAME.csv`` and ``roce_receiver_NAME.json``. Times are seconds
from ``--time-zero`` (a sender's default: its start).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

from traffic.dequeue_ecn import DequeueMarker
from traffic.roce_requester import QpSender
from traffic.roce_responder import ResponderQp

MESSAGE_FIELDS = ["sender", "qpn", "msg_id", "size_bytes", "posted_s", "completed_s", "fct_s"]
RATE_FIELDS = ["sender", "qpn", "t_s", "rate_bps", "target_bps", "alpha"]


def write_sender_outputs(args: argparse.Namespace, name: str, qps: list[QpSender],
                         start: float, end: float, local_drops: int) -> None:
    """A sender host's messages, rates and stats (``local_drops``: frames its TX rings lost)."""
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


def write_receiver_outputs(args: argparse.Namespace, qps: dict[int, ResponderQp],
                           peers: dict[int, str], unknown: int,
                           dequeue: DequeueMarker | None = None,
                           scheduling: str = "default") -> None:
    """A receiver's message arrivals and stats (``unknown``: packets for no QP of its own)."""
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
             "ecn_echo": args.ecn_echo, "scheduling": scheduling,
             "dequeue_marks": dequeue.marks if dequeue else None,
             "dequeue_decisions": dequeue.decisions if dequeue else None, "qps": []}
    for qpn, qp in qps.items():
        row = {k: v for k, v in vars(qp.stats).items() if k != "message_times_s"}
        stats["qps"].append({"qpn": qpn, "peer": peers[qpn], **row})
    (out / f"roce_receiver_{args.name}.json").write_text(json.dumps(stats, indent=1))
    print(json.dumps(stats), flush=True)


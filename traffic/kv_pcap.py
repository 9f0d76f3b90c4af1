"""Write a KV transfer plan (traffic/kv_patterns.py) to a pcap of RoCEv2 RC WRITE packets.

Each transfer becomes one RDMA WRITE message on the QP of its (src, dst) pair, segmented into
MTU packets (FIRST/MIDDLE/LAST or ONLY, PSNs continuing per QP) and paced at ``--rate`` from
its start time; the destination's ACK follows each message's last packet. Frames are built
by Scapy once per shape (``roce_packets``) and patched per packet (``roce_fastpath``); Scapy's
pcap writer stores them with their timestamps. Nodes get addresses 10.0.<n/250>.<n%250+1>.

    python -m traffic.kv_pcap incast --senders 7 --size 256KiB --rounds 3 --out incast.pcap
    python -m traffic.kv_pcap kv-incast --prefill 4 --model llama-3-8b --tokens 512 --out k.pcap
    python -m traffic.kv_pcap trace --mooncake trace.jsonl --prefill 2 --decode 2 --out t.pcap
    python -m traffic.kv_pcap trace --mooncake trace.jsonl --busiest-s 10 --out busy.pcap

A bad trace or argument is one line on stderr naming the file and line, and exit status 2.
"""

from __future__ import annotations

import argparse
import heapq
import sys
from collections.abc import Sequence

from scapy.utils import RawPcapWriter

from fabriccore.units import parse_rate_bps, parse_size_bytes
from traffic import kv_patterns
from traffic.gobackn import Opcode
from traffic.kvcache import preset
from traffic.roce_fastpath import ControlFrames, DataFrames
from traffic.roce_packets import Endpoints

QPN_BASE = 0x1000


def node_address(index: int) -> tuple[str, str]:
    """(MAC, IPv4) of the node with this index."""
    return f"02:00:00:00:{index >> 8:02x}:{index & 0xFF:02x}", \
        f"10.0.{index // 250}.{index % 250 + 1}"


class _Qp:
    def __init__(self, src: int, dst: int, qpn: int, mtu: int) -> None:
        (src_mac, src_ip), (dst_mac, dst_ip) = node_address(src), node_address(dst)
        ep = Endpoints(src_mac, dst_mac, src_ip, dst_ip, 49152 + qpn % 16384)
        self.data = DataFrames(ep, dest_qp=qpn + 1, mtu_payload_bytes=mtu,
                               fill=b"KVCACHE!")
        self.control = ControlFrames(ep.reversed(), dest_qp=qpn)
        self.psn = 0
        self.msn = 0
        self.last_psn: dict[int, int] = {}


def packets(plan: Sequence[kv_patterns.Transfer], *, rate_bps: float, mtu: int,
            max_packets: int):
    """(time_s, frame) of every packet of ``plan``, in time order (an ACK is an event one
    frame time after its message's last packet)."""
    names: dict[str, int] = {}
    qps: dict[tuple[str, str], _Qp] = {}
    heap: list[tuple[float, int, int, int]] = []  # (time, order, transfer, packet index)
    for i, t in enumerate(plan):
        for node in (t.src, t.dst):
            names.setdefault(node, len(names))
        key = (t.src, t.dst)
        if key not in qps:
            qps[key] = _Qp(names[t.src], names[t.dst], QPN_BASE + 2 * len(qps), mtu)
        heapq.heappush(heap, (t.start_s, i, i, 0))
    emitted = 0
    while heap and emitted < max_packets:
        now, _, i, k = heapq.heappop(heap)
        t = plan[i]
        qp = qps[(t.src, t.dst)]
        n = max(1, -(-t.size_bytes // mtu))
        if k == n:  # the responder's ACK of the whole message
            qp.msn += 1
            yield now, qp.control.ack(qp.last_psn[i], qp.msn)
            emitted += 1
            continue
        if n == 1:
            frame = qp.data.frame(Opcode.ONLY, t.size_bytes, qp.psn, ack_req=True,
                                  dma_len=t.size_bytes)
        elif k == 0:
            frame = qp.data.frame(Opcode.FIRST, mtu, qp.psn, dma_len=t.size_bytes)
        elif k == n - 1:
            frame = qp.data.frame(Opcode.LAST, t.size_bytes - k * mtu, qp.psn, ack_req=True)
        else:
            frame = qp.data.frame(Opcode.MIDDLE, mtu, qp.psn)
        yield now, bytes(frame)
        emitted += 1
        qp.last_psn[i] = qp.psn
        qp.psn = (qp.psn + 1) & 0xFFFFFF
        wire_s = 8 * (len(frame) + 24) / rate_bps  # + preamble, FCS, inter-frame gap
        heapq.heappush(heap, (now + wire_s, i, i, k + 1))


def write_pcap(path: str, plan: Sequence[kv_patterns.Transfer], *, rate_bps: float,
               mtu: int = 1024, max_packets: int = 1_000_000) -> int:
    """Write ``plan`` to ``path``; returns the number of frames written."""
    count = 0
    with RawPcapWriter(path, linktype=1, nano=True) as pcap:
        pcap.write_header(None)  # write_packet alone would leave the file without one
        for ts, frame in packets(plan, rate_bps=rate_bps, mtu=mtu, max_packets=max_packets):
            sec, nsec = divmod(round(ts * 1e9), 1_000_000_000)
            pcap.write_packet(frame, sec=sec, usec=nsec)  # a nano pcap stores ns there
            count += 1
    return count


def _plan(args: argparse.Namespace) -> list[kv_patterns.Transfer]:
    if args.pattern == "incast":
        senders = [f"h{i + 2}" for i in range(args.senders)]
        return kv_patterns.incast(senders, "h1", parse_size_bytes(args.size), rounds=args.rounds,
                                  round_interval_s=args.interval_s, jitter_s=args.jitter_s,
                                  seed=args.seed)
    pool = kv_patterns.Pool.xpyd(args.prefill, args.decode)
    model = preset(args.model)
    if args.pattern == "kv-incast":
        return kv_patterns.kv_incast(pool, model, args.tokens, rounds=args.rounds,
                                     round_interval_s=args.interval_s, seed=args.seed)
    if args.pattern == "elephants":
        return kv_patterns.elephants(pool, parse_size_bytes(args.size), count=args.count,
                                     spread_s=args.interval_s, seed=args.seed)
    from traffic import traces
    from traffic.trace_window import Selection

    selection = Selection(start_s=args.start_s, duration_s=args.duration_s,
                          busiest_s=args.busiest_s, rate_rps=args.rate_rps,
                          rate_scale=args.rate_scale, time_scale=args.time_scale, seed=args.seed)
    trace = traces.read_trace(args.mooncake or args.azure,
                              "mooncake" if args.mooncake else "azure", selection=selection)
    requests = trace.requests[:args.requests]
    return kv_patterns.plan_kv_transfers(requests, pool, model,
                                         prefill_tokens_per_s=args.prefill_tokens_per_s,
                                         tp_size=args.tp_size, seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pattern", choices=("incast", "kv-incast", "elephants", "trace"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--rate", default="100Gbit", help="line rate of every sender")
    parser.add_argument("--mtu-payload", type=int, default=1024)
    parser.add_argument("--max-packets", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--senders", type=int, default=7)
    parser.add_argument("--size", default="256KiB")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--interval-s", type=float, default=0.0)
    parser.add_argument("--jitter-s", type=float, default=0.0)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--prefill", type=int, default=4)
    parser.add_argument("--decode", type=int, default=1)
    parser.add_argument("--model", default="llama-3-8b")
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--tp-size", type=int, default=1)
    parser.add_argument("--mooncake")
    parser.add_argument("--azure")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--prefill-tokens-per-s", type=float, default=10_000)
    window = parser.add_argument_group("trace selection (traffic/trace_window.py)")
    window.add_argument("--start-s", type=float, help="window start, s from the first request")
    window.add_argument("--duration-s", type=float, help="window length, s")
    window.add_argument("--busiest-s", type=float, help="the busiest window of this length")
    window.add_argument("--rate-rps", type=float, help="thin the window to this mean rate")
    window.add_argument("--rate-scale", type=float, default=1.0)
    window.add_argument("--time-scale", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.pattern == "trace" and not (args.mooncake or args.azure):
        parser.error("trace needs --mooncake FILE or --azure FILE")
    try:
        plan = _plan(args)
    except (ValueError, OSError) as exc:  # TraceError is a ValueError naming file and line
        print(f"kv_pcap: {exc}", file=sys.stderr)
        return 2
    n = write_pcap(args.out, plan, rate_bps=parse_rate_bps(args.rate), mtu=args.mtu_payload,
                   max_packets=args.max_packets)
    print(f"{args.out}: {len(plan)} transfers, {n} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())

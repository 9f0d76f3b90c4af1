"""RoCEv2 sender speed and pacing accuracy, on one private veth pair, one core, in one run.

1. Packets per second on one core (``taskset``) of: the live RoCE sender's hot path
   (``QpSender.send_due``: go-back-N runs, in-place PSN/ICRC, one reused AF_PACKET socket),
   ``tcpreplay --topspeed`` of a pcap holding the same frames, and Scapy ``sendp``.
2. Pacing: the RoCE sender paced at 5% .. 100% of a link rate; the achieved rate is measured
   on the send schedule (bytes sent / time from first to last send) and cross-checked with the
   peer's rx byte counter over the same span.

The peer interface has no address, so the peer's kernel drops each frame at once and costs
the sender's core as little as possible (the same for all three senders). Run as root:
``make bench`` or ``.venv/bin/python bench/roce_sender.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fabriccore.commands import netns_argv, run  # noqa: E402
from kvfabric.lock import fabric_lock  # noqa: E402
from traffic.roce_requester import DEFAULT_MAX_BURST_S  # noqa: E402

PREFIX = "kvfrb"
NS_TX, NS_RX = f"{PREFIX}-tx", f"{PREFIX}-rx"
SRC_IP, DST_IP = "10.252.0.1", "10.252.0.2"
MTU_PAYLOAD = 1024
CORE = "1"
PPS_PACKETS = 200_000
SCAPY_PACKETS = 2_000
PACING_FRACTIONS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0)
PACING_SECONDS = 1.0
SHORT_CATCH_UP_S = 1e-3


# ---- the worker (runs inside NS_TX, pinned) -------------------------------------------------

def _qp(src_mac: str, dst_mac: str, rate_bps: float, max_burst_s: float | None = None):
    from traffic.gobackn import Requester
    from traffic.roce_fastpath import DataFrames
    from traffic.roce_packets import Endpoints
    from traffic.roce_qp_address import entropy_port
    from traffic.roce_requester import DEFAULT_MAX_BURST_S, Pacer, QpSender

    ep = Endpoints(src_mac, dst_mac, SRC_IP, DST_IP, entropy_port(0x100))
    frames = DataFrames(ep, dest_qp=0x200, mtu_payload_bytes=MTU_PAYLOAD)
    # A window and timer that never bind: nothing answers, and we measure the send path only.
    pacer = Pacer(DEFAULT_MAX_BURST_S if max_burst_s is None else max_burst_s)
    return QpSender(0x100, frames, Requester(MTU_PAYLOAD, 1 << 30, 1e6), None, rate_bps, pacer)


def worker(args: argparse.Namespace) -> None:
    import select

    from traffic.roce_io import SocketTx, TxRing, open_tx, set_timer_slack_ns
    from traffic.roce_send import SPIN_S

    set_timer_slack_ns(1)
    tx = TxRing(open_tx("eth0"), frames=4096) if args.tx == "ring" else SocketTx(open_tx("eth0"))

    rate = math.inf if args.rate_bps <= 0 else args.rate_bps
    qp = _qp(args.src_mac, args.dst_mac, rate, args.max_burst_s)
    qp.requester.post(args.packets * MTU_PAYLOAD, time.monotonic())
    first = time.monotonic()
    last = first
    sent = 0
    while not qp.requester._next_seq >= qp.requester._end_seq:
        now = time.monotonic()
        n = qp.send_due(now, tx, args.batch)
        tx.flush()
        if n:
            sent += n
            last = now
            continue
        wait = qp.pacer.wake_s - time.monotonic()
        if wait > SPIN_S:
            select.select([], [], [], wait - SPIN_S / 2)
    end = time.monotonic()
    print(json.dumps({"packets": sent, "bytes": qp.sent_bytes, "first_s": first,
                      "last_s": last, "end_s": end, "drops": tx.drops}))


# ---- the harness ------------------------------------------------------------------------------

def _mac(ns: str) -> str:
    return run(["ip", "-n", ns, "-br", "link", "show", "eth0"]).stdout.split()[2]


def _rx_bytes(ns: str) -> int:
    out = run(["ip", "netns", "exec", ns, "cat", "/sys/class/net/eth0/statistics/rx_bytes"])
    return int(out.stdout)


def setup() -> tuple[str, str]:
    teardown()
    for ns in (NS_TX, NS_RX):
        run(["ip", "netns", "add", ns])
        run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
    run(["ip", "-n", NS_TX, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
         "netns", NS_RX])
    run(["ip", "-n", NS_TX, "addr", "add", f"{SRC_IP}/30", "dev", "eth0"])
    for ns in (NS_TX, NS_RX):
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    run(["ip", "-n", NS_TX, "link", "set", "eth0", "txqueuelen", "10000"])
    return _mac(NS_TX), _mac(NS_RX)


def teardown() -> None:
    for ns in (NS_TX, NS_RX):
        if Path("/run/netns", ns).exists():
            run(["ip", "netns", "del", ns], check=False)


def pinned(argv: list[str]) -> list[str]:
    return netns_argv(NS_TX, ["taskset", "-c", CORE, *argv])


def roce_run(macs: tuple[str, str], packets: int, rate_bps: float = 0,
             tx: str = "ring", max_burst_s: float | None = None) -> dict:
    argv = [sys.executable, str(Path(__file__).resolve()), "_worker", "--src-mac", macs[0],
            "--dst-mac", macs[1], "--packets", str(packets), "--rate-bps", str(rate_bps),
            "--tx", tx]
    if max_burst_s is not None:
        argv += ["--max-burst-s", str(max_burst_s)]
    before = _rx_bytes(NS_RX)
    out = run(pinned(argv), timeout_s=600).stdout
    result = json.loads(out)
    time.sleep(0.05)
    result["rx_bytes"] = _rx_bytes(NS_RX) - before
    return result


def sleep_stalls() -> dict[str, float]:
    """How late 150 us sleeps wake on the benchmark core, for one second."""
    code = ("import ctypes,json,select,time\n"
            "ctypes.CDLL(None).prctl(29, 1, 0, 0, 0)\n"
            "late=[]\nend=time.monotonic()+1\n"
            "while time.monotonic()<end:\n"
            "    t=time.monotonic(); select.select([],[],[],150e-6)\n"
            "    late.append(time.monotonic()-t-150e-6)\n"
            "print(json.dumps(late))\n")
    late = sorted(json.loads(run(pinned([sys.executable, "-c", code])).stdout))
    n = len(late)
    return {"p50_us": late[n // 2] * 1e6, "p99_us": late[int(n * 0.99)] * 1e6,
            "p999_us": late[int(n * 0.999)] * 1e6, "max_us": late[-1] * 1e6,
            "lost_pct": 100 * sum(x - 1e-3 for x in late if x > 1e-3)}


def write_pcap(macs: tuple[str, str], packets: int, path: Path) -> None:
    """The same frames the RoCE sender emits, via the same in-place renderer."""
    from scapy.utils import RawPcapWriter

    qp = _qp(*macs, math.inf)
    qp.requester.post(packets * MTU_PAYLOAD, 0.0)
    with RawPcapWriter(str(path), linktype=1) as pcap:
        class PcapTx:
            def send(self, frame: bytearray) -> None:
                pcap.write(bytes(frame))

        while qp.send_due(0.0, PcapTx(), 1024):
            pass


def tcpreplay_pps(pcap: Path) -> float:
    out = run(pinned(["tcpreplay", "--topspeed", "-K", "-i", "eth0", str(pcap)]),
              timeout_s=600).stdout
    match = re.search(r"Rated:.*?([\d.]+) pps", out)
    if not match:
        raise RuntimeError(f"cannot read tcpreplay's rate from:\n{out}")
    return float(match.group(1))


def scapy_pps(pcap: Path, packets: int) -> float:
    code = ("import sys,time\nfrom scapy.all import rdpcap, sendp\n"
            f"pkts = rdpcap({str(pcap)!r}, count={packets})\n"
            "t = time.perf_counter(); sendp(pkts, iface='eth0', verbose=False)\n"
            "print(len(pkts) / (time.perf_counter() - t))\n")
    return float(run(pinned([sys.executable, "-c", code]), timeout_s=600).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd")
    w = sub.add_parser("_worker")
    w.add_argument("--src-mac", required=True)
    w.add_argument("--dst-mac", required=True)
    w.add_argument("--packets", type=int, required=True)
    w.add_argument("--rate-bps", type=float, default=0)
    w.add_argument("--tx", choices=("ring", "socket"), default="ring")
    w.add_argument("--batch", type=int, default=1024)
    w.add_argument("--max-burst-s", type=float, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--link-rate", type=float, default=1e9,
                        help="link rate (bit/s) the pacing fractions refer to")
    args = parser.parse_args()
    if args.cmd == "_worker":
        worker(args)
        return
    with fabric_lock("bench/roce_sender.py"), tempfile.TemporaryDirectory(
            prefix="kvfr-bench-") as tmp:
        try:
            macs = setup()
            pcap = Path(tmp) / "roce.pcap"
            write_pcap(macs, PPS_PACKETS, pcap)
            frame_bytes = pcap.stat().st_size // PPS_PACKETS
            ring_name = "RoCE sender (TX ring)"
            sock_name = "RoCE sender (send() per frame)"
            rows = {ring_name: [], sock_name: [], "tcpreplay --topspeed": [], "Scapy sendp": []}
            for _ in range(args.repeat):
                for name, tx in ((ring_name, "ring"), (sock_name, "socket")):
                    r = roce_run(macs, PPS_PACKETS, tx=tx)
                    rows[name].append(r["packets"] / (r["end_s"] - r["first_s"]))
                rows["tcpreplay --topspeed"].append(tcpreplay_pps(pcap))
                rows["Scapy sendp"].append(scapy_pps(pcap, SCAPY_PACKETS))
            ref = statistics.median(rows["tcpreplay --topspeed"])
            print(f"send rate on one core (taskset -c {CORE}), {PPS_PACKETS} frames of "
                  f"~{frame_bytes} B, median of {args.repeat}")
            print(f"{'sender':38} {'pps':>10} {'vs tcpreplay':>13}   runs")
            for name, values in rows.items():
                med = statistics.median(values)
                print(f"{name:38} {med:10.0f} {med / ref:12.2f}x   "
                      + " ".join(f"{v:.0f}" for v in values))
            print(f"\npacing accuracy, link rate {args.link_rate / 1e6:.0f} Mbit/s, "
                  f"{PACING_SECONDS:g} s per point, median of {args.repeat}: achieved rate on "
                  "the send schedule (and on the wire: the peer's rx bytes over the same span)")
            stalls = sleep_stalls()
            print(f"  this core's sleeps (select 150 us, 1 s): late p50 {stalls['p50_us']:.0f} us,"
                  f" p99 {stalls['p99_us']:.0f} us, p99.9 {stalls['p999_us']:.0f} us, max "
                  f"{stalls['max_us']:.0f} us; {stalls['lost_pct']:.1f}% of the second lost in "
                  "stalls over 1 ms")
            print("  catch-up: how much lost time the pacer may make good after a late wake-up "
                  f"(default {DEFAULT_MAX_BURST_S * 1e3:g} ms, against {SHORT_CATCH_UP_S * 1e3:g}"
                  " ms)")
            print(f"{'target':>7} {'Mbit/s':>8} | {'default':>8} {'error':>7} {'wire err':>8} | "
                  f"{'1 ms':>8} {'error':>7} {'wire err':>8}")
            for fraction in PACING_FRACTIONS:
                target = fraction * args.link_rate
                packets = max(50, int(target * PACING_SECONDS / 8 / (MTU_PAYLOAD + 82)))
                cells = []
                for catch_up in (None, SHORT_CATCH_UP_S):
                    sched, wire = [], []
                    for _ in range(args.repeat):
                        r = roce_run(macs, packets, target, max_burst_s=catch_up)
                        # n frames released at 1/rate spacing span (n - 1) frame times.
                        span = r["last_s"] - r["first_s"]
                        per_frame = r["bytes"] / r["packets"]
                        sched.append(8 * (r["bytes"] - per_frame) / span)
                        wire.append(8 * (r["rx_bytes"] - per_frame) / span)
                    s, v = statistics.median(sched), statistics.median(wire)
                    cells.append(f"{s / 1e6:8.2f} {(s - target) / target:+7.1%} "
                                 f"{(v - target) / target:+8.1%}")
                print(f"{fraction:7.0%} {target / 1e6:8.1f} | " + " | ".join(cells))
        finally:
            teardown()


if __name__ == "__main__":
    main()

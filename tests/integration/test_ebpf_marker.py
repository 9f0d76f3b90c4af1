"""The eBPF ECN marker on a real HTB/bfifo queue: its virtual queue tracks the real backlog,
CE marks follow the RED ramp of the depth each packet found, and Not-ECT is never marked.

Two private namespaces kvfq-a -> kvfq-b joined by a veth; a's egress is HTB at 20 Mbit/s with
a bfifo leaf. UDP at DSCP 26 (ECT(0), ECT(1) and Not-ECT mixed) goes from a to b. For the
marking test a servo parks the real backlog at one target depth after another, reading it from
the qdisc stats before each burst, so every packet's real depth is known without the marker's
help; the receiver captures every frame with an AF_PACKET socket and reads its ECN bits.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from fabriccore.commands import run
from kvfabric.lock import fabric_lock
from topologies.queues.ebpf_marker import attach_marker
from topologies.queues.marker_handle import MarkerHandle
from topologies.queues.marker_layout import MAP_NAMES
from topologies.queues.spec import EcnRamp, PortQueues, TrafficClass

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces, tc and bpf(2)"),
    pytest.mark.skipif(shutil.which("clang") is None, reason="clang is needed to build the marker"),
    pytest.mark.skipif(shutil.which("tc") is None, reason="tc (iproute2) is not installed"),
]

NS_A, NS_B = "kvfq-a", "kvfq-b"   # not kvf-*: that prefix belongs to fabrics under test
IFACE = "veth0"
IP_A, IP_B = "10.250.0.1", "10.250.0.2"
UDP_PORT = 4791
RATE_BPS = 20_000_000
RATE_BYTES_PER_S = RATE_BPS / 8
PAYLOAD_BYTES = 1000
FRAME_BYTES = 14 + 20 + 8 + PAYLOAD_BYTES   # skb->len at egress, what HTB and the marker count
# HTB's default burst here is one 1600 B frame: a softirq running 0.3 ms late then loses
# tokens and the class drains below its rate. A few frames absorb that; the marker is told.
HTB_BURST_BYTES = 4 * FRAME_BYTES
RAMP = EcnRamp(kmin_bytes=30_000, kmax_bytes=90_000, pmax=0.5)
DSCP = 26
TOS_BY_SLOT = ((DSCP << 2) | 0b10, (DSCP << 2) | 0b10, (DSCP << 2) | 0b01, DSCP << 2)
MAGIC = b"KVFQ"
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
ETH_P_IP = 0x0800
CLONE_NEWNET = 0x40000000
TOLERANCE_FRACTION = 0.05

_libc = ctypes.CDLL(None, use_errno=True)


def queues_for(limit_bytes: int) -> PortQueues:
    return PortQueues(rate_bps=RATE_BPS, classes=(
        TrafficClass("roce", 3, {DSCP}, limit_bytes, lossless=True, ecn=RAMP),
        TrafficClass("lossy", 0, (), limit_bytes),
    ))


# ---- namespaces --------------------------------------------------------------------------------

@contextmanager
def in_netns(name: str):
    """Run the block with this thread in netns `name`; sockets made there stay there."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name}")
        yield
    finally:
        restored = _libc.setns(own, CLONE_NEWNET) == 0
        os.close(own)
        os.close(target)
        if not restored:  # never carry on in the wrong namespace
            raise OSError(ctypes.get_errno(), "setns back to our own namespace")


def _delete_namespaces() -> None:
    for ns in (NS_A, NS_B):
        if Path("/run/netns", ns).exists():
            run(["ip", "netns", "del", ns], check=False)


def _link_mac(ns: str) -> str:
    out = run(["ip", "-n", ns, "-br", "link", "show", IFACE]).stdout.split()
    return out[2]


def set_limit(limit_bytes: int) -> None:
    run(["tc", "-n", NS_A, "qdisc", "change", "dev", IFACE, "parent", "1:10", "handle", "10:",
         "bfifo", "limit", str(limit_bytes)])


@pytest.fixture(scope="module")
def fabric_lock_held():
    """Timing measurements and pins under /sys/fs/bpf/kvfabric: hold the machine's fabric lock
    so no fabric (or another test session) runs beside them."""
    with fabric_lock("pytest: eBPF marker testbed"):
        yield


@pytest.fixture(scope="module")
def testbed(fabric_lock_held):
    """kvfq-a --veth-- kvfq-b, HTB 20 Mbit/s with a bfifo leaf on a's egress, no ARP/IPv6
    chatter. Namespaces (and with them links and qdiscs) are deleted even on failure."""
    _delete_namespaces()  # leftovers of an interrupted run; these names are ours
    try:
        for ns in (NS_A, NS_B):
            run(["ip", "netns", "add", ns])
            for key in ("all", "default"):
                run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                     f"net.ipv6.conf.{key}.disable_ipv6=1"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "-n", NS_A, "link", "add", IFACE, "type", "veth", "peer", "name", IFACE,
             "netns", NS_B])
        for ns, ip in ((NS_A, IP_A), (NS_B, IP_B)):
            run(["ip", "-n", ns, "addr", "add", f"{ip}/30", "dev", IFACE])
            run(["ip", "-n", ns, "link", "set", IFACE, "up"])
        for ns, peer_ns, peer_ip in ((NS_A, NS_B, IP_B), (NS_B, NS_A, IP_A)):
            run(["ip", "-n", ns, "neigh", "replace", peer_ip, "lladdr", _link_mac(peer_ns),
                 "dev", IFACE, "nud", "permanent"])
        run(["tc", "-n", NS_A, "qdisc", "add", "dev", IFACE, "root", "handle", "1:", "htb",
             "default", "10"])
        run(["tc", "-n", NS_A, "class", "add", "dev", IFACE, "parent", "1:", "classid", "1:10",
             "htb", "rate", str(RATE_BPS), "ceil", str(RATE_BPS), "quantum", "3000",
             "burst", str(HTB_BURST_BYTES), "cburst", str(HTB_BURST_BYTES)])
        run(["tc", "-n", NS_A, "qdisc", "add", "dev", IFACE, "parent", "1:10", "handle", "10:",
             "bfifo", "limit", "100000"])
        yield
    finally:
        _delete_namespaces()


@pytest.fixture(scope="module")
def marker(testbed):
    """The marker on a's egress, compiled into a private cache; detached (filter, clsact,
    pins) even when a test fails."""
    with tempfile.TemporaryDirectory(prefix="kvfq-bpf-") as cache:
        handle = attach_marker(IFACE, NS_A, queues=queues_for(100_000), cache=Path(cache))
        try:
            yield handle
        finally:
            pin_dir = handle.pin_dir
            handle.detach()
            assert not pin_dir.exists(), "detach left pins behind"


@pytest.fixture(scope="module")
def qdisc_stats(testbed):
    """(backlog, bytes dequeued) of a's bfifo, through a netlink socket in kvfq-a (about 1 ms
    a read, against 5 ms for a `tc -s` process)."""
    from pyroute2 import IPRoute

    ipr = IPRoute(netns=NS_A)
    try:
        index = ipr.link_lookup(ifname=IFACE)[0]

        def read() -> tuple[int, int]:
            for msg in ipr.get_qdiscs(index=index):
                if msg.get_attr("TCA_KIND") == "bfifo":
                    stats = msg.get_attr("TCA_STATS2")
                    return (stats.get_attr("TCA_STATS_QUEUE")["backlog"],
                            stats.get_attr("TCA_STATS_BASIC")["bytes"])
            raise AssertionError("bfifo leaf not found")

        yield read
    finally:
        ipr.close()


# ---- traffic -----------------------------------------------------------------------------------

@dataclass
class Rx:
    run_id: int
    seq: int
    ecn: int
    csum_ok: bool


def _ip_csum_ok(header: bytes) -> bool:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


class Capture(threading.Thread):
    """AF_PACKET capture on b's veth: what arrived, with which ECN bits and checksum."""

    def __init__(self):
        super().__init__(daemon=True)
        with in_netns(NS_B):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
            self.sock.bind((IFACE, ETH_P_IP))
            # A UDP listener so b answers nothing (no ICMP port unreachable).
            self.sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sink.bind((IP_B, UDP_PORT))
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 32 << 20)
        self.sock.settimeout(0.1)
        self.records: list[Rx] = []
        self.stop = threading.Event()
        self.reading = threading.Event()
        self.reading.set()

    def run(self) -> None:
        while not self.stop.is_set():
            if not self.reading.wait(timeout=0.1):
                continue  # paused: frames wait in the socket buffer
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            rx = self._parse(data)
            if rx is not None:
                self.records.append(rx)

    @staticmethod
    def _parse(data: bytes) -> Rx | None:
        if len(data) < 14 + 20 + 8 + 24 or data[12:14] != b"\x08\x00" or data[23] != 17:
            return None
        ihl = (data[14] & 0x0F) * 4
        payload = data[14 + ihl + 8:]
        if payload[:4] != MAGIC:
            return None
        run_id, seq = struct.unpack_from("!II", payload, 4)
        return Rx(run_id, seq, data[15] & 0b11, _ip_csum_ok(data[14:14 + ihl]))

    @contextmanager
    def paused(self):
        """Stop parsing for a while, so the tracking test's sampler has the CPU."""
        self.reading.clear()
        try:
            yield
        finally:
            self.reading.set()

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=2)
        self.sock.close()
        self.sink.close()


class Sender:
    """UDP from a, one socket per TOS so no per-packet setsockopt; sequence slot picks TOS."""

    def __init__(self):
        self.socks = []
        with in_netns(NS_A):
            for tos in TOS_BY_SLOT:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
                # The queue holds our skbs; a default sndbuf would block us before it fills.
                s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 8 << 20)
                self.socks.append(s)
        self.pad = bytes(PAYLOAD_BYTES - 12)
        self.seq = 0

    def burst(self, run_id: int, count: int) -> list[tuple[int, float]]:
        """Send `count` frames back to back; return (sequence number, monotonic time just
        before its send) for each."""
        sent = []
        for _ in range(count):
            seq = self.seq
            sent.append((seq, time.monotonic()))
            self.socks[seq % 4].sendto(MAGIC + struct.pack("!II", run_id, seq) + self.pad,
                                       (IP_B, UDP_PORT))
            self.seq += 1
        return sent

    def send(self, run_id: int, segments: list[tuple[float, float]],
             stop: threading.Event) -> None:
        """Offer `load` x the HTB rate for `duration_s`, per (duration_s, load) segment, on an
        absolute schedule (late packets go out back to back rather than being skipped)."""
        for duration_s, load in segments:
            end = time.monotonic() + duration_s
            if load <= 0:
                stop.wait(duration_s)
                continue
            interval_s = FRAME_BYTES / (RATE_BYTES_PER_S * load)
            next_s = time.monotonic()
            while not stop.is_set():
                now = time.monotonic()
                if now >= end:
                    break
                if now < next_s:
                    time.sleep(next_s - now)
                    continue
                self.burst(run_id, 1)
                next_s += interval_s

    def close(self) -> None:
        for s in self.socks:
            s.close()


@pytest.fixture(scope="module")
def traffic(testbed):
    capture = Capture()
    sender = Sender()
    capture.start()
    try:
        yield sender, capture
    finally:
        sender.close()
        capture.close()


@pytest.fixture
def fast_gil():
    """Sampling reads the virtual queue, then the qdisc, then the virtual queue: keep the
    sender and capture threads from holding the GIL for the default 5 ms in between."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def wait_drained(qdisc_stats, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while qdisc_stats()[0] > 0:
        assert time.monotonic() < deadline, "queue did not drain"
        time.sleep(0.01)
    time.sleep(0.05)  # let the capture thread read the last frames


# ---- tests -------------------------------------------------------------------------------------

@dataclass
class Sample:
    t_s: float          # midpoint of the read window
    real_bytes: int     # bfifo backlog
    served_bytes: int   # bytes the bfifo has handed to HTB so far
    vq_before: float
    vq_after: float

    @property
    def error_bytes(self) -> float:
        """Real minus virtual. The backlog was read at some instant between the two virtual
        reads, so this is its distance from the interval they span (0 inside it)."""
        lo, hi = sorted((self.vq_before, self.vq_after))
        return self.real_bytes - min(max(self.real_bytes, lo), hi)


def _tracking_run(marker, sender, qdisc_stats, segments) -> list[Sample]:
    """Offer `segments` while sampling virtual and real queue every ~4 ms."""
    stop = threading.Event()
    thread = threading.Thread(target=sender.send, daemon=True, args=(2, segments, stop))
    samples: list[Sample] = []
    thread.start()
    try:
        while thread.is_alive():
            t0 = time.monotonic()
            before = marker.vq_depth_bytes("roce")
            real, served = qdisc_stats()
            after = marker.vq_depth_bytes("roce")
            samples.append(Sample((t0 + time.monotonic()) / 2, real, served, before, after))
            time.sleep(0.004)  # leave CPU to HTB's softirq on this 2-core host
    finally:
        stop.set()
        thread.join()
    wait_drained(qdisc_stats)
    return samples


def _htb_shortfall_bytes(samples: list[Sample]) -> list[float]:
    """Per sample, the service HTB owes and has not delivered since the queue last became
    backlogged: rate x time minus bytes dequeued, now minus its lowest point since.

    A shaper that keeps its rate stays within a frame or so of zero; on a host too busy to
    run its softirq on time it falls behind, and no model of a rate can follow that: the
    real queue then exceeds the virtual one by this much."""
    out = [0.0]
    trough = None
    for prev, cur in zip(samples, samples[1:]):
        if prev.real_bytes == 0 or cur.real_bytes == 0:
            trough = None
            out.append(0.0)
            continue
        owed = RATE_BYTES_PER_S * (cur.t_s - samples[0].t_s) - cur.served_bytes
        if trough is None:
            trough = RATE_BYTES_PER_S * (prev.t_s - samples[0].t_s) - prev.served_bytes
        trough = min(trough, owed)
        out.append(owed - trough)
    return out


def _excess_bytes(samples: list[Sample], shortfall: list[float]) -> list[float]:
    """Error not explained by HTB falling behind: virtual above real counts in full, real
    above virtual only beyond HTB's shortfall. Sorted."""
    return sorted(max(0.0, s.error_bytes - f, -s.error_bytes) for s, f in zip(samples, shortfall))


def _describe(samples: list[Sample], shortfall: list[float]) -> tuple[str, float, float]:
    errors = [s.error_bytes for s in samples]
    abs_err = sorted(abs(e) for e in errors)
    deep = sorted(abs(s.error_bytes) / s.real_bytes for s in samples if s.real_bytes > 20_000)
    excess = _excess_bytes(samples, shortfall)
    busy = [(a, b) for a, b in zip(samples, samples[1:]) if a.real_bytes and b.real_bytes]
    delivered = sum(b.served_bytes - a.served_bytes for a, b in busy) / max(
        1e-9, sum(b.t_s - a.t_s for a, b in busy)) / RATE_BYTES_PER_S
    text = (f"{len(samples)} samples, real backlog 0..{max(s.real_bytes for s in samples)} B, "
            f"HTB delivered {delivered:.3f} x rate while backlogged; error real - virtual: "
            f"mean {statistics.mean(errors):+.0f} B, median |e| {statistics.median(abs_err):.0f}"
            f" B, p95 |e| {_p95(abs_err):.0f} B, max |e| {abs_err[-1]:.0f} B, above 20 KB "
            f"relative median {statistics.median(deep):.1%} p95 {_p95(deep):.1%}; beyond HTB's "
            f"own shortfall (max {max(shortfall):.0f} B): p95 {_p95(excess):.0f} B, "
            f"max {excess[-1]:.0f} B")
    return text, _p95(excess), excess[-1]


def _p95(sorted_values: list[float]) -> float:
    return sorted_values[int(0.95 * (len(sorted_values) - 1))]


def test_virtual_queue_tracks_real_backlog(marker, traffic, qdisc_stats, fast_gil):
    """Left alone, the virtual queue follows the bfifo backlog near empty, filling at 15%
    overload, at the limit and draining, within a few frames of it beyond what HTB
    measurably failed to deliver. A try where HTB stalled for longer than ~8 ms of service
    (20 KB; the host was too busy, which no rate model can follow and `resync` exists to
    repair) is retried; if every try is spoiled the test skips and says so."""
    sender, capture = traffic
    limit = 150_000
    set_limit(limit)
    spoiled = []
    for _ in range(4):
        marker.configure(queues_for(limit), burst_bytes=HTB_BURST_BYTES)
        with capture.paused():
            samples = _tracking_run(marker, sender, qdisc_stats,
                                    [(0.3, 0.7), (0.6, 1.15), (0.25, 0.0)])
        shortfall = _htb_shortfall_bytes(samples)
        if max(shortfall) <= 20_000:
            break
        spoiled.append(round(max(shortfall)))
    else:
        pytest.skip(f"HTB fell {spoiled} B behind its rate in every try: host too busy")
    text, p95, worst = _describe(samples, shortfall)
    print(f"\nvq tracking, no resync, HTB burst {HTB_BURST_BYTES} B, {len(spoiled)} spoiled "
          f"tries {spoiled}: {text}")
    assert max(s.real_bytes for s in samples) > 0.8 * limit, "the real queue never filled"
    # HTB sends whole 1042 B frames against a continuous virtual drain, and after a late
    # softirq spends banked burst faster than the rate.
    # One late softirq on a loaded 2-core host can still put a single sample further off
    # (we saw 11.7 KB once): bound the 99th percentile, and the worst case loosely.
    excess = _excess_bytes(samples, shortfall)
    assert p95 <= 3 * FRAME_BYTES
    assert excess[int(0.99 * (len(excess) - 1))] <= HTB_BURST_BYTES + 4 * FRAME_BYTES
    assert worst <= 20_000


# Depths the servo parks the real queue at: below Kmin, four points up the ramp, above Kmax.
TARGETS = (20_000, 40_000, 55_000, 70_000, 85_000, 120_000)
RUN_S = 1.5
SERVO_LIMIT = 400_000   # deep enough that the servo never drops: drops would hit marks


def _servo_run(marker, sender, qdisc_stats, run_id: int, target: int,
               depth_at: dict[tuple[int, int], int], corrections: list[float]) -> list[int]:
    """Hold the real backlog just under `target` for RUN_S: read it, resync the virtual
    queue to it, top it up with a burst, repeat. A frame's real depth is the backlog read,
    plus the frames sent ahead of it in its burst, less what HTB drained since the read (a
    burst of 30 takes ~1 ms, 2.5 KB at 20 Mbit/s). Returns the backlog reads."""
    reads: list[int] = []
    read_at: list[float] = []

    def read() -> int:
        t0 = time.monotonic()
        reads.append(qdisc_stats()[0])
        read_at.append((t0 + time.monotonic()) / 2)
        return reads[-1]

    end = time.monotonic() + RUN_S
    while time.monotonic() < end:
        correction = marker.resync("roce", read)
        if reads[-1] > 0:
            corrections.append(correction)   # drift since the previous resync
        count = max(0, -(-(target - reads[-1]) // FRAME_BYTES))
        for k, (seq, sent_at) in enumerate(sender.burst(run_id, count)):
            drained = RATE_BYTES_PER_S * (sent_at - read_at[-1])
            depth_at[(run_id, seq)] = max(0, round(reads[-1] + k * FRAME_BYTES - drained))
        time.sleep(0.002)
    wait_drained(qdisc_stats)
    return reads


def test_marks_follow_ramp_and_spare_not_ect(marker, traffic, qdisc_stats):
    """Per bucket of real depth, the receiver's CE fraction among ECT frames is the ramp's
    mean probability +-0.05, and 0 below Kmin; Not-ECT frames are never marked; IP header
    checksums stay valid after marking; the program never marks below Kmin. The virtual queue
    is resynced to the real backlog before every burst, as a fabric's telemetry loop would."""
    sender, capture = traffic
    set_limit(SERVO_LIMIT)
    depth_at: dict[tuple[int, int], int] = {}
    corrections: list[float] = []
    bpf_hist: dict[int, tuple[int, int, int]] = {}   # bucket index -> (ect, marks, width B)
    bpf_marks = 0
    first_run = 10
    print("\nservo runs (real backlog read from the qdisc before each burst):")
    for i, target in enumerate(TARGETS):
        marker.configure(queues_for(SERVO_LIMIT), burst_bytes=HTB_BURST_BYTES,
                         hist_bucket_bytes=7_500)
        reads = _servo_run(marker, sender, qdisc_stats, first_run + i, target, depth_at,
                           corrections)
        counters = marker.read_counters()["roce"]
        bpf_marks += counters.marks
        for b, (ect, marks) in enumerate(zip(counters.hist_ect, counters.hist_marks)):
            old = bpf_hist.get(b, (0, 0, 0))
            bpf_hist[b] = (old[0] + ect, old[1] + marks, counters.hist_bucket_bytes)
        print(f"  target {target:>6} B: backlog read mean {statistics.mean(reads):8.0f} B, "
              f"virtual depth seen by frames mean {counters.mean_depth_bytes:8.0f} B, "
              f"program marked {counters.marks} of {counters.ect_packets} ECT")
        if target <= RAMP.kmin_bytes - 5 * FRAME_BYTES:
            assert counters.marks == 0, "the program marked below Kmin"

    records = [r for r in capture.records if r.run_id >= first_run]
    assert len(records) > 0.9 * len(depth_at), "the capture missed too many frames"
    assert all(r.csum_ok for r in records), "a marked frame left with a bad IP checksum"
    not_ect = [r for r in records if r.seq % 4 == 3]
    assert len(not_ect) > 1000 and all(r.ecn == 0 for r in not_ect), "a Not-ECT frame was marked"
    ect = [(depth_at[(r.run_id, r.seq)], r.ecn == 3) for r in records
           if r.seq % 4 != 3 and (r.run_id, r.seq) in depth_at]
    received_ce = sum(ce for _, ce in ect)
    assert abs(received_ce - bpf_marks) <= max(5, 0.01 * bpf_marks), \
        "no drops here, so every mark the program made should arrive"
    abs_corr = sorted(abs(c) for c in corrections)
    print(f"resync corrections (virtual-queue drift between reads, {len(abs_corr)} resyncs): "
          f"median {statistics.median(abs_corr):.0f} B, p95 {_p95(abs_corr):.0f} B, max "
          f"{abs_corr[-1]:.0f} B; marks made {bpf_marks}, CE received {received_ce}; "
          f"Not-ECT received {len(not_ect)}, none marked")

    print("receiver CE fraction by real depth:")
    edges = [0, RAMP.kmin_bytes, 45_000, 60_000, 75_000, RAMP.kmax_bytes, 10**9]
    for lo, hi in zip(edges, edges[1:]):
        bucket = [(d, ce) for d, ce in ect if lo <= d < hi]
        assert len(bucket) >= 300, f"too few frames at depth [{lo}, {hi})"
        observed = sum(ce for _, ce in bucket) / len(bucket)
        expected = statistics.mean(RAMP.probability(d) for d, _ in bucket)
        print(f"  [{lo:>6}, {min(hi, 999_999):>6}) B: n={len(bucket):5d} CE {observed:.3f} "
              f"ramp {expected:.3f} (diff {observed - expected:+.3f})")
        assert abs(observed - expected) <= TOLERANCE_FRACTION, (lo, hi, observed, expected)
    # Exact zero where the real queue was held below Kmin for a whole run. (Single frames
    # near Kmin can still be marked: HTB drains in bursts the virtual queue smooths over.)
    held_low = [r.ecn == 3 for r in records if r.run_id == first_run and r.seq % 4 != 3]
    assert TARGETS[0] < RAMP.kmin_bytes and held_low and not any(held_low), "marks below Kmin"

    print("program histogram (virtual depth the program saw):")
    for b in sorted(bpf_hist):
        ect_n, marks, width = bpf_hist[b]
        if ect_n:
            lo = b * width
            print(f"  [{lo:>6}, {lo + width:>6}) B: n={ect_n:5d} CE {marks / ect_n:.3f} "
                  f"ramp at middle {RAMP.probability(lo + width / 2):.3f}")
            if lo + width <= RAMP.kmin_bytes:
                assert marks == 0, "the program marked below Kmin"


def test_counter_read_latency(marker):
    """Reading counters is cheap enough for per-millisecond telemetry (bpf(2), no process)."""
    marker.configure(queues_for(100_000), burst_bytes=HTB_BURST_BYTES)
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n):
        marker.read_counters()
    per_read_us = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for _ in range(n):
        marker.vq_depth_bytes("roce")
    per_depth_us = (time.perf_counter() - t0) / n * 1e6
    print(f"\nread_counters (2 classes, per-CPU sum + histograms): {per_read_us:.1f} us; "
          f"vq_depth_bytes: {per_depth_us:.1f} us")
    assert per_read_us < 2000


def test_detach_removes_filter_and_pins(testbed):
    """A marker on b's port comes and goes without leaving a filter, clsact or pin."""
    with tempfile.TemporaryDirectory(prefix="kvfq-bpf-") as cache:
        handle = attach_marker(IFACE, NS_B, queues=queues_for(50_000), cache=Path(cache))
        pin_dir = handle.pin_dir
        assert sorted(p.name for p in pin_dir.iterdir()) == sorted(MAP_NAMES)
        # Telemetry in another process would open the pins; its detach leaves them alone.
        reader = MarkerHandle.open_pinned(IFACE, NS_B, queues_for(50_000))
        assert set(reader.read_counters()) == {"roce", "lossy"}
        reader.detach()
        assert sorted(p.name for p in pin_dir.iterdir()) == sorted(MAP_NAMES)
        handle.detach()
        handle.detach()  # idempotent
    assert not pin_dir.exists()
    out = run(["tc", "-n", NS_B, "filter", "show", "dev", IFACE, "egress"]).stdout
    assert out.strip() == ""
    qdiscs = run(["tc", "-n", NS_B, "qdisc", "show", "dev", IFACE]).stdout
    assert "clsact" not in qdiscs, "the clsact qdisc we added was left behind"


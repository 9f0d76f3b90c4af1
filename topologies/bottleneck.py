"""A private dumbbell for endpoint tests and benchmarks, outside any Fabric.

``<prefix>-s1 .. -sN`` (senders) -- ``<prefix>-r`` (router) -- ``<prefix>-d`` (receiver). The
router's port towards the receiver is the bottleneck: HTB at ``rate_bps`` over a bfifo of
``buffer_bytes``, optionally with the eBPF ECN marker on its egress (the default lossless
DSCP on an ECN ramp), which is how DCQCN is exercised before the fabric's own lossless/ECN
queues exist. Names use the caller's prefix (never ``kvf-``); everything is deleted by
:meth:`close`, also after a failed build. Run under ``kvfabric.lock.fabric_lock``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from fabriccore.commands import run
from topologies.queues.spec import EcnRamp, PortQueues, TrafficClass
from topologies.shaping import htb_burst_bytes
from wire.dscp import DEFAULT_DSCP_MAP, PRIORITY_DEFAULT
from wire.frames import frame_bytes


def _check_prefix(prefix: str) -> str:
    if not prefix.replace("-", "").isalnum() or prefix.startswith("kvf-") or len(prefix) > 8:
        raise ValueError(f"prefix must be short, alphanumeric and not kvf-*, got {prefix!r}")
    return prefix


class Bottleneck:
    def __init__(self, prefix: str, senders: int, rate_bps: int, buffer_bytes: int,
                 *, ecn: EcnRamp | None = None, mtu: int = 1500) -> None:
        self.prefix = _check_prefix(prefix)
        if not 1 <= senders <= 50:
            raise ValueError("senders must be 1..50")
        self.n = senders
        self.rate_bps = rate_bps
        self.buffer_bytes = buffer_bytes
        self.ecn = ecn
        self.mtu = mtu
        self.namespaces: list[str] = []
        self.marker = None
        self.sender_ips = [f"10.251.{i}.2" for i in range(1, senders + 1)]
        self.receiver_ip = "10.251.200.2"

    def sender_ns(self, i: int) -> str:
        return f"{self.prefix}-s{i + 1}"

    @property
    def router_ns(self) -> str:
        return f"{self.prefix}-r"

    @property
    def receiver_ns(self) -> str:
        return f"{self.prefix}-d"

    def __enter__(self) -> Bottleneck:
        try:
            self.build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build(self) -> None:
        self.close_leftovers()
        r, d = self.router_ns, self.receiver_ns
        for ns in [*(self.sender_ns(i) for i in range(self.n)), r, d]:
            run(["ip", "netns", "add", ns])
            self.namespaces.append(ns)
            run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                 "net.ipv6.conf.all.disable_ipv6=1"])
            run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(["ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for i in range(self.n):
            s = self.sender_ns(i)
            self._link(s, "eth0", f"10.251.{i + 1}.2/24", r, f"s{i + 1}", f"10.251.{i + 1}.1/24")
            run(["ip", "-n", s, "route", "add", "default", "via", f"10.251.{i + 1}.1"])
        self._link(d, "eth0", f"{self.receiver_ip}/24", r, "d0", "10.251.200.1/24")
        run(["ip", "-n", d, "route", "add", "default", "via", "10.251.200.1"])
        burst = htb_burst_bytes(self.rate_bps, self.mtu)
        run(["tc", "-n", r, "qdisc", "add", "dev", "d0", "root", "handle", "1:", "htb",
             "default", "10"])
        run(["tc", "-n", r, "class", "add", "dev", "d0", "parent", "1:", "classid", "1:10",
             "htb", "rate", str(self.rate_bps), "ceil", str(self.rate_bps),
             "burst", str(burst), "cburst", str(burst), "quantum", str(frame_bytes(self.mtu))])
        run(["tc", "-n", r, "qdisc", "add", "dev", "d0", "parent", "1:10", "handle", "10:",
             "bfifo", "limit", str(self.buffer_bytes)])
        if self.ecn is not None:
            from topologies.queues.ebpf_marker import attach_marker

            queues = PortQueues(rate_bps=self.rate_bps, classes=(
                TrafficClass("roce", DEFAULT_DSCP_MAP.lossless_priority,
                             {DEFAULT_DSCP_MAP.lossless_dscp}, self.buffer_bytes,
                             lossless=True, ecn=self.ecn),
                TrafficClass("other", PRIORITY_DEFAULT, (), self.buffer_bytes),
            ))
            self.marker = attach_marker("d0", r)
            self.marker.configure(queues, burst_bytes=burst)

    def _link(self, ns_a: str, if_a: str, addr_a: str, ns_b: str, if_b: str,
              addr_b: str) -> None:
        run(["ip", "-n", ns_a, "link", "add", if_a, "type", "veth", "peer", "name", if_b,
             "netns", ns_b])
        for ns, ifname, addr in ((ns_a, if_a, addr_a), (ns_b, if_b, addr_b)):
            run(["ip", "netns", "exec", ns, "ethtool", "-K", ifname, "tso", "off", "gso",
                 "off", "gro", "off"], check=False)
            run(["ip", "-n", ns, "link", "set", ifname, "mtu", str(self.mtu)])
            run(["ip", "-n", ns, "addr", "add", addr, "dev", ifname])
            run(["ip", "-n", ns, "link", "set", ifname, "up"])

    def bottleneck_stats(self) -> dict[str, int]:
        out = run(["tc", "-n", self.router_ns, "-s", "-j", "qdisc", "show", "dev", "d0"]).stdout
        import json

        for q in json.loads(out):
            if q.get("kind") == "bfifo":
                return {"sent_bytes": q["bytes"], "sent_packets": q["packets"],
                        "drops": q["drops"], "backlog_bytes": q.get("backlog", 0)}
        raise LookupError("bottleneck bfifo not found")

    def marker_counters(self):
        return self.marker.read_counters() if self.marker is not None else {}

    def close_leftovers(self) -> None:
        """Remove namespaces of ours left by an interrupted run (their names are ours)."""
        for path in Path("/run/netns").glob(f"{self.prefix}-*"):
            run(["ip", "netns", "del", path.name], check=False)

    def close(self) -> None:
        if self.marker is not None:
            with contextlib.suppress(Exception):
                self.marker.detach()
            self.marker = None
        for ns in reversed(self.namespaces):
            run(["ip", "netns", "del", ns], check=False)
        self.namespaces = []

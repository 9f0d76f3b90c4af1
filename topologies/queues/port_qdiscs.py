"""The qdisc tree of one multi-class port, and the handles telemetry and PFC address.

    1: htb (default: the lossy class)
    └── 1:1   rate = ceil = link rate
        ├── 1:10+i   one class per traffic class: strict classes prio 0 at the link rate
        │            (served first), weighted classes prio 1 at their share, ceil = link rate
        │   └── (20+i):  leaf: bfifo with the class buffer, or, for a class PFC can pause,
        │                tbf at the link rate (PFC sets its rate to PAUSED_RATE_BPS and back;
        │                TBF refills its bucket on change, so a pause takes effect at once
        │                and a resume has no token debt). With the kernel RED backend an ECN
        │                class has red as the leaf (or under the tbf, at (30+i):).

Packets are classified by DSCP by the eBPF program at clsact egress, which sets skb->priority
to the class's HTB classid (see MarkerHandle.configure); the same program marks ECN where the
kernel has no RED. Linux has no plug qdisc here (nor on many distribution kernels), hence TBF
for pause.
"""

from __future__ import annotations

from dataclasses import dataclass

from topologies.shaping import htb_burst_bytes
from wire.frames import frame_bytes

from .spec import PortQueues, TrafficClass

ROOT_HANDLE = 0x10000          # 1:
PARENT_CLASS = 0x10001         # 1:1
#: While paused, the TBF's rate: low enough that after the one frame its refilled bucket
#: allows, the next frame is seconds away (1514 B at 1 kbit/s = 12 s); the agent re-pauses
#: (PFC refresh) or resumes long before.
PAUSED_RATE_BPS = 1000


def class_handle(index: int) -> int:
    return 0x10010 + index


def leaf_handle(index: int) -> int:
    return (0x20 + index) << 16


def red_under_tbf_handle(index: int) -> int:
    return (0x30 + index) << 16


def handle_str(handle: int) -> str:
    return f"{handle >> 16:x}:{handle & 0xFFFF:x}"


@dataclass(frozen=True)
class LeafPlan:
    """What sits under one class: how PFC and ECN are realised for it."""

    index: int
    cls: TrafficClass
    pausable: bool          # tbf leaf that PFC can stop
    red: bool               # kernel red does the ECN marking

    @property
    def classid(self) -> int:
        return class_handle(self.index)

    @property
    def leaf(self) -> int:
        return leaf_handle(self.index)

    @property
    def fifo_handle(self) -> int:
        """The qdisc whose backlog is the class's queue."""
        return self.leaf


def plan_leaves(queues: PortQueues, *, pausable: bool, ecn_backend: str) -> list[LeafPlan]:
    """`pausable`: lossless classes get a TBF leaf (every port whose peer can send PAUSE);
    `ecn_backend`: "red" puts kernel RED under ECN classes, "ebpf"/"none" leave it to the
    clsact program or nobody."""
    if ecn_backend not in ("red", "ebpf", "none"):
        raise ValueError(f"ecn_backend must be red, ebpf or none, got {ecn_backend!r}")
    return [LeafPlan(i, cls, pausable and cls.lossless,
                     ecn_backend == "red" and cls.ecn is not None)
            for i, cls in enumerate(queues.classes)]


def tbf_burst_bytes(mtu: int) -> int:
    """Two full frames: TBF drops frames larger than its bucket, and a larger bucket would
    let more through right after a pause."""
    return 2 * frame_bytes(mtu)


def tbf_running_rate_bps(rate_bps: int) -> int:
    """The TBF's rate while not paused: far above the link, so it never shapes (HTB does)
    and its tiny bucket costs no throughput to timer latency."""
    return min(10 * rate_bps, 30_000_000_000)


def red_argv(ifname: str, parent: int, handle: int, cls: TrafficClass, rate_bps: int,
             mtu: int) -> list[str]:
    """tc argv for kernel RED on the class's ramp. RED averages the queue (EWMA); burst 1
    and the smallest averaging window make it follow the instantaneous depth closely, as
    the ramp in the spec (and DCQCN switch configurations) intend."""
    assert cls.ecn is not None
    avpkt = frame_bytes(mtu)
    kmin = max(cls.ecn.kmin_bytes, avpkt)
    kmax = max(cls.ecn.kmax_bytes, kmin + avpkt)
    return ["qdisc", "add", "dev", ifname, "parent", handle_str(parent),
            "handle", handle_str(handle), "red",
            "limit", str(max(cls.buffer_bytes, kmax + avpkt)),
            "min", str(kmin), "max", str(kmax), "avpkt", str(avpkt), "burst", "1",
            "probability", f"{cls.ecn.pmax:g}", "bandwidth", f"{rate_bps}bit", "ecn"]


def install(handle, ifname: str, queues: PortQueues, leaves: list[LeafPlan], mtu: int,
            run_tc=None, route_socket=None) -> None:
    """Build the tree on `ifname` with a pyroute2 handle in the port's namespace; TBF leaves
    go through `route_socket` (a tc_netlink.RouteSocket there: exact byte bursts) and kernel
    RED leaves through `run_tc(argv)` (tc in the same namespace)."""
    from topologies.netlink import link_index

    index = link_index(handle, ifname)
    rate = f"{queues.rate_bps}bit"
    burst = htb_burst_bytes(queues.rate_bps, mtu)
    default = queues.classes.index(queues.default_class)
    handle.tc("add", "htb", index=index, handle=ROOT_HANDLE,
              default=class_handle(default) & 0xFFFF)
    handle.tc("add-class", "htb", index=index, handle=PARENT_CLASS, parent=ROOT_HANDLE,
              rate=rate, ceil=rate, burst=burst, cburst=burst, quantum=frame_bytes(mtu))
    for leaf in leaves:
        cls = leaf.cls
        share = queues.share_bps(cls.name)
        handle.tc("add-class", "htb", index=index, handle=leaf.classid, parent=PARENT_CLASS,
                  rate=f"{share}bit", ceil=rate, burst=burst, cburst=burst,
                  quantum=frame_bytes(mtu), prio=0 if cls.strict else 1)
        if leaf.pausable:
            route_socket.change_tbf(index, leaf.leaf, leaf.classid,
                                    rate_bps=tbf_running_rate_bps(queues.rate_bps),
                                    burst_bytes=tbf_burst_bytes(mtu),
                                    limit_bytes=cls.buffer_bytes, create=True)
            if leaf.red:
                run_tc(red_argv(ifname, leaf.leaf | 1, red_under_tbf_handle(leaf.index), cls,
                                queues.rate_bps, mtu))
        elif leaf.red:
            run_tc(red_argv(ifname, leaf.classid, leaf.leaf, cls, queues.rate_bps, mtu))
        else:
            handle.tc("add", "bfifo", index=index, handle=leaf.leaf, parent=leaf.classid,
                      limit=cls.buffer_bytes)

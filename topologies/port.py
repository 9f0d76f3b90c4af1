"""One end of a link as the object that owns it: interface, queue plan, ECN marker, readings."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from . import netlink
from .queues import port_qdiscs
from .queues.agent_config import ClassConfig, PortConfig
from .shaping import egress_stats, htb_burst_bytes, shape_egress

#: Ports whose eBPF markers are attached at once (attach_markers).
MARKER_WORKERS = 2 * (os.cpu_count() or 1)


@dataclass(eq=False)
class Port:
    """One end of a link as kvfabric manages it: where its qdisc lives and what it faces.

    The fabric makes one Port per interface when it configures the interface, and the Port
    keeps what is installed on it from then on: ``queues`` and ``leaves`` once it has traffic
    classes, ``marker`` (the eBPF program's handle, None when there is none) once one is
    attached. Every reading of the port and its own part of the queue agent's configuration
    come from here. Ports compare by identity: each is one interface of one fabric."""
    node: str
    ifname: str          # the name inside its namespace (or in the root namespace)
    netns: str | None    # None: root namespace (an OVS switch port)
    peer_node: str
    rate_bps: int
    role: str            # the node's role: host, leaf, spine or switch
    mtu: int
    mac: str = ""
    ifindex: int = 0
    queues: Any = None        # PortQueues when the port has traffic classes
    leaves: tuple = ()        # port_qdiscs.LeafPlan per class
    marker: Any = field(default=None, repr=False)  # MarkerHandle when one is attached

    @classmethod
    def set_up(cls, handle, ifname: str, end, plan, netns: str | None, role: str) -> Port:
        """Set up the interface `ifname` of `end` (an addressing.InterfacePlan of `plan`, its
        LinkPlan), created under that name with its MTU and MAC (`handle`: a netlink socket
        in its namespace): its address, and up; and make its Port."""
        index = netlink.link_index(handle, ifname)
        netlink.configure_interface(handle, index, address=end.address)
        mac = end.mac if netns else _link_mac(handle, index)
        return cls(end.node, ifname, netns, end.peer_node, plan.rate_bps, role, plan.mtu,
                   mac=mac, ifindex=index)

    @property
    def port_id(self) -> str:
        return f"{self.node}:{self.ifname}"

    # -- what is installed on it ---------------------------------------------------------
    def shape_fifo(self, handle, buffer_bytes: int) -> None:
        """One FIFO of buffer_bytes drained at the port's rate (a fabric without classes)."""
        shape_egress(handle, self.ifname, rate_bps=self.rate_bps, buffer_bytes=buffer_bytes,
                     mtu=self.mtu)

    def install_classes(self, handle, queues, leaves: list) -> None:
        """The traffic classes `queues` under the leaves planned for them
        (port_qdiscs.plan_leaves); the port keeps both."""
        from .queues.bpf_tc import tc
        from .queues.tc_netlink import RouteSocket

        with RouteSocket(self.netns) as route:
            port_qdiscs.install(
                handle, self.ifname, queues, leaves, self.mtu, route_socket=route,
                run_tc=lambda argv: tc(self.netns, argv))
        self.queues, self.leaves = queues, tuple(leaves)

    def attach_marker(self, *, timeline: bool, ecn: bool) -> None:
        """The clsact program on the port's egress, configured for its classes: DSCP
        classification for HTB, telemetry bins when `timeline`, ECN marking when `ecn`."""
        from .queues.ebpf_marker import attach_marker

        # Kept before it is configured, so that a failure half-way is still released.
        self.marker = attach_marker(self.ifname, self.netns)
        self.marker.configure(
            self.queues, burst_bytes=htb_burst_bytes(self.rate_bps, self.mtu),
            skb_priority={leaf.cls.name: leaf.classid for leaf in self.leaves},
            timeline=timeline, ecn=ecn)

    def release_marker(self) -> None:
        """Close the marker's handle (the program goes with the interface); no error if it
        has none or it is already gone."""
        if self.marker is not None:
            with contextlib.suppress(Exception):
                self.marker.release()
            self.marker = None

    def agent_entry(self) -> PortConfig:
        """The port's own part of the queue agent's configuration."""
        classes = [ClassConfig(
            name=leaf.cls.name, index=leaf.index, priority=leaf.cls.priority,
            lossless=leaf.cls.lossless, pausable=leaf.pausable, classid=leaf.classid,
            leaf=leaf.leaf, limit_bytes=leaf.cls.buffer_bytes,
            xoff_bytes=leaf.cls.pfc.xoff_bytes if leaf.cls.pfc else 0,
            xon_bytes=leaf.cls.pfc.xon_bytes if leaf.cls.pfc else 0)
            for leaf in self.leaves]
        return PortConfig(
            port_id=self.port_id, node=self.node, role=self.role, netns=self.netns,
            ifname=self.ifname, ifindex=self.ifindex, mac=self.mac, peer=self.peer_node,
            rate_bps=self.rate_bps, mtu=self.mtu, classes=classes)

    # -- readings ----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Egress qdisc and interface counters."""
        with netlink.namespace(self.netns) as handle:
            row = {"node": self.node, "ifname": self.ifname, "peer": self.peer_node,
                   "rate_bps": self.rate_bps}
            row.update(egress_stats(handle, self.ifname, classes=bool(self.leaves)))
            row.update(netlink.interface_counters(handle, self.ifname))
        return row

    def queue_stats(self) -> list[dict]:
        """Per class: bytes and packets sent, drops, backlog (kernel counters)."""
        from .queues.tc_netlink import RouteSocket

        with RouteSocket(self.netns) as route:
            return self.class_rows(qdisc_stats(route))

    def class_rows(self, stats: Mapping[tuple[int, int], Any]) -> list[dict]:
        """queue_stats from a dump of the port's namespace (`qdisc_stats`), which a reader
        of many ports in one namespace takes once."""
        rows = []
        for leaf in self.leaves:
            s = stats.get((self.ifindex, leaf.leaf))
            if s is None:
                continue
            rows.append({"node": self.node, "ifname": self.ifname, "peer": self.peer_node,
                         "class": leaf.cls.name, "priority": leaf.cls.priority,
                         "sent_bytes": s.bytes, "sent_packets": s.packets, "drops": s.drops,
                         "backlog_bytes": s.backlog_bytes})
        return rows

    def marker_counters(self) -> list[dict]:
        """Per class, from the eBPF program: packets, ECT packets, CE marks, CE on arrival
        (and ``counters``, everything it counts); empty without a marker."""
        if self.marker is None:
            return []
        return [{"node": self.node, "ifname": self.ifname, "peer": self.peer_node,
                 "class": name, "packets": c.packets, "ect_packets": c.ect_packets,
                 "marks": c.marks, "ce_in": c.ce_in, "counters": c}
                for name, c in self.marker.read_counters().items()]


def attach_markers(ports: Sequence[Port], *, timeline: bool, ecn: bool) -> None:
    """Port.attach_marker on every port, a few at a time: each attachment waits mostly on
    its tc process (which loads the program), so a few at once keep every core busy. Every
    port is tried before the first failure is raised, so that each marker that was attached
    is on its port for teardown to release."""
    from .queues.bpf_tc import ensure_bpffs
    from .queues.ebpf_marker import compile_marker

    compile_marker()  # once, before the ports load it
    ensure_bpffs()

    def attach(port: Port) -> BaseException | None:
        try:
            port.attach_marker(timeline=timeline, ecn=ecn)
        except BaseException as exc:  # returned: the other ports finish first
            return exc
        return None

    with ThreadPoolExecutor(max_workers=MARKER_WORKERS) as pool:
        failures = [error for error in pool.map(attach, ports) if error is not None]
    if failures:
        raise failures[0]


def queue_stats_of(ports: Iterable[Port]) -> list[dict]:
    """Port.queue_stats of each port, the ports grouped by namespace (in the order each
    namespace first appears), with one qdisc dump per namespace."""
    from .queues.tc_netlink import RouteSocket

    by_ns: dict[str | None, list[Port]] = {}
    for port in ports:
        by_ns.setdefault(port.netns, []).append(port)
    rows = []
    for netns, in_ns in by_ns.items():
        with RouteSocket(netns) as route:
            stats = qdisc_stats(route)
        for port in in_ns:
            rows += port.class_rows(stats)
    return rows


def qdisc_stats(route) -> dict[tuple[int, int], Any]:
    """Every qdisc's counters in a RouteSocket's namespace, keyed by (ifindex, handle)."""
    return {(s.ifindex, s.handle): s for s in route.dump_qdiscs()}


def _link_mac(handle, index: int) -> str:
    (link,) = handle.get_links(index)
    return link.get_attr("IFLA_ADDRESS")

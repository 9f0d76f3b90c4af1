"""Fabric shapes as Mininet ``Topo`` classes: leaf-spine, the incast studies' star and dumbbell,
and a one-switch bottleneck.

Nodes carry a ``role`` (host, leaf or spine); links carry ``rate_bps`` and ``buffer_bytes``
plus Mininet's own ``bw`` (Mbit/s) and ``max_queue_size`` (packets), and switches carry
``stp`` for Mininet's learning bridges, so the same classes work with plain Mininet
(``mn --custom topologies/leafspine.py --topo leafspine,2,2,2 --switch ovsbr,datapath=user
--controller none``, see README.md) and with kvfabric's own netlink builder
(:mod:`topologies.fabric`).
"""

from __future__ import annotations

from mininet.topo import Topo

DEFAULT_HOST_RATE_BPS = 100_000_000
DEFAULT_FABRIC_RATE_BPS = 100_000_000
#: 64 KiB per port: about 44 full-size frames, the shallow buffers of the incast papers
#: (Vasudevan et al. 2009 used 32-64 KB per port) scaled to 100 Mbit/s links.
DEFAULT_BUFFER_BYTES = 64 * 1024
#: Ethernet's 1500: a RoCE MTU of 1024 fits with its headers; set 4200 or 9000 for 4096 RoCE MTU.
DEFAULT_MTU = 1500
#: A host NIC's transmit queue, in frames: Linux's default txqueuelen. Hosts back-pressure
#: their own TCP (TSQ) rather than drop, so switch ports, not NICs, are where loss happens.
HOST_QUEUE_FRAMES = 1000


class FabricTopo(Topo):
    """A Topo whose nodes have roles and whose links have rates and buffers."""

    def __init__(self, *args, host_rate_bps: int = DEFAULT_HOST_RATE_BPS,
                 fabric_rate_bps: int = DEFAULT_FABRIC_RATE_BPS,
                 buffer_bytes: int = DEFAULT_BUFFER_BYTES, mtu: int = DEFAULT_MTU,
                 stp: bool = True, **kwargs):
        self.stp = bool(stp)
        self.host_rate_bps = int(host_rate_bps)
        self.fabric_rate_bps = int(fabric_rate_bps)
        self.buffer_bytes = int(buffer_bytes)
        self.mtu = int(mtu)
        self.host_queue_frames = HOST_QUEUE_FRAMES
        super().__init__(*args, **kwargs)

    def add_host(self, name: str) -> str:
        return self.addHost(name, role="host")

    def add_router(self, name: str, role: str) -> str:
        # dpid keeps Mininet's OVS naming happy for names like "l12" or "s3".
        index = int("".join(c for c in name if c.isdigit()) or 0)
        dpid = f"{(1 if role == 'leaf' else 2):02x}{index:014x}"
        # stp: for Mininet's learning bridges (`mn --switch ovsbr` or `lxbr`), which would
        # flood a leaf-spine's loops forever; kvfabric's own builder routes and ignores it.
        return self.addSwitch(name, role=role, dpid=dpid, stp=self.stp)

    def add_link(self, a: str, b: str, rate_bps: int) -> None:
        self.addLink(a, b, rate_bps=rate_bps, buffer_bytes=self.buffer_bytes, mtu=self.mtu,
                     bw=rate_bps / 1e6, max_queue_size=max(1, self.buffer_bytes // self.mtu))

    def role(self, node: str) -> str:
        return self.nodeInfo(node)["role"]

    def routers(self) -> list[str]:
        return [n for n in self.nodes() if self.role(n) != "host"]

    def host_names(self) -> list[str]:
        return [n for n in self.nodes() if self.role(n) == "host"]

    def addLink(self, *args, **kwargs):  # noqa: N802 (Mininet's name)
        self._neighbors = None  # a new link: the adjacency is built again when next asked
        return super().addLink(*args, **kwargs)

    def neighbors(self, node: str) -> list[str]:
        """The nodes linked to node, in the order of the links (one entry per link)."""
        if getattr(self, "_neighbors", None) is None:
            adjacency: dict[str, list[str]] = {n: [] for n in self.nodes()}
            for a, b in self.links():
                adjacency[a].append(b)
                adjacency[b].append(a)
            self._neighbors = adjacency
        return list(self._neighbors.get(node, ()))

    def ingress_ports(self, node: str) -> int:
        """Ports that can feed one egress port of ``node`` (PFC headroom is sized for them)."""
        return max(1, len(self.neighbors(node)) - 1)

    def describe(self) -> dict:
        return {"class": type(self).__name__, "host_rate_bps": self.host_rate_bps,
                "fabric_rate_bps": self.fabric_rate_bps, "buffer_bytes": self.buffer_bytes,
                "mtu": self.mtu, "nodes": len(self.nodes()), "links": len(self.links())}


class LeafSpine(FabricTopo):
    """Two-tier Clos: every leaf connects to every spine; hosts hang off leaves.

    Hosts are numbered across the fabric (h1..hN, leaf by leaf) so that names stay short.
    """

    def build(self, spines: int = 2, leaves: int = 2, hosts_per_leaf: int = 2) -> None:
        spine_names = [self.add_router(f"s{i}", "spine") for i in range(1, spines + 1)]
        host_index = 0
        for leaf_number in range(1, leaves + 1):
            leaf = self.add_router(f"l{leaf_number}", "leaf")
            for _ in range(hosts_per_leaf):
                host_index += 1
                self.add_link(self.add_host(f"h{host_index}"), leaf, self.host_rate_bps)
            for spine in spine_names:
                self.add_link(leaf, spine, self.fabric_rate_bps)


class Star(FabricTopo):
    """One switch, N hosts: the single-bottleneck incast of Chen et al. (WREN 2009)."""

    def build(self, hosts: int = 4) -> None:
        leaf = self.add_router("l1", "leaf")
        for i in range(1, hosts + 1):
            self.add_link(self.add_host(f"h{i}"), leaf, self.host_rate_bps)


class Bottleneck(FabricTopo):
    """One switch, ``senders`` hosts h1..hN at the host rate and one receiver h(N+1) on a link
    at ``bottleneck_rate_bps`` (default: the host rate): the switch's port towards the
    receiver (``l1`` -> ``receiver``) is the one queue every sender shares."""

    def build(self, senders: int = 2, bottleneck_rate_bps: int | None = None) -> None:
        leaf = self.add_router("l1", "leaf")
        for i in range(1, senders + 1):
            self.add_link(self.add_host(f"h{i}"), leaf, self.host_rate_bps)
        self.receiver = self.add_host(f"h{senders + 1}")
        self.bottleneck_rate_bps = int(bottleneck_rate_bps or self.host_rate_bps)
        self.add_link(self.receiver, leaf, self.bottleneck_rate_bps)

    def describe(self) -> dict:
        return {**super().describe(), "bottleneck_rate_bps": self.bottleneck_rate_bps}


class Dumbbell(FabricTopo):
    """Two leaves joined by one fabric link, N hosts on each side."""

    def build(self, hosts_per_side: int = 2) -> None:
        left, right = self.add_router("l1", "leaf"), self.add_router("l2", "leaf")
        for i in range(1, 2 * hosts_per_side + 1):
            self.add_link(self.add_host(f"h{i}"), left if i <= hosts_per_side else right,
                          self.host_rate_bps)
        self.add_link(left, right, self.fabric_rate_bps)


#: For ``mn --custom topologies/leafspine.py --topo NAME,ARGS`` (Mininet reads ``topos``).
topos = {"leafspine": LeafSpine, "star": Star, "dumbbell": Dumbbell, "bottleneck": Bottleneck}

"""Fabrics described without building them, for the port tests: a topology, a mode, queue
settings and an ECN backend, and each port's interface facts as the fabric would find them
(name in its namespace, MAC, a made-up ifindex)."""

from __future__ import annotations

from topologies import openflow
from topologies.leafspine import LeafSpine, Star
from topologies.queues.settings import QueueSettings

#: name -> (topology factory, mode, queue settings, ECN backend)
CASES = {
    "leafspine-l3": (lambda: LeafSpine(spines=2, leaves=2, hosts_per_leaf=2,
                                       host_rate_bps=20_000_000, fabric_rate_bps=40_000_000),
                     "l3", QueueSettings(), "ebpf"),
    "leafspine-openflow": (lambda: LeafSpine(spines=1, leaves=2, hosts_per_leaf=3, mtu=4200),
                           "openflow", QueueSettings(pfc=False, telemetry=False,
                                                     kmin_bytes=20_000, kmax_bytes=80_000),
                           "red"),
    "star-l3": (lambda: Star(hosts=4, mtu=9000, host_rate_bps=10_000_000),
                "l3", QueueSettings(ecn=False, lossless_dscp=10), "ebpf"),
}

QUEUE_DIR = "/tmp/kvfabric-queues-test"


def interface_ends(fabric):
    """(plan, end, netns, ifname, mac, ifindex) per port, in the order the fabric builds
    them (namespace by namespace, the root namespace's OVS ports where they first occur)."""
    by_namespace: dict[str | None, list] = {}
    for plan in fabric.plans:
        for end in (plan.a, plan.b):
            netns = fabric.netns(end.node) if fabric._has_netns(end.node) else None
            ifname = end.ifname if netns else openflow.port_name(end.ifname)
            by_namespace.setdefault(netns, []).append((plan, end, netns, ifname))
    rows = []
    for ends in by_namespace.values():
        for number, (plan, end, netns, ifname) in enumerate(ends):
            rows.append((plan, end, netns, ifname, end.mac or f"02:00:00:00:ff:{number:02x}",
                         10 + number))
    return rows

"""L3 fabric mode: leaves and spines are Linux routers, each in its own namespace.

Each host has its own /24 behind its leaf; routers reach every host subnet over all
equal-cost next hops (kernel multipath routes), hashed on the L4 five-tuple
(``fib_multipath_hash_policy=1``) so that flows, not packets, are spread.
"""

from __future__ import annotations

from fabriccore.netns import write_sysctls

from .addressing import LinkPlan
from .leafspine import FabricTopo
from .netlink import add_route, namespace
from .paths import equal_cost_next_hops, hop_distances

ROUTER_SYSCTLS = {
    "net.ipv4.ip_forward": 1,
    "net.ipv4.fib_multipath_hash_policy": 1,
    "net.ipv4.conf.all.rp_filter": 0,
    "net.ipv4.conf.default.rp_filter": 0,
    "net.ipv6.conf.all.disable_ipv6": 1,
    "net.ipv6.conf.default.disable_ipv6": 1,
}
HOST_SYSCTLS = {
    "net.ipv6.conf.all.disable_ipv6": 1,
    "net.ipv6.conf.default.disable_ipv6": 1,
}


def peer_addresses(plans: list[LinkPlan]) -> dict[tuple[str, str], str]:
    """(node, neighbor) -> the neighbor's address on their shared link."""
    result = {}
    for plan in plans:
        result[(plan.a.node, plan.b.node)] = plan.b.address.split("/")[0]
        result[(plan.b.node, plan.a.node)] = plan.a.address.split("/")[0]
    return result


def host_subnets(topo: FabricTopo, plans: list[LinkPlan]) -> dict[str, str]:
    subnets = {}
    for plan in plans:
        for end in (plan.a, plan.b):
            if topo.role(end.node) == "host":
                ip = end.address.split("/")[0]
                subnets[end.node] = ".".join(ip.split(".")[:3]) + ".0/24"
    return subnets


def configure_routing(topo: FabricTopo, plans: list[LinkPlan], netns_of) -> None:
    """Sysctls, host default routes and router multipath routes."""
    peers = peer_addresses(plans)
    subnets = host_subnets(topo, plans)
    for host in topo.host_names():
        write_sysctls(netns_of(host), HOST_SYSCTLS)
    for router in topo.routers():
        write_sysctls(netns_of(router), ROUTER_SYSCTLS)
    for host in topo.host_names():
        (leaf,) = topo.neighbors(host)
        with namespace(netns_of(host)) as ns:
            add_route(ns, "default", [peers[(host, leaf)]])
    distances = {host: hop_distances(topo, host) for host in subnets}
    for router in topo.routers():
        with namespace(netns_of(router)) as ns:
            for host, subnet in subnets.items():
                hops = equal_cost_next_hops(topo, router, host, distances[host])
                if hops == [host]:
                    continue  # directly connected subnet
                add_route(ns, subnet, [peers[(router, hop)] for hop in hops])

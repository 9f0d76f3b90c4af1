"""Address plans for the two fabric modes, computed from the topology alone (pure).

L3 mode ("L3 to the host", as production RoCE fabrics are built): every host sits on its own
/24, ``10.<leaf>.<k>.0/24`` with the host at .2 and its leaf at .1; every router-to-router link
is a /31 from ``10.<200+n>.<m>.0``. OpenFlow mode: one flat 10.0.0.0/16 with static ARP.
MAC addresses are deterministic so that captures and flow tables read the same run to run.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .leafspine import FabricTopo

MAX_LEAVES = 199
MAX_HOSTS_PER_LEAF = 250
MAX_ROUTER_LINKS = 55 * 256


@dataclass(frozen=True)
class InterfacePlan:
    node: str
    ifname: str
    peer_node: str
    peer_ifname: str
    address: str | None  # "a.b.c.d/len", or None for switch ports
    mac: str


@dataclass(frozen=True)
class LinkPlan:
    a: InterfacePlan
    b: InterfacePlan
    rate_bps: int
    buffer_bytes: int
    mtu: int


def node_number(name: str) -> int:
    return int("".join(c for c in name if c.isdigit()))


def _mac(node: str, port: int, role: str) -> str:
    kind = {"host": 1, "leaf": 2, "spine": 3}[role]
    n = node_number(node)
    return f"02:4b:{kind:02x}:{(n >> 8) & 0xff:02x}:{n & 0xff:02x}:{port:02x}"


def ifname(node: str, port: int) -> str:
    return f"{node}-eth{port}"


def host_address_flat(host: str) -> ipaddress.IPv4Interface:
    n = node_number(host)
    return ipaddress.IPv4Interface(f"10.0.{n // 250}.{n % 250 + 1}/16")


def plan_links(topo: FabricTopo, mode: str) -> list[LinkPlan]:
    """One LinkPlan per topology link, with interface names, MACs and (L3 mode) addresses."""
    plans = []
    router_link_index = 0
    for a, b, info in topo.links(withInfo=True):
        port_a, port_b = info["port1"], info["port2"]
        addr_a = addr_b = None
        roles = (topo.role(a), topo.role(b))
        if mode == "l3":
            if "host" in roles:
                host, leaf = (a, b) if roles[0] == "host" else (b, a)
                net = _host_subnet(topo, host, leaf)
                host_addr, gw_addr = f"{net[2]}/24", f"{net[1]}/24"
                addr_a, addr_b = (host_addr, gw_addr) if host == a else (gw_addr, host_addr)
            else:
                if router_link_index >= MAX_ROUTER_LINKS:
                    raise ValueError("too many router-to-router links for the address plan")
                hi, lo = divmod(router_link_index, 128)
                base = ipaddress.IPv4Address(f"10.{200 + hi // 2}.{(hi % 2) * 128 + lo}.0")
                addr_a, addr_b = f"{base}/31", f"{base + 1}/31"
                router_link_index += 1
        elif mode == "openflow":
            if roles[0] == "host":
                addr_a = str(host_address_flat(a))
            if roles[1] == "host":
                addr_b = str(host_address_flat(b))
        else:
            raise ValueError(f"unknown fabric mode {mode!r}")
        plans.append(LinkPlan(
            a=InterfacePlan(a, ifname(a, port_a), b, ifname(b, port_b), addr_a,
                            _mac(a, port_a, roles[0])),
            b=InterfacePlan(b, ifname(b, port_b), a, ifname(a, port_a), addr_b,
                            _mac(b, port_b, roles[1])),
            rate_bps=info["rate_bps"], buffer_bytes=info["buffer_bytes"], mtu=info["mtu"]))
    return plans


def _host_subnet(topo: FabricTopo, host: str, leaf: str) -> ipaddress.IPv4Network:
    leaf_n = node_number(leaf)
    hosts_on_leaf = sorted((h for h in topo.neighbors(leaf) if topo.role(h) == "host"),
                           key=node_number)
    k = hosts_on_leaf.index(host) + 1
    if leaf_n > MAX_LEAVES or k > MAX_HOSTS_PER_LEAF:
        raise ValueError(f"address plan supports {MAX_LEAVES} leaves x {MAX_HOSTS_PER_LEAF} hosts")
    return ipaddress.IPv4Network(f"10.{leaf_n}.{k}.0/24")


def host_addresses(topo: FabricTopo, plans: list[LinkPlan]) -> dict[str, str]:
    """host name -> its IPv4 address (no prefix length)."""
    result = {}
    for plan in plans:
        for end in (plan.a, plan.b):
            if topo.role(end.node) == "host" and end.address:
                result[end.node] = end.address.split("/")[0]
    return result

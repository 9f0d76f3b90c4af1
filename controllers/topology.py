"""The fabric description a controller is handed: a JSON-ready dict built from the topology
and its address plan (switches, ports and what they face, hosts with IP/MAC/attachment,
tenants). The controller needs no discovery protocol and no access to kvfabric's objects."""

from __future__ import annotations

from typing import Any

from topologies.addressing import LinkPlan
from topologies.leafspine import FabricTopo
from topologies.openflow import dpid, port_name
from topologies.paths import switch_port


def describe(topo: FabricTopo, plans: list[LinkPlan], host_ips: dict[str, str],
             tenants: dict[str, list[str]] | None = None, tenant_meters: bool = False,
             meter_burst_bytes: int = 128 * 1024) -> dict[str, Any]:
    switches: dict[str, Any] = {
        s: {"dpid": int(dpid(topo, s), 16), "role": topo.role(s), "ports": []}
        for s in topo.routers()}
    hosts: dict[str, Any] = {}
    for plan in plans:
        for end, other in ((plan.a, plan.b), (plan.b, plan.a)):
            if end.node in switches:
                peer_is_switch = other.node in switches
                switches[end.node]["ports"].append({
                    "number": switch_port(topo, end.node, other.node),
                    "name": port_name(end.ifname), "peer": other.node,
                    "peer_port": switch_port(topo, other.node, end.node)
                    if peer_is_switch else 0,
                    "rate_bps": plan.rate_bps})
            else:
                hosts[end.node] = {"ip": host_ips[end.node], "mac": end.mac,
                                   "switch": other.node,
                                   "port": switch_port(topo, other.node, end.node)}
    return {"switches": switches, "hosts": hosts, "tenants": tenants or {},
            "tenant_meters": tenant_meters, "meter_burst_bytes": meter_burst_bytes}

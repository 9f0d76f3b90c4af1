"""The fabric as a controller sees it, and the rules it wants: pure, no OpenFlow library.

The runner hands the controller a JSON description (``describe`` in controllers/topology.py):
switches with their ports and what each faces, hosts with IP/MAC/attachment, tenants. This
module turns it into forwarding state over the links that are currently up:

* ``routes()``: per switch and host, the ports on shortest live paths (BFS per destination,
  so any two-tier shape works: leaf-spine, dumbbell, star), by the fabric's one ECMP rule
  (``topologies.paths``);
* ``allowed(src, dst)``: tenant reachability (default deny across tenants);
* ``meter_rate_bps(leaf)``: a tenant's share of a leaf's uplink capacity.

The OpenFlow app (controllers/fabric_app.py) only translates this into messages.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

from topologies.paths import bfs_hops, downhill


@dataclass(frozen=True)
class Host:
    name: str
    ip: str
    mac: str
    switch: str
    port: int


@dataclass(frozen=True)
class PortInfo:
    number: int
    name: str       # the OVS port (root-namespace veth), e.g. kvf-l1-eth3
    peer: str       # node on the other end
    peer_port: int  # its port number there (0 for hosts)
    rate_bps: int


@dataclass
class Switch:
    name: str
    dpid: int
    role: str
    ports: dict[int, PortInfo]


@dataclass
class FabricModel:
    switches: dict[str, Switch]
    hosts: dict[str, Host]
    tenants: dict[str, list[str]]
    tenant_meters: bool = False
    meter_burst_bytes: int = 128 * 1024
    down: set[tuple[str, int]] = field(default_factory=set)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FabricModel:
        switches = {}
        for name, sw in data["switches"].items():
            ports = {int(p["number"]): PortInfo(int(p["number"]), p["name"], p["peer"],
                                                int(p["peer_port"]), int(p["rate_bps"]))
                     for p in sw["ports"]}
            switches[name] = Switch(name, int(sw["dpid"]), sw["role"], ports)
        hosts = {name: Host(name, h["ip"], h["mac"], h["switch"], int(h["port"]))
                 for name, h in data["hosts"].items()}
        tenants = {t: sorted(members) for t, members in (data.get("tenants") or {}).items()}
        return cls(switches, hosts, tenants, bool(data.get("tenant_meters", False)),
                   int(data.get("meter_burst_bytes", 128 * 1024)))

    def switch_by_dpid(self, dpid: int) -> Switch | None:
        return next((s for s in self.switches.values() if s.dpid == dpid), None)

    def sorted_hosts(self) -> list[str]:
        return sorted(self.hosts, key=lambda h: int("".join(c for c in h if c.isdigit())))

    # -- links -------------------------------------------------------------------------
    def is_up(self, switch: str, port: int) -> bool:
        """A switch-to-switch link is up when neither end has reported it down."""
        info = self.switches[switch].ports[port]
        if (switch, port) in self.down:
            return False
        if info.peer in self.switches and (info.peer, info.peer_port) in self.down:
            return False
        return True

    def set_port(self, switch: str, port: int, up: bool) -> bool:
        """Record a port's state; True when that changed anything."""
        key = (switch, port)
        if up == (key not in self.down):
            return False
        if up:
            self.down.discard(key)
        else:
            self.down.add(key)
        return True

    def uplinks(self, switch: str) -> list[int]:
        """Ports of switch that face other switches."""
        return sorted(p for p, info in self.switches[switch].ports.items()
                      if info.peer in self.switches)

    def host_ports(self, switch: str) -> dict[int, str]:
        return {p: info.peer for p, info in self.switches[switch].ports.items()
                if info.peer in self.hosts}

    # -- routes ------------------------------------------------------------------------
    def _live_steps(self, switch: str) -> list[tuple[int, str]]:
        """(port, peer switch) of every live switch-to-switch link of switch."""
        return [(p, info.peer) for p, info in self.switches[switch].ports.items()
                if info.peer in self.switches and self.is_up(switch, p)]

    def _distances(self, host: str) -> dict[str, int]:
        """Switch hops to host over live links."""
        return bfs_hops(self.hosts[host].switch,
                        lambda node: [peer for _, peer in self._live_steps(node)])

    def routes(self) -> dict[str, dict[str, tuple[int, ...]]]:
        """switch -> destination host -> ports on shortest live paths (sorted; () if none)."""
        table: dict[str, dict[str, tuple[int, ...]]] = {s: {} for s in self.switches}
        for host in self.hosts:
            distance = self._distances(host)
            target = self.hosts[host]
            for name in self.switches:
                if name == target.switch:
                    table[name][host] = (target.port,)
                    continue
                table[name][host] = tuple(downhill(distance, name, self._live_steps(name)))
        return table

    # -- tenants -----------------------------------------------------------------------
    def tenant_of(self, host: str) -> str | None:
        if not self.tenants:
            return "all"
        return next((t for t, members in self.tenants.items() if host in members), None)

    def allowed(self, src: str, dst: str) -> bool:
        """Default deny across tenants; full reachability inside one. A host in no tenant
        (when tenants are given) reaches nobody."""
        if src == dst:
            return False
        tenant = self.tenant_of(src)
        return tenant is not None and tenant == self.tenant_of(dst)

    def tenant_ids(self) -> dict[str, int]:
        return {t: i + 1 for i, t in enumerate(sorted(self.tenants))}

    def meter_rate_bps(self, switch: str) -> int:
        """Each tenant's share of this switch's uplink capacity: an equal split."""
        capacity = sum(self.switches[switch].ports[p].rate_bps for p in self.uplinks(switch))
        return capacity // max(1, len(self.tenants))

    def is_remote(self, switch: str, host: str) -> bool:
        return self.hosts[host].switch != switch


def flow_hash(key: tuple) -> int:
    """Deterministic five-tuple hash for the adaptive app's initial placement."""
    return zlib.crc32(repr(key).encode())


def pick_initial_port(ports: tuple[int, ...], key: tuple) -> int:
    return ports[flow_hash(key) % len(ports)]

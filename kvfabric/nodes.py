"""Handles on a live fabric's nodes and ports, for scripts and the shell.

A `Node` runs commands in its namespace; a `PortView` is the fabric's own
`topologies.port.Port` (its fields are read through, never copied) plus live readings, which
the Port takes itself (`Port.stats`, `Port.queue_stats` from the kernel qdiscs,
`Port.marker_counters` from its eBPF marker) or the fabric's queue agent keeps (PFC events,
`Fabric.pfc_counters`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from typing import Any

from fabriccore.commands import CommandError


class Node:
    """One node of the fabric: ``name``, ``role`` (host, leaf, spine, switch), ``netns``
    (None for an OVS switch, which lives in the root namespace and runs no commands)."""

    def __init__(self, fabric, name: str):
        self._fabric = fabric
        self.name = name
        self.role = fabric.topo.role(name)
        self.netns = fabric.netns(name) if fabric._has_netns(name) else None

    def __repr__(self) -> str:
        return f"<Node {self.name} {self.role} {self.ip or ''}>".replace(" >", ">")

    @property
    def ip(self) -> str | None:
        """The host's IPv4 address (no prefix length); None for a switch."""
        return self._fabric.host_ips.get(self.name)

    @property
    def addresses(self) -> dict[str, str]:
        """Interface name -> "a.b.c.d/len" of every addressed interface of the node."""
        return {end.ifname: end.address for plan in self._fabric.plans
                for end in (plan.a, plan.b) if end.node == self.name and end.address}

    @property
    def ports(self) -> list[PortView]:
        """The node's ports, in interface order."""
        return [PortView(self._fabric, p) for p in self._fabric.ports if p.node == self.name]

    def _namespace(self) -> str:
        if self.netns is None:
            raise ValueError(f"{self.name} is an OVS switch in the root namespace: it runs no "
                             "commands (see its flows with ovs-ofctl)")
        return self.netns

    def run(self, argv: Sequence[str], timeout_s: float = 30.0,
            check: bool = False) -> subprocess.CompletedProcess:
        """Run argv in the node's namespace and wait; stdout/stderr as text."""
        self._namespace()
        return self._fabric.run(self.name, list(argv), timeout_s=timeout_s, check=check)

    def cmd(self, argv: Sequence[str], timeout_s: float = 30.0) -> str:
        """Run argv in the node and return its stdout; CommandError (argv, exit code,
        stderr) if it fails."""
        return self.run(argv, timeout_s=timeout_s, check=True).stdout

    def popen(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start argv in the node's namespace (its own session); teardown stops it."""
        return self._fabric.popen_at(self._namespace(), list(argv), **kwargs)


class PortView:
    """``net.port("l1", "h1")``: l1's end of the link to h1. Attribute reads (``node``,
    ``ifname``, ``netns``, ``peer_node``, ``rate_bps``, ``role``, ``mtu``, ``mac``,
    ``ifindex``, ``queues``, ``leaves``, ``marker``, ``port_id``, and the Port's own readings
    such as ``stats()``) go to the fabric's `Port`; the methods below read live counters."""

    def __init__(self, fabric, port):
        self._fabric = fabric
        self.port = port

    def __getattr__(self, name: str) -> Any:
        return getattr(self.port, name)

    def __repr__(self) -> str:
        return f"<Port {self.port.node}:{self.port.ifname} -> {self.port.peer_node}>"

    def counters(self) -> dict[str, Any]:
        """Everything below in one dict: interface and egress counters (``tx_bytes``,
        ``rx_bytes``, ``sent_bytes``, ``drops``, ``backlog_bytes``...), and ``classes``,
        ``ecn_marks``, ``pfc``."""
        return {**self.port.stats(), "classes": self.queue_depth(), "ecn_marks": self.ecn_marks(),
                "pfc": self.pauses()}

    def queue_depth(self) -> dict[str, int]:
        """Bytes queued now per traffic class (``{"fifo": n}`` on a port without classes)."""
        if not self.port.leaves:
            return {"fifo": self.port.stats()["backlog_bytes"]}
        return {row["class"]: row["backlog_bytes"] for row in self.port.queue_stats()}

    def ecn_marks(self) -> dict[str, int]:
        """CE marks the eBPF marker set on this port so far, per class (the eBPF ECN
        backend; with the kernel's red the qdisc marks and these stay 0); empty without
        classes."""
        return {row["class"]: row["marks"] for row in self.port.marker_counters()}

    def pauses(self) -> dict[int, dict[str, Any]]:
        """PFC per priority so far: frames sent and received, pauses expired, and ``paused``
        (this port's transmitter is paused now). Empty without PFC or before any event."""
        return {row["priority"]: {k: v for k, v in row.items()
                                  if k not in ("node", "ifname", "peer", "priority")}
                for row in self._fabric.pfc_counters([self.port])}


def resolve_hosts(argv: Sequence[str], host_ips: dict[str, str]) -> list[str]:
    """argv with every word that is exactly a host name replaced by its address, as
    Mininet's CLI does (``h1 ping h2``)."""
    return [host_ips.get(word, word) for word in argv]


__all__ = ["CommandError", "Node", "PortView", "resolve_hosts"]

"""Build and tear down a fabric from a FabricTopo, in either mode, over netlink.

Every node that needs one gets a named namespace ``kvf-<node>``; every root-namespace
interface and OVS bridge starts with ``kvf-``; processes started in hosts are tracked. So
teardown, and ``kvfabric clean`` after a crash, remove exactly what kvfabric made.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from kvfabric.naming import netns_name
from kvfabric.shell import netns_argv, run, run_parallel

from . import l3, netlink, openflow
from .addressing import LinkPlan, host_addresses, plan_links
from .leafspine import FabricTopo
from .shaping import egress_stats, shape_egress

MODES = ("l3", "openflow")


@dataclass
class BuildTimings:
    phases_s: dict[str, float] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return sum(self.phases_s.values())


@dataclass(frozen=True)
class Port:
    """One end of a link as kvfabric manages it: where its qdisc lives and what it faces."""
    node: str
    ifname: str          # the name inside its namespace (or in the root namespace)
    netns: str | None    # None: root namespace (an OVS switch port)
    peer_node: str
    rate_bps: int


class Fabric:
    """A running fabric. Use as a context manager so teardown always runs."""

    def __init__(self, topo: FabricTopo, mode: str = "l3", ovs_datapath: str = "auto",
                 static_rules: bool = True):
        if mode not in MODES:
            raise ValueError(f"fabric mode must be one of {MODES}, got {mode!r}")
        self.topo = topo
        self.mode = mode
        #: openflow mode: install kvfabric's static rules (False: a controller will).
        self.static_rules = static_rules
        self.ovs_datapath = (openflow.detect_ovs_datapath() if ovs_datapath == "auto"
                             else ovs_datapath)
        self.plans: list[LinkPlan] = plan_links(topo, mode)
        self.host_ips = host_addresses(topo, self.plans)
        self.namespaces: list[str] = []
        self.bridges: list[str] = []
        self.root_interfaces: list[str] = []
        self.processes: list[subprocess.Popen] = []
        self.build_timings = BuildTimings()
        self.ports: list[Port] = []

    # -- names -------------------------------------------------------------------------
    def netns(self, node: str) -> str:
        return netns_name(node)

    def _has_netns(self, node: str) -> bool:
        return self.mode == "l3" or self.topo.role(node) == "host"

    def hosts(self) -> list[str]:
        return self.topo.host_names()

    # -- build -------------------------------------------------------------------------
    def build(self) -> BuildTimings:
        try:
            self._phase("namespaces", self._create_namespaces)
            self._phase("links", self._create_links)
            self._phase("addresses+qdiscs", self._configure_ports)
            if self.mode == "l3":
                self._phase("routes", lambda: l3.configure_routing(
                    self.topo, self.plans, self.netns))
            else:
                self._phase("ovs", self._configure_ovs)
        except BaseException:
            self.teardown()
            raise
        return self.build_timings

    def _phase(self, name: str, func) -> None:
        start = time.perf_counter()
        func()
        self.build_timings.phases_s[name] = time.perf_counter() - start

    def _create_namespaces(self) -> None:
        for node in self.topo.nodes():
            if self._has_netns(node):
                name = self.netns(node)
                self.namespaces.append(name)
                netlink.create_namespace(name)

    def _root_name(self, number: int, side: str, end) -> str:
        """Name of a link end in the root namespace: its final name for OVS ports, a
        temporary one for ends that move into a node's namespace."""
        if self._has_netns(end.node):
            return f"kvf-t{number}{side}"
        return openflow.port_name(end.ifname)

    def _create_links(self) -> None:
        tx_checksum_off = self.mode == "openflow"
        offloads = []
        with netlink.namespace(None) as ipr:
            for number, plan in enumerate(self.plans):
                name_a = self._root_name(number, "a", plan.a)
                name_b = self._root_name(number, "b", plan.b)
                # Record before creating so that a failure half-way is still torn down.
                self.root_interfaces += [name_a, name_b]
                netlink.create_veth(name_a, name_b)
                offloads += [netlink.offload_argv(n, tx_checksum=tx_checksum_off)
                             for n in (name_a, name_b)]
            # Offloads are set while every end is still in the root namespace: one ethtool
            # per interface, run concurrently, and no `ip netns exec` needed.
            run_parallel(offloads)
            for number, plan in enumerate(self.plans):
                for side, end in (("a", plan.a), ("b", plan.b)):
                    root_name = self._root_name(number, side, end)
                    if self._has_netns(end.node):
                        ipr.link("set", index=netlink.link_index(ipr, root_name),
                                 net_ns_fd=self.netns(end.node))
                        self.root_interfaces.remove(root_name)

    def _configure_ports(self) -> None:
        """One netlink socket per namespace (opening one forks a helper in pyroute2)."""
        by_namespace: dict[str | None, list] = {}
        for number, plan in enumerate(self.plans):
            for side, end in (("a", plan.a), ("b", plan.b)):
                ns_name = self.netns(end.node) if self._has_netns(end.node) else None
                by_namespace.setdefault(ns_name, []).append(
                    (self._root_name(number, side, end), end, plan))
        for ns_name, ends in by_namespace.items():
            with netlink.namespace(ns_name) as handle:
                if ns_name:
                    netlink.bring_up_loopback(handle)
                for current_name, end, plan in ends:
                    ifname = end.ifname if ns_name else current_name
                    if ns_name:
                        handle.link("set", index=netlink.link_index(handle, current_name),
                                    ifname=ifname)
                    netlink.configure_interface(
                        handle, ifname, mac=end.mac if ns_name else None, mtu=plan.mtu,
                        address=end.address)
                    buffer_bytes = (self.topo.host_queue_bytes
                                    if self.topo.role(end.node) == "host" else plan.buffer_bytes)
                    shape_egress(handle, ifname, rate_bps=plan.rate_bps,
                                 buffer_bytes=buffer_bytes, mtu=plan.mtu)
                    self.ports.append(Port(end.node, ifname, ns_name, end.peer_node,
                                           plan.rate_bps))

    def _configure_ovs(self) -> None:
        self.bridges = [openflow.bridge_name(s) for s in self.topo.routers()]
        openflow.create_bridges(self.topo, self.plans, self.ovs_datapath)
        if self.static_rules:
            openflow.install_static_rules(self.topo)
        macs = {end.node: end.mac for plan in self.plans for end in (plan.a, plan.b)
                if self.topo.role(end.node) == "host"}
        ifnames = {end.node: end.ifname for plan in self.plans for end in (plan.a, plan.b)
                   if self.topo.role(end.node) == "host"}
        # Static ARP: no broadcast needs flooding through the multipath fabric.
        for host in self.hosts():
            with netlink.namespace(self.netns(host)) as ns:
                for other in self.hosts():
                    if other != host:
                        netlink.add_static_neighbor(ns, ifnames[host], self.host_ips[other],
                                                    macs[other])
        run_parallel([netlink.sysctl_argv(self.netns(h), l3.HOST_SYSCTLS) for h in self.hosts()])

    # -- processes ---------------------------------------------------------------------
    def popen(self, node: str, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start argv inside node's namespace; teardown stops it."""
        return self.popen_at(self.netns(node), argv, **kwargs)

    def popen_at(self, netns: str | None, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start argv in a namespace of this fabric (None: the root namespace)."""
        full = list(argv) if netns is None else netns_argv(netns, argv)
        proc = subprocess.Popen(full, start_new_session=True, **kwargs)
        self.processes.append(proc)
        return proc

    def run(self, node: str, argv: Sequence[str], timeout_s: float = 30.0,
            check: bool = True) -> subprocess.CompletedProcess:
        return run(netns_argv(self.netns(node), argv), timeout_s=timeout_s, check=check)

    def stop_processes(self, grace_s: float = 2.0) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in self.processes:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.processes.clear()

    # -- measurement -------------------------------------------------------------------
    def port_stats(self) -> list[dict]:
        rows = []
        for port in self.ports:
            with netlink.namespace(port.netns) as handle:
                row = {"node": port.node, "ifname": port.ifname, "peer": port.peer_node,
                       "rate_bps": port.rate_bps}
                row.update(egress_stats(handle, port.ifname))
                row.update(netlink.interface_counters(handle, port.ifname))
            rows.append(row)
        return rows

    # -- teardown ----------------------------------------------------------------------
    def teardown(self) -> None:
        """Remove everything this fabric created; safe to call twice or after a failed build."""
        from kvfabric.cleanup import kill_processes_in_namespaces

        errors = []
        self.stop_processes()
        kill_processes_in_namespaces(self.namespaces)
        try:
            openflow.delete_bridges(self.bridges)
        except Exception as exc:  # keep going: the rest must still be removed
            errors.append(exc)
        self.bridges = []
        netlink.delete_root_interfaces(self.root_interfaces)
        self.root_interfaces = []
        for name in self.namespaces:
            netlink.delete_namespace(name)
        self.namespaces = []
        self.ports = []
        if errors:
            raise errors[0]

    def __enter__(self) -> Fabric:
        self.build()
        return self

    def __exit__(self, *exc) -> None:
        self.teardown()

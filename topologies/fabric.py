"""Build and tear down a fabric from a FabricTopo, in either mode, over netlink.

Every node that needs one gets a named namespace ``kvf-<node>``; every root-namespace
interface and OVS bridge starts with ``kvf-``; processes started in hosts are tracked. So
teardown, and ``kvfabric clean`` after a crash, remove exactly what kvfabric made.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fabriccore.backends import Backends
from fabriccore.commands import netns_argv, run
from fabriccore.naming import netns_name
from fabriccore.netns import create_namespaces, in_namespace, write_sysctls
from fabriccore.processes import stop_groups
from wire.frames import frame_bytes

from . import l3, netlink, openflow
from .addressing import LinkPlan, host_addresses, plan_links
from .leafspine import FabricTopo
from .port import Port, attach_markers, queue_stats_of
from .queues import agent_process, port_qdiscs
from .queues.settings import QueueSettings

MODES = ("l3", "openflow")


@dataclass
class BuildTimings:
    phases_s: dict[str, float] = field(default_factory=dict)

    @property
    def total_s(self) -> float:
        return sum(self.phases_s.values())


class Fabric:
    """A running fabric. Use as a context manager so teardown always runs."""

    def __init__(self, topo: FabricTopo, mode: str = "l3", ovs_datapath: str = "auto",
                 queues: QueueSettings | None = None, ecn_backend: str = "auto",
                 queue_dir: str | os.PathLike | None = None,
                 static_rules: bool = True, backends: Backends | None = None):
        """`queues`: traffic classes, ECN and PFC on every port (None: one FIFO per port,
        as before); `ecn_backend`: auto (the capability probe's choice: kernel red where
        present, else eBPF), red, ebpf; `ovs_datapath`: auto (the probe's choice), system,
        netdev; `queue_dir`: where the queue agent writes telemetry and PFC files (default: a
        temporary folder, removed at teardown); `static_rules` (openflow mode): install
        kvfabric's own rules (False: a controller will); `backends`: the capability probe's
        decision (`HostReport.backends`), which settles every "auto" (None: the fabric runs
        the probe itself, once, when it builds and an "auto" needs settling)."""
        if mode not in MODES:
            raise ValueError(f"fabric mode must be one of {MODES}, got {mode!r}")
        if ecn_backend not in ("auto", "red", "ebpf"):
            raise ValueError(f"ecn_backend must be auto, red or ebpf, got {ecn_backend!r}")
        self.topo = topo
        self.mode = mode
        #: openflow mode: install kvfabric's static rules (False: a controller will).
        self.static_rules = static_rules
        #: The traffic classes, ECN and PFC every port gets; None: one FIFO per port.
        self.queue_settings = queues if queues is not None and queues.enabled else None
        #: "auto" until build() settles it from the backends.
        self.ecn_backend = ecn_backend
        #: The probe's decision this fabric follows; set it before build() to hand one over.
        self.backends = backends
        self._queue_dir_given = queue_dir is not None
        self.queue_dir = Path(queue_dir) if queue_dir is not None else None
        self.agent: subprocess.Popen | None = None
        self._ovs_sndbuf = None
        #: The bridges' datapath_type (openflow mode); "auto" until build() settles it.
        self.ovs_datapath = ovs_datapath
        self.plans: list[LinkPlan] = plan_links(topo, mode)
        self.host_ips = host_addresses(topo, self.plans)
        self.namespaces: list[str] = []
        self.bridges: list[str] = []
        self.root_interfaces: list[str] = []
        self.processes: list[subprocess.Popen] = []
        self.build_timings = BuildTimings()
        self.ports: list[Port] = []

    @property
    def has_classes(self) -> bool:
        """Whether every port has traffic classes (with the queue agent, and an eBPF marker
        per port once built): the fabric was given enabled queue settings. False: each port
        is one FIFO, with no marker and no agent."""
        return self.queue_settings is not None

    # -- names -------------------------------------------------------------------------
    def netns(self, node: str) -> str:
        return netns_name(node)

    def _has_netns(self, node: str) -> bool:
        return self.mode == "l3" or self.topo.role(node) == "host"

    def hosts(self) -> list[str]:
        return self.topo.host_names()

    # -- build -------------------------------------------------------------------------
    def build(self) -> BuildTimings:
        self._settle_backends()
        try:
            self._phase("namespaces", self._create_namespaces)
            self._phase("links", self._create_links)
            self._phase("addresses+qdiscs", self._configure_ports)
            if self.mode == "l3":
                self._phase("routes", lambda: l3.configure_routing(
                    self.topo, self.plans, self.netns))
            else:
                self._phase("ovs", self._configure_ovs)
            if self.has_classes:
                self._phase("markers", self._attach_markers)
                self._phase("queue agent", self._start_agent)
        except BaseException:
            self.teardown()
            raise
        return self.build_timings

    def _phase(self, name: str, func) -> None:
        start = time.perf_counter()
        func()
        self.build_timings.phases_s[name] = time.perf_counter() - start

    def _create_namespaces(self) -> None:
        # Recorded before they are made, so that a failure half-way is still torn down.
        self.namespaces = [self.netns(n) for n in self.topo.nodes() if self._has_netns(n)]
        create_namespaces(self.namespaces)

    def _ifname(self, end) -> str:
        """The name of a link end: in a node's namespace its own (``h1-eth0``), in the root
        namespace (an OVS switch port) prefixed (``kvf-l1-eth3``)."""
        return end.ifname if self._has_netns(end.node) else openflow.port_name(end.ifname)

    def _end_netns(self, end) -> str | None:
        return self.netns(end.node) if self._has_netns(end.node) else None

    def _create_links(self) -> None:
        """Every veth created with both ends in their namespaces, under their final names,
        MTU and (in a namespace) MAC."""
        with netlink.namespace(None) as ipr:
            for plan in self.plans:
                ends = [{"ifname": self._ifname(end), "mtu": plan.mtu, "netns": netns,
                         "address": end.mac if netns else None}
                        for end, netns in ((e, self._end_netns(e)) for e in (plan.a, plan.b))]
                # Recorded before creating, so that a failure half-way is still torn down
                # (ends in a namespace go with it).
                self.root_interfaces += [e["ifname"] for e in ends if e["netns"] is None]
                netlink.create_veth(ipr, *ends)

    def _configure_ports(self) -> None:
        """Per namespace, one netlink socket (opened with this thread in the namespace): the
        offloads, addresses and queues of each of its ports."""
        tx_checksum_off = self.mode == "openflow"
        by_namespace: dict[str | None, list] = {}
        for plan in self.plans:
            for end in (plan.a, plan.b):
                by_namespace.setdefault(self._end_netns(end), []).append((end, plan))
        for ns_name, ends in by_namespace.items():
            with in_namespace(ns_name):  # the offloads' ioctl socket is opened there
                for end, _plan in ends:
                    netlink.disable_offloads(self._ifname(end), tx_checksum=tx_checksum_off)
            with netlink.namespace(ns_name) as handle:
                if ns_name:
                    netlink.bring_up_loopback(handle)
                for end, plan in ends:
                    port = Port.set_up(handle, self._ifname(end), end, plan, ns_name,
                                       self.topo.role(end.node))
                    if not self.has_classes:
                        port.shape_fifo(handle, host_queue_bytes(self.topo)
                                        if port.role == "host" else plan.buffer_bytes)
                    else:
                        port.install_classes(handle, *self._plan_classes(port))
                    self.ports.append(port)

    # -- backends ----------------------------------------------------------------------
    def _settle_backends(self) -> None:
        """Replace each "auto" this fabric needs by the backend the capability probe chose:
        the one handed over, else one probe run now. Nothing further down probes again."""
        ovs_auto = self.mode == "openflow" and self.ovs_datapath == "auto"
        ecn_auto = self.has_classes and self.ecn_backend == "auto"
        if not (ovs_auto or ecn_auto):
            return
        if self.backends is None:
            from fabriccore.capabilities import probe_host

            self.backends = probe_host().backends
        if ovs_auto:
            self.ovs_datapath = self.backends.ovs_datapath_type
        if ecn_auto:
            if self.backends.ecn_marking == "none" and self.queue_settings.ecn:
                raise RuntimeError("ECN marking needs the kernel's red qdisc or cls_bpf, and "
                                   "this host has neither (kvfabric doctor says how to fix it)")
            self.ecn_backend = self.backends.ecn_marking

    # -- traffic classes, ECN, PFC --------------------------------------------------------
    def _plan_classes(self, port: Port) -> tuple:
        """The port's traffic classes and the leaf under each (PortQueues, [LeafPlan])."""
        settings = self.queue_settings
        queues = settings.for_port(port.rate_bps, port.mtu, host=port.role == "host",
                                   ingress_ports=self.topo.ingress_ports(port.node),
                                   host_queue_bytes=host_queue_bytes(self.topo))
        peer_is_switch = self.topo.role(port.peer_node) != "host"
        backend = self.ecn_backend if settings.ecn else "none"
        leaves = port_qdiscs.plan_leaves(queues, pausable=settings.pfc and peer_is_switch,
                                         ecn_backend="red" if backend == "red" else "none")
        return queues, leaves

    def _attach_markers(self) -> None:
        """The clsact program on every port: DSCP classification for HTB, 100 us telemetry
        bins, and ECN marking when the eBPF backend was chosen."""
        ecn_in_bpf = self.ecn_backend == "ebpf" and self.queue_settings.ecn
        attach_markers(self.ports, timeline=self.queue_settings.telemetry, ecn=ecn_in_bpf)

    def agent_config(self):
        """The queue agent's configuration: every port's own entry, and the fabric's PFC,
        telemetry and sweep settings."""
        from .queues.agent_config import AgentConfig

        # In openflow mode one dump covers every switch port (all in the root namespace) and
        # costs more, so sweep at most every 1 ms there; the agent sleeps at least as long as
        # each sweep took, which leaves the datapath (userspace OVS) its share of the CPU.
        settings = self.queue_settings
        return AgentConfig(out_dir=str(self.queue_dir),
                           ports=[port.agent_entry() for port in self.ports],
                           pfc=settings.pfc, telemetry=settings.telemetry,
                           sweep_s=settings.agent_sweep_s(0.001 if self.mode == "openflow"
                                                          else 0.0005))

    def _start_agent(self) -> None:
        if self.queue_dir is None:
            self.queue_dir = Path(tempfile.mkdtemp(prefix="kvfabric-queues-"))
        # Kept before it is ready, so that teardown stops an agent that never got there.
        self.agent = agent_process.start_agent(self.agent_config(), self.queue_dir)
        agent_process.wait_ready(self.agent, self.queue_dir)

    def pfc_counters(self, ports: Sequence[Port] | None = None) -> list[dict]:
        """PFC so far per port (default: every port) and priority, from the queue agent's
        event log (flushed every 100 ms): frames sent and received, pauses expired, and
        whether the port's transmitter is paused now. Empty without PFC."""
        from .queues.pfc_events import count_events

        if self.queue_dir is None or not self.has_classes or not self.queue_settings.pfc:
            return []
        wanted = None if ports is None else {(p.node, p.ifname) for p in ports}
        return count_events(self.queue_dir / "pfc_events.csv", wanted)

    def stop_agent(self, grace_s: float = 5.0) -> None:
        """Stop the queue agent; it writes its counters and the last telemetry first."""
        if self.agent is not None:
            agent_process.stop_agent(self.agent, grace_s)
            self.agent = None

    def port(self, node: str, peer: str) -> Port:
        """node's end of the link to peer; LookupError if there is no such link."""
        for port in self.ports:
            if port.node == node and port.peer_node == peer:
                return port
        raise LookupError(f"no link {node}-{peer} in this fabric")

    def queue_stats(self, ports: Sequence[Port] | None = None) -> list[dict]:
        """Port.queue_stats of each port (default: every port), one qdisc dump per
        namespace."""
        return queue_stats_of(self.ports if ports is None else ports)

    def marker_counters(self, ports: Sequence[Port] | None = None) -> list[dict]:
        """Port.marker_counters of each port (default: every port), in fabric order."""
        return [row for port in self.ports if ports is None or port in ports
                for row in port.marker_counters()]

    def _configure_ovs(self) -> None:
        if self.ovs_datapath == "netdev":
            from .ovs_send_buffer import raise_send_buffer

            self._ovs_sndbuf = raise_send_buffer()
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
        for host in self.hosts():
            write_sysctls(self.netns(host), l3.HOST_SYSCTLS)

    # -- processes ---------------------------------------------------------------------
    def popen(self, node: str, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start argv inside node's namespace; teardown stops it."""
        return self.popen_at(self.netns(node), argv, **kwargs)

    def popen_at(self, netns: str | None, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start argv in a namespace of this fabric (None: the root namespace)."""
        full = list(argv) if netns is None else netns_argv(netns, argv)
        proc = subprocess.Popen(full, start_new_session=True, **kwargs)
        proc.started_by = threading.get_ident()  # a background workload stops only its own
        self.processes.append(proc)
        return proc

    def run(self, node: str, argv: Sequence[str], timeout_s: float = 30.0,
            check: bool = True) -> subprocess.CompletedProcess:
        return run(netns_argv(self.netns(node), argv), timeout_s=timeout_s, check=check)

    def stop_processes(self, grace_s: float = 2.0, only: Sequence | None = None) -> None:
        """SIGTERM every process started in the fabric (or those in ``only``), SIGKILL
        what is left after grace_s."""
        procs = list(self.processes) if only is None else list(only)
        stop_groups(procs, grace_s)
        self.processes[:] = [p for p in self.processes if p not in procs]

    # -- measurement -------------------------------------------------------------------
    def port_stats(self, ports: Sequence[Port] | None = None) -> list[dict]:
        """Port.stats of each port (default: every port): egress qdisc and interface
        counters."""
        return [port.stats() for port in (self.ports if ports is None else ports)]

    # -- teardown ----------------------------------------------------------------------
    def teardown(self) -> None:
        """Remove everything this fabric created; safe to call twice or after a failed build."""
        from fabriccore.processes import kill_processes_in_namespaces

        errors = []
        self.stop_agent()
        self.stop_processes()
        for port in self.ports:
            port.release_marker()
        if self.queue_dir is not None and not self._queue_dir_given:
            import shutil

            shutil.rmtree(self.queue_dir, ignore_errors=True)
            self.queue_dir = None
        kill_processes_in_namespaces(self.namespaces)
        try:
            openflow.delete_bridges(self.bridges)
        except Exception as exc:  # keep going: the rest must still be removed
            errors.append(exc)
        self.bridges = []
        netlink.delete_root_interfaces(self.root_interfaces)
        self.root_interfaces = []
        if self._ovs_sndbuf is not None:
            from .ovs_send_buffer import restore

            restore(self._ovs_sndbuf)
            self._ovs_sndbuf = None
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


def host_queue_bytes(topo: FabricTopo) -> int:
    """A host NIC's transmit queue in bytes: the Topo gives it in frames (leafspine.py
    imports only Mininet, so that `mn --custom` can load it)."""
    return topo.host_queue_frames * frame_bytes(topo.mtu)

"""ECN marking at an incast bottleneck: the port from the receiver's leaf down to the receiver.

With the fabric's traffic classes on (the default ``[queues]``), every port already has the
lossless class with ECN and PFC and an eBPF marker counting it; we read that one. With
``queues.enabled = false`` one marker is attached for the run: the lossless DSCP
(``queues.lossless_dscp``) on HPCC's ramp at the port's target rate (``hpcc_ecn_ramp``),
draining at the port rate over the port's own buffer, so DCQCN has CE marks to react to.
That is recorded as an approximation: one marked port, no PFC, a single FIFO shared by every class.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from topologies.fabric import Fabric
from topologies.port import Port
from topologies.queues.ebpf_marker import attach_marker
from topologies.queues.marker_handle import MarkerHandle
from topologies.queues.marker_pins import pin_dir_for
from topologies.queues.spec import PortQueues, TrafficClass, hpcc_ecn_ramp
from topologies.shaping import htb_burst_bytes
from wire.dscp import DEFAULT_DSCP_MAP, LOSSLESS, PRIORITY_DEFAULT, DscpMap


def downlink_port(fabric: Fabric, receiver: str) -> Port:
    for port in fabric.ports:
        if port.peer_node == receiver:
            return port
    raise LookupError(f"no fabric port faces {receiver}")


@dataclass
class BottleneckEcn:
    port: Port
    marker: MarkerHandle | None
    queues: PortQueues | None
    roce_class: str
    approximation: str | None

    def counters(self) -> dict[str, dict[str, int]]:
        if self.marker is None:
            return {}
        return {name: {"packets": c.packets, "ect_packets": c.ect_packets, "marks": c.marks,
                       "vq_drops": c.vq_drops}
                for name, c in self.marker.read_counters().items()}

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"port": f"{self.port.node}:{self.port.ifname}",
                               "owner": "workload" if self.approximation else "fabric",
                               "roce_class": self.roce_class}
        if self.queues is not None and self.queues[self.roce_class].ecn is not None:
            cls = self.queues[self.roce_class]
            out.update(kmin_bytes=cls.ecn.kmin_bytes, kmax_bytes=cls.ecn.kmax_bytes,
                       pmax=cls.ecn.pmax, buffer_bytes=cls.buffer_bytes,
                       pfc=cls.pfc is not None)
        return out


@contextlib.contextmanager
def bottleneck_ecn(fabric: Fabric, receiver: str, mtu: int, dilation: float = 1.0,
                   dscp: DscpMap = DEFAULT_DSCP_MAP) -> Iterator[BottleneckEcn]:
    """``dilation``: the port's target rate is its emulated rate x dilation; ``dscp``: the
    run's map, whose lossless DSCP the RoCE endpoints send with."""
    port = downlink_port(fabric, receiver)
    if fabric.has_classes:
        yield BottleneckEcn(port, port.marker, port.queues, LOSSLESS, None)
        return
    if (pin_dir_for(port.ifname, port.netns) / "kvf_cnt").exists():
        raise RuntimeError(f"{port.node}:{port.ifname} already has an ECN marker that this "
                           "fabric did not report; run `kvfabric clean`")
    buffer_bytes = fabric.topo.buffer_bytes
    queues = PortQueues(rate_bps=port.rate_bps, classes=(
        TrafficClass("roce", dscp.lossless_priority, {dscp.lossless_dscp}, buffer_bytes,
                     lossless=True,
                     ecn=hpcc_ecn_ramp(port.rate_bps * dilation, mtu)),
        TrafficClass("other", PRIORITY_DEFAULT, (), buffer_bytes),
    ))
    handle = attach_marker(port.ifname, port.netns)
    try:
        handle.configure(queues, burst_bytes=htb_burst_bytes(port.rate_bps, mtu))
        ramp = queues["roce"].ecn
        note = (f"ECN: queues.enabled = false, so the workload attached the eBPF "
                f"virtual-queue marker to {port.node}:{port.ifname} only (DSCP "
                f"{dscp.lossless_dscp}, ramp "
                f"{ramp.kmin_bytes}-{ramp.kmax_bytes} B, Pmax {ramp.pmax}); no PFC, so the "
                "RoCE class can still drop there; one FIFO for every class")
        yield BottleneckEcn(port, handle, queues, "roce", note)
    finally:
        handle.detach()


@contextlib.contextmanager
def dequeue_marking(ecn: BottleneckEcn) -> Iterator[str | None]:
    """Move the bottleneck's ECN marking from enqueue to dequeue for a phase: turn the
    port's own marking off and yield ``VQ:ADJ:CFG:CLASS`` for the responder
    (traffic/dequeue_ecn.py), which marks each packet against the queue it just left. None
    (and nothing changed) unless the port's eBPF program marks that class (not with the
    kernel red backend)."""
    marker = ecn.marker
    if marker is None or ecn.roce_class not in marker.class_names:
        yield None
        return
    if not marker.set_ecn(ecn.roce_class, False):
        yield None  # this port's program does not mark (the red backend does, at enqueue)
        return
    try:
        ids = marker.map_ids()
        yield (f"{ids['kvf_vq']}:{ids['kvf_adj']}:{ids['kvf_cfg']}:"
               f"{marker.class_names.index(ecn.roce_class)}")
    finally:
        marker.set_ecn(ecn.roce_class, True)

"""The transfers of a spec's workload in target units, and the node numbering the simulator
expects (hosts h1..hN are nodes 0..N-1, switches follow)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from topologies.leafspine import FabricTopo

from ...resolved_spec import Spec, make_topology

#: Workloads whose traffic is a set of RDMA transfers, and why the others are not.
EXPORTABLE = ("roce_incast", "kv_trace", "serving_disagg")
NOT_EXPORTABLE = {
    "tcp_incast": "its traffic is kernel TCP (the simulator's RDMA NICs have no TCP stack)",
    "tcp_flows": "its traffic is kernel TCP streams",
    "udp_flows": "its traffic is UDP streams paced by the host, not RDMA transfers",
    "ecmp_collision": "its result is an OpenFlow controller's path choice, which the "
                      "simulator's static ECMP routing cannot run",
    "link_failure": "its result is a controller's reaction to a failed link (the simulator "
                    "has one scheduled LINK_DOWN and no controller)",
    "tenant_isolation": "its result is OpenFlow meters and tenant rules, which the simulator "
                        "does not model",
}


class NotExportable(ValueError):
    """The workload's traffic cannot be written as the simulator's flows."""


@dataclass(frozen=True)
class SimFlow:
    """One transfer: ``start_s`` and sizes in target units, hosts by name."""

    src: str
    dst: str
    size_bytes: int
    start_s: float


def target_topology(spec: Spec) -> FabricTopo:
    """The spec's topology with the target link rates (no dilation)."""
    fabric = dict(spec.target["fabric"])
    fabric["host_rate"] = int(fabric["target_rate"])
    fabric["fabric_rate"] = int(fabric["target_fabric_rate"] or fabric["target_rate"])
    return make_topology(fabric)


def node_ids(topo: FabricTopo) -> dict[str, int]:
    """Hosts first, by number (h1 -> 0), then switches in the topology's order."""
    hosts = sorted(topo.host_names(), key=lambda h: int(h[1:]))
    ids = {h: i for i, h in enumerate(hosts)}
    for router in topo.routers():
        ids[router] = len(ids)
    return ids


def transfers(spec: Spec) -> tuple[list[SimFlow], list[str]]:
    """The workload's transfers in target units, and what of the workload they leave out."""
    flows, notes, _ = workload_transfers(spec)
    return flows, notes


def workload_transfers(spec: Spec, simulated_s: dict[int, float] | None = None
                       ) -> tuple[list[SimFlow], list[str], Any]:
    """The transfers, the notes, and the workload's own plan where the import needs it (the
    serving model's turn, ``serving.ServingPlan``, planned with ``simulated_s`` as transfer
    times when given)."""
    kind = spec.workload["kind"]
    if kind not in EXPORTABLE:
        reason = NOT_EXPORTABLE.get(kind, "its traffic is not a set of transfers")
        raise NotExportable(f"workload {kind!r} cannot run on hpcc-ns3: {reason}; "
                            f"exportable workloads: {', '.join(EXPORTABLE)}")
    workload = spec.target["workload"]
    if kind == "serving_disagg":
        from .serving import plan_serving

        served = plan_serving(spec, target_topology(spec).host_names(), simulated_s)
        flows = [SimFlow(t.src_host, t.dst_host, t.size_bytes, t.start_s)
                 for t in served.transfers if t.size_bytes]
        return flows, list(served.notes), served
    if kind == "roce_incast":
        return (*_incast(spec, workload), None)
    return (*_kv_trace(spec, workload), None)


def _incast(spec: Spec, workload: dict[str, Any]) -> tuple[list[SimFlow], list[str]]:
    from ...workloads.roce_incast import block_bytes, transports
    from ...workloads.tcp_incast import choose_senders

    notes = []
    names = transports(workload)
    dropped = [t for t in names if t not in ("roce-dcqcn", "roce-none")]
    if dropped:
        notes.append(f"transports {', '.join(dropped)} not simulated (kernel TCP has no "
                     "counterpart in the simulator's RDMA NICs); only the RoCE phase runs")
    topo = target_topology(spec)
    senders = choose_senders(topo, workload["receiver"], workload["senders"],
                             spec.experiment["seed"])
    size = block_bytes(workload)
    flows = [SimFlow(s, workload["receiver"], size, k * workload["interval"])
             for k in range(workload["blocks"]) for s in senders]
    if workload["blocks"] > 1:
        notes.append("each KV block is its own queue pair in the simulator (a flow per "
                     "block); the emulation posts a sender's blocks on one QP in order, so a "
                     "block that starts before the previous one ends shares the link here "
                     "instead of waiting behind it")
    return flows, notes


def _kv_trace(spec: Spec, workload: dict[str, Any]) -> tuple[list[SimFlow], list[str]]:
    from ...workloads.kv_trace import plan

    topo = target_topology(spec)
    hosts = sorted(topo.host_names(), key=lambda h: int(h[1:]))
    planned, mapping = plan(workload, hosts, spec.experiment["seed"], dilation=1.0)
    flows = [SimFlow(t.src, t.dst, t.size_bytes, t.start_s) for t in planned]
    notes = ["KV transfers of one NIC per host (NIC 0's share of tensor-parallel shards), "
             "the same plan as the emulation; each transfer is its own queue pair",
             f"trace: {mapping.get('source', 'generated load')}, "
             f"{mapping.get('requests_replayed', len(planned))} requests replayed"]
    return flows, notes

"""serving_disagg on the simulator: the serving model's KV transfers become flows, and the
simulated completion times go back into the model.

The emulation feeds each measured transfer back while the model runs
(``serving_fabric.drive``); the simulator takes a fixed list of flows. So the model and the
simulator take turns: the model plans with a first guess of the transfer times (each NIC a
FIFO at line rate), the simulator runs that plan, the model plans again with the simulated
times (``RecordedTransfer``, as the emulated run's offline tables replay measured times),
and so on until the plan the model makes is the plan that was simulated: then every transfer
starts when, and goes where, the model decides given the simulated times of all of them, as
in the emulated run. After ``MAX_ROUNDS`` without that, the run says how many transfers
still differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.cluster import ClusterConfig, serve
from serving.metrics import RequestRecord
from serving.transfer import LinkFormulaTransfer, RecordedTransfer
from traffic.traces import Request

from ...resolved_spec import Spec
from ...workloads import trace_load
from ...workloads.serving_disagg import cluster_config, instance_hosts, model_notes, nic0_bytes
from ...workloads.serving_fabric import MeasuredTransfer
from .outputs import parse_fct

MAX_ROUNDS = 4


@dataclass
class ServingPlan:
    """One turn of the model: its requests, records and transfers (times in target s; the
    transfers' ``fct_emulated_s`` the simulated FCT, nan before the first simulation)."""

    requests: list[Request]
    mapping: dict[str, Any]
    config: ClusterConfig
    host_of: dict[str, str]
    records: list[RequestRecord]
    transfers: list[MeasuredTransfer]
    rounds: int = 1
    differing: int = 0  # transfers of this plan not as simulated (0 at the fixed point)
    notes: list[str] = field(default_factory=list)

    def key(self) -> list[tuple]:
        """What the simulator is given: who sends how much to whom, when (ns)."""
        return [(t.request_index, t.src_host, t.dst_host, t.size_bytes,
                 round(t.start_s * 1e9)) for t in self.transfers if t.size_bytes]


def plan_serving(spec: Spec, hosts: list[str],
                 simulated_s: dict[int, float] | None = None) -> ServingPlan:
    """The model's disaggregated run with ``simulated_s`` (request index -> transfer time,
    target s) as its transfer times, or with the first guess when None."""
    workload = spec.target["workload"]
    requests, mapping = trace_load.load_requests(workload, spec.experiment["seed"], 1.0)
    config = cluster_config(workload)
    host_of = instance_hosts(hosts, workload)
    if simulated_s is None:
        nics = workload["gpus_per_instance"]
        port = LinkFormulaTransfer(spec.scale.target_host_rate_bps * nics)
    else:  # a transfer not simulated yet takes the median (the plan then is not the one run)
        known = sorted(s for s in simulated_s.values() if s > 0)
        unsimulated_s = known[len(known) // 2] if known else 0.0
        port = RecordedTransfer(simulated_s, default_s=unsimulated_s)
    run = serve(requests, "disaggregated", config, port)
    nic_bytes = nic0_bytes(workload)
    transfers = []
    for r in sorted(run.records, key=lambda r: r.index):
        if math.isnan(r.transfer_start_s):
            continue
        size = nic_bytes(r.transfer_tokens)
        fct = simulated_s.get(r.index, unsimulated_s) if simulated_s is not None else math.nan
        if size == 0:  # the decode instance holds every block: nothing crosses the fabric
            fct = 0.0
        transfers.append(MeasuredTransfer(r.index, host_of[r.prefill_instance],
                                          host_of[r.decode_instance], size, r.transfer_start_s,
                                          0.0, fct, r.transfer_start_s + fct))
    notes = model_notes(workload, "simulated (HPCC ns-3 at the target rate)",
                        "simulated") + [
        "the serving model and the simulator take turns (the simulator runs a fixed flow "
        "list): the model plans, the simulator runs the plan, the model plans again with the "
        "simulated times, until the plan is the one simulated",
        "each KV transfer is its own queue pair in the simulator; the emulation posts a "
        "prefill-decode pair's transfers on one QP in order, so a transfer that starts "
        "before the previous one to the same decode host ends shares the link here instead "
        "of waiting behind it",
        f"trace: {mapping.get('source', 'generated load')}, "
        f"{mapping.get('requests_replayed', len(requests))} requests replayed",
    ]
    return ServingPlan(requests, mapping, config, host_of, run.records, transfers, notes=notes)


def simulated_times(plan: ServingPlan, node_ids: dict[str, int],
                    fct_file: Path) -> dict[int, float]:
    """Request index -> simulated transfer time (s) of ``plan``'s transfers, from fct.txt.
    Flows are matched on (source, destination, size) in start order; zero-byte transfers
    take no time."""
    waiting: dict[tuple[int, int, int], list[MeasuredTransfer]] = {}
    for t in sorted(plan.transfers, key=lambda t: t.start_s):
        if t.size_bytes:
            waiting.setdefault((node_ids[t.src_host], node_ids[t.dst_host], t.size_bytes),
                               []).append(t)
    times = {t.request_index: 0.0 for t in plan.transfers if not t.size_bytes}
    for flow in sorted(parse_fct(fct_file), key=lambda f: f.start_ns):
        queue = waiting.get((flow.src_node, flow.dst_node, flow.size_bytes))
        if queue:
            times[queue.pop(0).request_index] = flow.fct_ns / 1e9
    return times


def differing(planned: ServingPlan, simulated: ServingPlan) -> int:
    """Transfers of ``planned`` that are not among those ``simulated`` ran."""
    ran = set(simulated.key())
    return sum(1 for k in planned.key() if k not in ran)


def take_turns(spec: Spec, inputs, sim_dir: Path, simulate):
    """After the first simulation of ``inputs``: plan again with the simulated times and
    simulate the new plan (``simulate(inputs)`` -> (status, error, wall s, CPU s)) until the
    plan is the one simulated or ``MAX_ROUNDS`` ran. Returns the inputs last simulated, with
    the model's turn on their simulated times as ``workload_plan``; the rounds; and the
    status, error, wall and CPU seconds of the rounds after the first."""
    from .inputs import build_inputs

    wall = cpu = 0.0
    status, error, rounds = "ok", None, 1
    while True:
        simulated = inputs.workload_plan
        times = simulated_times(simulated, inputs.node_ids, sim_dir / "fct.txt")
        turn = build_inputs(spec, inputs.queue_monitor,
                            inputs.trace_nodes, simulated_s=times)
        served = turn.workload_plan
        served.rounds, served.differing = rounds, differing(served, simulated)
        if served.differing == 0 or rounds == MAX_ROUNDS:
            break
        status, error, more_wall, more_cpu = simulate(turn)
        wall, cpu, rounds, inputs = wall + more_wall, cpu + more_cpu, rounds + 1, turn
        if status != "ok":
            break
    if served.differing:
        inputs.config.approximations.append(
            f"after {rounds} simulator runs the serving model's plan still differs from the "
            f"simulated one in {served.differing} of {len(served.key())} transfers (a start "
            "time or decode instance moved): those use the times simulated for the previous "
            "plan")
    inputs.workload_plan = served
    return inputs, {"rounds": rounds, "transfers_differing": served.differing,
                    "converged": served.differing == 0}, (status, error, wall, cpu)

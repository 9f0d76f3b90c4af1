"""HPCC ns-3's input files from a spec: config.txt, topology.txt, flow.txt, trace.txt.

Formats (scratch/third.cc): topology.txt is ``nodes switches links``, the switch ids, then
``a b <rate>bps <delay>ms <error>`` per link (every link's delay is the spec's
``fabric.link_delay``, in target terms as the simulator runs the target); flow.txt is the
flow count, then ``src dst priority dport size start_s`` per flow, sorted by start;
trace.txt is the count of nodes whose packets are traced and their ids. Times in the
simulator start at ``START_OFFSET_S`` (HPCC's generated flows start at 2 s; nothing happens
before).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...resolved_spec import Spec
from .mapping import SimConfig, simulator_config
from .plan import SimFlow, node_ids, target_topology, workload_transfers

START_OFFSET_S = 2.0
#: The simulator dumps its queue histogram when the time is a multiple of this (third.cc).
QLEN_DUMP_INTERVAL_NS = 100_000_000
LOSSLESS_PRIORITY = 3
DPORT = 100
FILES = {"TOPOLOGY_FILE": "topology.txt", "FLOW_FILE": "flow.txt", "TRACE_FILE": "trace.txt",
         "TRACE_OUTPUT_FILE": "mix.tr", "FCT_OUTPUT_FILE": "fct.txt",
         "PFC_OUTPUT_FILE": "pfc.txt", "QLEN_MON_FILE": "qlen.txt"}


@dataclass
class SimInputs:
    """Everything the simulator reads, as text, with the plan and node numbering beside it."""

    config: SimConfig
    topology: str
    flows: str
    trace: str
    plan: list[SimFlow] = field(default_factory=list)
    node_ids: dict[str, int] = field(default_factory=dict)
    link_delay_s: float = 1e-6  # fabric.link_delay (target seconds)
    queue_monitor: bool = True
    trace_nodes: tuple[str, ...] = ()
    workload_plan: Any = None  # serving_disagg: the serving model's turn (serving.py)

    def write(self, folder: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name, text in (("config.txt", config_text(self.config.keys)),
                           ("topology.txt", self.topology), ("flow.txt", self.flows),
                           ("trace.txt", self.trace)):
            (folder / name).write_text(text)
            written.append(folder / name)
        return written


def build_inputs(spec: Spec, queue_monitor: bool = True,
                 trace_nodes: tuple[str, ...] = (),
                 simulated_s: dict[int, float] | None = None) -> SimInputs:
    """The inputs of ``spec`` (every link's delay is its ``fabric.link_delay``);
    ``simulated_s`` (serving_disagg): the previous round's simulated transfer times, by
    request index, for the serving model to plan with."""
    link_delay_s = spec_link_delay_s(spec)
    flows, notes, workload_plan = workload_transfers(spec, simulated_s)
    if not flows:
        from .plan import NotExportable

        raise NotExportable("the workload plan has no transfers")
    topo = target_topology(spec)
    ids = node_ids(topo)
    unknown = [n for n in trace_nodes if n not in ids]
    if unknown:
        from .plan import NotExportable

        raise NotExportable(f"--trace {','.join(unknown)}: no such node (hosts h1..h"
                            f"{len(topo.host_names())}, switches {', '.join(topo.routers()[:4])}"
                            "...)")
    config = simulator_config(spec)
    config.approximations += notes
    keys = config.keys
    keys.update(FILES)
    keys["ENABLE_TRACE"] = "1" if trace_nodes else "0"
    stop_s, qlen_end_ns = horizon(flows, spec.scale.target_host_rate_bps)
    start_ns = int(round(START_OFFSET_S * 1e9))
    keys["QLEN_MON_START"] = str(start_ns)
    keys["QLEN_MON_END"] = str(qlen_end_ns if queue_monitor else start_ns)
    if not queue_monitor:
        config.approximations.append("queue monitor off (--no-queue-monitor): no queue "
                                     "depths in this run")
    keys["SIMULATOR_STOP_TIME"] = _num(stop_s)
    ordered = {k: keys[k] for k in CONFIG_ORDER if k in keys}
    config.keys = ordered
    return SimInputs(config, topology_text(topo, ids, link_delay_s), flow_text(flows, ids),
                     trace_text([ids[n] for n in trace_nodes]), plan=flows, node_ids=ids,
                     link_delay_s=link_delay_s, queue_monitor=queue_monitor,
                     trace_nodes=tuple(trace_nodes), workload_plan=workload_plan)


def spec_link_delay_s(spec: Spec) -> float:
    """``fabric.link_delay`` in target seconds (what the simulator's links are given)."""
    return float(spec.target["fabric"]["link_delay"])


def horizon(flows: list[SimFlow], host_rate_bps: float) -> tuple[float, int]:
    """(SIMULATOR_STOP_TIME in s, QLEN_MON_END in ns): room for every byte to cross one host
    link twice over after the last start, the queue monitor until the next dump time."""
    last = max(f.start_s for f in flows)
    drain_s = 2 * 8 * sum(f.size_bytes for f in flows) / host_rate_bps + 1e-3
    end_ns = (START_OFFSET_S + last + drain_s) * 1e9
    qlen_end = math.ceil(end_ns / QLEN_DUMP_INTERVAL_NS) * QLEN_DUMP_INTERVAL_NS
    return qlen_end / 1e9 + 1e-3, int(qlen_end)


CONFIG_ORDER = [
    "ENABLE_QCN", "USE_DYNAMIC_PFC_THRESHOLD", "PACKET_PAYLOAD_SIZE", "TOPOLOGY_FILE",
    "FLOW_FILE", "TRACE_FILE", "TRACE_OUTPUT_FILE", "FCT_OUTPUT_FILE", "PFC_OUTPUT_FILE",
    "SIMULATOR_STOP_TIME", "CC_MODE", "ALPHA_RESUME_INTERVAL", "RATE_DECREASE_INTERVAL",
    "CLAMP_TARGET_RATE", "RP_TIMER", "EWMA_GAIN", "FAST_RECOVERY_TIMES", "RATE_AI", "RATE_HAI",
    "MIN_RATE", "DCTCP_RATE_AI", "ERROR_RATE_PER_LINK", "L2_CHUNK_SIZE", "L2_ACK_INTERVAL",
    "L2_BACK_TO_ZERO", "HAS_WIN", "GLOBAL_T", "VAR_WIN", "FAST_REACT", "U_TARGET",
    "MI_THRESH", "INT_MULTI", "MULTI_RATE", "SAMPLE_FEEDBACK", "PINT_LOG_BASE", "PINT_PROB",
    "RATE_BOUND", "ACK_HIGH_PRIO", "LINK_DOWN", "ENABLE_TRACE", "KMAX_MAP", "KMIN_MAP",
    "PMAX_MAP", "BUFFER_SIZE", "QLEN_MON_FILE", "QLEN_MON_START", "QLEN_MON_END",
]


def config_text(keys: dict[str, str]) -> str:
    return "".join(f"{k} {v}\n" for k, v in keys.items())


def topology_text(topo, ids: dict[str, int], link_delay_s: float) -> str:
    switches = [ids[r] for r in topo.routers()]
    links = []
    for a, b, info in topo.links(withInfo=True):
        links.append(f"{ids[a]} {ids[b]} {int(info['rate_bps'])}bps "
                     f"{_num(link_delay_s * 1e3)}ms 0")
    head = f"{len(ids)} {len(switches)} {len(links)}\n{' '.join(map(str, switches))}\n"
    return head + "".join(line + "\n" for line in links)


def flow_text(flows: list[SimFlow], ids: dict[str, int]) -> str:
    ordered = sorted(flows, key=lambda f: f.start_s)
    lines = [f"{ids[f.src]} {ids[f.dst]} {LOSSLESS_PRIORITY} {DPORT} {f.size_bytes} "
             f"{START_OFFSET_S + f.start_s:.9f}" for f in ordered]
    return f"{len(lines)}\n" + "".join(line + "\n" for line in lines)


def trace_text(node_list: list[int]) -> str:
    return f"{len(node_list)}\n{' '.join(map(str, node_list))}\n"


def _num(value: float) -> str:
    return f"{value:.10g}"

"""What every spec field becomes in HPCC's ns-3 simulator, and what it cannot express.

``FIELD_MAPPING`` names each field's destination (a config.txt key, topology.txt, flow.txt)
or why it has none. ``simulator_config`` derives the config keys from a resolved spec (target
units: the simulator runs the target fabric at its real rate) and lists the approximations:
a field the simulator cannot express is reported, never dropped silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from traffic.dcqcn import DcqcnParams

from ...resolved_spec import Spec
from ...spec_fields import EXPERIMENT_FIELDS, FABRIC_FIELDS, QUEUE_FIELDS
from ...workloads import WORKLOADS
from .plan import target_topology

#: HPCC's CC_MODE per kvfabric transport (0: no rate control, the NIC sends at line rate).
CC_MODES = {"roce-dcqcn": 1, "roce-none": 0}

#: Notes every simulated run carries: how the simulator differs from the emulation whatever
#: the spec says.
ALWAYS = [
    "CNPs are a flag on the simulator's per-packet ACK (no separate CNP packets, no CNP "
    "class or DSCP); the sender reacts at most once per RATE_DECREASE_INTERVAL",
    "no NIC or host latency: a packet leaves the NIC when the rate limiter allows it",
    "ECN thresholds are whole KB (KMIN_MAP/KMAX_MAP in units of 1000 B), one ramp per link "
    "rate, marked at dequeue on every switch port",
    "PFC thresholds are the simulator's dynamic ones only (XOFF = free shared buffer >> a "
    "shift of 3 at the NIC rate, less for faster ports; resume 3 KB below; headroom 3 x rate "
    "x link delay); queues.xoff/xon/headroom have no counterpart",
    "one shared buffer per switch (BUFFER_SIZE) instead of kvfabric's per-port class buffers; "
    "all RDMA traffic is in one lossless priority (3), ACKs at high priority",
]

MAPPED, NOT_EXPRESSIBLE, NOT_NEEDED = "mapped", "not expressible", "not needed"

#: (section, field) -> (status, destination or reason).
FIELD_MAPPING: dict[tuple[str, str], tuple[str, str]] = {
    ("experiment", "name"): (NOT_NEEDED, "names the results folder"),
    ("experiment", "description"): (NOT_NEEDED, "text"),
    ("experiment", "seed"): (MAPPED, "flow.txt: the workload plan's random choices"),
    ("fabric", "topology"): (MAPPED, "topology.txt"),
    ("fabric", "mode"): (NOT_NEEDED, "the simulator's switches route by static ECMP "
                         "(per-flow hash) in either mode"),
    ("fabric", "spines"): (MAPPED, "topology.txt"),
    ("fabric", "leaves"): (MAPPED, "topology.txt"),
    ("fabric", "hosts_per_leaf"): (MAPPED, "topology.txt"),
    ("fabric", "hosts"): (MAPPED, "topology.txt"),
    ("fabric", "hosts_per_side"): (MAPPED, "topology.txt"),
    ("fabric", "target_rate"): (MAPPED, "topology.txt host link rates; KMIN/KMAX/PMAX_MAP"),
    ("fabric", "target_fabric_rate"): (MAPPED, "topology.txt fabric link rates"),
    ("fabric", "link_delay"): (MAPPED, "topology.txt: every link's delay; the simulator's "
                               "PFC headroom (3 x rate x link delay) in BUFFER_SIZE"),
    ("fabric", "dilation"): (NOT_NEEDED, "the simulator runs the target at its real rate "
                             "(dilation 1)"),
    ("fabric", "buffer"): (NOT_EXPRESSIBLE, "the lossy class's per-port buffer: the simulator "
                           "has one shared buffer per switch and no lossy class"),
    ("fabric", "mtu"): (NOT_NEEDED, "packets are PACKET_PAYLOAD_SIZE plus the simulator's "
                        "headers"),
    ("fabric", "ovs_datapath"): (NOT_NEEDED, "openflow mode only"),
    ("fabric", "controller"): (NOT_EXPRESSIBLE, "no OpenFlow controller in the simulator"),
    ("fabric", "stats_interval"): (NOT_NEEDED, "adaptive controller only"),
    ("fabric", "tenant_meters"): (NOT_EXPRESSIBLE, "no meters in the simulator"),
    ("fabric", "tenant_meter_burst"): (NOT_NEEDED, "tenant meters only"),
    ("queues", "enabled"): (NOT_EXPRESSIBLE, "the simulator's switches always have their "
                            "priority queues, ECN and PFC"),
    ("queues", "pfc"): (NOT_EXPRESSIBLE, "PFC is always on in the simulator's switch"),
    ("queues", "ecn"): (MAPPED, "ENABLE_QCN"),
    ("queues", "ecn_backend"): (NOT_NEEDED, "how the emulation marks"),
    ("queues", "lossy_ecn"): (NOT_EXPRESSIBLE, "no lossy class"),
    ("queues", "lossless_dscp"): (NOT_NEEDED, "flows use priority group 3"),
    ("queues", "cnp_dscp"): (NOT_NEEDED, "no CNP packets (an ACK flag)"),
    ("queues", "lossless_priority"): (NOT_NEEDED, "flows use priority group 3"),
    ("queues", "cnp_priority"): (NOT_NEEDED, "ACK_HIGH_PRIO 1"),
    ("queues", "kmin"): (MAPPED, "KMIN_MAP (KB)"),
    ("queues", "kmax"): (MAPPED, "KMAX_MAP (KB)"),
    ("queues", "pmax"): (MAPPED, "PMAX_MAP"),
    ("queues", "xoff"): (NOT_EXPRESSIBLE, "dynamic PFC threshold only"),
    ("queues", "xon"): (NOT_EXPRESSIBLE, "resume offset fixed at 3 KB"),
    ("queues", "headroom"): (NOT_EXPRESSIBLE, "headroom fixed at 3 x rate x link delay"),
    ("queues", "lossless_buffer"): (MAPPED, "BUFFER_SIZE: the switch's ports' lossless "
                                    "buffers summed, in whole MB"),
    ("queues", "lossless_weight"): (NOT_NEEDED, "no lossy class to share with"),
    ("queues", "lossy_weight"): (NOT_NEEDED, "no lossy class"),
    ("queues", "pfc_reaction"): (NOT_EXPRESSIBLE, "the simulator's PFC reacts in a link "
                                 "delay"),
    ("queues", "telemetry"): (MAPPED, "QLEN_MON_FILE (per-port queue histogram, 100 ns "
                              "samples)"),
    # roce_incast
    ("roce_incast", "senders"): (MAPPED, "flow.txt"),
    ("roce_incast", "receiver"): (MAPPED, "flow.txt"),
    ("roce_incast", "model"): (MAPPED, "flow.txt block size"),
    ("roce_incast", "block_tokens"): (MAPPED, "flow.txt block size"),
    ("roce_incast", "tp_size"): (MAPPED, "flow.txt block size"),
    ("roce_incast", "block_bytes"): (MAPPED, "flow.txt size"),
    ("roce_incast", "blocks"): (MAPPED, "flow.txt: a flow per block"),
    ("roce_incast", "interval"): (MAPPED, "flow.txt start times"),
    ("roce_incast", "transports"): (MAPPED, "CC_MODE (RoCE transports only)"),
    ("roce_incast", "mtu_payload"): (MAPPED, "PACKET_PAYLOAD_SIZE"),
    ("roce_incast", "window"): (NOT_EXPRESSIBLE, "DCQCN runs without a window (HAS_WIN 0, "
                                "as HPCC's --cc dcqcn)"),
    ("roce_incast", "retransmit_timeout"): (NOT_EXPRESSIBLE, "no transport timer: go-back-N "
                                            "on NAK only (the fabric is lossless)"),
    ("roce_incast", "ack_coalesce"): (MAPPED, "L2_ACK_INTERVAL"),
    ("roce_incast", "dcqcn_profile"): (MAPPED, "ALPHA_RESUME_INTERVAL, RATE_DECREASE_INTERVAL, "
                                       "RP_TIMER, EWMA_GAIN, FAST_RECOVERY_TIMES, RATE_AI, "
                                       "RATE_HAI, MIN_RATE, CLAMP_TARGET_RATE"),
    ("roce_incast", "ecn_marking"): (NOT_EXPRESSIBLE, "the simulator marks at dequeue on "
                                     "every port"),
    ("roce_incast", "cnp_interval"): (NOT_EXPRESSIBLE, "an ECN echo on every ACK"),
    ("roce_incast", "tcp_rto_min"): (NOT_NEEDED, "TCP baseline only"),
    ("roce_incast", "endpoint_rt_priority"): (NOT_NEEDED, "host scheduling of the emulation"),
    ("roce_incast", "sender_processes"): (NOT_NEEDED, "host scheduling of the emulation"),
    ("roce_incast", "receiver_rt_priority"): (NOT_NEEDED, "host scheduling of the emulation"),
    ("roce_incast", "pacing_quantum"): (NOT_EXPRESSIBLE, "the simulator's NIC paces every "
                                        "packet at the QP's rate"),
    ("roce_incast", "tcp_port"): (NOT_NEEDED, "TCP baseline only"),
    ("roce_incast", "timeout"): (NOT_NEEDED, "a wall-clock guard; the simulator stops at "
                                 "SIMULATOR_STOP_TIME"),
}
for _name, _how in {"prefill": MAPPED, "decode": MAPPED, "model": MAPPED, "tp_size": MAPPED,
                    "trace": MAPPED, "trace_format": MAPPED, "max_requests": MAPPED,
                    "rate": MAPPED, "duration": MAPPED, "input_tokens": MAPPED,
                    "output_tokens": MAPPED, "prefill_tokens_per_s": MAPPED,
                    "mode": MAPPED, "trace_start_s": MAPPED, "trace_duration_s": MAPPED,
                    "busiest_s": MAPPED, "trace_rate_rps": MAPPED,
                    "time_scale": MAPPED}.items():
    FIELD_MAPPING[("kv_trace", _name)] = (_how, "flow.txt: the KV transfer plan")
FIELD_MAPPING[("kv_trace", "transport")] = (MAPPED, "CC_MODE")
for _name in ("mtu_payload", "window", "retransmit_timeout", "ack_coalesce", "dcqcn_profile",
              "cnp_interval", "pacing_quantum", "receiver_rt_priority", "timeout"):
    FIELD_MAPPING[("kv_trace", _name)] = FIELD_MAPPING[("roce_incast", _name)]
# serving_disagg: the serving model plans the KV transfers (flow.txt) and is fed the simulated
# FCTs; its SLOs and offline searches read those times, as in the emulated run.
for _name in ("prefill", "decode", "model", "gpu", "gpus_per_instance", "trace", "trace_format",
              "trace_start_s", "trace_duration_s", "busiest_s", "trace_rate_rps",
              "time_scale", "max_requests", "rate", "duration", "input_tokens",
              "output_tokens", "policy"):
    FIELD_MAPPING[("serving_disagg", _name)] = (MAPPED, "flow.txt: the serving model's KV "
                                                "transfer plan")
for _name in ("ttft_slo_s", "tpot_slo_s", "goodput_rates", "goodput_repeats"):
    FIELD_MAPPING[("serving_disagg", _name)] = (NOT_NEEDED, "the serving model's metrics, "
                                                "computed from the simulated transfer times")
FIELD_MAPPING[("serving_disagg", "transport")] = (MAPPED, "CC_MODE")
FIELD_MAPPING[("serving_disagg", "policies_on_fabric")] = (
    NOT_EXPRESSIBLE, "the simulator carries the run's policy; the per-policy table replays "
    "its simulated transfer times under the other policies")
FIELD_MAPPING[("serving_disagg", "transfer_mode")] = (MAPPED, "whole transfers, one flow each "
                                                      "(layerwise is refused at validation)")
for _name in ("mtu_payload", "window", "retransmit_timeout", "ack_coalesce", "dcqcn_profile",
              "cnp_interval", "pacing_quantum", "receiver_rt_priority", "timeout"):
    FIELD_MAPPING[("serving_disagg", _name)] = FIELD_MAPPING[("roce_incast", _name)]


def spec_fields(kind: str) -> list[tuple[str, Any]]:
    """(mapping section, schema Field) of every field a spec of workload ``kind`` has."""
    out = [("experiment", f) for f in EXPERIMENT_FIELDS]
    out += [("fabric", f) for f in FABRIC_FIELDS] + [("queues", f) for f in QUEUE_FIELDS]
    out += [(kind, f) for f in WORKLOADS[kind].FIELDS]
    return out


def unexpressed(spec: Spec) -> list[str]:
    """A note for every field the simulator cannot express that the spec sets to more than a
    no-op (a value other than its default, or a default that does something: the window,
    the transport timer, the lossy buffer)."""
    kind = spec.workload["kind"]
    sections = {"experiment": spec.experiment, **spec.target, kind: spec.target["workload"]}
    in_effect_by_default = {(k, name) for k in ("roce_incast", "kv_trace", "serving_disagg")
                            for name in ("window", "retransmit_timeout")}
    in_effect_by_default.add(("fabric", "buffer"))
    notes = []
    for section, f in spec_fields(kind):
        status, why = FIELD_MAPPING[(section, f.name)]
        if status != NOT_EXPRESSIBLE:
            continue
        table = sections["workload" if section == kind else section]
        value = table.get(f.name)
        default = _resolved_default(section, f, table)
        own = SIMULATOR_BEHAVIOUR.get(f.name, _NONE)
        if own is not _NONE:
            reported = value != own
        else:
            reported = value != default or (section, f.name) in in_effect_by_default
        if reported:
            where = "workload" if section == kind else section
            shown = f"{value:g}" if isinstance(value, float) else repr(value)
            notes.append(f"{where}.{f.name} = {shown} not expressed: {why}")
    if spec.tenants:
        notes.append("[tenants] not expressed: no tenant isolation in the simulator")
    return notes


_NONE = object()
#: Fields whose value the simulator always has: reported only when the spec asks otherwise.
SIMULATOR_BEHAVIOUR = {"ecn_marking": "dequeue", "pfc": True, "enabled": True}


def _resolved_default(section: str, f, table: dict[str, Any]) -> Any:
    from ...schema import resolve_section

    try:
        return resolve_section(section, [f], {}, []).get(f.name)
    except Exception:  # a default that needs other fields: compare nothing
        return table.get(f.name)


@dataclass
class SimConfig:
    """config.txt's keys (in file order) and the approximations of the mapping."""

    keys: dict[str, str] = field(default_factory=dict)
    approximations: list[str] = field(default_factory=list)


def link_rates(spec: Spec) -> list[int]:
    fabric = spec.target["fabric"]
    rates = {int(fabric["target_rate"]), int(fabric["target_fabric_rate"] or
                                              fabric["target_rate"])}
    return sorted(rates)


def simulator_config(spec: Spec) -> SimConfig:
    """CC, ECN, PFC, buffer, payload and ACK keys of config.txt (file names and times are the
    writer's)."""
    workload = spec.target["workload"]
    cfg = SimConfig()
    keys = cfg.keys
    transport = _transport(workload)
    keys["ENABLE_QCN"] = "1" if spec.target["queues"]["ecn"] else "0"
    keys["USE_DYNAMIC_PFC_THRESHOLD"] = "1"
    keys["PACKET_PAYLOAD_SIZE"] = str(workload["mtu_payload"])
    keys["CC_MODE"] = str(CC_MODES[transport])
    params = DcqcnParams.preset(workload["dcqcn_profile"], spec.scale.target_host_rate_bps)
    keys.update(dcqcn_keys(params))
    keys["ERROR_RATE_PER_LINK"] = "0.0000"
    keys["L2_CHUNK_SIZE"] = "4000"
    keys["L2_ACK_INTERVAL"] = str(workload["ack_coalesce"])
    keys["L2_BACK_TO_ZERO"] = "0"
    # HPCC's --cc dcqcn: no window, no HPCC-specific knobs in effect.
    keys.update({"HAS_WIN": "0", "GLOBAL_T": "1", "VAR_WIN": "0", "FAST_REACT": "0",
                 "U_TARGET": "0.95", "MI_THRESH": "0", "INT_MULTI": "1", "MULTI_RATE": "0",
                 "SAMPLE_FEEDBACK": "0", "PINT_LOG_BASE": "1.05", "PINT_PROB": "1.0",
                 "RATE_BOUND": "1", "ACK_HIGH_PRIO": "1", "LINK_DOWN": "0 0 0"})
    ecn_keys, ecn_notes = ecn_maps(spec)
    keys.update(ecn_keys)
    megabytes, buffer_note = buffer_size_mb(spec)
    keys["BUFFER_SIZE"] = str(megabytes)
    cfg.approximations += ALWAYS + ecn_notes + [buffer_note] + profile_notes(params)
    if transport == "roce-none":
        cfg.approximations.append("roce-none: CC_MODE 0, no rate control (line rate)")
    cfg.approximations += unexpressed(spec)
    return cfg


def _transport(workload: dict[str, Any]) -> str:
    if "transport" in workload:
        return workload["transport"]
    names = [t.strip() for t in workload["transports"].split(",")]
    roce = [t for t in names if t in CC_MODES]
    if not roce:
        from .plan import NotExportable

        raise NotExportable(f"workload.transports = {workload['transports']!r} has no RoCE "
                            "transport; the simulator runs RDMA only (roce-dcqcn, roce-none)")
    return roce[0]


def dcqcn_keys(params: DcqcnParams) -> dict[str, str]:
    """The reaction point's parameters as HPCC's keys (timers in us, rates in Mb/s)."""
    return {
        "ALPHA_RESUME_INTERVAL": _num(params.alpha_timer_s * 1e6),
        "RATE_DECREASE_INTERVAL": _num(params.rate_decrease_interval_s * 1e6
                                       or params.alpha_timer_s * 1e6),
        "CLAMP_TARGET_RATE": "1" if params.clamp_target_rate else "0",
        "RP_TIMER": _num(params.rate_increase_timer_s * 1e6),
        "EWMA_GAIN": _num(params.g),
        "FAST_RECOVERY_TIMES": str(params.fast_recovery_steps),
        "RATE_AI": f"{_num(params.rate_ai_bps / 1e6)}Mb/s",
        "RATE_HAI": f"{_num(params.rate_hai_bps / 1e6)}Mb/s",
        "MIN_RATE": f"{_num(params.min_rate_bps / 1e6)}Mb/s",
        "DCTCP_RATE_AI": "1000Mb/s",
    }


def profile_notes(params: DcqcnParams) -> list[str]:
    notes = []
    if params.profile != "hpcc":
        notes.append(f"dcqcn_profile {params.profile!r} runs on HPCC's Mellanox reaction "
                     "point (CC_MODE 1): alpha updated on a clock, cuts checked every "
                     "RATE_DECREASE_INTERVAL, no byte counter "
                     f"({params.byte_counter_bytes} B not expressed)")
    if params.rate_decrease_interval_s == 0:
        notes.append("the paper profile cuts on every CNP; the simulator checks for cuts "
                     "every RATE_DECREASE_INTERVAL (set to the alpha interval here)")
    return notes


def ecn_maps(spec: Spec) -> tuple[dict[str, str], list[str]]:
    """KMIN_MAP/KMAX_MAP/PMAX_MAP per target link rate, thresholds in whole KB."""
    settings = spec.queue_settings()
    mtu = spec.fabric["mtu"]
    kmin, kmax, pmax, notes = [], [], [], []
    for rate in link_rates(spec):
        ramp = settings.ramp(spec.scale.emulated_bps(rate), mtu) if settings else None
        if ramp is None:
            from topologies.queues.settings import hpcc_ecn_ramp

            ramp = hpcc_ecn_ramp(rate, mtu)
        for name, value, out in (("Kmin", ramp.kmin_bytes, kmin), ("Kmax", ramp.kmax_bytes,
                                                                   kmax)):
            kb = max(1, round(value / 1000))
            if kb * 1000 != value:
                notes.append(f"{name} {value} B at {rate / 1e9:g} Gbit/s rounded to {kb} KB")
            out.append(f"{rate} {kb}")
        pmax.append(f"{rate} {ramp.pmax:g}")
    count = str(len(kmin))
    return ({"KMAX_MAP": " ".join([count, *kmax]), "KMIN_MAP": " ".join([count, *kmin]),
             "PMAX_MAP": " ".join([count, *pmax])}, notes)


def buffer_size_mb(spec: Spec) -> tuple[int, str]:
    """The largest switch's per-port lossless buffers summed and rounded up to whole MB (the
    simulator's unit: 1024 x 1024 B). A port's buffer is queues.lossless_buffer when set,
    else XOFF plus the headroom: queues.headroom when set, else the simulator's own
    (3 x rate x fabric.link_delay; kvfabric's derived headroom covers its real-time agent,
    which the simulator does not have)."""
    link_delay_s = float(spec.target["fabric"]["link_delay"])
    settings = spec.queue_settings()
    queues = spec.target["queues"]
    topo = target_topology(spec)
    mtu = spec.fabric["mtu"]
    worst = 0
    for router in topo.routers():
        total = 0
        for peer in topo.neighbors(router):
            rate = topo.linkInfo(router, peer)["rate_bps"]
            if settings is None:
                total += spec.fabric["buffer"]
            elif queues["lossless_buffer"]:
                total += queues["lossless_buffer"]
            else:
                emulated = int(spec.scale.emulated_bps(rate))
                xoff = settings.pfc_thresholds(emulated, mtu, 1).xoff_bytes
                headroom = queues["headroom"] or math.ceil(3 * rate * link_delay_s / 8)
                total += xoff + headroom
        worst = max(worst, total)
    megabytes = max(1, math.ceil(worst / (1 << 20)))
    return megabytes, (f"BUFFER_SIZE {megabytes} MB: the largest switch's per-port lossless "
                       f"buffers (XOFF + headroom, {worst} B in all) as one shared buffer")


def _num(value: float) -> str:
    return f"{value:.10g}"

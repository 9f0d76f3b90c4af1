"""The values a run uses where its spec says 0 ("derive it"): the queue thresholds.

A [queues] size of 0 is derived per switch port from that port's rate, MTU and ingress ports
(``QueueSettings``, topologies/queues/settings.py). This module asks the same settings for
every switch port of the spec's topology, so the run folder (spec.toml, summary.json's
``derived``, report.md) and ``kvfabric show`` state what ran instead of 0. Values are in the
target's units, like the resolved spec: bytes are unchanged by dilation, the reaction time is
emulated / D.
"""

from __future__ import annotations

from typing import Any

#: [queues] fields whose 0 is derived, and how to read the value that ran from the settings.
DERIVED_QUEUE_FIELDS = ("kmin", "kmax", "xoff", "xon", "headroom", "lossless_buffer",
                        "pfc_reaction")


def _switch_ports(topo):
    """(node, emulated egress rate) of every switch port of the topology."""
    for a, b, info in topo.links(sort=True, withInfo=True):
        for node in (a, b):
            if topo.role(node) != "host":
                yield node, int(info["rate_bps"])


def derived_values(spec) -> dict[str, list[Any]]:
    """``"queues.kmin"`` -> the distinct values it took over the switch ports (ascending),
    for every derived field the spec left at 0; empty without traffic classes."""
    settings = spec.queue_settings()
    if settings is None:
        return {}
    topo = spec.make_topology()
    mtu = spec.fabric["mtu"]
    seen: dict[str, set] = {name: set() for name in DERIVED_QUEUE_FIELDS
                            if not spec.target["queues"].get(name)}
    for node, rate in _switch_ports(topo):
        ingress = topo.ingress_ports(node)
        ramp = settings.ramp(rate, mtu)
        pfc = settings.pfc_thresholds(rate, mtu, ingress)
        lossless = next(c for c in settings.for_port(rate, mtu, host=False,
                                                     ingress_ports=ingress).classes if c.lossless)
        ran = {"kmin": ramp.kmin_bytes, "kmax": ramp.kmax_bytes, "xoff": pfc.xoff_bytes,
               "xon": pfc.xon_bytes, "headroom": pfc.headroom_bytes,
               "lossless_buffer": lossless.buffer_bytes,
               "pfc_reaction": spec.scale.target_s(settings.reaction_s)}
        for name, values in seen.items():
            values.add(ran[name])
    return {f"queues.{name}": sorted(values) for name, values in seen.items() if values}

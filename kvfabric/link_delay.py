"""What a run says about ``fabric.link_delay``: the target's propagation delay, which the
emulated links do not add.

kvfabric has no netem path (the kernels it runs on lack the qdisc, and an untested path would
be worse than none): a link's delay is the veth's, microseconds of wall time, a fraction of a
microsecond in target terms. The spec's link delay still sizes the derived PFC headroom and
the simulator's links; every emulated run states it in ``facts.link_delay`` and in its
approximations, and a workload that measures its path's RTT (roce_incast's ``path_rtt``) puts
the target's propagation RTT beside the measured one.
"""

from __future__ import annotations

from typing import Any

from topologies.paths import hop_distances


def link_delay_fact(spec, delay_backend: str | None) -> dict[str, Any]:
    """summary.json ``facts.link_delay``. ``delay_backend``: the capability probe's choice
    (``Backends.delay``: ``netem`` or ``none``; None when the host was not probed)."""
    target_s = float(spec.target["fabric"]["link_delay"])
    return {"target_us": target_s * 1e6,
            "emulated_us": spec.scale.emulated_s(target_s) * 1e6,
            "applied": False,
            "netem": None if delay_backend is None else delay_backend == "netem"}


def link_delay_approximation(spec, delay_backend: str | None) -> str:
    """The approximation line every emulated run carries."""
    fact = link_delay_fact(spec, delay_backend)
    kernel = {None: "", True: "; this kernel has netem, but kvfabric does not use it",
              False: "; this kernel has no netem"}[fact["netem"]]
    return (f"link delay not emulated: the target's {fact['target_us']:g} us per link "
            f"({fact['emulated_us']:g} us at D = {spec.scale.dilation:g}) is not added on the "
            f"links, whose delay is the veth's (microseconds of wall time){kernel}; it sizes "
            "the derived PFC headroom only (facts.link_delay)")


def state_link_delay(spec, facts: dict[str, Any], backends) -> str:
    """Record ``facts.link_delay`` for the run and return its approximation line;
    ``backends``: the fabric's ``Backends`` (None if the host was never probed)."""
    delay = getattr(backends, "delay", None)
    facts["link_delay"] = link_delay_fact(spec, delay)
    return link_delay_approximation(spec, delay)


def path_hops(topo, src: str, dst: str) -> int | None:
    """Links on a shortest path from host ``src`` to host ``dst`` (None: no path)."""
    return hop_distances(topo, dst).get(src)


def target_propagation_rtt(topo, src: str, dst: str, link_delay_s: float) -> dict[str, Any]:
    """``hops`` and ``target_propagation_rtt_us`` (hops x 2 x link delay, target us): the
    round trip the target's links alone would give that path, to set beside a measured RTT."""
    hops = path_hops(topo, src, dst)
    return {"hops": hops, "target_link_delay_us": link_delay_s * 1e6,
            "target_propagation_rtt_us": None if hops is None else hops * 2 * link_delay_s * 1e6}

"""kvfabric: emulated fabrics for disaggregated LLM inference, from a script or a prompt.

    import kvfabric

    with kvfabric.Network("tcp_incast", overrides={"workload.rounds": 3}) as net:
        print(net["h1"].cmd(["ping", "-c1", net["h2"].ip]))
        print(net.port("l1", "h1").counters())
        net.run_workload()
    print(net.outcome.run_dir)

The names below are imported on first use, so that ``import kvfabric`` (and the ``kvfabric``
command's start-up) stays cheap. docs/api.md describes the API.
"""

from __future__ import annotations

import importlib

#: public name -> the module that defines it
_EXPORTS = {
    "Network": "kvfabric.network",
    "WorkloadError": "kvfabric.network",
    "Node": "kvfabric.nodes",
    "PortView": "kvfabric.nodes",
    "CommandError": "fabriccore.commands",
    "Spec": "kvfabric.resolved_spec",
    "load_spec": "kvfabric.spec",
    "spec_from_dict": "kvfabric.spec",
    "SpecError": "kvfabric.schema",
    "FabricBusy": "kvfabric.lock",
    "Interrupted": "kvfabric.signals",
    "FabricTopo": "topologies.leafspine",
    "LeafSpine": "topologies.leafspine",
    "Star": "topologies.leafspine",
    "Dumbbell": "topologies.leafspine",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kvfabric' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])

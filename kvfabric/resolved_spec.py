"""The resolved Spec: its sections in emulated and target terms, what it builds, its TOML.

The resolved spec holds canonical numbers (bit/s, bytes, s) and is itself a valid spec, so a
run can be repeated from its results folder (the spec.toml that :func:`to_toml` writes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from topologies.leafspine import Dumbbell, FabricTopo, LeafSpine, Star
from topologies.queues.settings import QueueSettings
from wire.dscp import DscpMap

from .dilation import Scale


@dataclass(frozen=True)
class Spec:
    """A resolved spec. ``fabric``, ``queues`` and ``workload`` hold the *emulated* values the
    fabric and the endpoints run with (``fabric.host_rate``/``fabric_rate`` are the emulated
    link rates); ``target`` holds the same sections in the target fabric's terms, as written
    (the resolved spec.toml), and ``scale`` the dilation between them (kvfabric/dilation.py).
    """

    experiment: dict[str, Any]
    fabric: dict[str, Any]
    workload: dict[str, Any]
    source: str
    queues: dict[str, Any] = field(default_factory=dict)
    #: tenant name -> its hosts ([tenants] section; empty: one tenant, full reachability).
    tenants: dict[str, list[str]] = field(default_factory=dict)
    target: dict[str, dict[str, Any]] = field(default_factory=dict)
    scale: Scale | None = None

    @property
    def name(self) -> str:
        return self.experiment["name"]

    def to_dict(self) -> dict[str, dict[str, Any]]:
        data = {"experiment": self.experiment, **self.target}
        if self.tenants:
            data["tenants"] = self.tenants
        return data

    def make_topology(self) -> FabricTopo:
        return make_topology(self.fabric)

    def queue_settings(self) -> QueueSettings | None:
        return make_queue_settings(self.queues, self.fabric)

    def dscp_map(self) -> DscpMap:
        """The DSCP/priority map of this run: the classifier's and every generator's, also
        with ``queues.enabled = false`` (the traffic is still marked as the spec says)."""
        return DscpMap.from_fields(self.queues)


def make_queue_settings(queues: dict[str, Any], fabric: dict[str, Any]) -> QueueSettings | None:
    """Queue settings in emulated units (``queues`` and ``fabric`` as emulated)."""
    if not queues or not queues["enabled"]:
        return None
    return QueueSettings(
        enabled=True, dilation=fabric["dilation"], pfc=queues["pfc"], ecn=queues["ecn"],
        lossy_ecn=queues["lossy_ecn"],
        lossless_dscp=queues["lossless_dscp"], cnp_dscp=queues["cnp_dscp"],
        lossless_priority=queues["lossless_priority"], cnp_priority=queues["cnp_priority"],
        kmin_bytes=queues["kmin"], kmax_bytes=queues["kmax"], pmax=queues["pmax"],
        xoff_bytes=queues["xoff"], xon_bytes=queues["xon"], headroom_bytes=queues["headroom"],
        lossless_buffer_bytes=queues["lossless_buffer"], lossy_buffer_bytes=fabric["buffer"],
        lossless_weight=queues["lossless_weight"], lossy_weight=queues["lossy_weight"],
        pfc_reaction_s=queues["pfc_reaction"], telemetry=queues["telemetry"],
        link_delay_s=fabric.get("link_delay") or 0.0)


def make_topology(fabric: dict[str, Any]) -> FabricTopo:
    common = {"host_rate_bps": fabric["host_rate"], "fabric_rate_bps": fabric["fabric_rate"],
              "buffer_bytes": fabric["buffer"], "mtu": fabric["mtu"]}
    if fabric["topology"] == "leafspine":
        return LeafSpine(spines=fabric["spines"], leaves=fabric["leaves"],
                         hosts_per_leaf=fabric["hosts_per_leaf"], **common)
    if fabric["topology"] == "star":
        return Star(hosts=fabric["hosts"], **common)
    return Dumbbell(hosts_per_side=fabric["hosts_per_side"], **common)


def to_toml(spec: Spec, derived: dict[str, list[Any]] | None = None) -> str:
    """The resolved spec as TOML (canonical units: bit/s, bytes, s). ``derived`` (from
    kvfabric/derived.py) gives the values that ran where the spec says 0, as comments: the 0
    stays, so the file derives them again when run."""
    derived = derived or {}
    lines = ["# Resolved by kvfabric: rates in bit/s, sizes in bytes, durations in s.",
             *(["# A 0 marked \"derived\" is computed per switch port; the comment gives the "
                "value(s) this run used."] if derived else []), ""]
    for section, table in spec.to_dict().items():
        lines.append(f"[{section}]")
        for key, value in table.items():
            if value is not None:
                ran = derived.get(f"{section}.{key}")
                note = ""
                if ran:
                    note = f"  # derived: ran with {ran[0]!r}" + (
                        f" to {ran[-1]!r} (per switch port)" if len(ran) > 1 else "")
                lines.append(f"{key} = {_toml_value(value)}{note}")
        lines.append("")
    return "\n".join(lines)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


"""Experiment specs: load a TOML file or a shipped experiment, validate it whole, resolve it.

Validation runs before anything is built and reports every problem at once, each naming the
field and the fix. The resolved spec holds canonical numbers (bit/s, bytes, s) and is itself a
valid spec, so a run can be repeated from its results folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from topologies.leafspine import Dumbbell, FabricTopo, LeafSpine, Star
from topologies.queues.settings import QueueSettings
from wire.dscp import DEFAULT_DSCP_MAP, DscpMap
from wire.frames import frame_bytes

from . import capacity
from .dilation import Scale, emulate_section
from .schema import Field, SpecError, SpecIssue, resolve_section
from .toml_file import read_toml
from .workloads import WORKLOADS

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"

EXPERIMENT_FIELDS = [
    Field("name", "name", None, "experiment name; the results folder is named after it"),
    Field("description", "str", "", "one line shown by `kvfabric list`"),
    Field("seed", "int", 1, "seed for every random choice of the run", minimum=0),
]

FABRIC_FIELDS = [
    Field("topology", "choice", "leafspine", "fabric shape",
          choices=("leafspine", "star", "dumbbell")),
    Field("mode", "choice", "l3", "l3: Linux routers with kernel ECMP; openflow: OVS switches",
          choices=("l3", "openflow")),
    Field("spines", "int", 2, "spine switches (leafspine)", minimum=1, maximum=16),
    Field("leaves", "int", 2, "leaf switches (leafspine)", minimum=1, maximum=64),
    Field("hosts_per_leaf", "int", 4, "hosts on each leaf (leafspine)", minimum=1, maximum=64),
    Field("hosts", "int", 8, "hosts on the switch (star)", minimum=2, maximum=128),
    Field("hosts_per_side", "int", 4, "hosts on each side (dumbbell)", minimum=1,
          maximum=64),
    Field("target_rate", "rate", "25G", "link rate of the fabric under study (host links, "
          "and leaf-to-spine links unless target_fabric_rate is set)", minimum=1e5,
          maximum=1.6e12),
    Field("target_fabric_rate", "rate", 0, "leaf-to-spine link rate of the fabric under "
          "study; 0 = target_rate", minimum=0, maximum=1.6e12),
    Field("dilation", "float", 0.0, "time dilation D: the emulation runs D times slower "
          "(rates / D, durations x D, bytes unchanged); 0 = the fastest target rate / "
          "100 Mbit/s, at least 1", minimum=0, maximum=1e6),
    Field("buffer", "size", "64KiB", "egress buffer of every port", minimum=1, maximum=1 << 30),
    Field("mtu", "int", 1500, "IP MTU of every link", minimum=576, maximum=9000),
    Field("ovs_datapath", "choice", "auto", "openflow mode: OVS datapath",
          choices=("auto", "user", "system")),
    Field("controller", "choice", "static", "openflow mode: static (ovs-ofctl rules), ecmp "
          "or adaptive (an os-ken controller app, see controllers/)",
          choices=("static", "ecmp", "adaptive")),
    Field("stats_interval", "duration", "10ms", "adaptive controller: port stats poll period",
          minimum=0.001, maximum=10),
    Field("tenant_meters", "bool", False, "police each tenant to an equal share of every "
          "leaf's uplink capacity with OpenFlow meters (performance isolation)"),
    Field("tenant_meter_burst", "size", "128KiB", "burst size of the tenant meters",
          minimum=1500, maximum=1 << 30),
]


#: Traffic classes on every port (see docs/queues.md), in target terms. Sizes of 0 are derived
#: from the port's target rate: the ECN ramp is HPCC's (Kmin 100 KB, Kmax 400 KB, Pmax 0.2 at
#: 25 Gbit/s, scaled by rate/25G as HPCC's run.py does) floored at a few frames; XOFF = 2 x
#: Kmax; XON = XOFF - max(3 KB, 2 MTU) (HPCC's resume offset); headroom = ingress ports x rate
#: x pfc_reaction + 2 frames.
QUEUE_FIELDS = [
    Field("enabled", "bool", True, "traffic classes on every port; false: one FIFO per port"),
    Field("pfc", "bool", True, "PFC pause/resume for the lossless class"),
    Field("ecn", "bool", True, "ECN marking on the lossless class's ramp"),
    Field("ecn_backend", "choice", "auto", "auto: kernel red where present, else eBPF",
          choices=("auto", "red", "ebpf")),
    Field("lossy_ecn", "bool", False, "also mark ECT packets of the lossy class (TCP ECN)"),
    Field("lossless_dscp", "int", DEFAULT_DSCP_MAP.lossless_dscp, "DSCP of the lossless class "
          "(RoCEv2 data and ACKs; every RoCE endpoint sends with it)", minimum=0, maximum=63),
    Field("cnp_dscp", "int", DEFAULT_DSCP_MAP.cnp_dscp, "DSCP of the strict-priority CNP class "
          "(the RoCE responders' CNPs)", minimum=0, maximum=63),
    Field("lossless_priority", "int", DEFAULT_DSCP_MAP.lossless_priority,
          "802.1p priority of the lossless class (PFC frames)", minimum=1, maximum=7),
    Field("cnp_priority", "int", DEFAULT_DSCP_MAP.cnp_priority,
          "802.1p priority of the CNP class", minimum=1, maximum=7),
    Field("kmin", "size", 0, "ECN ramp start; 0 = HPCC's 100 KB at 25G, scaled by target "
          "rate/25G",
          minimum=0, maximum=1 << 30),
    Field("kmax", "size", 0, "ECN ramp end (mark all above); 0 = HPCC's 400 KB scaled",
          minimum=0, maximum=1 << 30),
    Field("pmax", "float", 0.2, "marking probability at Kmax", minimum=0.001, maximum=1.0),
    Field("xoff", "size", 0, "PFC pause threshold; 0 = 2 x Kmax", minimum=0,
          maximum=1 << 30),
    Field("xon", "size", 0, "PFC resume threshold; 0 = XOFF - max(3 KB, 2 MTU)", minimum=0,
          maximum=1 << 30),
    Field("headroom", "size", 0, "buffer above XOFF for bytes in flight while pausing; "
          "0 = ingress ports x rate x pfc_reaction", minimum=0, maximum=1 << 30),
    Field("lossless_buffer", "size", 0, "lossless class buffer; 0 = XOFF + headroom",
          minimum=0, maximum=1 << 30),
    Field("lossless_weight", "int", 3, "lossless class share against the lossy class",
          minimum=1, maximum=100),
    Field("lossy_weight", "int", 1, "lossy class share", minimum=1, maximum=100),
    Field("pfc_reaction", "duration", 0, "time the headroom must cover from XOFF to the "
          "peer stopping; 0 = the queue agent's worst case here, 50 ms of wall time "
          "(50 ms / D in target terms)", minimum=0, maximum=10),
    Field("telemetry", "bool", True, "100 us queue-depth/mark bins on every port"),
]


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
        pfc_reaction_s=queues["pfc_reaction"], telemetry=queues["telemetry"])


def make_topology(fabric: dict[str, Any]) -> FabricTopo:
    common = {"host_rate_bps": fabric["host_rate"], "fabric_rate_bps": fabric["fabric_rate"],
              "buffer_bytes": fabric["buffer"], "mtu": fabric["mtu"]}
    if fabric["topology"] == "leafspine":
        return LeafSpine(spines=fabric["spines"], leaves=fabric["leaves"],
                         hosts_per_leaf=fabric["hosts_per_leaf"], **common)
    if fabric["topology"] == "star":
        return Star(hosts=fabric["hosts"], **common)
    return Dumbbell(hosts_per_side=fabric["hosts_per_side"], **common)


def shipped_experiments() -> dict[str, Path]:
    return {p.stem: p for p in sorted(EXPERIMENTS_DIR.glob("*.toml"))}


def find_spec_file(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise SpecError([SpecIssue("SPEC", f"no such file {name_or_path!r}",
                                       "give a TOML file or a name from `kvfabric list`")])
        return path
    shipped = shipped_experiments()
    if name_or_path not in shipped:
        raise SpecError([SpecIssue("SPEC", f"no shipped experiment named {name_or_path!r}",
                                   f"use one of: {', '.join(shipped)}, or a TOML file")])
    return shipped[name_or_path]


def load_spec(name_or_path: str, overrides: dict[str, Any] | None = None,
              force: bool = False, simulated: bool = False) -> Spec:
    """Read, validate and resolve a spec; raises SpecError listing every problem. force:
    accept a fabric larger than this host can build in reasonable time (capacity.py);
    simulated: the spec runs on a simulator, so the emulation's limits (host capacity, the
    plan budget of the emulated NICs) do not apply."""
    path = find_spec_file(name_or_path)
    return spec_from_dict(read_toml(path), overrides, source=str(path), name=path.stem,
                          force=force, simulated=simulated)


def spec_from_dict(raw: dict[str, Any], overrides: dict[str, Any] | None = None,
                   source: str = "<dict>", name: str = "api", force: bool = False,
                   simulated: bool = False) -> Spec:
    """Validate and resolve a spec given as a dict of sections (as the TOML file would
    read); ``overrides`` as ``--set`` gives them ({"workload.senders": 4}); ``name`` is the
    experiment name unless the spec sets one."""
    if not isinstance(raw, dict):
        raise SpecError([SpecIssue("SPEC", "must be a table of sections",
                                   "give a dict such as {'fabric': {...}, 'workload': {...}}")])
    raw = {key: dict(value) if isinstance(value, dict) else value for key, value in raw.items()}
    issues = [SpecIssue(section, "must be a table", f"write it as [{section}] with its "
                        "fields on the lines below")
              for section in {"experiment", *(k.partition(".")[0] for k in overrides or {})}
              if section in raw and not isinstance(raw[section], dict)]
    if issues:
        raise SpecError(issues)
    for dotted, value in (overrides or {}).items():
        section, _, key = dotted.partition(".")
        raw.setdefault(section, {})[key] = value
    raw.setdefault("experiment", {}).setdefault("name", name)
    return validate(raw, source=source, force=force or simulated, simulated=simulated)


def spec_for_topology(topo: FabricTopo, mode: str = "l3", name: str = "topo") -> Spec:
    """A spec for a fabric built from a Topo: its rates, buffer and MTU, in real time
    (dilation 1), one FIFO per port and no workload (``workload`` is empty)."""
    issues: list[SpecIssue] = []
    target = resolve_section("fabric", FABRIC_FIELDS, {
        "mode": mode, "target_rate": topo.host_rate_bps,
        "target_fabric_rate": topo.fabric_rate_bps, "dilation": 1,
        "buffer": topo.buffer_bytes, "mtu": topo.mtu}, issues)
    experiment = resolve_section("experiment", EXPERIMENT_FIELDS, {
        "name": name, "description": f"a fabric built from a {type(topo).__name__} Topo "
        f"({len(topo.host_names())} hosts)"}, issues)
    if issues:
        raise SpecError(issues)
    # The Topo, not these fields, gave the shape: spec.toml does not claim one.
    target["topology"] = type(topo).__name__.lower()
    for shape_field in {f for fields in SHAPE_FIELDS.values() for f in fields}:
        target[shape_field] = None
    scale = Scale.for_fabric(target)
    fabric = emulate_section("fabric", {f.name: f.kind for f in FABRIC_FIELDS}, target, scale)
    return Spec(experiment, fabric, {}, "<topo>", target={"fabric": target}, scale=scale)


def validate(raw: dict[str, Any], source: str = "<spec>", force: bool = False,
             simulated: bool = False) -> Spec:
    issues: list[SpecIssue] = []
    for section in raw:
        if section not in ("experiment", "fabric", "queues", "workload", "tenants"):
            issues.append(SpecIssue(section, "unknown section",
                                    "use only [experiment], [fabric], [queues], [workload] "
                                    "and [tenants]"))
    experiment = resolve_section("experiment", EXPERIMENT_FIELDS, raw.get("experiment"), issues)
    if experiment.get("name") is None and not any(i.field == "experiment.name" for i in issues):
        issues.append(SpecIssue("experiment.name", "missing", "set experiment.name"))
    fabric = resolve_section("fabric", FABRIC_FIELDS, raw.get("fabric"), issues)
    _renamed_rates(raw.get("fabric"), issues)
    queues = resolve_section("queues", QUEUE_FIELDS, raw.get("queues"), issues)
    workload_table = raw.get("workload") or {}
    kind = workload_table.get("kind") if isinstance(workload_table, dict) else None
    workload: dict[str, Any] = {}
    if not isinstance(workload_table, dict):
        issues.append(SpecIssue("workload", "must be a table", "write it as [workload] "
                                "with kind = \"tcp_incast\" (say) on the line below"))
    elif kind not in WORKLOADS:
        issues.append(SpecIssue("workload.kind", f"unknown workload kind {kind!r}",
                                f"set workload.kind to one of: {', '.join(WORKLOADS)}"))
    else:
        module = WORKLOADS[kind]
        fields = [Field("kind", "choice", kind, "workload kind", choices=tuple(WORKLOADS)),
                  *module.FIELDS]
        workload = resolve_section("workload", fields, workload_table, issues)
    target = {"fabric": fabric, "queues": queues, "workload": workload}
    scale = None
    if not issues:
        scale = Scale.for_fabric(fabric)
        fabric["dilation"] = scale.dilation
        issues.extend(SpecIssue(*problem) for problem in scale.check())
    if not issues:
        fabric, queues, workload = (
            emulate_section(name, {f.name: f.kind for f in fields}, target[name], scale)
            for name, fields in (("fabric", FABRIC_FIELDS), ("queues", QUEUE_FIELDS),
                                 ("workload", WORKLOADS[kind].FIELDS)))
        _check_fabric(fabric, issues)
        _check_queues(queues, fabric, issues)
    tenants = _resolve_tenants(raw.get("tenants"), fabric, issues) if not issues else {}
    if not issues:
        topo = make_topology(fabric)
        WORKLOADS[kind].check(workload, topo, issues)
        if not issues and hasattr(WORKLOADS[kind], "check_plan"):
            WORKLOADS[kind].check_plan(workload, topo, scale.dilation, experiment["seed"],
                                       issues, budget=not simulated)
        if not force:
            _check_capacity(fabric, topo, issues)
    if issues:
        raise SpecError(issues)
    return Spec(experiment, fabric, workload, source, queues=queues,
                tenants=tenants, target=target, scale=scale)


def _resolve_tenants(table: Any, fabric: dict[str, Any],
                     issues: list[SpecIssue]) -> dict[str, list[str]]:
    """[tenants] name = ["h1", ...]: disjoint host sets, enforced by a controller app."""
    if fabric["tenant_meters"] and not table:
        issues.append(SpecIssue("fabric.tenant_meters", "meters police tenants, but no "
                                "[tenants] section is given",
                                "add [tenants] with a host list per tenant, or set "
                                "fabric.tenant_meters = false"))
    if not table:
        return {}
    if not isinstance(table, dict):
        issues.append(SpecIssue("tenants", "must be a table",
                                'write [tenants] then lines like a = ["h1", "h2"]'))
        return {}
    if fabric["mode"] != "openflow" or fabric["controller"] == "static":
        issues.append(SpecIssue("tenants", "tenant isolation is enforced by the OpenFlow "
                                "controller apps", 'set fabric.mode = "openflow" and '
                                'fabric.controller = "ecmp" or "adaptive"'))
    hosts = set(make_topology(fabric).host_names())
    owner: dict[str, str] = {}
    resolved = {}
    for name, members in table.items():
        path = f"tenants.{name}"
        if not (isinstance(members, list) and members
                and all(isinstance(m, str) for m in members)):
            issues.append(SpecIssue(path, "must be a non-empty list of host names",
                                    f'write e.g. {name} = ["h1", "h2"]'))
            continue
        for member in members:
            if member not in hosts:
                issues.append(SpecIssue(path, f"no host {member!r} in this fabric",
                                        f"use hosts h1..h{len(hosts)}"))
            elif member in owner:
                issues.append(SpecIssue(path, f"{member} is already in tenant "
                                        f"{owner[member]!r}", "give each host one tenant"))
            else:
                owner[member] = name
        resolved[name] = sorted(members, key=lambda h: int(h[1:]) if h[1:].isdigit() else 0)
    return resolved


def _renamed_rates(table: Any, issues: list[SpecIssue]) -> None:
    """Specs written before time dilation gave the emulated link rates."""
    for old, new in (("host_rate", "target_rate"), ("fabric_rate", "target_fabric_rate")):
        if isinstance(table, dict) and old in table:
            issues.append(SpecIssue(f"fabric.{old}", f"renamed: fabric.{new} is the rate of the "
                                    "fabric under study, which runs fabric.dilation times "
                                    "slower", f"write fabric.{new} = {table[old]!r} and "
                                    "fabric.dilation = 1 to run at that rate in real time as "
                                    "before"))


def _check_fabric(fabric: dict[str, Any], issues: list[SpecIssue]) -> None:
    frame = frame_bytes(fabric["mtu"])
    if fabric["buffer"] < frame:
        issues.append(SpecIssue("fabric.buffer", f"{fabric['buffer']} bytes is smaller than one "
                                f"frame ({frame} bytes at mtu {fabric['mtu']})",
                                f"set fabric.buffer to at least {frame} bytes, "
                                "typically tens of frames such as '64KiB'"))
    if fabric["controller"] != "static" and fabric["mode"] != "openflow":
        issues.append(SpecIssue("fabric.controller", f"controller {fabric['controller']!r} "
                                "needs OpenFlow switches",
                                'set fabric.mode = "openflow", or fabric.controller = '
                                '"static"'))
    if fabric["topology"] == "leafspine" and fabric["leaves"] * fabric["hosts_per_leaf"] < 2:
        issues.append(SpecIssue("fabric.hosts_per_leaf", "a fabric needs at least 2 hosts",
                                "raise fabric.leaves or fabric.hosts_per_leaf"))


def _check_capacity(fabric: dict[str, Any], topo: FabricTopo,
                    issues: list[SpecIssue]) -> None:
    found = capacity.estimate(len(topo.nodes()))
    problem = capacity.problem(found)
    if problem is None:
        return
    shape = ", ".join(f"fabric.{name}" for name in SHAPE_FIELDS[fabric["topology"]])
    issues.append(SpecIssue("fabric", f"too large for this host: {problem}",
                            f"build at most {found.max_nodes} nodes here (lower {shape}), "
                            "move a study of this scale to simulation (e.g. htsim, ns-3), "
                            "or build it anyway with --force (kvfabric run or sweep)"))


#: The fields that set a topology's size.
SHAPE_FIELDS = {"leafspine": ("spines", "leaves", "hosts_per_leaf"), "star": ("hosts",),
                "dumbbell": ("hosts_per_side",)}


def _check_queues(queues: dict[str, Any], fabric: dict[str, Any],
                  issues: list[SpecIssue]) -> None:
    settings = make_queue_settings(queues, fabric)
    if settings is None:
        return
    for name, problem in settings.check():
        issues.append(SpecIssue(f"queues.{name}", problem.split(";")[0],
                                problem.split("; ", 1)[-1]))
    frame = frame_bytes(fabric["mtu"])
    for name in ("lossless_buffer", "xoff"):
        if 0 < queues[name] < 2 * frame:
            issues.append(SpecIssue(f"queues.{name}", f"{queues[name]} bytes is under two "
                                    f"frames ({2 * frame} bytes)",
                                    f"set queues.{name} to 0 (derived) or at least {2 * frame}"))
    if queues["lossless_buffer"] and queues["xoff"] and queues["pfc"]:
        need = queues["xoff"] + (queues["headroom"] or 2 * frame)
        if queues["lossless_buffer"] < need:
            issues.append(SpecIssue("queues.lossless_buffer", f"{queues['lossless_buffer']} "
                                    f"bytes cannot hold XOFF plus headroom ({need} bytes)",
                                    f"raise queues.lossless_buffer to at least {need} or set "
                                    "it to 0 (derived)"))


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

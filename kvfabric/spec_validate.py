"""Validate a spec whole: every section, field and cross-check, before anything is built.

Validation reports every problem at once, each naming the field and the fix (a SpecError of
SpecIssues), and resolves what it accepts into a :class:`kvfabric.resolved_spec.Spec`.
"""

from __future__ import annotations

from typing import Any

from topologies.leafspine import FabricTopo
from wire.frames import frame_bytes

from . import capacity
from .dilation import Scale, emulate_section
from .resolved_spec import Spec, make_queue_settings, make_topology
from .schema import Field, SpecError, SpecIssue, resolve_section
from .spec_fields import EXPERIMENT_FIELDS, FABRIC_FIELDS, QUEUE_FIELDS, SHAPE_FIELDS
from .workloads import WORKLOADS


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


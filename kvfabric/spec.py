"""Experiment specs: load a TOML file or a shipped experiment, validate it whole, resolve it.

A spec comes from a file or a shipped experiment's name (:func:`load_spec`), from a dict of
sections with ``--set`` overrides (:func:`spec_from_dict`), or from a Topo
(:func:`spec_for_topology`). The fields are in kvfabric/spec_fields.py, the checks in
kvfabric/spec_validate.py, and the resolved Spec in kvfabric/resolved_spec.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from topologies.leafspine import FabricTopo

from .dilation import Scale, emulate_section
from .resolved_spec import Spec
from .schema import SpecError, SpecIssue, resolve_section
from .spec_fields import EXPERIMENT_FIELDS, FABRIC_FIELDS, SHAPE_FIELDS
from .spec_validate import validate
from .toml_file import read_toml

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"


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


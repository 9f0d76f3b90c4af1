"""What a sweep runs: the base spec, the swept parameters, repeats and the plotted metric.

A plan comes from the command line (``--param workload.senders=1,2,4,8 --repeat 3``), from a
shipped sweep definition (``experiments/sweeps/<name>.toml``), or from a sweep folder's
sweep.json when resuming. Every point is validated before the first one runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from .resolved_spec import Spec
from .schema import SpecError, SpecIssue
from .spec import EXPERIMENTS_DIR, find_spec_file, load_spec
from .toml_file import read_toml

SWEEPS_DIR = EXPERIMENTS_DIR / "sweeps"


@dataclass
class SweepPlan:
    spec: str                                   # shipped experiment name or absolute path
    params: dict[str, list[Any]]                # SECTION.FIELD -> values, in sweep order
    repeat: int = 1
    metric: str | None = None                   # a key of summary.json "results"
    overrides: dict[str, Any] = field(default_factory=dict)   # fixed --set values
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepPlan:
        return cls(spec=data["spec"], params={k: list(v) for k, v in data["params"].items()},
                   repeat=int(data.get("repeat", 1)), metric=data.get("metric"),
                   overrides=dict(data.get("overrides") or {}),
                   description=data.get("description", ""))

    @property
    def plan_id(self) -> str:
        """Same runs, same id: a rerun of the same command finds its unfinished sweep. The
        metric and description only change the report, so they are not part of it."""
        key = {k: v for k, v in self.to_dict().items() if k not in ("description", "metric")}
        return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]

    def combos(self) -> list[dict[str, Any]]:
        """Every combination of parameter values (the first parameter varies slowest)."""
        keys = list(self.params)
        return [dict(zip(keys, values)) for values in
                itertools.product(*(self.params[k] for k in keys))]

    def runs(self) -> list[dict[str, Any]]:
        """Every run, numbered from 1. Repeats are interleaved (all points once, then again)
        so slow drift on a shared machine spreads over points instead of biasing one."""
        out = []
        combos = self.combos()
        for repeat in range(1, self.repeat + 1):
            for point, values in enumerate(combos):
                index = len(out) + 1
                out.append({"index": index, "point": point, "repeat": repeat,
                            "values": values, "dir": run_dir_name(index, values, repeat)})
        return out


def run_dir_name(index: int, values: dict[str, Any], repeat: int) -> str:
    label = "-".join(f"{key.rpartition('.')[2]}={value}" for key, value in values.items())
    label = re.sub(r"[^A-Za-z0-9=._-]+", "_", label)[:80]
    return f"{index:03d}-{label}-r{repeat}"


def parse_value(text: str) -> Any:
    """A value as TOML reads it (4, 0.5, true, "x"); a bare word such as 100Mbit stays text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def parse_param(item: str) -> tuple[str, list[Any]]:
    """'workload.senders=1,2,4,8' -> ('workload.senders', [1, 2, 4, 8])."""
    key, sep, values = item.partition("=")
    key = key.strip()
    if not sep or "." not in key or not values.strip():
        raise SpecError([SpecIssue("--param", f"{item!r} is not SECTION.FIELD=V1,V2,...",
                                   "write e.g. --param workload.senders=1,2,4,8")])
    parsed = [parse_value(v) for v in values.split(",") if v.strip()]
    if len(set(map(repr, parsed))) != len(parsed):
        raise SpecError([SpecIssue(f"--param {key}", "a value is listed twice",
                                   "list each value once; use --repeat for repeats")])
    return key, parsed


def shipped_sweeps() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SWEEPS_DIR.glob("*.toml"))}


def _sweep_file(name_or_path: str) -> Path | None:
    """The sweep definition name_or_path refers to, or None if it is an experiment spec."""
    path = Path(name_or_path)
    if path.suffix == ".toml" and path.is_file():
        try:
            return path if "sweep" in read_toml(path) else None
        except SpecError:
            return None  # load_spec reports what is wrong with the file
    return shipped_sweeps().get(name_or_path)


def load_definition(path: Path) -> SweepPlan:
    """A sweep definition file: [sweep] spec, repeat, metric, description; [sweep.params]
    SECTION.FIELD = [values]; [sweep.set] SECTION.FIELD = value."""
    table = read_toml(path).get("sweep")
    if not isinstance(table, dict):
        raise SpecError([SpecIssue("sweep", "must be a table", "write it as [sweep] with "
                                   "spec = \"tcp_incast\" (say) on the line below")])
    issues = []
    known = {"spec", "repeat", "metric", "description", "params", "set"}
    for key in set(table) - known:
        issues.append(SpecIssue(f"sweep.{key}", "unknown field",
                                f"use only: {', '.join(sorted(known))}"))
    if not isinstance(table.get("spec"), str):
        issues.append(SpecIssue("sweep.spec", "missing", "name the experiment: spec = "
                                "\"tcp_incast\" (shipped) or a path relative to this file"))
    params = table.get("params") or {}
    if not params or not all(isinstance(v, list) and v for v in params.values()):
        issues.append(SpecIssue("sweep.params", "needs at least one SECTION.FIELD = [values]",
                                "write [sweep.params] with e.g. \"workload.senders\" = [1, 2]"))
    repeat = table.get("repeat", 1)
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        issues.append(SpecIssue("sweep.repeat", f"{repeat!r} is not a whole number >= 1",
                                "set repeat = 3, say"))
    if issues:
        raise SpecError(issues)
    spec = table["spec"]
    relative = path.parent / spec
    if spec.endswith(".toml") and relative.is_file():
        spec = str(relative.resolve())
    return SweepPlan(spec=spec, params=dict(params), repeat=repeat, metric=table.get("metric"),
                     overrides=dict(table.get("set") or {}),
                     description=table.get("description", ""))


def make_plan(spec: str, params: list[str], repeat: int | None, metric: str | None,
              overrides: dict[str, Any]) -> SweepPlan:
    """The plan for `kvfabric sweep SPEC ...`: a sweep definition with command-line changes,
    or an experiment spec with the --param lists."""
    definition = _sweep_file(spec)
    if definition is not None:
        plan = load_definition(definition)
    else:
        path = find_spec_file(spec)  # raises SpecError naming the shipped ones
        shipped = path.parent.resolve() == EXPERIMENTS_DIR.resolve()
        plan = SweepPlan(spec=path.stem if shipped else str(path.resolve()), params={})
    for item in params:
        key, values = parse_param(item)
        plan.params[key] = values
    if repeat is not None:
        if repeat < 1:
            raise SpecError([SpecIssue("--repeat", f"{repeat} is below 1", "use --repeat 1 or "
                                       "more")])
        plan.repeat = repeat
    if metric:
        plan.metric = metric
    plan.overrides.update(overrides)
    if not plan.params:
        raise SpecError([SpecIssue("--param", "nothing to sweep",
                                   "add --param SECTION.FIELD=V1,V2,... e.g. "
                                   "--param workload.senders=1,2,4,8")])
    for key in plan.params:
        if key in plan.overrides:
            raise SpecError([SpecIssue(key, "both swept (--param) and fixed (--set)",
                                       f"drop --set {key}")])
        if key == "experiment.name":
            raise SpecError([SpecIssue(key, "cannot be swept: all runs share the sweep's "
                                       "folder", "sweep another field")])
    return plan


def validate_points(plan: SweepPlan, force: bool = False,
                    simulated: bool = False) -> list[Spec]:
    """The resolved spec of every point, or one SpecError listing every bad point. force:
    accept fabrics larger than this host can build in reasonable time; simulated: the
    points run on a simulator (no emulation limits)."""
    specs, issues = [], []
    for values in plan.combos():
        try:
            specs.append(load_spec(plan.spec, {**plan.overrides, **values}, force=force,
                                   simulated=simulated))
        except SpecError as exc:
            label = ", ".join(f"{k}={v}" for k, v in values.items())
            for issue in exc.issues:
                if not any(i.field == issue.field and i.problem == issue.problem
                           for i in issues):
                    issues.append(SpecIssue(issue.field, f"{issue.problem} (at point {label})",
                                            issue.fix))
    if issues:
        raise SpecError(issues)
    return specs

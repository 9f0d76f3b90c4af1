"""report.md for a run folder: status, setup, results table and plots, from the folder alone.

The runner writes it after analysis; ``kvfabric sweep`` and ``kvfabric compare`` write their
own with the helpers here. Values are shown in readable units chosen by the key's suffix
(``_bps`` -> Mbit/s, ``_s`` -> ms or s, ``_bytes`` -> KiB/MiB), the raw numbers stay in
summary.json.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import tomllib

from fabriccore.units import format_rate, format_size

from .fidelity import scale_and_fidelity_lines


def format_value(key: str, value: Any) -> str:
    """A result value in a readable unit, chosen from the key's unit suffix."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, (list, tuple)):
            return ", ".join(map(str, value))
        return str(value)
    if key.endswith("_bps"):
        return format_rate(value)
    if key.endswith("_bytes"):
        return format_size(value) if value >= 1024 else f"{value:g} B"
    if key.endswith("_s"):
        return f"{value * 1e3:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    if key.endswith("_emulated"):
        return format_value(key.removesuffix("_emulated"), value) + " (emulated)"
    if key.endswith(("_us", "_ms")):
        return f"{value:.4g} {key[-2:]}"
    if key.endswith(("_utilisation", "_fraction", "_ratio")):
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def spec_field_kinds() -> dict[str, str]:
    """'fabric.buffer' -> 'size', for every field of every section and workload kind."""
    from .specdoc import spec_sections, workload_sections

    kinds = {f"{section}.{f.name}": f.kind
             for section, fields in spec_sections().items() for f in fields}
    for _, fields in workload_sections().values():
        kinds.update({f"workload.{f.name}": f.kind for f in fields})
    return kinds


def format_spec_value(dotted: str, value: Any, kinds: dict[str, str] | None = None) -> str:
    """A resolved spec value (canonical units) shown in a readable unit, by its Field kind."""
    kind = (kinds if kinds is not None else spec_field_kinds()).get(dotted)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return format_value(dotted, value)
    if kind == "rate":
        return format_rate(value)
    if kind == "size":
        return format_size(value) if value >= 1024 else f"{value:g} B"
    if kind == "duration":
        return f"{value * 1e3:.3g} ms" if abs(value) < 1 else f"{value:.3g} s"
    return format_value(dotted, value)


def format_derived(dotted: str, values: list[Any], kinds: dict[str, str] | None = None) -> str:
    """The value(s) a derived (0 in the spec) field ran with, marked as derived."""
    shown = [format_spec_value(dotted, v, kinds) for v in (values[0], values[-1])]
    return (shown[0] if len(values) == 1 else f"{shown[0]} to {shown[1]} per switch port") \
        + " (derived)"


def metric_label(key: str) -> tuple[str, float]:
    """Axis label and scale factor for plotting a result key."""
    name = key.replace("_", " ")
    if key.endswith("_bps"):
        return name.removesuffix(" bps") + " (Mbit/s)", 1e-6
    if key.endswith("_s"):
        return name.removesuffix(" s") + " (ms)", 1e3
    if key.endswith("_bytes"):
        return name.removesuffix(" bytes") + " (KiB)", 1 / 1024
    if key.endswith("_utilisation"):
        return name + " (%)", 100.0
    return name, 1.0


def md_table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, headers)) + " |",
             "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return lines


def nested_tables(results: dict[str, Any], prefix: str = "") -> list[tuple[str, list, list]]:
    """(title, headers, rows) for every nested mapping in ``results``, values in readable
    units: a mapping of mappings (roce_incast's ``transports``) as one column per entry, a
    mapping of values as result/value rows; mappings nested deeper get tables of their own,
    titled by their dotted path."""
    tables: list[tuple[str, list, list]] = []
    for name, value in results.items():
        if not isinstance(value, dict) or not value:
            continue
        title = prefix + name
        if all(isinstance(v, dict) for v in value.values()):
            keys = list(dict.fromkeys(k for row in value.values() for k in row
                                      if not isinstance(row[k], dict)))
            tables.append((title, ["result", *value], [
                [k, *(format_value(k, row.get(k)) for row in value.values())] for k in keys]))
            for column, row in value.items():
                tables += nested_tables(row, f"{title}.{column}.")
        else:
            rows = [[k, format_value(k, v)] for k, v in value.items() if not isinstance(v, dict)]
            if rows:
                tables.append((title, ["result", "value"], rows))
            tables += nested_tables(value, f"{title}.")
    return tables


def flatten_mapping(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as dotted keys to its values (``roce-dcqcn.fct_p50_us``)."""
    flat: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(item, dict):
            flat.update(flatten_mapping(item, f"{prefix}{key}."))
        else:
            flat[prefix + key] = item
    return flat


def read_spec(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "spec.toml"
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}  # the report says the spec is unknown rather than fail


def render_run_report(run_dir: Path) -> str:
    summary = json.loads((run_dir / "summary.json").read_text())
    spec = read_spec(run_dir)
    out = [f"# {summary.get('experiment', '?')} — run {summary.get('run_id', run_dir.name)}",
           ""]
    status = summary.get("status", "?")
    out.append(f"**Status: {status}**" + (f" — {summary['error']}" if summary.get("error")
                                          else ""))
    description = spec.get("experiment", {}).get("description")
    if description:
        out += ["", description]
    fabric = summary.get("fabric", {})
    out += ["", f"Fabric: {fabric.get('mode', '?')} {fabric.get('topology', '?')}, "
            f"{fabric.get('nodes', '?')} nodes, {fabric.get('links', '?')} links; "
            f"finished {summary.get('finished', '?')}.", ""]
    out += [*scale_and_fidelity_lines(summary), ""]
    results = summary.get("results") or {}
    out += ["## Results", ""]
    flat = {k: v for k, v in results.items() if not isinstance(v, dict)}
    if flat:
        out += md_table(["result", "value", "raw"],
                        [[k, format_value(k, v), v] for k, v in flat.items()])
    for name, headers, rows in nested_tables(results):
        out += ["", f"### {name}", "", *md_table(headers, rows)]
    if not results:
        out.append("No results: the workload produced nothing to analyse.")
    out += ["", "## Setup", ""]
    kinds = spec_field_kinds()
    derived = summary.get("derived") or {}
    rows = [[f"{section}.{k}", format_derived(f"{section}.{k}", derived[f"{section}.{k}"],
                                              kinds) if derived.get(f"{section}.{k}")
             else format_spec_value(f"{section}.{k}", v, kinds)]
            for section, table in spec.items() if section != "experiment"
            and isinstance(table, dict) for k, v in table.items()]
    out += md_table(["field", "value"], rows) if rows else ["(spec.toml missing)"]
    command = "sim" if summary.get("engine") == "hpcc-ns3" else "run"
    out += ["", f"Repeat it with `kvfabric {command} {run_dir / 'spec.toml'}`.", ""]
    timings = summary.get("timings_s") or {}
    if timings:
        out += ["## Timings", "", *md_table(["phase", "seconds"],
                                           [[k, f"{v:.2f}"] for k, v in timings.items()]), ""]
    plots = sorted(p.name for p in run_dir.glob("*.png"))
    if plots:
        out += ["## Plots", ""] + [f"![{name}]({name})\n" for name in plots]
    approximations = summary.get("approximations") or []
    if approximations:
        out += ["## Approximations", ""] + [f"- {a}" for a in approximations] + [""]
    files = sorted(p.name for p in run_dir.iterdir() if p.name != "report.md")
    out += ["## Files", "", ", ".join(f"`{f}`" for f in files),
            "", "Column meanings and units: results/README.md in the kvfabric repository.", ""]
    return "\n".join(out)


def write_run_report(run_dir: Path, log: logging.Logger | None = None) -> Path | None:
    """Write run_dir/report.md; a failure is logged, never raised (the data is already
    written, the report is a view of it)."""
    try:
        path = run_dir / "report.md"
        path.write_text(render_run_report(run_dir))
        return path
    except Exception:
        (log or logging.getLogger("kvfabric")).exception("writing report.md failed")
        return None

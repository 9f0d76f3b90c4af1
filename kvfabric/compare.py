"""`kvfabric compare RUN RUN ...`: runs side by side in one folder with a report.

The folder (default ``results/compare/<id>/``) holds compare.csv (one row per run: the spec
fields that differ, status, every result), report.md (the same as tables, with the plots) and,
when every run has the same workload kind and that workload provides ``overlay``, plots with
the runs overlaid (for tcp_incast: FCT CDFs and per-round goodput).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from . import results
from .engine_compare import QUEUE_MEAN_NOTE, engine_rows, plot_engines, wants_engine_section
from .report import flatten_mapping, format_spec_value, format_value, md_table, read_spec
from .schema import SpecError, SpecIssue


def _flatten(spec: dict[str, Any]) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, table in spec.items()
            if isinstance(table, dict) for key, value in table.items()}


def load_runs(refs: list[str], root: Path, origin: str | None = None) -> list[dict[str, Any]]:
    runs = []
    for ref in refs:
        run_dir = results.find_run(ref, root, origin)
        summary = results.load_summary(run_dir)
        spec = _flatten(read_spec(run_dir))
        spec["run.engine"] = summary.get("engine") or "emulation"
        if spec["run.engine"] != "emulation":  # a simulator runs the target at its real rate
            spec["fabric.dilation"] = (summary.get("scale") or {}).get("dilation", 1.0)
        runs.append({"dir": run_dir, "summary": summary, "spec": spec})
    return runs


def differing_fields(runs: list[dict[str, Any]]) -> list[str]:
    keys = []
    for run in runs:
        keys += [k for k in run["spec"] if k not in keys]
    return [k for k in keys if k not in ("experiment.description",)
            and len({repr(run["spec"].get(k)) for run in runs}) > 1]


def labels_for(runs: list[dict[str, Any]], differing: list[str]) -> list[str]:
    labels = []
    for run in runs:
        parts = [f"{k.rpartition('.')[2]}={format_spec_value(k, run['spec'].get(k))}"
                 for k in differing if k != "experiment.name"][:3]
        labels.append(", ".join(parts) or run["dir"].name)
    if len(set(labels)) < len(labels):  # identical specs (repeats): tell them apart by id
        labels = [f"{label} ({run['dir'].name})" if label != run["dir"].name else label
                  for label, run in zip(labels, runs)]
    return labels


def write_comparison(runs: list[dict[str, Any]], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    differing = differing_fields(runs)
    labels = labels_for(runs, differing)
    result_keys = []
    for run in runs:
        result_keys += [k for k in (run["summary"].get("results") or {}) if k not in result_keys]
    rows = []
    for label, run in zip(labels, runs):
        row = {"label": label, "run_dir": str(run["dir"]), "status": run["summary"]["status"]}
        row.update({k: run["spec"].get(k) for k in differing})
        row.update({k: (run["summary"].get("results") or {}).get(k) for k in result_keys})
        rows.append(row)
    results.write_csv(out_dir / "compare.csv", rows)
    plots = _overlay(runs, labels, out_dir)
    out = ["# Comparison of " + ", ".join(r["dir"].name for r in runs), "",
           f"Written {time.strftime('%Y-%m-%d %H:%M:%S')}. One column per run; raw values in "
           "compare.csv.", ""]
    header = ["", *labels]
    out += ["## Runs", ""]
    out += md_table(header, [
        ["folder", *(f"`{r['dir']}`" for r in runs)],
        ["experiment", *(r["summary"].get("experiment", "?") for r in runs)],
        ["status", *(r["summary"]["status"] for r in runs)],
        ["fabric", *(f"{r['summary'].get('fabric', {}).get('mode', '?')} "
                     f"{r['summary'].get('fabric', {}).get('topology', '?')}" for r in runs)],
    ]) + [""]
    out += ["## Differences in the spec", ""]
    if differing:
        out += md_table(header, [[k, *(format_spec_value(k, r["spec"].get(k)) for r in runs)]
                                 for k in differing]) + [""]
    else:
        out += ["The runs have identical specs (repeats).", ""]
    if wants_engine_section(runs):
        plot = plot_engines(runs, labels, out_dir / "engines.png")
        out += ["## Emulation and simulation (target units)", ""]
        out += md_table(header, engine_rows(runs)) + ["", QUEUE_MEAN_NOTE, ""]
        if plot:
            out += [f"![{plot.name}]({plot.name})", ""]
    out += ["## Results", ""]
    values = [r["summary"].get("results") or {} for r in runs]
    nested = [k for k in result_keys if any(isinstance(v.get(k), dict) for v in values)]
    out += md_table(header, [[k, *(format_value(k, v.get(k)) for v in values)]
                             for k in result_keys if k not in nested]) + [""]
    for name in nested:  # e.g. roce_incast's transports: one row per entry and result
        flat = [flatten_mapping(v.get(name) or {}) for v in values]
        keys = list(dict.fromkeys(k for f in flat for k in f))
        out += [f"### {name}", "", *md_table(header, [
            [k, *(format_value(k.rpartition(".")[2], f.get(k)) for f in flat)]
            for k in keys]), ""]
    if plots:
        out += ["## Overlaid plots", ""] + [f"![{p.name}]({p.name})\n" for p in plots]
    else:
        kinds = {r["spec"].get("workload.kind") for r in runs}
        out += [f"No overlaid plots: the runs' workloads ({', '.join(map(str, kinds))}) "
                "differ or provide no overlay.", ""]
    out += ["## Each run's own plots", ""]
    for label, run in zip(labels, runs):
        for png in sorted(run["dir"].glob("*.png")):
            out.append(f"- {label}: [{png.name}]({png.resolve()})")
    report = out_dir / "report.md"
    report.write_text("\n".join(out) + "\n")
    return report


def _overlay(runs: list[dict[str, Any]], labels: list[str], out_dir: Path) -> list[Path]:
    from .workloads import WORKLOADS

    kinds = {run["spec"].get("workload.kind") for run in runs}
    if len(kinds) != 1:
        return []
    module = WORKLOADS.get(kinds.pop())
    overlay = getattr(module, "overlay", None)
    if overlay is None:
        return []
    return list(overlay([run["dir"] for run in runs], labels, out_dir))


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="put runs side by side (tables and overlaid plots)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folder, run id, or 'latest'")
    p.add_argument("--out", metavar="DIR", help="output folder (default results/compare/ID)")
    p.add_argument("--results", metavar="DIR", help="results root (default ./results)")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    root = results.results_root(args.results)
    if len(args.runs) < 2:
        print("kvfabric compare: give at least two runs", file=sys.stderr)
        return 2
    runs = load_runs(args.runs, root, results.root_origin(args.results))
    if args.out:
        out_dir = Path(args.out)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpecError([SpecIssue(f"--out {args.out}", f"cannot be created "
                                       f"({exc.strerror or exc})", "give a folder you can "
                                       "write to")], header="bad output folder") from exc
    else:
        out_dir = results.new_run_dir(results.prepare_root(args.results), "compare")
    report = write_comparison(runs, out_dir)
    print(f"comparison of {len(runs)} runs: {report}")
    print(json.dumps({r["dir"].name: r["summary"]["status"] for r in runs}))
    return 0

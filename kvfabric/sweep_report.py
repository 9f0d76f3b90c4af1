"""A finished sweep's tables, plot and report, from its run folders alone.

sweep.csv: one row per run (parameters, repeat, status, every numeric result).
points.csv: one row per point (parameters, runs ok/failed, metric mean, std, min, max).
sweep.png: the metric against the first parameter, one line per value of the others, error
bars = sample standard deviation over repeats, each repeat as a dot.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from . import results
from .plotting import new_figure, save_figure
from .report import format_value, md_table, metric_label


def default_metric(kind: str | None, summaries: list[dict[str, Any]]) -> str | None:
    """The workload's DEFAULT_METRIC, else the first numeric result of the first good run."""
    from .workloads import WORKLOADS

    module = WORKLOADS.get(kind or "")
    if module is not None and getattr(module, "DEFAULT_METRIC", None):
        return module.DEFAULT_METRIC
    for summary in summaries:
        for key, value in (summary.get("results") or {}).items():
            if isinstance(value, float):
                return key
    return None


def _summary(sweep_dir: Path, run: dict[str, Any]) -> dict[str, Any]:
    path = sweep_dir / "runs" / run["dir"] / "summary.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def collect(sweep_dir: Path, state: dict[str, Any]) -> tuple[list[dict], list[dict], str]:
    """(per-run rows, per-point rows, metric)."""
    plan = state["plan"]
    keys = list(plan["params"])
    summaries = [_summary(sweep_dir, run) for run in state["runs"]]
    kind = next((_kind_of(sweep_dir, run) for run, summary in zip(state["runs"], summaries)
                 if summary), None)
    metric = plan.get("metric") or default_metric(kind, [s for s in summaries if s]) or ""
    numeric = []
    for summary in summaries:
        for key, value in (summary.get("results") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) \
                    and key not in numeric:
                numeric.append(key)
    run_rows = []
    for run, summary in zip(state["runs"], summaries):
        row = {"run": run["index"], "dir": f"runs/{run['dir']}",
               **{k: run["values"][k] for k in keys}, "repeat": run["repeat"],
               "status": run["status"], "error": run.get("error") or ""}
        row.update({k: (summary.get("results") or {}).get(k) for k in numeric})
        run_rows.append(row)
    point_rows = []
    for point in sorted({run["point"] for run in state["runs"]}):
        runs = [(run, row) for run, row in zip(state["runs"], run_rows)
                if run["point"] == point]
        values = [row.get(metric) for run, row in runs
                  if run["status"] == "ok" and row.get(metric) is not None]
        point_rows.append({
            **{k: runs[0][0]["values"][k] for k in keys},
            "runs_ok": sum(run["status"] == "ok" for run, _ in runs),
            "runs_failed": sum(run["status"] == "failed" for run, _ in runs),
            "metric": metric,
            "mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else (0.0 if values else None),
            "min": min(values) if values else None,
            "max": max(values) if values else None,
            "n": len(values),
            "values": values,
        })
    return run_rows, point_rows, metric


def _kind_of(sweep_dir: Path, run: dict[str, Any]) -> str | None:
    from .report import read_spec

    return read_spec(sweep_dir / "runs" / run["dir"]).get("workload", {}).get("kind")


def plot(sweep_dir: Path, state: dict[str, Any], run_rows: list[dict],
         point_rows: list[dict], metric: str) -> Path | None:
    keys = list(state["plan"]["params"])
    if not metric or not any(p["n"] for p in point_rows):
        return None
    x_key, others = keys[0], keys[1:]
    xs = state["plan"]["params"][x_key]
    numeric_x = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
    position = {repr(x): (x if numeric_x else i) for i, x in enumerate(xs)}
    label, scale = metric_label(metric)
    fig, ax = new_figure(width=7, height=4.5)
    groups: dict[tuple, list[dict]] = {}
    for row in point_rows:
        groups.setdefault(tuple(row[k] for k in others), []).append(row)
    for group, rows in groups.items():
        rows = [r for r in rows if r["n"]]
        name = ", ".join(f"{k.rpartition('.')[2]}={v}" for k, v in zip(others, group))
        xs_g = [position[repr(r[x_key])] for r in rows]
        line = ax.errorbar(xs_g, [r["mean"] * scale for r in rows],
                           yerr=[r["std"] * scale for r in rows], marker="o", capsize=4,
                           label=name or f"mean ± std over repeats (n ≤ {state['plan']['repeat']})")
        for r in rows:
            ax.scatter([position[repr(r[x_key])]] * r["n"], [v * scale for v in r["values"]],
                       s=10, alpha=0.4, color=line[0].get_color())
    failed = [r for r in point_rows if r["runs_failed"]]
    for r in failed:
        ax.annotate(f"{r['runs_failed']} failed", (position[repr(r[x_key])], 0),
                    textcoords="offset points", xytext=(0, 5), ha="center", color="tab:red",
                    fontsize=8)
    bottleneck = next((row.get("bottleneck_rate_bps") for row in run_rows
                       if row.get("bottleneck_rate_bps")), None)
    if metric.endswith("_bps") and bottleneck:
        ax.axhline(bottleneck * scale, color="grey", linestyle=":", label="bottleneck rate")
    if numeric_x:
        ax.set_xticks(xs, [f"{x:g}" for x in xs])
    else:
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set(xlabel=x_key, ylabel=label, ylim=(0, None),
           title=f"{state['experiment']}: {metric} vs {x_key.rpartition('.')[2]}")
    ax.legend(loc="best", fontsize=8)
    path = sweep_dir / "sweep.png"
    save_figure(fig, path)
    return path


def render_report(sweep_dir: Path, state: dict[str, Any], run_rows: list[dict],
                  point_rows: list[dict], metric: str, plot_path: Path | None) -> str:
    plan = state["plan"]
    keys = list(plan["params"])
    out = [f"# Sweep of {state['experiment']} — {sweep_dir.name}", ""]
    if plan.get("description"):
        out += [plan["description"], ""]
    ok = sum(r["status"] == "ok" for r in state["runs"])
    out += [f"**Status: {state['status']}** — {ok} of {len(state['runs'])} runs ok; "
            f"{len(point_rows)} points x {plan['repeat']} repeats.", "",
            f"Command: `{state.get('command', '')}`", ""]
    if plan.get("overrides"):
        out += ["Fixed for every run: " + ", ".join(f"`{k} = {v}`" for k, v in
                                                     plan["overrides"].items()), ""]
    out += [f"## {metric or 'metric'} per point", ""]
    rows = [[*(p[k] for k in keys), f"{p['n']}/{p['runs_ok'] + p['runs_failed']}"
             + (f" ({p['runs_failed']} failed)" if p["runs_failed"] else ""),
             format_value(metric, p["mean"]), format_value(metric, p["std"]),
             format_value(metric, p["min"]), format_value(metric, p["max"])]
            for p in point_rows]
    out += md_table([*keys, "runs ok", "mean", "std", "min", "max"], rows) + [""]
    if plot_path:
        out += [f"![{plot_path.name}]({plot_path.name})", ""]
    else:
        available = sorted({k for r in run_rows for k, v in r.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)
                            and k not in ("run", "repeat", *keys)})
        out += [f"Nothing to plot: no ok run has a result named {metric!r}. Results the runs "
                f"have: {', '.join(available) or 'none'}; re-plot with "
                f"`kvfabric sweep --resume {sweep_dir} --metric NAME`.", ""]
    out += ["## Runs", ""]
    rows = [[r["run"], *(r[k] for k in keys), r["repeat"], r["status"],
             format_value(metric, r.get(metric)), f"[{r['dir']}]({r['dir']}/report.md)",
             r["error"]] for r in run_rows]
    out += md_table(["#", *keys, "repeat", "status", metric or "metric", "folder", "error"],
                    rows) + [""]
    out += ["Every run's numbers: `sweep.csv` (one row per run) and `points.csv` (one row "
            "per point); columns in results/README.md.", ""]
    return "\n".join(out)


def write_sweep_outputs(sweep_dir: Path, state: dict[str, Any]) -> None:
    run_rows, point_rows, metric = collect(sweep_dir, state)
    results.write_csv(sweep_dir / "sweep.csv", run_rows)
    results.write_csv(sweep_dir / "points.csv",
                      [{k: v for k, v in p.items() if k != "values"} for p in point_rows])
    plot_path = plot(sweep_dir, state, run_rows, point_rows, metric)
    (sweep_dir / "report.md").write_text(
        render_report(sweep_dir, state, run_rows, point_rows, metric, plot_path))

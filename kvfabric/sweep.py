"""`kvfabric sweep`: run every point of a sweep in turn into one folder, resumably.

``results/<experiment>/sweep-<id>/`` holds sweep.json (the plan and each run's state),
``runs/NNN-<param>=<value>-r<repeat>/`` (ordinary run folders), and after the last run
sweep.csv, points.csv, sweep.png and report.md (kvfabric.sweep_report).

Each run takes the fabric lock itself (one fabric at a time; other jobs may run between
points). A failed run is recorded and the sweep goes on; Ctrl-C or SIGTERM stops it after
tearing the current fabric down, and rerunning the same command (or ``--resume DIR``) runs
only what is missing. Exit codes: 0 every run ok, 1 some run failed, 2 bad plan (nothing
ran), 3 fabric busy, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import results
from .lock import WAIT_ENV, FabricBusy, check_wait_seconds, wait_seconds_from_env
from .resolved_spec import Spec
from .schema import SpecError, SpecIssue
from .sweep_plan import SweepPlan, make_plan, parse_value, validate_points

STATE_FILE = "sweep.json"
DONE = ("ok", "failed")
#: Seconds each run waits for the fabric lock when $KVFABRIC_LOCK_WAIT_S is unset: a sweep is
#: long and unattended, so it queues behind other jobs rather than failing.
DEFAULT_LOCK_WAIT_S = 900.0

RunPoint = Callable[[Spec, Path], Any]  # returns an object with .status and .summary


class SweepInterrupted(Exception):
    pass


def _run_point_for_real(lock_wait_s: float) -> RunPoint:
    from .runner import run_experiment

    def run(spec: Spec, run_dir: Path):
        return run_experiment(spec, run_dir.parent, run_dir=run_dir, lock_wait_s=lock_wait_s)
    return run


def _run_point_simulated(ns3: str | None) -> RunPoint:
    """Each point on HPCC's ns-3 (kvfabric sim): no root, no fabric lock."""
    from types import SimpleNamespace

    from .engines.hpcc_ns3 import simulator
    from .engines.hpcc_ns3.inputs import build_inputs
    from .sim import run_simulation

    sim, why = simulator.locate(ns3)
    if sim is None:
        raise SpecError([SpecIssue("--ns3", why, "give --ns3 PATH or set "
                                   f"${simulator.ENV_VAR}")])

    def run(spec: Spec, run_dir: Path):
        summary = run_simulation(spec, build_inputs(spec), sim, run_dir.parent,
                                 run_dir=run_dir)
        return SimpleNamespace(status=summary["status"], summary=summary, signals=[])
    return run


def new_sweep_dir(results_root: Path, experiment: str) -> Path:
    path = results.new_run_dir(results_root, experiment)
    final = path.with_name("sweep-" + path.name)
    path.rename(final)
    return final


def find_unfinished(results_root: Path, experiment: str, plan: SweepPlan,
                    engine: str = "emulation") -> Path | None:
    """The newest unfinished sweep folder of the same plan, if any."""
    candidates = []
    for state_path in (results_root / experiment).glob(f"sweep-*/{STATE_FILE}"):
        try:
            state = json.loads(state_path.read_text())
        except (OSError, ValueError):
            continue
        if (_plan_id_of(state) == plan.plan_id and state.get("status") != "complete"
                and state.get("engine", "emulation") == engine):
            candidates.append(state_path.parent)
    return max(candidates, key=lambda p: p.name) if candidates else None


def _plan_id_of(state: dict[str, Any]) -> str | None:
    """The id of the plan a sweep folder holds, recomputed (ids of older versions differ)."""
    try:
        return SweepPlan.from_dict(state["plan"]).plan_id
    except (KeyError, TypeError):
        return None


def load_state(sweep_dir: Path) -> dict[str, Any]:
    path = sweep_dir / STATE_FILE
    if not path.exists():
        raise SpecError([SpecIssue(str(sweep_dir), f"is not a sweep folder (no {STATE_FILE})",
                                   "give a results/<experiment>/sweep-<id>/ folder to "
                                   "--resume")], header="bad sweep folder")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        SweepPlan.from_dict(state["plan"])
        if not all(isinstance(run, dict) and "status" in run for run in state["runs"]):
            raise TypeError("a run without a status")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) \
            as exc:
        raise SpecError([SpecIssue(str(path), f"is not a readable sweep state ({exc!r})",
                                   "start the sweep again without --resume (add --fresh)")],
                        header="bad sweep folder") from exc
    return state


def _new_state(plan: SweepPlan, experiment: str) -> dict[str, Any]:
    return {"experiment": experiment, "plan_id": plan.plan_id, "plan": plan.to_dict(),
            "status": "running", "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": _command_line(plan),
            "runs": [{**run, "status": "pending", "error": None} for run in plan.runs()]}


def _command_line(plan: SweepPlan) -> str:
    parts = ["kvfabric", "sweep", plan.spec]
    parts += [f"--param {k}={','.join(map(str, v))}" for k, v in plan.params.items()]
    parts += [f"--set {k}={v}" for k, v in plan.overrides.items()]
    if plan.repeat > 1:
        parts.append(f"--repeat {plan.repeat}")
    if plan.metric:
        parts.append(f"--metric {plan.metric}")
    return " ".join(parts)


def _save(sweep_dir: Path, state: dict[str, Any]) -> None:
    state["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    results.write_json(sweep_dir / STATE_FILE, state)


@contextlib.contextmanager
def _sigterm_interrupts():
    """Between runs SIGTERM stops the sweep like Ctrl-C (during a run the runner's own
    handler takes over, tears down, and reports the run as interrupted)."""
    def handler(signum, _frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)
    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_sweep(plan: SweepPlan, sweep_dir: Path, run_point: RunPoint,
              say: Callable[[str], None] = print, force: bool = False,
              engine: str = "emulation") -> dict[str, Any]:
    """Run what is not done yet; returns the final state (also in sweep_dir/sweep.json)."""
    specs = validate_points(plan, force, simulated=engine == "hpcc-ns3")  # before any runs
    state_path = sweep_dir / STATE_FILE
    state = load_state(sweep_dir) if state_path.exists() else _new_state(plan, specs[0].name)
    if _plan_id_of(state) != plan.plan_id:
        raise SpecError([SpecIssue(str(sweep_dir), "holds a different sweep plan",
                                   "resume it with --resume DIR alone, or start a new sweep")])
    if state.setdefault("engine", engine) != engine:
        raise SpecError([SpecIssue("--engine", f"{sweep_dir} was swept on "
                                   f"{state['engine']}", f"resume it with --engine "
                                   f"{state['engine']}, or start a new sweep")])
    state["status"] = "running"
    state["plan"]["metric"] = plan.metric  # --metric may re-plot a finished sweep
    state["plan_id"] = plan.plan_id
    _save(sweep_dir, state)
    (sweep_dir / "runs").mkdir(exist_ok=True)
    total = len(state["runs"])
    done = sum(r["status"] in DONE for r in state["runs"])
    if done:
        say(f"resuming {sweep_dir}: {done} of {total} runs already done")
    try:
        with _sigterm_interrupts():
            for run in state["runs"]:
                if run["status"] in DONE:
                    continue
                run_dir = sweep_dir / "runs" / run["dir"]
                if run_dir.exists():  # an interrupted attempt: start that run over
                    shutil.rmtree(run_dir)
                label = ", ".join(f"{k}={v}" for k, v in run["values"].items())
                say(f"[sweep {run['index']}/{total}] {label} (repeat {run['repeat']})")
                run["started"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                _save(sweep_dir, state)
                outcome = run_point(specs[run["point"]], run_dir)
                run["status"] = outcome.status
                run["error"] = outcome.summary.get("error")
                _save(sweep_dir, state)
                if outcome.status == "interrupted" or outcome.signals:
                    raise SweepInterrupted(run["error"] or ", ".join(outcome.signals)
                                           or "interrupted")
                if outcome.status == "failed":
                    say(f"  run {run['index']} failed: {run['error']} (the sweep goes on)")
    except (KeyboardInterrupt, SweepInterrupted) as exc:
        state["status"] = "interrupted"
        state["error"] = str(exc) or "interrupted"
        _save(sweep_dir, state)
        return state
    except FabricBusy as exc:
        state["status"] = "stopped"
        state["error"] = str(exc)
        _save(sweep_dir, state)
        raise
    state["status"] = "complete"
    state["error"] = None
    _save(sweep_dir, state)
    from .sweep_report import write_sweep_outputs

    write_sweep_outputs(sweep_dir, state)
    return state


def _any_run_done(sweep_dir: Path) -> bool:
    runs = load_state(sweep_dir)["runs"] if (sweep_dir / STATE_FILE).exists() else []
    return any(run["status"] in DONE for run in runs)


def _remove_empty_sweep(sweep_dir: Path) -> None:
    """A sweep that ran nothing leaves nothing: its folder, and the experiment's folder if
    the sweep was all it held."""
    shutil.rmtree(sweep_dir)
    with contextlib.suppress(OSError):
        sweep_dir.parent.rmdir()


def exit_code(state: dict[str, Any]) -> int:
    if state["status"] == "interrupted":
        return 130
    return 1 if any(r["status"] == "failed" for r in state["runs"]) else 0


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="run an experiment over a grid of parameter values",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("spec", nargs="?", help="experiment (name or TOML) or a sweep definition "
                   "(experiments/sweeps/NAME.toml); omit with --resume")
    p.add_argument("--param", action="append", default=[], metavar="SECTION.FIELD=V1,V2,...",
                   help="values to sweep, e.g. workload.senders=1,2,4,8 (repeatable: grid)")
    p.add_argument("--repeat", type=int, help="runs per point (default 1)")
    p.add_argument("--metric", help="summary.json result to plot (default: the workload's, "
                   "e.g. goodput_mean_bps for tcp_incast)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="fixed override for every run")
    p.add_argument("--resume", metavar="DIR", help="continue the sweep in DIR")
    p.add_argument("--fresh", action="store_true",
                   help="start a new sweep even if an unfinished one of the same plan exists")
    p.add_argument("--results", metavar="DIR", help="results root (default ./results)")
    p.add_argument("--dry-run", action="store_true",
                   help="validate every point and list the runs, run nothing (no root needed)")
    p.add_argument("--force", action="store_true",
                   help="accept fabrics larger than this host can bring up in reasonable "
                   "time and memory")
    p.add_argument("--engine", choices=("emulation", "hpcc-ns3"), help="run every point "
                   "on the emulation (default) or on HPCC's ns-3 simulator (kvfabric sim; "
                   "no root)")
    p.add_argument("--ns3", metavar="PATH", help="the simulator for --engine hpcc-ns3 "
                   "(default $KVFABRIC_NS3)")
    p.add_argument("--lock-wait", type=_lock_wait_option, metavar="SECONDS",
                   help=f"how long each run queues for the fabric lock (default "
                   f"${WAIT_ENV} or {DEFAULT_LOCK_WAIT_S:g})")
    p.set_defaults(func=_cmd)


def _lock_wait_option(text: str) -> float:
    try:
        return check_wait_seconds(text, "--lock-wait")
    except SpecError as exc:  # argparse reports it as a usage error (exit 2)
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0; give "
                                         "e.g. --lock-wait 600") from exc


def _overrides(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise SpecError([SpecIssue("--set", f"{item!r} is not SECTION.FIELD=VALUE",
                                       "write e.g. --set workload.rounds=10")])
        out[key.strip()] = parse_value(value)
    return out


def _cmd(args: argparse.Namespace) -> int:
    if args.resume:
        if args.spec or args.param or args.repeat or args.set:
            raise SpecError([SpecIssue("--resume", "takes no SPEC, --param, --set or --repeat: "
                                       "the plan is in the sweep folder",
                                       f"run kvfabric sweep --resume {args.resume}")])
        sweep_dir = Path(args.resume)
        plan = SweepPlan.from_dict(load_state(sweep_dir)["plan"])
        args.engine = args.engine or load_state(sweep_dir).get("engine")
        plan.metric = args.metric or plan.metric
    else:
        if not args.spec:
            raise SpecError([SpecIssue("SPEC", "missing", "give an experiment or a sweep "
                                       "definition, or --resume DIR")])
        plan = make_plan(args.spec, args.param, args.repeat, args.metric,
                         _overrides(args.set))
        sweep_dir = None
    # The host's emulation limits do not bound a simulated sweep.
    specs = validate_points(plan, args.force, simulated=args.engine == "hpcc-ns3")
    runs = len(plan.runs())
    if args.dry_run:
        print(f"{_command_line(plan)}\n{runs} runs ({len(specs)} points x {plan.repeat}), "
              f"every point valid:")
        for run in plan.runs():
            print(f"  {run['dir']}")
        return 0
    engine = args.engine or "emulation"
    if engine == "emulation" and os.geteuid() != 0:
        print("kvfabric sweep needs root (network namespaces, tc, OVS): run it with sudo",
              file=sys.stderr)
        return 2
    wait = args.lock_wait if args.lock_wait is not None else wait_seconds_from_env(
        DEFAULT_LOCK_WAIT_S)
    created = False
    if sweep_dir is None:
        root = results.prepare_root(args.results)
        sweep_dir = None if args.fresh else find_unfinished(root, specs[0].name, plan, engine)
        if sweep_dir is None:
            sweep_dir, created = new_sweep_dir(root, specs[0].name), True
            print(f"sweep of {runs} runs ({len(specs)} points x {plan.repeat}) in {sweep_dir}")
    started = time.monotonic()
    run_point = (_run_point_for_real(wait) if engine == "emulation"
                 else _run_point_simulated(args.ns3))
    try:
        state = run_sweep(plan, sweep_dir, run_point, engine=engine,
                          say=lambda text: print(text, file=sys.stderr, flush=True),
                          force=args.force)
    except FabricBusy:
        if created and not _any_run_done(sweep_dir):
            _remove_empty_sweep(sweep_dir)
            print(f"nothing ran: {sweep_dir} was removed", file=sys.stderr)
        raise
    failed = [r for r in state["runs"] if r["status"] == "failed"]
    if state["status"] == "interrupted":
        print(f"\nINTERRUPTED: {sweep_dir} ({state['error']}); rerun the same command or "
              f"kvfabric sweep --resume {sweep_dir} to finish it")
    else:
        print(f"\nSWEEP {'DONE' if not failed else 'DONE WITH FAILURES'} in "
              f"{time.monotonic() - started:.0f} s: {sweep_dir}/report.md")
        for run in failed:
            print(f"  run {run['dir']} failed: {run['error']}")
        points = sweep_dir / "points.csv"
        if points.exists():
            print(points.read_text().rstrip())
    return exit_code(state)

"""The ``kvfabric`` command: run, shell, list, show, doctor, clean; sweep, compare, smoke,
spec-doc and sim live in their own modules (the shell's prompt in console.py)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

import tomllib

from . import results
from .lock import FabricBusy, wait_seconds_from_env
from .schema import SpecError, SpecIssue
from .signals import EXIT_INTERRUPTED, Interrupted, SignalGuard

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_BUSY = 0, 1, 2, 3


def _checked_spec(args):
    """The spec of `run` and `shell`, validated whole (also --capture and the lock wait)
    before anything is built; SpecError names the field."""
    with args.signal_guard.interruptible():  # the guard is installed by main()
        from .capture import parse_capture
        from .spec import load_spec

        overrides = dict(_parse_override(item) for item in args.set or [])
        spec = load_spec(args.spec, overrides, force=args.force)
        parse_capture(args.capture, spec.make_topology())
        wait_seconds_from_env()  # checked before anything: a bad value is a usage error
    return spec


def _needs_root(command: str) -> bool:
    if os.geteuid() == 0:
        return False
    print(f"kvfabric {command} needs root (network namespaces, tc, OVS): run it with sudo",
          file=sys.stderr)
    return True


def _cmd_run(args) -> int:
    guard = args.signal_guard
    with guard.interruptible():
        from .runner import run_experiment
    spec = _checked_spec(args)
    if _needs_root("run"):
        return EXIT_USAGE
    root = results.prepare_root(args.results)
    outcome = run_experiment(spec, root, capture=args.capture, guard=guard)
    print(f"\n{outcome.status.upper()}: results in {outcome.run_dir}")
    if outcome.summary.get("error"):
        print(f"  {outcome.summary['error']}")
    if outcome.signals and outcome.status == "ok":
        print(f"  {outcome.signals[0]} arrived after the workload had finished: the "
              "results are complete")
    for problem in outcome.summary.get("write_errors", []):
        print(f"kvfabric: could not write {problem}", file=sys.stderr)
    _print_headline(outcome.summary)
    return EXIT_INTERRUPTED if guard.interrupted else outcome.exit_code


def _cmd_shell(args) -> int:
    spec = _checked_spec(args)
    if _needs_root("shell"):
        return EXIT_USAGE
    from .console import run_shell

    return run_shell(spec, results.prepare_root(args.results), args.signal_guard,
                     capture=args.capture)


def _parse_override(item: str) -> tuple[str, object]:
    key, sep, value = item.partition("=")
    if not sep or "." not in key:
        raise SpecError([SpecIssue(
            "--set", f"{item!r} is not SECTION.FIELD=VALUE",
            "write e.g. --set workload.senders=4")])
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare word such as 100Mbit
    return key, parsed


def _print_headline(summary: dict) -> None:
    from .report import flatten_mapping, format_value

    for key, value in (summary.get("results") or {}).items():
        if isinstance(value, dict):  # nested results (roce_incast's transports), one a line
            print(f"  {key}")
            for sub, item in flatten_mapping(value).items():
                print(f"    {sub:34} {format_value(sub.rpartition('.')[2], item)}")
            continue
        if isinstance(value, float):
            value = f"{value:.4g}"
        print(f"  {key:24} {value}")


def _cmd_list(_args) -> int:
    from .spec import shipped_experiments

    for name, path in shipped_experiments().items():
        description = tomllib.loads(path.read_text()).get("experiment", {}).get(
            "description", "")
        print(f"{name:24} {description}")
    from .sweep_plan import shipped_sweeps

    for name, path in shipped_sweeps().items():
        description = tomllib.loads(path.read_text()).get("sweep", {}).get("description", "")
        print(f"{name:24} (sweep) {description}")
    return EXIT_OK


def _cmd_show(args) -> int:
    run_dir = results.find_run(args.run, results.results_root(args.results),
                               results.root_origin(args.results))
    summary = results.load_summary(run_dir)
    if args.json:
        print(json.dumps(summary, indent=2))
        return EXIT_OK
    fabric = summary["fabric"]
    print(f"{run_dir}\n  status      {summary['status']}"
          + (f" ({summary['error']})" if summary.get("error") else ""))
    print(f"  experiment  {summary['experiment']}  fabric {fabric.get('mode', '?')} "
          f"{fabric.get('topology', '?')}")
    for key, value in (summary.get("timings_s") or {}).items():
        print(f"  {key:11} {value:.2f} s" if isinstance(value, (int, float))
              else f"  {key:11} {value}")
    from .fidelity import scale_and_fidelity_lines

    for line in scale_and_fidelity_lines(summary):
        print(f"  {line}")
    _print_headline(summary)
    derived = summary.get("derived") or {}
    if derived:
        from .report import format_derived

        print("  values derived where the spec says 0:")
        for dotted, values in derived.items():
            print(f"    {dotted:34} {format_derived(dotted, values)}")
    files = sorted(p.name for p in run_dir.iterdir())
    print("  files       " + ", ".join(files))
    return EXIT_OK


def _cmd_doctor(args) -> int:
    from .doctor import report_host

    return report_host(args.json)


def _cmd_clean(_args) -> int:
    from .cleanup import ListingError, clean

    if os.geteuid() != 0:
        print("kvfabric clean needs root", file=sys.stderr)
        return EXIT_USAGE
    from .lock import fabric_lock

    notes: list[str] = []
    failures: dict[str, str] = {}
    # A live fabric holds the lock; what a crashed run left does not (the kernel dropped it).
    with fabric_lock("kvfabric clean"):
        try:
            found = clean(notes)
        except ListingError as exc:
            found, failures = exc.found, exc.failures
    removed = {k: v for k, v in found.items() if v}
    for note in notes:
        print(f"note: {note}")
    if not removed and not failures:
        print("nothing of kvfabric's was left on this host")
    for kind, items in removed.items():
        print(f"removed {len(items)} {kind}: {' '.join(map(str, items))}")
    for kind, why in failures.items():
        print(f"kvfabric clean: could not list {kind}, so some may be left: {why}\n"
              f"    fix: see why listing failed, fix it and run kvfabric clean again",
              file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def _add_fabric_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of the commands that build a spec's fabric (run, shell)."""
    p.add_argument("spec")
    p.add_argument("--capture", metavar="LINKS",
                   help="save pcaps of these links (NODE-NODE,... or 'all')")
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                   help="override a spec field, e.g. --set workload.senders=4")
    p.add_argument("--results", metavar="DIR", help="results root (default ./results)")
    p.add_argument("--force", action="store_true",
                   help="build a fabric larger than this host can bring up in reasonable "
                   "time and memory (refused otherwise; see kvfabric/capacity.py)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kvfabric", description=(
        "Network emulation testbed for the fabrics behind disaggregated LLM inference."))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run an experiment (a shipped name or a TOML file)")
    _add_fabric_arguments(p)
    p.set_defaults(func=_cmd_run)
    p = sub.add_parser("shell", help="build a spec's fabric and open a prompt on it "
                       "(NODE COMMAND, ports, queues, workload, capture; exit tears down)")
    _add_fabric_arguments(p)
    p.set_defaults(func=_cmd_shell)
    p = sub.add_parser("list", help="list shipped experiments")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("show", help="print a run's summary")
    p.add_argument("run", help="run folder, run id, or 'latest'")
    p.add_argument("--json", action="store_true")
    p.add_argument("--results", metavar="DIR")
    p.set_defaults(func=_cmd_show)
    from . import doctor

    p = sub.add_parser("doctor", help="what this host offers and what kvfabric will use",
                       description=doctor.DESCRIPTION)
    doctor.add_arguments(p)
    p.set_defaults(func=_cmd_doctor)
    p = sub.add_parser("clean", help="remove what a crashed run left (only kvfabric's)")
    p.set_defaults(func=_cmd_clean)
    # Subcommands that live in their own modules; each adds its parser and handler.
    from . import compare, sim, smoke, specdoc, sweep

    for module in (sweep, compare, smoke, specdoc, sim):
        module.add_parser(sub)
    return parser


def entry() -> None:
    """The installed command: like main(), but a signal after the command has finished (while
    the interpreter shuts down) cannot turn its exit code into a death by signal. Python's
    finalization puts Python-level handlers back to SIG_DFL but leaves SIG_IGN alone."""
    code = main(keep_signals_owned=True)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    sys.exit(code)


def main(argv: list[str] | None = None, keep_signals_owned: bool = False) -> int:
    # Signals are owned from the first moment: building the parser imports plotting code
    # for a second, and `run` keeps the guard until its summary is written.
    guard = SignalGuard().__enter__()
    try:
        with guard.interruptible():
            args = build_parser().parse_args(argv)
        if args.func in (_cmd_run, _cmd_shell):
            args.signal_guard = guard
        else:  # other commands keep Python's own Ctrl-C (sweep, smoke handle it)
            guard.__exit__()
            keep_signals_owned = False
        return args.func(args)
    except Interrupted as exc:
        print(f"kvfabric: interrupted ({exc}) before the run started; nothing was built",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except SpecError as exc:
        print(f"kvfabric: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FabricBusy as exc:
        print(f"kvfabric: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except FileNotFoundError as exc:
        print(f"kvfabric: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except results.ResultsUnwritable as exc:
        print(f"kvfabric: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # `kvfabric ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    finally:
        if not keep_signals_owned:
            guard.__exit__()


if __name__ == "__main__":
    entry()

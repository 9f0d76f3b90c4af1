"""`kvfabric sim SPEC --engine hpcc-ns3`: the same spec and workload plan on a packet simulator.

Writes the simulator's inputs (sim/ in the run folder, or ``--export-only DIR``), runs it
(``--ns3 PATH`` or ``$KVFABRIC_NS3``), and imports its outputs into the run folder in the
results schema of emulated runs, in target units (dilation 1). No root, no fabric lock: the
simulator touches no network state.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import results
from .engines.hpcc_ns3 import simulator, trace
from .engines.hpcc_ns3.importer import import_outputs
from .engines.hpcc_ns3.inputs import build_inputs
from .engines.hpcc_ns3.plan import NotExportable
from .resolved_spec import Spec, to_toml
from .spec import load_spec

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parser(sub) -> None:
    p = sub.add_parser("sim", help="run a spec on a packet simulator (HPCC's ns-3)")
    p.add_argument("spec")
    p.add_argument("--engine", default="hpcc-ns3", choices=("hpcc-ns3",))
    p.add_argument("--ns3", metavar="PATH", help=f"built simulation/ folder or its "
                   f"scratch/third binary (default ${simulator.ENV_VAR})")
    p.add_argument("--export-only", metavar="DIR", help="write the inputs there, do not run")
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE")
    p.add_argument("--results", metavar="DIR", help="results root (default ./results)")
    p.add_argument("--link-delay", metavar="DURATION", help="propagation delay of every "
                   "link: the same as --set fabric.link_delay=DURATION (default the spec's "
                   "fabric.link_delay, 1us unless set)")
    p.add_argument("--no-queue-monitor", action="store_true", help="skip qlen.txt (its "
                   "100 ns sampling of every switch port dominates large fabrics)")
    p.add_argument("--trace", metavar="NODES", help="comma-separated hosts/switches whose "
                   "packets the simulator traces into sim/mix.tr, decoded by its own "
                   "analysis/trace_reader into packets.csv")
    p.add_argument("--trace-reader", metavar="PATH", help="the simulator's analysis/"
                   f"trace_reader (default ${trace.ENV_VAR}, else analysis/trace_reader beside "
                   "the simulation/ folder)")
    p.add_argument("--timeout", type=float, default=None, help="give up after SECONDS")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    from .cli import _parse_override

    overrides = dict(_parse_override(item) for item in args.set or [])
    if args.link_delay is not None:
        overrides["fabric.link_delay"] = args.link_delay
    spec = load_spec(args.spec, overrides, simulated=True)  # no emulation limits
    try:
        trace_nodes = tuple(n.strip() for n in (args.trace or "").split(",") if n.strip())
        inputs = build_inputs(spec, queue_monitor=not args.no_queue_monitor,
                              trace_nodes=trace_nodes)
    except NotExportable as exc:
        print(f"kvfabric sim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.trace_reader and not trace_nodes:
        print("kvfabric sim: --trace-reader decodes a packet trace: give --trace NODES too "
              "(e.g. --trace h1)", file=sys.stderr)
        return EXIT_USAGE
    if args.export_only:
        out = Path(args.export_only)
        inputs.write(out)
        (out / "approximations.txt").write_text("\n".join(inputs.config.approximations) + "\n")
        print(f"simulator inputs for {len(inputs.plan)} flows in {out}/ (config.txt, "
              "topology.txt, flow.txt, trace.txt, approximations.txt)")
        return EXIT_OK
    sim, why = simulator.locate(args.ns3)
    if sim is None:
        print(f"kvfabric sim: {why}", file=sys.stderr)
        return EXIT_USAGE
    reader = trace.locate(args.trace_reader, sim.root) if trace_nodes else None
    if reader and reader[0] is None and (args.trace_reader or os.environ.get(trace.ENV_VAR)):
        print(f"kvfabric sim: --trace-reader: {reader[1]}", file=sys.stderr)
        return EXIT_USAGE
    outcome = run_simulation(spec, inputs, sim, results.results_root(args.results),
                             timeout_s=args.timeout, trace_reader=reader)
    print(f"\n{outcome['status'].upper()}: results in {outcome['run_dir']}")
    if outcome.get("error"):
        print(f"  {outcome['error']}")
    packets = outcome.get("packet_trace")
    if packets and packets.get("decoded"):
        print(f"  packet trace          {packets['rows']} rows in packets.csv")
    elif packets:
        print(f"  packet trace NOT decoded: {packets['why']}; the simulator's binary trace "
              "is in sim/mix.tr")
    turns = outcome["facts"].get("serving_rounds")
    if turns:
        print(f"  serving model rounds  {turns['rounds']} simulator run(s), "
              + ("converged" if turns["converged"] else
                 f"{turns['transfers_differing']} transfers still moved (see approximations)"))
    print(f"  simulator wall time   {outcome['timings_s']['simulation']:.2f} s")
    return EXIT_OK if outcome["status"] == "ok" else EXIT_FAILED


def run_simulation(spec: Spec, inputs, sim: simulator.Simulator, root: Path,
                   timeout_s: float | None = None, run_dir: Path | None = None,
                   trace_reader: tuple[Path | None, str] | None = None) -> dict[str, Any]:
    """Export, run, import; the run folder's summary.json (also returned). ``trace_reader``:
    the simulator's trace decoder (or None and why not) for a run with traced nodes."""
    run_dir = run_dir or results.new_run_dir(root, spec.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "spec.toml").write_text(to_toml(spec))
    sim_dir = run_dir / "sim"
    simulate = lambda inputs: _simulate(sim, inputs, sim_dir, timeout_s)  # noqa: E731
    status, error, wall, cpu = simulate(inputs)
    rounds = None
    if status == "ok" and inputs.workload_plan is not None:  # serving_disagg: take turns
        from .engines.hpcc_ns3.serving import take_turns

        inputs, rounds, (status, error, more_wall, more_cpu) = take_turns(spec, inputs,
                                                                          sim_dir, simulate)
        wall, cpu = wall + more_wall, cpu + more_cpu
    imported: dict[str, Any] = {"results": {}, "queues": None}
    try:
        imported = import_outputs(spec, inputs, sim_dir, run_dir)
    except Exception as exc:
        if status == "ok":
            status, error = "failed", f"import: {type(exc).__name__}: {exc}"
    res = imported["results"] or {}
    packets = None
    if inputs.config.keys.get("ENABLE_TRACE") == "1" and status == "ok":
        packets = _decode_trace(inputs, sim_dir, run_dir, trace_reader
                                or trace.locate(None, sim.root))
    if status == "ok" and res.get("flows_completed", 0) < len(inputs.plan):
        status = "failed"
        error = (f"{res.get('flows_completed', 0)} of {len(inputs.plan)} flows finished "
                 "before SIMULATOR_STOP_TIME")
    from .engines.hpcc_ns3.importer import simulated_spec

    sim_spec = simulated_spec(spec)
    topo = sim_spec.make_topology()
    summary = {
        "status": status, "error": error, "experiment": spec.name, "run_id": run_dir.name,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "engine": "hpcc-ns3", "simulator": sim.version(),
        "fabric": {"mode": "simulated", "topology": spec.fabric["topology"],
                   **topo.describe()},
        "scale": sim_spec.scale.to_summary(),
        "fidelity": None,
        "timings_s": {"simulation": wall, "simulation_cpu": cpu},
        "facts": {"flows": len(inputs.plan), "nodes": len(inputs.node_ids),
                  "link_delay_s": inputs.link_delay_s,
                  "config": inputs.config.keys},
        "results": res, "queues": imported["queues"],
        "approximations": inputs.config.approximations,
    }
    if rounds is not None:
        summary["facts"].update(serving_rounds=rounds, trace_mapping=inputs.workload_plan.mapping,
                                instances=inputs.workload_plan.host_of)
    if packets is not None:
        summary["packet_trace"] = packets
    results.write_json(run_dir / "summary.json", summary)
    from .report import write_run_report

    write_run_report(run_dir)  # a view of what is written; a failure is logged, not raised
    summary["run_dir"] = run_dir
    return summary


def _simulate(sim: simulator.Simulator, inputs, sim_dir: Path, timeout_s: float | None
              ) -> tuple[str, str | None, float, float]:
    """Write ``inputs`` to ``sim_dir`` and run the simulator there: (status, error, wall s,
    CPU s)."""
    inputs.write(sim_dir)
    started = time.monotonic()
    try:
        ran = simulator.run(sim, sim_dir, timeout_s=timeout_s)
    except Exception as exc:  # a timeout or a binary that cannot start
        return "failed", f"simulator: {exc}", time.monotonic() - started, 0.0
    if ran.returncode != 0:
        return ("failed", f"simulator exited with {ran.returncode} (see sim/sim.log)",
                ran.wall_s, ran.cpu_s)
    return "ok", None, ran.wall_s, ran.cpu_s


def _decode_trace(inputs, sim_dir: Path, run_dir: Path,
                  reader: tuple[Path | None, str]) -> dict[str, Any]:
    """packets.csv from sim/mix.tr through the simulator's trace_reader, or why not (the
    binary trace stays in sim/ either way)."""
    from .engines.hpcc_ns3.importer import port_peers
    from .engines.hpcc_ns3.inputs import START_OFFSET_S

    binary, why = reader
    if binary is None:
        return {"decoded": False, "why": f"trace_reader not found: {why}",
                "binary_trace": "sim/mix.tr"}
    names = {i: name for name, i in inputs.node_ids.items()}
    try:
        decoded = trace.decode(binary, sim_dir / "mix.tr", run_dir / "packets.csv", names,
                               port_peers(inputs), int(round(START_OFFSET_S * 1e9)))
    except (OSError, RuntimeError, trace.TraceLineError) as exc:
        return {"decoded": False, "why": f"trace_reader failed: {exc}",
                "binary_trace": "sim/mix.tr"}
    return {**decoded.summary, "binary_trace": "sim/mix.tr"}


def trace_reader_status(explicit: str | None = None) -> tuple[bool, str]:
    """For `kvfabric doctor`: whether the simulator's trace_reader is found."""
    sim, _ = simulator.locate()
    binary, why = trace.locate(explicit, sim.root if sim else None)
    return binary is not None, why


def simulator_status(explicit: str | None = None) -> tuple[bool, str]:
    """For `kvfabric doctor`: whether the simulator is found, and where or why not."""
    sim, why = simulator.locate(explicit)
    if sim is None:
        return False, why
    return True, f"{sim.binary} ({sim.version().get('commit', 'commit unknown')[:12]})"



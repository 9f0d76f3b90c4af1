"""Run one experiment: lock, build, run, collect, tear down, analyse, write the run folder.

Whatever happens (an exception, Ctrl-C, SIGTERM), the fabric is torn down and the run folder
gets a summary.json saying how the run ended and why.
"""

from __future__ import annotations

import contextlib
import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controllers.process import start_for_run as start_controller
from fabriccore.backends import datapath_type
from fabriccore.capabilities import probe_host
from topologies.fabric import Fabric

from . import results
from .capture import parse_capture, start_captures
from .derived import derived_values
from .environment import collect_environment
from .fidelity import CpuSampler
from .fidelity import assess as assess_fidelity
from .link_delay import state_link_delay
from .lock import fabric_lock
from .progress import Progress
from .queue_results import (
    analyse_queues,
    pfc_failure,
    queue_approximations,
    write_queue_counters,
)
from .report import write_run_report
from .resolved_spec import Spec, to_toml
from .signals import EXIT_INTERRUPTED, SignalGuard
from .workloads import WORKLOADS

log = logging.getLogger("kvfabric")

#: What the emulation does not reproduce, recorded in every run's summary.
BASE_APPROXIMATIONS = [
    "links are veth pairs shaped by HTB at the link rate over a byte-limited FIFO; "
    "propagation delay is the veth's (microseconds), not a cable's",
    "segmentation offloads are off so queues hold MTU-sized packets",
]


@dataclass
class RunContext:
    spec: Spec
    fabric: Fabric
    run_dir: Path
    progress: Progress
    facts: dict[str, Any] = field(default_factory=dict)

    def record(self, key: str, value: Any) -> None:
        self.facts[key] = value


@dataclass
class RunOutcome:
    run_dir: Path
    status: str  # "ok" | "failed" | "interrupted"
    summary: dict[str, Any]
    signals: list[str] = field(default_factory=list)  # received at any moment of the run

    @property
    def exit_code(self) -> int:
        if self.signals:
            return EXIT_INTERRUPTED
        return {"ok": 0, "failed": 1}.get(self.status, EXIT_INTERRUPTED)


def run_experiment(spec: Spec, results_root: Path, capture: str | None = None,
                   progress: Progress | None = None, run_dir: Path | None = None,
                   lock_wait_s: float | None = None,
                   guard: SignalGuard | None = None) -> RunOutcome:
    """Run spec into run_dir (default: a new folder under results_root/<experiment>/).

    ``guard`` owns SIGINT/SIGTERM (default: one for this call): a signal while the fabric is
    built or the workload runs cuts them short; one at any other moment waits until the
    fabric is torn down and summary.json and report.md are written (outcome.signals)."""
    progress = progress or Progress()
    topo = spec.make_topology()
    capture_links = parse_capture(capture, topo)  # bad names fail here, before anything
    # Absolute: child processes (queue agent, endpoints) run from other directories.
    results_root = results_root.absolute()
    if run_dir is None:
        results.check_writable(results_root, "--results")
    else:
        run_dir = run_dir.absolute()
    with contextlib.ExitStack() as stack:
        if guard is None:
            guard = stack.enter_context(SignalGuard())
        run_dir = lock_and_prepare(stack, spec.name, f"kvfabric run {spec.name}", results_root,
                                   run_dir, progress, guard, lock_wait_s)
        return _run_locked(spec, topo, capture_links, run_dir, progress, guard)


def lock_and_prepare(stack: contextlib.ExitStack, name: str, purpose: str,
                     results_root: Path, run_dir: Path | None, progress: Progress,
                     guard: SignalGuard, lock_wait_s: float | None = None) -> Path:
    """Take the fabric lock (held until ``stack`` closes), remove what a crashed run left and
    create the run folder (default: a new one under results_root/<name>/)."""
    with guard.interruptible():
        stack.enter_context(fabric_lock(purpose, wait_s=lock_wait_s))
    remove_stale_state(progress)
    try:
        if run_dir is None:
            run_dir = results.new_run_dir(results_root, name)
        else:
            run_dir.mkdir(parents=True)
    except OSError as exc:
        raise results.ResultsUnwritable(f"cannot create the run folder: {exc}") from exc
    return run_dir


def make_fabric(spec: Spec, topo, run_dir: Path) -> Fabric:
    """The (not yet built) fabric a spec describes, its queue files in the run folder."""
    queue_settings = spec.queue_settings()
    return Fabric(topo, spec.fabric["mode"], _ovs_datapath(spec.fabric["ovs_datapath"]),
                  queues=queue_settings,
                  ecn_backend=spec.queues.get("ecn_backend", "auto") if spec.queues else "auto",
                  queue_dir=run_dir / "queues" if queue_settings else None,
                  static_rules=spec.fabric["controller"] == "static")


#: Libraries whose log records belong in run.log, not on the terminal: pyroute2 runs an
#: asyncio loop per netlink call, and a signal that cuts one short leaves its request's task
#: to be reported ("Task exception was never retrieved") when the socket is discarded.
RUN_LOG_LIBRARIES = ("asyncio",)


def open_run_log(run_dir: Path) -> logging.Handler:
    """run.log in the run folder receives the ``kvfabric`` logger (and RUN_LOG_LIBRARIES')
    until close_run_log."""
    handler = logging.FileHandler(run_dir / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    for name in RUN_LOG_LIBRARIES:
        library = logging.getLogger(name)
        library.addHandler(handler)
        library.propagate = False
    return handler


def close_run_log(handler: logging.Handler) -> None:
    log.removeHandler(handler)
    for name in RUN_LOG_LIBRARIES:
        library = logging.getLogger(name)
        library.removeHandler(handler)
        library.propagate = True
    handler.close()


def bring_up(ctx: RunContext, timings: dict[str, float]) -> None:
    """Write spec.toml and env.json, hand the capability probe's backends to the fabric, then
    build it (timings["bringup_s"])."""
    spec, fabric, run_dir, progress = ctx.spec, ctx.fabric, ctx.run_dir, ctx.progress
    (run_dir / "spec.toml").write_text(to_toml(spec, derived_values(spec)))
    progress.update("probing host")
    report = probe_host()
    results.write_json(run_dir / "env.json", collect_environment(
        report.to_dict(), spec.experiment["seed"]))
    # The decision env.json records is the one the fabric follows: it probes nothing itself.
    fabric.backends = report.backends
    progress.update("building fabric", f"{spec.fabric['mode']} {fabric.topo.describe()}")
    started = time.perf_counter()
    fabric.build()
    timings["bringup_s"] = time.perf_counter() - started
    if fabric.has_classes:
        _record_queue_backends(run_dir, fabric)
    log.info("fabric up in %.2f s: %s", timings["bringup_s"], fabric.build_timings.phases_s)


def collect_counters(ctx: RunContext, before: list[dict]) -> None:
    """links.csv (port counters since ``before``) and the queue counters, before teardown."""
    _write_port_deltas(ctx.run_dir, before, ctx.fabric.port_stats())
    if ctx.fabric.has_classes:
        write_queue_counters(ctx.run_dir, ctx.fabric)


def _run_locked(spec, topo, capture_links, run_dir: Path, progress: Progress,
                guard: SignalGuard) -> RunOutcome:
    handler = open_run_log(run_dir)
    status, error, timings = "ok", None, {}
    fabric = make_fabric(spec, topo, run_dir)
    ctx = RunContext(spec, fabric, run_dir, progress)
    controller = None
    workload = WORKLOADS[spec.workload["kind"]]
    try:
        with guard.interruptible():
            bring_up(ctx, timings)
            if spec.fabric["controller"] != "static" and spec.fabric["mode"] == "openflow":
                progress.update("starting controller", spec.fabric["controller"])
            controller = start_controller(ctx)
            if capture_links:
                ctx.record("captures", [p.name for p in
                                        start_captures(fabric, capture_links, run_dir)])
            before = fabric.port_stats()
            progress.update("running workload", spec.workload["kind"])
            started = time.perf_counter()
            with CpuSampler(run_dir):
                workload.run(ctx)
            if controller is not None:
                controller.raise_if_dead()
            timings["workload_s"] = time.perf_counter() - started
            collect_counters(ctx, before)
    except (Exception, KeyboardInterrupt) as exc:  # Interrupted is a KeyboardInterrupt
        status, error = failure_status(exc)
        log.error("run %s: %s\n%s", status, error, traceback.format_exc())
    return finish_run(ctx, controller, status, error, timings, guard, handler)


def failure_status(exc: BaseException) -> tuple[str, str]:
    """(status, error) of a run cut short by exc."""
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    return status, _describe(exc)


def finish_run(ctx: RunContext, controller, status: str, error: str | None,
               timings: dict[str, float], guard: SignalGuard, handler: logging.Handler,
               workload_ran: bool = True) -> RunOutcome:
    """Tear down (controller, then fabric), write summary.json and report.md, close run.log.
    Call it outside ``guard.interruptible()``: a signal now is only recorded."""
    spec, run_dir, progress = ctx.spec, ctx.run_dir, ctx.progress
    progress.update("tearing down")
    started = time.perf_counter()
    try:
        if controller is not None:
            controller.stop()
        ctx.fabric.teardown()
    except Exception as exc:
        status, error = "failed", error or f"teardown: {_describe(exc)}"
        log.error("teardown failed: %s", traceback.format_exc())
    timings["teardown_s"] = time.perf_counter() - started
    if guard.received and status == "ok":
        ctx.record("signals_after_workload", guard.received[:])
    summary = _summarise(spec, run_dir, status, error, timings, ctx, workload_ran)
    try:
        write_run_report(run_dir, log)
    except OSError as exc:
        log.error("report.md not written: %s", exc)
        summary.setdefault("write_errors", []).append(f"report.md: {exc}")
    close_run_log(handler)
    return RunOutcome(run_dir, summary["status"], summary, guard.received[:])


def _summarise(spec, run_dir, status, error, timings, ctx,
               workload_ran: bool = True) -> dict[str, Any]:
    workload_summary: dict[str, Any] = {}
    queue_summary: dict[str, Any] | None = None
    fidelity: dict[str, Any] | None = None
    try:
        if workload_ran:
            workload_summary = WORKLOADS[spec.workload["kind"]].analyse(run_dir, spec)
        if (run_dir / "queues").is_dir():
            queue_summary = analyse_queues(run_dir, spec.scale)
            failure = pfc_failure(queue_summary, ctx.fabric.queue_settings.pfc)
            if failure and status == "ok":
                status, error = "failed", failure
        if workload_ran:
            fidelity = assess_fidelity(run_dir, spec)
    except Exception as exc:
        log.error("analysis failed: %s", traceback.format_exc())
        if status == "ok":
            status, error = "failed", f"analysis: {_describe(exc)}"
    delay_note = state_link_delay(spec, ctx.facts, ctx.fabric.backends)
    summary = {
        "status": status,
        "error": error,
        "experiment": spec.name,
        "run_id": run_dir.name,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "fabric": {"mode": spec.fabric["mode"], "topology": spec.fabric["topology"],
                   "ovs_datapath": ctx.fabric.ovs_datapath if spec.fabric["mode"] ==
                   "openflow" else None, **ctx.fabric.topo.describe()},
        "scale": spec.scale.to_summary(),
        "derived": derived_values(spec),
        "fidelity": fidelity,
        "timings_s": timings,
        "facts": ctx.facts,
        "results": workload_summary,
        "queues": queue_summary,
        "approximations": BASE_APPROXIMATIONS + [delay_note] + (
            queue_approximations(ctx.fabric.ecn_backend) if queue_summary is not None
            else []) + (
            ["OVS userspace datapath (netdev): lower throughput than the kernel datapath; "
             "tx checksum offload off on veths"]
            if spec.fabric["mode"] == "openflow" and ctx.fabric.ovs_datapath == "netdev"
            else []) + ctx.facts.pop("approximations", []),
    }
    try:
        results.write_json(run_dir / "summary.json", summary)
    except OSError as exc:
        # The fabric is down and the figures are in memory: say what could not be written.
        log.error("summary.json not written: %s", exc)
        summary["status"] = "failed"
        summary["error"] = summary["error"] or f"summary.json not written: {exc}"
        summary.setdefault("write_errors", []).append(f"summary.json: {exc}")
    return summary


def _write_port_deltas(run_dir: Path, before: list[dict], after: list[dict]) -> None:
    rows = []
    for b, a in zip(before, after):
        row = {"node": a["node"], "ifname": a["ifname"], "peer": a["peer"],
               "rate_bps": a["rate_bps"]}
        for key in ("sent_bytes", "sent_packets", "drops", "tx_bytes", "rx_bytes",
                    "tx_packets", "rx_packets"):
            row[key] = a[key] - b[key]
        row["backlog_bytes_at_end"] = a["backlog_bytes"]
        rows.append(row)
    results.write_csv(run_dir / "links.csv", rows)


def remove_stale_state(progress: Progress) -> None:
    """Whatever kvfabric state exists while we hold the lock belongs to a run that died
    without tearing down (SIGKILL, power loss): remove it, or it would collide with ours."""
    from .cleanup import ListingError, clean, leftovers

    try:
        found = leftovers()
    except ListingError as exc:
        # Not fatal: a name clash with what could not be listed fails the build loudly.
        log.warning("%s; building anyway", exc)
        progress.update("warning", f"{exc}; building anyway")
        found = exc.found
    stale = {kind: items for kind, items in found.items() if items}
    if stale:
        progress.update("removing what a crashed run left", ", ".join(
            f"{len(items)} {kind}" for kind, items in stale.items()))
        with contextlib.suppress(ListingError):  # reported above
            clean()


def _record_queue_backends(run_dir: Path, fabric: Fabric) -> None:
    """env.json says which mechanisms realised ECN and PFC in this run."""
    import json

    env_path = run_dir / "env.json"
    env = json.loads(env_path.read_text())
    env["queues"] = {"ecn_backend": fabric.ecn_backend,
                     "pfc": "queue agent: PFC frames on the wire, TBF pause of the peer's "
                            "lossless class" if fabric.queue_settings.pfc else "off",
                     "telemetry": "eBPF 100 us bins + netlink qdisc dumps"}
    results.write_json(env_path, env)


def _ovs_datapath(setting: str) -> str:
    return "auto" if setting == "auto" else datapath_type(setting)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

"""The Python API: a live fabric as a context manager, built the way ``kvfabric run`` builds
one and written to a run folder of the same layout.

    with kvfabric.Network("tcp_incast", overrides={"workload.rounds": 3}) as net:
        print(net["h1"].cmd(["ping", "-c1", net["h2"].ip]))
        print(net.port("l1", "h1").counters())
        net.run_workload()
    print(net.outcome.run_dir)

Entering takes the fabric lock, removes what a crashed run left, creates the run folder and
builds the fabric (and starts the spec's controller); leaving tears everything down and writes
summary.json and report.md. Every step is the runner's own (kvfabric/runner.py).
"""

from __future__ import annotations

import contextlib
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from topologies.leafspine import FabricTopo

from . import results
from .capture import parse_capture, start_captures
from .nodes import Node, PortView, resolve_hosts
from .progress import Progress
from .signals import SignalGuard


class WorkloadError(RuntimeError):
    """The workload cannot start (none in the spec, already ran) or it failed."""


class Network:
    """A fabric from a spec (a shipped name, a TOML path, a dict of sections, a resolved
    `Spec`) or from a `FabricTopo` (``mode`` l3 or openflow; one FIFO per port, no workload).

    ``overrides``: ``{"workload.senders": 4}`` as ``--set``; ``results``: the results root;
    ``run_dir``: an exact run folder instead; ``capture``: links to capture from the start
    (``"h1-l1,l1-s1"`` or ``"all"``); ``start_controller``: start the spec's controller app
    on entry (openflow mode), as ``kvfabric run`` does; ``lock_wait_s``: how long to queue
    for the fabric lock (default $KVFABRIC_LOCK_WAIT_S, else 0). The spec is validated here,
    before anything is built (SpecError names the field). Inside ``with``, SIGINT and SIGTERM
    raise `Interrupted`; the fabric is still torn down and the results written."""

    def __init__(self, spec: Any, *, overrides: dict[str, Any] | None = None,
                 mode: str = "l3", name: str | None = None,
                 results_root: str | Path = "results", run_dir: str | Path | None = None,
                 capture: str | None = None, start_controller: bool = True,
                 force: bool = False, lock_wait_s: float | None = None,
                 progress: Progress | None = None, guard: SignalGuard | None = None):
        from .resolved_spec import Spec
        from .spec import load_spec, spec_for_topology, spec_from_dict

        if isinstance(spec, FabricTopo):
            self.topo = spec
            self.spec = spec_for_topology(spec, mode, name or "topo")
        else:
            if isinstance(spec, Spec):
                self.spec = spec
            elif isinstance(spec, dict):
                self.spec = spec_from_dict(spec, overrides, name=name or "api", force=force)
            else:
                self.spec = load_spec(str(spec), overrides, force=force)
            self.topo = self.spec.make_topology()
        self._capture_links = parse_capture(capture, self.topo)
        self.results_root = Path(results_root).absolute()
        self._run_dir = Path(run_dir).absolute() if run_dir is not None else None
        self._start_controller = start_controller
        self._lock_wait_s = lock_wait_s
        self.progress = progress or Progress()
        self._guard = guard
        self.fabric = None
        self.ctx = None
        self.controller = None
        self.outcome = None  # runner.RunOutcome, once the fabric is down
        self.timings: dict[str, float] = {}
        self._workload: _Workload | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> Network:
        from . import runner

        if self._run_dir is None:
            results.check_writable(self.results_root, "results_root")
        self._stack = contextlib.ExitStack()
        if self._guard is None:
            self._guard = self._stack.enter_context(SignalGuard())
        try:
            run_dir = runner.lock_and_prepare(
                self._stack, self.spec.name, f"kvfabric api {self.spec.name}",
                self.results_root, self._run_dir, self.progress, self._guard,
                self._lock_wait_s)
            self._log = runner.open_run_log(run_dir)
        except BaseException:
            self._stack.close()
            raise
        self.fabric = runner.make_fabric(self.spec, self.topo, run_dir)
        self.ctx = runner.RunContext(self.spec, self.fabric, run_dir, self.progress)
        try:
            with self._guard.interruptible():
                runner.bring_up(self.ctx, self.timings)
                if self._start_controller:
                    self.start_controller()
                if self._capture_links:
                    self.ctx.record("captures", [p.name for p in start_captures(
                        self.fabric, self._capture_links, run_dir)])
                self._before = self.fabric.port_stats()
            self._body = self._guard.interruptible()
            self._body.__enter__()  # raises at once if a signal came during bring-up
        except BaseException as exc:
            self._finish(*runner.failure_status(exc))
            raise
        return self

    def __exit__(self, exc_type, exc, _tb) -> None:
        from . import runner

        self._body.__exit__(None, None, None)
        status, error = ("ok", None) if exc is None else runner.failure_status(exc)
        if exc is not None:
            runner.log.error("session %s: %s\n%s", status, error,
                             "".join(traceback.format_exception(exc)))
        try:
            self.stop_workload()
            runner.collect_counters(self.ctx, self._before)
        except Exception as failure:
            if status == "ok":
                status, error = runner.failure_status(failure)
        self._finish(status, error)

    def start(self) -> Network:
        """Build the fabric without ``with``; call stop() (in a finally) to tear it down."""
        return self.__enter__()

    def stop(self) -> None:
        self.__exit__(None, None, None)

    def _finish(self, status: str, error: str | None) -> None:
        from . import runner

        workload = self._workload
        if workload is not None and workload.error and status == "ok":
            status, error = "failed", workload.error
        try:
            self.outcome = runner.finish_run(
                self.ctx, self.controller, status, error, self.timings, self._guard,
                self._log, workload_ran=workload is not None)
        finally:
            self._stack.close()

    @property
    def run_dir(self) -> Path:
        """The run folder (spec.toml, env.json, run.log, ... as for ``kvfabric run``)."""
        return self.ctx.run_dir

    # -- nodes, links, ports ---------------------------------------------------------------
    def __getitem__(self, name: str) -> Node:
        if name not in self.topo.nodes():
            raise KeyError(f"no node {name!r} in this fabric")
        return Node(self.fabric, name)

    @property
    def nodes(self) -> list[Node]:
        return [Node(self.fabric, n) for n in self.topo.nodes()]

    @property
    def hosts(self) -> list[Node]:
        return [Node(self.fabric, n) for n in self.topo.host_names()]

    @property
    def links(self) -> list[tuple[str, str]]:
        return [tuple(link) for link in self.topo.links()]

    def port(self, node: str, peer: str) -> PortView:
        """node's end of the link to peer (LookupError if there is none)."""
        return PortView(self.fabric, self.fabric.port(node, peer))

    @property
    def ports(self) -> list[PortView]:
        return [PortView(self.fabric, p) for p in self.fabric.ports]

    def resolve(self, argv: list[str]) -> list[str]:
        """argv with host names replaced by their addresses (``["ping", "h2"]``)."""
        return resolve_hosts(argv, self.fabric.host_ips)

    # -- controller, captures, workload -----------------------------------------------------
    def start_controller(self):
        """Start the spec's controller app (openflow mode, fabric.controller ecmp or
        adaptive) once; returns it, or None when the spec asks for none."""
        from controllers.process import start_for_run

        if self.controller is None:
            self.controller = start_for_run(self.ctx)
        return self.controller

    def capture(self, node: str, peer: str) -> Path:
        """tcpdump node's end of the link to peer into capture-NODE-PEER.pcap in the run
        folder; teardown stops it."""
        ((a, b),) = parse_capture(f"{node}-{peer}", self.topo)
        (path,) = start_captures(self.fabric, [(a, b)], self.run_dir)
        self.ctx.facts.setdefault("captures", []).append(path.name)
        return path

    def run_workload(self) -> None:
        """Run the spec's workload to the end (raw CSVs into the run folder); leaving the
        ``with`` then analyses it into summary.json as ``kvfabric run`` does."""
        self.start_workload()
        self.wait_workload()
        if self._workload.error:
            raise WorkloadError(self._workload.error)

    def start_workload(self) -> None:
        """Start the spec's workload in the background (one per run folder)."""
        if not self.spec.workload:
            raise WorkloadError("this fabric was built from a Topo: it has no workload")
        if self._workload is not None:
            raise WorkloadError("the workload already ran in this run folder; a new "
                                "Network gets a new folder")
        self._workload = _Workload(self.ctx, self.timings)

    @property
    def workload_state(self) -> str:
        """not started, running, finished, failed or stopped."""
        return "not started" if self._workload is None else self._workload.state

    def wait_workload(self, timeout_s: float | None = None) -> bool:
        """Wait for the workload; True when it has ended."""
        return self._workload is None or self._workload.wait(timeout_s)

    def stop_workload(self) -> None:
        """Stop a running workload: its processes are terminated, what it wrote is kept."""
        if self._workload is not None:
            self._workload.stop(self.fabric)


class _Workload:
    """The spec's workload run(ctx) in a thread, timed and CPU-sampled as the runner does;
    stop() ends only the processes its thread started (Fabric.popen_at tags them)."""

    def __init__(self, ctx, timings: dict[str, float]):
        from .fidelity import CpuSampler
        from .workloads import WORKLOADS

        self.state = "running"
        self.error: str | None = None
        self._done = threading.Event()
        self._stopping = False
        module = WORKLOADS[ctx.spec.workload["kind"]]

        def body() -> None:
            started = time.perf_counter()
            try:
                with CpuSampler(ctx.run_dir):
                    module.run(ctx)
                self.state = "finished"
            except Exception as exc:
                self.state = "stopped" if self._stopping else "failed"
                if not self._stopping:
                    self.error = f"workload: {type(exc).__name__}: {exc}"
            finally:
                timings["workload_s"] = time.perf_counter() - started
                self._done.set()

        self._thread = threading.Thread(target=body, name="kvf-workload", daemon=True)
        self._thread.start()

    def wait(self, timeout_s: float | None = None) -> bool:
        return self._done.wait(timeout_s)

    def stop(self, fabric) -> None:
        if self._done.is_set():
            return
        self._stopping = True
        fabric.stop_processes(only=[p for p in fabric.processes
                                    if getattr(p, "started_by", None) == self._thread.ident])
        self._thread.join()

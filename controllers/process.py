"""Run a controller for a live openflow fabric: start it in the root namespace on a free
127.0.0.1 port, point every bridge at it, wait until every switch is configured, watch it
while the workload runs, stop it at teardown."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fabriccore.commands import run
from fabriccore.processes import stop_groups
from topologies.openflow import OVS_TIMEOUT_S
from topologies.process_lifetime import die_with_parent

CONNECT_TIMEOUT_S = 30.0


class ControllerError(RuntimeError):
    """The controller did not come up, or died while the fabric needed it."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ControllerProcess:
    def __init__(self, app: str, description: dict[str, Any], out_dir: Path,
                 poll_interval_s: float = 0.01, adaptive: dict[str, Any] | None = None):
        self.app = app
        self.out_dir = out_dir
        self.topology_path = out_dir / "controller-topology.json"
        self.status_path = out_dir / "controller-status.json"
        self.events_path = out_dir / "controller-events.jsonl"
        self.log_path = out_dir / "controller.log"
        self.topology_path.write_text(json.dumps(description, indent=1))
        self.switches = sorted(description["switches"])
        self.poll_interval_s = poll_interval_s
        self.adaptive = adaptive or {}
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.bridges: list[str] = []
        self._watch_stop = threading.Event()
        self._stopping = False
        self.restore_signal = lambda: None

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "controllers.launch", "--app", self.app,
                "--topology", str(self.topology_path), "--port", str(self.port),
                "--status", str(self.status_path), "--events", str(self.events_path),
                "--poll-interval-s", repr(self.poll_interval_s),
                "--adaptive", json.dumps(self.adaptive)]

    def start(self, bridges: list[str], popen=None) -> None:
        """Start the app, attach bridges, wait for every switch; raise ControllerError."""
        self.port = free_port()
        with self.log_path.open("ab") as log:
            kwargs = {"stdout": log, "stderr": subprocess.STDOUT,
                      "preexec_fn": die_with_parent,
                      "cwd": str(Path(__file__).resolve().parent.parent)}
            self.proc = (popen(self.argv(), **kwargs) if popen
                         else subprocess.Popen(self.argv(), start_new_session=True, **kwargs))
        self._wait_listening()
        self.bridges = list(bridges)
        argv = ["ovs-vsctl", f"--timeout={OVS_TIMEOUT_S}"]
        for br in bridges:
            argv += ["--", "set-controller", br, f"tcp:127.0.0.1:{self.port}",
                     "--", "set", "controller", br, "max_backoff=1000"]
        run(argv, timeout_s=OVS_TIMEOUT_S + 5)
        self._wait_configured()

    def _check_alive(self, when: str) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise ControllerError(f"controller ({self.app}) exited with code "
                                  f"{self.proc.returncode} {when}; last log lines:\n"
                                  + self.log_tail())

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while time.monotonic() < deadline:
            self._check_alive("while starting")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise ControllerError(f"controller did not listen on 127.0.0.1:{self.port} within "
                              f"{CONNECT_TIMEOUT_S:g} s; see {self.log_path}")

    def status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {}

    def _wait_configured(self) -> None:
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while time.monotonic() < deadline:
            self._check_alive("before every switch connected")
            if set(self.status().get("configured", [])) >= set(self.switches):
                return
            time.sleep(0.05)
        missing = sorted(set(self.switches) - set(self.status().get("configured", [])))
        raise ControllerError(
            f"switches {', '.join(missing)} did not connect to the controller within "
            f"{CONNECT_TIMEOUT_S:g} s (check `ovs-vsctl show` and {self.log_path})")

    def watch(self, on_death) -> None:
        """Call on_death(error) from a thread if the controller exits before stop()."""
        def loop():
            while not self._watch_stop.wait(0.1):
                if self.proc.poll() is not None and not self._stopping:
                    on_death(ControllerError(
                        f"controller ({self.app}) died mid-run (exit code "
                        f"{self.proc.returncode}); last log lines:\n{self.log_tail()}"))
                    return
        threading.Thread(target=loop, name="controller-watch", daemon=True).start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def raise_if_dead(self) -> None:
        self._check_alive("during the run")

    def stop(self) -> None:
        self._stopping = True
        self._watch_stop.set()
        self.restore_signal()
        if self.proc is not None:
            stop_groups([self.proc], 3.0)


#: Fabric spec values of ``fabric.controller`` that start an app (``static``: no controller).
CONTROLLER_APPS = ("ecmp", "adaptive")


def start_for_run(ctx) -> ControllerProcess | None:
    """The runner's hook: start the spec's controller for ctx.fabric, attach every bridge,
    wait for every switch, and make the controller's death fail the run (SIGUSR1 to the
    main thread raises ControllerError there). None when the spec asks for no controller."""
    import signal as _signal

    from controllers.topology import describe

    spec, fabric = ctx.spec, ctx.fabric
    app = spec.fabric.get("controller", "static")
    if fabric.mode != "openflow" or app not in CONTROLLER_APPS:
        return None
    description = describe(fabric.topo, fabric.plans, fabric.host_ips, spec.tenants,
                           spec.fabric["tenant_meters"], spec.fabric["tenant_meter_burst"])
    controller = ControllerProcess(app, description, ctx.run_dir,
                                   poll_interval_s=spec.fabric["stats_interval"])
    deaths: list[ControllerError] = []

    def on_usr1(_signum, _frame):
        if deaths:
            raise deaths[0]
    previous = _signal.signal(_signal.SIGUSR1, on_usr1)
    controller.restore_signal = lambda: _signal.signal(_signal.SIGUSR1, previous)
    main_thread = threading.main_thread().ident
    try:
        started = time.perf_counter()
        controller.start(fabric.bridges,
                         popen=lambda argv, **kw: fabric.popen_at(None, argv, **kw))
    except BaseException:
        controller.stop()
        raise
    ctx.record("controller", {"app": app, "port": controller.port, "pid": controller.proc.pid,
                              "switches_configured_s": time.perf_counter() - started})
    notes = ctx.facts.setdefault("approximations", [])
    notes.append("the controller shares the machine's CPUs with the userspace switches and "
                 "hosts; control-plane reaction times include that contention")
    if app == "adaptive":
        notes.append("adaptive routing reads per-flow rates from OpenFlow rule counters, which "
                     "userspace OVS refreshes only when its revalidators run (~500 ms); port "
                     "counters are live")
    if spec.fabric["tenant_meters"]:
        notes.append("performance isolation polices each tenant at every leaf to an equal "
                     "share of that leaf's uplink capacity (OpenFlow meter, drop band); no "
                     "weighted queueing inside the fabric")

    def died(error: ControllerError) -> None:
        deaths.append(error)
        _signal.pthread_kill(main_thread, _signal.SIGUSR1)
    controller.watch(died)
    return controller

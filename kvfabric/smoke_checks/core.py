"""Core smoke checks: the host offers the minimum, fabrics forward in both modes, a tiny
TCP incast run writes a complete results folder, and nothing of kvfabric's is left behind."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from kvfabric.lock import FabricBusy, fabric_lock, wait_seconds_from_env
from kvfabric.progress import Progress
from kvfabric.smoke import Skip, note_lock_wait, smoke_check

#: Seconds a check queues for the fabric lock when $KVFABRIC_LOCK_WAIT_S is unset.
LOCK_WAIT_S = 300.0
#: Small enough to stay quick, big enough that paths cross the spines (2 leaves x 2 hosts).
SMOKE_FABRIC = {"spines": 2, "leaves": 2, "hosts_per_leaf": 2}


def _lock_wait_s() -> float:
    return wait_seconds_from_env(LOCK_WAIT_S)


@contextlib.contextmanager
def _fabric_lock(purpose: str):
    """The fabric lock, queueing up to _lock_wait_s(); the wait is reported to smoke."""
    started = time.monotonic()
    with fabric_lock(purpose, wait_s=_lock_wait_s()):
        note_lock_wait(time.monotonic() - started)
        yield


class _NoteFirstUpdate(Progress):
    """Silent progress that notes when the runner first reports (right after it got the
    lock), so the time queued for the lock can be told apart."""

    def __init__(self, stream):
        super().__init__(stream=stream)
        self.first_update: float | None = None

    def update(self, phase: str, detail: str = "") -> None:
        if self.first_update is None:
            self.first_update = time.monotonic()
        super().update(phase, detail)


def _ovs_running() -> bool:
    if shutil.which("ovs-vsctl") is None:
        return False
    return subprocess.run(["ovs-vsctl", "--timeout=3", "show"],
                          capture_output=True).returncode == 0


@smoke_check("capabilities", order=10, needs_root=False)
def capabilities() -> str:
    """kvfabric doctor: the host offers the minimum kvfabric needs."""
    from fabriccore.capabilities import probe_host

    report = probe_host()
    if not report.minimum_ok:
        missing = "; ".join(f"{c.name}: {c.detail}" for c in report.missing_required())
        raise RuntimeError(f"minimum not met ({missing}); run kvfabric doctor for the fixes")
    backends = report.backends.to_dict()
    return "minimum met; backends " + " ".join(f"{k}={v}" for k, v in backends.items())


def _all_pairs(mode: str) -> str:
    from kvfabric.cleanup import leftovers
    from topologies.fabric import Fabric
    from topologies.leafspine import LeafSpine

    with _fabric_lock(f"kvfabric smoke: {mode} fabric"):
        # What was there before (another job's leak) is not this fabric's leftover.
        found = leftovers()
        before = {kind: set(map(str, items)) for kind, items in found.items()}
        clashing = {k: found.get(k) for k in ("namespaces", "interfaces", "bridges")
                    if found.get(k)}
        if clashing:  # building would fail on the names with a bare "File exists"
            raise RuntimeError(f"kvfabric state is already on this host {clashing}: a run "
                               "crashed or ran without the fabric lock; run kvfabric clean")
        fabric = Fabric(LeafSpine(**SMOKE_FABRIC), mode)
        try:
            timings = fabric.build()
            hosts = fabric.hosts()
            failures = []
            for src in hosts:
                for dst in hosts:
                    if src != dst:
                        ping = fabric.run(src, ["ping", "-c", "1", "-W", "2",
                                                fabric.host_ips[dst]], check=False)
                        if ping.returncode != 0:
                            failures.append(f"{src}->{dst}")
        finally:
            fabric.teardown()
        left = {kind: new for kind, items in leftovers().items()
                if (new := [i for i in items if str(i) not in before.get(kind, set())])}
    if failures:
        raise RuntimeError(f"unreachable: {', '.join(failures)}")
    if left:
        raise RuntimeError(f"teardown left {left}")
    pairs = len(hosts) * (len(hosts) - 1)
    return f"{pairs} pairs reachable; bring-up {timings.total_s:.1f} s; nothing left"


@smoke_check("fabric-l3", order=20)
def fabric_l3() -> str:
    """l3 fabric (Linux routers, ECMP): builds, all host pairs ping, tears down clean."""
    return _all_pairs("l3")


@smoke_check("fabric-openflow", order=21)
def fabric_openflow() -> str:
    """openflow fabric (OVS, select groups): builds, all host pairs ping, tears down clean."""
    if not _ovs_running():
        raise Skip("Open vSwitch is not running (make setup starts it)")
    return _all_pairs("openflow")


def run_quietly(name: str, overrides: dict):
    """Run a shipped experiment with overrides into a temporary folder, silently; the time
    queued for the lock is reported to smoke. Returns (outcome, results root)."""
    from kvfabric.runner import run_experiment
    from kvfabric.spec import load_spec

    spec = load_spec(name, overrides)
    root = Path(tempfile.mkdtemp(prefix="kvfabric-smoke-"))
    with open("/dev/null", "w") as quiet:
        progress = _NoteFirstUpdate(quiet)
        started = time.monotonic()
        try:
            outcome = run_experiment(spec, root, progress=progress,
                                     lock_wait_s=_lock_wait_s())
        except FabricBusy:
            shutil.rmtree(root)  # nothing ran: leave nothing
            raise
        if progress.first_update is not None:
            note_lock_wait(progress.first_update - started)
    if outcome.status == "interrupted":
        raise KeyboardInterrupt(outcome.summary.get("error"))
    return outcome, root


@smoke_check("tcp-incast-run", order=30)
def tcp_incast_run() -> str:
    """kvfabric run tcp_incast (3 senders, 3 rounds): status ok, every file written."""
    outcome, root = run_quietly("tcp_incast", {"workload.senders": 3, "workload.rounds": 3,
                                               "workload.block_size": "64KiB"})
    missing = [name for name in ("spec.toml", "env.json", "flows.csv", "rounds.csv",
                                 "links.csv", "summary.json", "incast.png", "report.md")
               if not (outcome.run_dir / name).exists()]
    rounds = outcome.summary.get("results", {}).get("rounds_completed")
    if outcome.status != "ok" or missing or rounds != 3:
        raise RuntimeError(f"status {outcome.status} ({outcome.summary.get('error')}), "
                           f"{rounds}/3 rounds, missing {missing}; kept {outcome.run_dir}")
    goodput = outcome.summary["results"].get("goodput_mean_bps", 0) / 1e6
    shutil.rmtree(root)
    return (f"3/3 rounds, goodput {goodput:.1f} Mbit/s, workload "
            f"{outcome.summary['timings_s'].get('workload_s', 0):.1f} s")

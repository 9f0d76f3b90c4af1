"""The host report: every check, the backends decided from them, and `probe_host`."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from ..backends import Backends
from . import host_probes as hp
from .checks import NOT_PROBED, PY_DEPS, QDISC_KINDS, TCP_CCS, TOOLS, Check
from .kernel_probes import probe_in_namespace
from .policy import annotate, choose_backends

SCHEMA_VERSION = 1


@dataclass
class HostReport:
    checks: list[Check]
    backends: Backends
    duration_s: float = 0.0
    kernel_release: str = field(default_factory=platform.release)
    python_version: str = field(default_factory=platform.python_version)

    @property
    def minimum_ok(self) -> bool:
        """True when every required check passed: kvfabric can build a fabric here."""
        return not self.missing_required()

    def missing_required(self) -> list[Check]:
        return [c for c in self.checks if c.required and not c.ok]

    def get(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict:
        """JSON-able form, stored in each run's env.json."""
        return {
            "schema": SCHEMA_VERSION,
            "minimum_ok": self.minimum_ok,
            "kernel_release": self.kernel_release,
            "python_version": self.python_version,
            "probe_duration_s": round(self.duration_s, 3),
            "backends": self.backends.to_dict(),
            "checks": {c.name: {**asdict(c), "status": c.status} for c in self.checks},
        }


def _guarded(names: list[str], probe: Callable[[], list[Check]]) -> list[Check]:
    """Run a probe group; a bug in one group becomes failed checks, not a doctor crash."""
    try:
        return probe()
    except Exception as exc:
        return [Check(n, False, f"{NOT_PROBED}: probe error {type(exc).__name__}: {exc}")
                for n in names]


def probe_host() -> HostReport:
    """Probe this host (about a second) and return what it can do and what kvfabric will use."""
    started = time.monotonic()
    loadable = hp.modules_loadable()
    checks = [hp.probe_root(), hp.probe_kernel(loadable), hp.probe_python()]
    # pyroute2 forks to enter the namespace, so this runs before any thread exists.
    checks += _guarded(["netns", *(f"qdisc.{k}" for k in QDISC_KINDS), "cls_bpf"],
                       probe_in_namespace)
    with ThreadPoolExecutor(max_workers=len(TOOLS) + 1) as pool:
        # Subprocess-bound probes (tshark alone takes ~0.3 s) overlap the Python imports.
        tool_futures: list[Future] = [pool.submit(hp.probe_tool, name, argv)
                                      for name, (argv, _) in TOOLS.items()]
        ovs_future = pool.submit(hp.probe_ovs)
        checks += [hp.probe_bpf_jit(), hp.probe_bpffs()]
        checks += [hp.probe_py_dep(name, module, dist) for name, (module, dist) in PY_DEPS.items()]
        checks.append(hp.probe_openflow_lib())
        datapath = _guarded(["ovs.datapath"], lambda: [hp.probe_ovs_datapath()])
        checks += _guarded(["ovs"], lambda: [ovs_future.result()]) + datapath
        checks += [f.result() for f in tool_futures]
    checks.append(hp.probe_mnexec())
    checks += _guarded([f"tcp.{cc}" for cc in TCP_CCS], hp.probe_tcp_ccs)
    checks = annotate(checks, modules_loadable=loadable)
    return HostReport(checks=checks, backends=choose_backends(checks),
                      duration_s=time.monotonic() - started)

"""`kvfabric smoke`: a short end-to-end check of this host and kvfabric (CI's first stage).

Checks register themselves with ``@smoke_check``; every module in ``kvfabric/smoke_checks/``
is imported, so an area adds its checks by adding a file there (queues, RoCE, controller),
without touching this one::

    from kvfabric.smoke import Skip, smoke_check

    @smoke_check("roce-pingpong", area="roce", order=40)
    def roce_pingpong() -> str:
        ...                      # raise on failure, raise Skip("why") if it cannot run here
        return "12 messages in 3 ms"   # shown in the output and the JUnit file

A check returns a one-line detail, raises ``Skip`` when this host cannot run it, and raises
anything else to fail. Fabric checks take the fabric lock themselves and report the time they
queued for it with ``note_lock_wait`` (it is not the check's own time). The whole run should
stay under 2 minutes of its own time: keep each check to a few seconds. Exit code: 0 no check
failed (skips allowed), 1 a check failed, 2 usage, 3 the fabric
lock was busy (nothing failed; the remaining checks did not run).
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import os
import pkgutil
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

from .lock import FabricBusy


class Skip(Exception):
    """This host cannot run the check (no root, no OVS, ...); not a failure."""


@dataclass(frozen=True)
class SmokeCheck:
    name: str
    area: str
    func: Callable[[], str | None]
    order: int = 50
    needs_root: bool = True
    doc: str = ""


@dataclass
class SmokeResult:
    check: SmokeCheck
    status: str  # "passed" | "failed" | "skipped" | "busy" (the fabric lock was not free)
    detail: str
    duration_s: float
    trace: str = ""
    lock_wait_s: float = 0.0  # time spent queueing for the fabric lock (other jobs' fabrics)

    @property
    def own_s(self) -> float:
        """The check's own time: what the 2-minute budget is about."""
        return max(0.0, self.duration_s - self.lock_wait_s)


REGISTRY: dict[str, SmokeCheck] = {}
_lock_wait = [0.0]


def note_lock_wait(seconds: float) -> None:
    """A check calls this with the time it queued for the fabric lock, so the report can
    tell the check's own time from waiting behind other jobs."""
    _lock_wait[0] += seconds


def smoke_check(name: str, area: str = "core", order: int = 50, needs_root: bool = True):
    """Register a smoke check; lower order runs first (core: 10-30, areas: 40+)."""
    def register(func):
        if name in REGISTRY and REGISTRY[name].func.__qualname__ != func.__qualname__:
            raise ValueError(f"smoke check {name!r} is registered twice")
        REGISTRY[name] = SmokeCheck(name, area, func, order, needs_root,
                                    (func.__doc__ or "").strip().split("\n")[0])
        return func
    return register


def discover() -> list[SmokeCheck]:
    """Import every module of kvfabric.smoke_checks; the checks in run order."""
    from . import smoke_checks

    for info in pkgutil.iter_modules(smoke_checks.__path__):
        importlib.import_module(f"{smoke_checks.__name__}.{info.name}")
    return sorted(REGISTRY.values(), key=lambda c: (c.order, c.area, c.name))


def run_checks(checks: list[SmokeCheck], say: Callable[[str], None] = print) -> list[SmokeResult]:
    out = []
    is_root = os.geteuid() == 0
    for check in checks:
        started = time.monotonic()
        trace = ""
        _lock_wait[0] = 0.0
        try:
            if check.needs_root and not is_root:
                raise Skip("needs root")
            detail, status = check.func() or "", "passed"
        except Skip as exc:
            detail, status = str(exc), "skipped"
        except FabricBusy as exc:  # another job's fabric, not a failure of this check
            detail, status = str(exc), "busy"
        except Exception as exc:  # a failing check must not stop the others
            detail, status = f"{type(exc).__name__}: {exc}", "failed"
            trace = traceback.format_exc()
        except KeyboardInterrupt:
            say(f"{'INTERRUPTED':8} {check.area}/{check.name}")
            raise
        result = SmokeResult(check, status, detail, time.monotonic() - started, trace,
                             _lock_wait[0])
        waited = f" (+{result.lock_wait_s:.1f} s queued for the lock)" \
            if result.lock_wait_s >= 0.5 else ""
        say(f"{status.upper():8} {check.area}/{check.name:28} {result.own_s:6.1f} s  "
            f"{detail}{waited}")
        out.append(result)
        if status == "busy":
            # The lock was not free within the wait; the other fabric checks would queue
            # the same time again for it.
            say(f"{'NOT RUN':8} the remaining {len(checks) - len(out)} checks: the fabric "
                "is busy")
            break
    return out


def junit_xml(results: list[SmokeResult], duration_s: float) -> str:
    """JUnit XML as CI systems read it (one testsuite, one testcase per check). A testcase's
    time is the check's own; the suite's is the wall-clock total, lock waits included."""
    suite = ET.Element("testsuite", {
        "name": "kvfabric smoke", "tests": str(len(results)),
        "failures": str(sum(r.status == "failed" for r in results)), "errors": "0",
        "skipped": str(sum(r.status in ("skipped", "busy") for r in results)),
        "time": f"{duration_s:.3f}", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "hostname": socket.gethostname()})
    for result in results:
        case = ET.SubElement(suite, "testcase", {
            "classname": f"kvfabric.smoke.{result.check.area}", "name": result.check.name,
            "time": f"{result.own_s:.3f}"})
        if result.status == "failed":
            failure = ET.SubElement(case, "failure", {"message": result.detail,
                                                      "type": "SmokeCheckFailed"})
            failure.text = result.trace
        elif result.status in ("skipped", "busy"):
            ET.SubElement(case, "skipped", {"message": result.detail})
        ET.SubElement(case, "system-out").text = result.detail + (
            f" (queued {result.lock_wait_s:.1f} s for the fabric lock)"
            if result.lock_wait_s >= 0.5 else "")
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def exit_code(results: list[SmokeResult]) -> int:
    """1 a check failed, else 3 when a check found the fabric busy (as `kvfabric run`), 0."""
    if any(r.status == "failed" for r in results):
        return 1
    return 3 if any(r.status == "busy" for r in results) else 0


def add_parser(sub) -> None:
    p = sub.add_parser("smoke", help="short end-to-end check (under 2 minutes), for CI")
    p.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report")
    p.add_argument("--only", action="append", metavar="PATTERN",
                   help="run only checks whose AREA/NAME matches (glob; repeatable)")
    p.add_argument("--list", action="store_true", help="list the checks and exit")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    checks = discover()
    if args.only:
        checks = [c for c in checks if any(fnmatch.fnmatch(f"{c.area}/{c.name}", pattern)
                                           or fnmatch.fnmatch(c.name, pattern)
                                           for pattern in args.only)]
        if not checks:
            print(f"kvfabric smoke: no check matches {args.only}; see kvfabric smoke --list",
                  file=sys.stderr)
            return 2
    if args.list:
        for check in checks:
            print(f"{check.area}/{check.name:28} {check.doc}")
        return 0
    from .lock import wait_seconds_from_env

    wait_seconds_from_env()  # a bad $KVFABRIC_LOCK_WAIT_S is a usage error, before any check
    started = time.monotonic()
    results = run_checks(checks, say=lambda line: print(line, flush=True))
    duration = time.monotonic() - started
    counts = {s: sum(r.status == s for r in results)
              for s in ("passed", "failed", "skipped", "busy")}
    waited = sum(r.lock_wait_s for r in results)
    print(f"\nsmoke: {counts['passed']} passed, {counts['failed']} failed, "
          f"{counts['skipped']} skipped"
          + (", stopped: the fabric is busy" if counts["busy"] else "")
          + f" in {duration:.1f} s"
          + (f" ({waited:.1f} s of it queued for the fabric lock)" if waited >= 0.5 else ""))
    if args.junit:
        path = Path(args.junit)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(junit_xml(results, duration))
        print(f"JUnit report: {path}")
    return exit_code(results)

"""`kvfabric doctor`: show what this host can emulate, what stands in for what is missing, and
how to fix what kvfabric cannot run without."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import textwrap
from collections.abc import Callable

from fabriccore.capabilities import FALLBACK, MINIMUM, MISSING, OK, Check, HostReport, probe_host

_HEADERS = ("CHECK", "STATUS", "DETAIL", "KVFABRIC USES INSTEAD / FIX")
_DETAIL_WIDTH = 44
_MIN_LAST_WIDTH = 30
_GAP = "  "


def _last_column(check: Check) -> str:
    """What replaces a missing piece and, for anything not OK, how to get the real thing."""
    parts = []
    if check.status == FALLBACK:
        parts.append(f"{check.backend}: {check.fallback}" if check.backend else check.fallback)
    if check.status in (FALLBACK, MISSING) and check.fix:
        parts.append(f"fix: {check.fix}")
    return "\n".join(parts)


def _wrap(text: str, width: int) -> list[str]:
    """Wrap each paragraph of text to width; an empty cell is one empty line."""
    # Not on hyphens: package names (openvswitch-switch) and paths must stay whole.
    lines = [ln for para in text.split("\n")
             for ln in textwrap.wrap(para, width, break_on_hyphens=False) or [""]]
    return lines or [""]


def render_table(report: HostReport, width: int = 120) -> str:
    """Aligned table, one row per check, long cells wrapped onto continuation lines."""
    name_w = max(len(_HEADERS[0]), *(len(c.name) for c in report.checks))
    status_w = max(len(s) for s in (_HEADERS[1], OK, MISSING, FALLBACK))
    fixed = name_w + status_w + _DETAIL_WIDTH + 3 * len(_GAP)
    last_w = max(_MIN_LAST_WIDTH, width - fixed)
    widths = (name_w, status_w, _DETAIL_WIDTH, last_w)

    def row(cells: tuple[str, ...]) -> list[str]:
        wrapped = [_wrap(cell, w) for cell, w in zip(cells, widths, strict=True)]
        height = max(len(col) for col in wrapped)
        lines = []
        for i in range(height):
            cols = [(col[i] if i < len(col) else "").ljust(w)
                    for col, w in zip(wrapped, widths, strict=True)]
            lines.append(_GAP.join(cols).rstrip())
        return lines

    out = row(_HEADERS)
    out.append(_GAP.join("-" * w for w in widths))
    for check in report.checks:
        out += row((check.name, check.status, check.detail, _last_column(check)))
    out.append("")
    backends = report.backends.to_dict()
    out.append("backends: " + "  ".join(f"{k}={v}" for k, v in backends.items()))
    verdict = "met" if report.minimum_ok else "NOT met"
    out.append(f"minimum to run ({_minimum_names()}): {verdict}; "
               f"probe took {report.duration_s:.2f} s")
    return "\n".join(out)


def _minimum_names() -> str:
    return ", ".join(n.removeprefix("qdisc.") for n in MINIMUM) + ", python deps"


def render_fixes(report: HostReport) -> str:
    """The fixes for every failed required check, one per line."""
    lines = ["kvfabric cannot run on this host until these are fixed:"]
    for check in report.missing_required():
        lines.append(f"  {check.name}: {check.detail}")
        if check.fix:
            lines.append(f"      fix: {check.fix}")
    return "\n".join(lines)


def exit_code(report: HostReport) -> int:
    return 0 if report.minimum_ok else 1


DESCRIPTION = "Probe this host's kernel, tools and Python packages for kvfabric."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """doctor's options, for `kvfabric doctor` and `python -m kvfabric.doctor` alike."""
    parser.add_argument("--json", action="store_true",
                        help="print the report as JSON (the form stored in env.json)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kvfabric doctor", description=DESCRIPTION)
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None,
         probe: Callable[[], HostReport] = probe_host) -> int:
    """`python -m kvfabric.doctor [--json]`."""
    return report_host(_parser().parse_args(argv).json, probe)


def report_host(as_json: bool, probe: Callable[[], HostReport] = probe_host) -> int:
    """Run the probe, print the table (or JSON), return 0 when the minimum holds, else 1."""
    report = probe()
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        width = max(100, shutil.get_terminal_size((120, 24)).columns)
        print(render_table(report, width=width))
        from .sim import simulator_status, trace_reader_status

        found, where = simulator_status()
        print(f"simulator (kvfabric sim --engine hpcc-ns3): "
              f"{'found' if found else 'not found'}: {where}")
        found, where = trace_reader_status()
        print(f"simulator's trace_reader (kvfabric sim --trace): "
              f"{'found' if found else 'not found'}: {where}")
    if not report.minimum_ok:
        # With --json, stdout stays parseable JSON; the fixes go to stderr.
        print(render_fixes(report), file=sys.stderr if as_json else sys.stdout)
    return exit_code(report)


if __name__ == "__main__":
    sys.exit(main())

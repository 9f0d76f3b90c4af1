"""Modules stay at a few hundred lines with one job: none of the project's packages holds a
module over MAX_LINES lines, apart from the exceptions listed below, each with its reason."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("kvfabric", "topologies", "traffic", "controllers", "serving", "fabriccore", "wire")
MAX_LINES = 400

#: Modules known to be over the limit (path from the repository root -> why). Remove an entry
#: when its module is split; the second test fails once an entry is no longer needed.
KNOWN_EXCEPTIONS: dict[str, str] = {}


def _module_lines() -> dict[str, int]:
    """Lines of every Python module of the packages, by path from the repository root."""
    return {path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
            for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def test_no_module_is_over_the_limit_except_the_listed_ones():
    over = {path: lines for path, lines in _module_lines().items()
            if lines > MAX_LINES and path not in KNOWN_EXCEPTIONS}
    assert over == {}, f"modules over {MAX_LINES} lines: split each by job"


def test_every_listed_exception_is_still_over_the_limit():
    """An exception that has been split (or removed) leaves the list, so the list stays true."""
    lines = _module_lines()
    stale = [path for path in KNOWN_EXCEPTIONS if lines.get(path, 0) <= MAX_LINES]
    assert stale == [], f"no longer over {MAX_LINES} lines: remove from KNOWN_EXCEPTIONS"

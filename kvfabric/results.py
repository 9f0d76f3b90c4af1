"""The results store: one folder per run, ``results/<experiment>/<run-id>/``.

A run folder holds spec.toml (resolved), env.json, run.log, raw CSVs, summary.json and plots,
so it can be understood and repeated from the folder alone.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any

from .schema import SpecError, SpecIssue

DEFAULT_ROOT = Path("results")


def results_root(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get("KVFABRIC_RESULTS") or DEFAULT_ROOT)


class ResultsUnwritable(Exception):
    """A run folder or file could not be written (read-only, full, not a directory)."""


def check_writable(root: Path, origin: str) -> None:
    """Before anything is built: ``root`` is (or can become) a folder this process can write
    a file into (a 4 KiB probe: a full file system fails it); else a SpecError naming the
    option or variable it came from (``origin``) and the fix."""
    probe = root / f".kvfabric-write-test-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(bytes(4096))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if root.exists() and not root.is_dir():
            reason = "it is a file, not a folder"
        raise SpecError([SpecIssue(origin, f"cannot write runs to {root}: {reason}",
                                   "give a folder you can write to, with free space, e.g. "
                                   "--results ./results")],
                        header="bad results folder") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def new_run_dir(root: Path, experiment: str) -> Path:
    run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
    path = root / experiment / run_id
    path.mkdir(parents=True)
    return path


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    tmp.replace(path)


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file written by a run; [] when it is missing or empty."""
    if not path.exists() or path.stat().st_size == 0:
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        path.write_text("")
        return
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def root_origin(explicit: str | None = None) -> str:
    """Where the results root came from, as the user wrote it (for error messages)."""
    if explicit:
        return f"--results {explicit}"
    if os.environ.get("KVFABRIC_RESULTS"):
        return f"KVFABRIC_RESULTS={os.environ['KVFABRIC_RESULTS']}"
    return f"results root ./{DEFAULT_ROOT}"


def prepare_root(explicit: str | None = None) -> Path:
    """The results root, created if missing; SpecError naming the option if it cannot be."""
    root = results_root(explicit)
    check_writable(root, root_origin(explicit))
    return root


def _finished(run_dir: Path) -> bool:
    return (run_dir / "summary.json").exists()


def _looks_like_a_run(path: Path) -> bool:
    return any((path / name).exists() for name in RUN_FILES)


#: Files every run writes before its fabric is built: a folder with one of them is a run's.
RUN_FILES = ("spec.toml", "run.log", "env.json")


def find_run(ref: str, root: Path, origin: str | None = None) -> Path:
    """A finished run's folder from a path, a run id, or 'latest'. A folder the run left
    without summary.json (it was killed) is reported as unfinished, with what it holds."""
    path = Path(ref)
    if path.is_dir() and _finished(path):
        return path
    if path.is_dir() and _looks_like_a_run(path):
        raise _unfinished(path)
    origin = origin or f"results root {root}"
    if not root.is_dir():
        raise SpecError([SpecIssue(origin, f"{root} is not a folder", "give the results root "
                                   "the runs were written to (default ./results), or a run "
                                   "folder")], header="bad results folder")
    # Plain runs, and the numbered runs inside sweep folders.
    folders = sorted((p for p in [*root.glob("*/*/"), *root.glob("*/sweep-*/runs/*/")]
                      if p.is_dir() and (_finished(p) or _looks_like_a_run(p))),
                     key=lambda p: p.name)
    if ref == "latest":
        finished = [p for p in folders if _finished(p)]
        if finished:
            return max(finished, key=lambda p: (p / "summary.json").stat().st_mtime)
    matches = [p for p in folders if p.name == ref or p.name.startswith(ref)]
    if len(matches) == 1:
        if not _finished(matches[0]):
            raise _unfinished(matches[0])
        return matches[0]
    if not matches:
        raise SpecError([SpecIssue(ref, f"no run by that name under {root}/",
                                   "give a run folder, a run id or 'latest' (and --results "
                                   "DIR if the runs are elsewhere)")], header="no such run")
    raise SpecError([SpecIssue(ref, f"matches {len(matches)} runs: " + ", ".join(
        p.name for p in matches[:5]) + (", ..." if len(matches) > 5 else ""),
        "give more of the run id, or the run folder")], header="ambiguous run")


def _unfinished(run_dir: Path) -> SpecError:
    files = ", ".join(sorted(p.name for p in run_dir.iterdir())) or "nothing"
    return SpecError([SpecIssue(str(run_dir), "the run did not finish: there is no "
                                f"summary.json (the run was killed before it could write "
                                f"one); the folder holds {files}",
                                "read its run.log to see how far it got, run kvfabric clean "
                                "if its fabric was left behind, and run it again with "
                                f"kvfabric run {run_dir / 'spec.toml'}")],
                     header="unfinished run")


#: summary.json keys every reader relies on, and their JSON types.
SUMMARY_REQUIRED = {"status": str, "experiment": str, "fabric": dict}
SUMMARY_OPTIONAL = {"error": (str, type(None)), "results": (dict, type(None)),
                    "timings_s": (dict, type(None))}


def load_summary(run_dir: Path) -> dict[str, Any]:
    """A run's summary.json, checked; SpecError naming the file and what is wrong."""
    path = run_dir / "summary.json"
    fix = ("the run was cut short while writing it, or the file was changed: run the "
           f"experiment again (kvfabric run {run_dir / 'spec.toml'})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        problem = "is empty" if path.exists() and path.stat().st_size == 0 else \
            f"is not readable JSON ({exc})"
        raise SpecError([SpecIssue(str(path), problem, fix)],
                        header="bad run folder") from exc
    problems = []
    if not isinstance(data, dict):
        problems.append(f"holds a JSON {type(data).__name__}, not an object")
    else:
        for key, kind in SUMMARY_REQUIRED.items():
            if key not in data:
                problems.append(f"has no {key!r}")
            elif not isinstance(data[key], kind):
                problems.append(f"{key!r} is not a JSON {_JSON_NAMES[kind]}")
        for key, kinds in SUMMARY_OPTIONAL.items():
            if key in data and not isinstance(data[key], kinds):
                problems.append(f"{key!r} is not a JSON {_JSON_NAMES[kinds[0]]} or null")
    if problems:
        raise SpecError([SpecIssue(str(path), "; ".join(problems), fix)],
                        header="bad run folder")
    return data


_JSON_NAMES = {str: "string", dict: "object"}

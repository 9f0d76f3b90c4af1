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

DEFAULT_ROOT = Path("results")


def results_root(explicit: str | None = None) -> Path:
    return Path(explicit or os.environ.get("KVFABRIC_RESULTS") or DEFAULT_ROOT)


class ResultsUnwritable(Exception):
    """A run folder or file could not be written (read-only, full, not a directory)."""


def check_writable(root: Path, option: str) -> None:
    """Before anything is built: ``root`` is (or can become) a folder this process can write
    a file into; else a SpecError naming ``option`` and the fix."""
    from .schema import SpecError, SpecIssue

    probe = root / f".kvfabric-write-test-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"x" * 4096)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if root.exists() and not root.is_dir():
            reason = "it is a file, not a folder"
        raise SpecError([SpecIssue(option, f"results root {root} is not writable: {reason}",
                                   "give a writable folder with free space, e.g. --results "
                                   "/tmp/kvfabric-results")]) from None
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


def find_run(ref: str, root: Path) -> Path:
    """A run folder from a path, a run id, or 'latest'."""
    path = Path(ref)
    if (path / "summary.json").exists():
        return path
    # Plain runs, and the numbered runs inside sweep folders.
    runs = sorted([*root.glob("*/*/summary.json"), *root.glob("*/sweep-*/runs/*/summary.json")],
                  key=lambda p: p.parent.name)
    if ref == "latest" and runs:
        return max(runs, key=lambda p: p.stat().st_mtime).parent
    matches = [p.parent for p in runs if p.parent.name == ref or p.parent.name.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise FileNotFoundError(f"no run {ref!r} under {root}/ (give a run folder, a run id "
                                "or 'latest')")
    raise FileNotFoundError(f"{ref!r} matches {len(matches)} runs; give more of the run id")


def load_summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "summary.json").read_text())

"""Run the installed ``kvfabric`` console script as a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

KVFABRIC = Path(sys.executable).parent / "kvfabric"
TRACEBACK = "Traceback (most recent call last)"


def kvfabric(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
             timeout_s: float = 120) -> subprocess.CompletedProcess:
    """`kvfabric ARGS...`; env adds to (or, with None values, removes from) os.environ."""
    full_env = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value
    return subprocess.run([str(KVFABRIC), *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout_s)


def usage_error(proc: subprocess.CompletedProcess) -> str:
    """stderr of a run that must have been refused as bad input: exit 2, no traceback."""
    output = proc.stdout + proc.stderr
    assert TRACEBACK not in output, output
    assert proc.returncode == 2, f"exit {proc.returncode}\n{output}"
    return proc.stderr

"""Run the installed ``kvfabric`` console script as a subprocess, as a user would."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
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


@contextlib.contextmanager
def fabric_busy(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Hold a fabric lock of our own while the block runs; yields the environment under which
    kvfabric sees it (busy, and no waiting for it). The machine's real lock is not touched,
    so other jobs' fabrics neither block these tests nor are blocked by them."""
    from kvfabric.lock import PATH_ENV, WAIT_ENV

    env = {PATH_ENV: str(tmp_path / "fabric.lock"), WAIT_ENV: "0"}
    previous = os.environ.get(PATH_ENV)
    os.environ[PATH_ENV] = env[PATH_ENV]
    try:
        from kvfabric.lock import fabric_lock

        with fabric_lock("pytest: busy-lock test", wait_s=0):
            yield env
    finally:
        if previous is None:
            os.environ.pop(PATH_ENV)
        else:
            os.environ[PATH_ENV] = previous

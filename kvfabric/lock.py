"""The global fabric lock: one fabric on the machine at a time.

An advisory flock on /run/kvfabric/fabric.lock; the kernel drops it when the holder dies, so a
crashed run never blocks the next one. The file names the holder for the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

from fabriccore.naming import LOCK_PATH

from .schema import SpecError, SpecIssue

#: Seconds to wait for a busy lock before giving up; 0 (the default) fails at once. Set it
#: when several jobs share one machine (CI stages, parallel test sessions) so they queue.
WAIT_ENV = "KVFABRIC_LOCK_WAIT_S"
#: Another lock file instead of /run/kvfabric/fabric.lock. For tests of the busy-lock paths
#: only (they hold this file themselves, so they never block nor wait for the machine's real
#: fabrics): two jobs with different lock files are not kept apart.
PATH_ENV = "KVFABRIC_LOCK_PATH"


class FabricBusy(RuntimeError):
    pass


def wait_seconds_from_env(default: float = 0.0) -> float:
    """$KVFABRIC_LOCK_WAIT_S in seconds (default when unset); SpecError if it is not a
    finite number >= 0."""
    raw = os.environ.get(WAIT_ENV)
    if raw is None:
        return default
    return check_wait_seconds(raw, WAIT_ENV)


def check_wait_seconds(raw: str, name: str) -> float:
    """A lock wait given as text (an option or the environment), checked."""
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise SpecError([SpecIssue(name, f"{raw!r} is not a number of seconds >= 0",
                                   f"give e.g. {name}{'=' if name == WAIT_ENV else ' '}600 "
                                   "(0: fail at once when the fabric is busy)")],
                        header="invalid lock wait")
    return value


def lock_path() -> Path:
    return Path(os.environ.get(PATH_ENV) or LOCK_PATH)


def _acquire(fd: int, wait_s: float) -> bool:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)


@contextlib.contextmanager
def fabric_lock(purpose: str, wait_s: float | None = None) -> Iterator[None]:
    """Hold the machine's fabric lock; wait up to `wait_s` (default: $KVFABRIC_LOCK_WAIT_S,
    else 0) for a busy lock, then raise FabricBusy naming the holder."""
    wait_s = wait_seconds_from_env() if wait_s is None else wait_s
    path = lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _acquire(fd, wait_s):
            holder = _read_holder(fd)
            raise FabricBusy(
                "another kvfabric fabric is running"
                + (f" (pid {holder.get('pid')}: {holder.get('purpose')}, "
                   f"since {holder.get('since')})" if holder else "")
                + "; wait for it to finish, or stop it (Ctrl-C / kill PID): only one fabric "
                f"may run at a time (or set {WAIT_ENV}=SECONDS to queue behind it)")
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "purpose": purpose,
                                 "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _read_holder(fd: int) -> dict:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        return {}

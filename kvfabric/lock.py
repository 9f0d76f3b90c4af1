"""The global fabric lock: one fabric on the machine at a time.

An advisory flock on /run/kvfabric/fabric.lock; the kernel drops it when the holder dies, so a
crashed run never blocks the next one. The file names the holder for the error message.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator

from .naming import LOCK_PATH


class FabricBusy(RuntimeError):
    pass


@contextlib.contextmanager
def fabric_lock(purpose: str) -> Iterator[None]:
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            raise FabricBusy(
                "another kvfabric fabric is running"
                + (f" (pid {holder.get('pid')}: {holder.get('purpose')}, "
                   f"since {holder.get('since')})" if holder else "")
                + "; wait for it to finish, or stop it (Ctrl-C / kill PID): only one fabric "
                "may run at a time") from None
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
